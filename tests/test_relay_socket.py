"""The relay's lean path (p2p_server.relay_socket): a plain WebSocket per player, opened with the
ticket ``paired`` gave, one binary frame per packet, held to the same limits as the Socket.IO
path. Real server, real sockets, loopback only; outcomes asserted, never timings."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from p2p_server.limits import ClientLimits
from p2p_server.server import ServerOptions, ServerThread
from p2p_transport.wire.signaling import relay_socket_url
from tests.test_server import EVENT_TIMEOUT_S, wait_until
from tests.test_server_isolation import RawClient, feed_until_the_reader_is_dropped

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread() as srv:
        yield srv


def join_pair(server: ServerThread, room: str) -> list[tuple[RawClient, dict[str, Any]]]:
    """Two raw clients in ``room``, each with its ``paired`` detail."""
    clients = [RawClient(server.url), RawClient(server.url)]
    for client in clients:
        client.emit("join", {"room": room})
    result = []
    for client in clients:
        events = client.events()
        details = {name: payload for name, payload in (next(events), next(events))}
        result.append((client, details["paired"]))
    return result


def lean(server: ServerThread, ticket: str, room: str, recv_buffer: int | None = None) -> Any:
    sock = None
    if recv_buffer is not None:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
    conn: ClientConnection = connect(
        relay_socket_url(server.url, ticket, room), sock=sock, compression=None, legacy=True
    )
    return conn


def test_packets_cross_on_lean_sockets_and_to_a_peer_on_socket_io(server: ServerThread) -> None:
    (a, pa), (b, pb) = join_pair(server, "lean")
    a_lean = lean(server, pa["relay_ticket"], "lean")
    wait_until(lambda: server.stats.relay_sockets_open == 1)
    # b has no lean socket yet: a's packets reach it as Socket.IO relay events.
    a_lean.send(b"\x04first")
    b.ws.recv(timeout=EVENT_TIMEOUT_S)  # the binary event's header
    assert b.ws.recv(timeout=EVENT_TIMEOUT_S) == b"\x04first"
    b_lean = lean(server, pb["relay_ticket"], "lean")
    wait_until(lambda: server.stats.relay_sockets_open == 2)
    for seq in range(50):
        a_lean.send(bytes([4, seq]))
        b_lean.send(bytes([5, seq]))
    assert [b_lean.recv(timeout=EVENT_TIMEOUT_S) for _ in range(50)] == [
        bytes([4, seq]) for seq in range(50)
    ]
    assert [a_lean.recv(timeout=EVENT_TIMEOUT_S) for _ in range(50)] == [
        bytes([5, seq]) for seq in range(50)
    ]
    # A Socket.IO relay from b goes out on a's lean socket.
    b.relay(b"\x04via-socket-io")
    assert a_lean.recv(timeout=EVENT_TIMEOUT_S) == b"\x04via-socket-io"
    assert server.stats.relay_socket_messages == 101
    for conn in (a_lean, b_lean, a, b):
        conn.close()


def test_a_ticket_opens_one_socket_and_a_wrong_one_none(server: ServerThread) -> None:
    (a, pa), (b, _) = join_pair(server, "tickets")
    kept = lean(server, pa["relay_ticket"], "tickets")
    wait_until(lambda: server.stats.relay_sockets_open == 1)
    for ticket in ("wrong", pa["relay_ticket"]):  # made up, and used already
        with pytest.raises(InvalidStatus) as refused:
            lean(server, ticket, "tickets")
        assert refused.value.response.status_code == 403
    assert server.stats.relay_sockets_open == 1
    # The client leaving closes its lean socket too.
    a.close()
    with pytest.raises(ConnectionClosed):
        kept.recv(timeout=EVENT_TIMEOUT_S)
    wait_until(lambda: server.stats.relay_sockets_open == 0)
    b.close()


def test_a_lean_reader_that_stops_reading_is_dropped_and_the_sender_goes_on() -> None:
    limits = ClientLimits(relay_per_s=5000, relay_bytes_per_s=20e6, slow_reader_s=1)
    with ServerThread(options=ServerOptions(limits=limits)) as server:
        (a, pa), (b, pb) = join_pair(server, "slow")
        sender = lean(server, pa["relay_ticket"], "slow")
        reader = lean(server, pb["relay_ticket"], "slow", recv_buffer=4096)
        wait_until(lambda: server.stats.relay_sockets_open == 2)
        feed_until_the_reader_is_dropped(server, sender.send)
        assert ("peer_left", {"player_index": 1}) in a.events(timeout=EVENT_TIMEOUT_S)
        assert server.stats.connected == 1 and server.stats.disconnected_flooding == 0
        for conn in (sender, reader, a, b):
            conn.close()


def test_a_lean_flood_is_cut_off_like_a_socket_io_one(server: ServerThread) -> None:
    (a, pa), (b, _) = join_pair(server, "flood")
    flooder = lean(server, pa["relay_ticket"], "flood")
    try:
        for _ in range(10 * server.relay.limits.max_flood_drops):
            flooder.send(b"\x04" + bytes(23))
    except ConnectionClosed:
        pass
    assert a.error_code() == "rate_limited"
    wait_until(lambda: server.stats.disconnected_flooding == 1)
    for conn in (flooder, a, b):
        conn.close()
