"""A client cannot hurt the others, and a room's slots belong to its token holders.

Each hostile case runs against a server of its own (its counters are the test's alone), over real
loopback sockets, and asserts the outcome: who is disconnected and why, what still arrives. Timing
figures (other pairs' p99 during a flood, memory under a slow reader) are
``benchmarks/bench_server.py``'s to print, never asserted here.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from p2p_server.limits import ClientLimits
from p2p_server.server import ServerOptions, ServerThread
from p2p_server.tokens import mint_token
from tests.test_server import EVENT_TIMEOUT_S, Peer, wait_until

pytestmark = pytest.mark.timeout(90)

SECRET = b"s" * 32
PACKET = b"\x04" + bytes(23)


class RawClient:
    """Engine.IO/Socket.IO spoken by hand over a WebSocket, to send what a library would not."""

    def __init__(self, url: str, recv_buffer: int | None = None) -> None:
        sock = None
        if recv_buffer is not None:
            # A small receive window, so that a client that stops reading stops the server's
            # writes within kilobytes, not the megabytes loopback would otherwise buffer.
            host, port = url.removeprefix("http://").split(":")
            sock = socket.create_connection((host, int(port)))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws: ClientConnection = connect(
            ws_url, sock=sock, compression=None, max_size=None, legacy=True
        )
        self.ws.recv(timeout=EVENT_TIMEOUT_S)  # Engine.IO open
        self.ws.send("40")
        self.ws.recv(timeout=EVENT_TIMEOUT_S)  # Socket.IO connect

    def emit(self, event: str, payload: Any) -> None:
        self.ws.send("42" + json.dumps([event, payload]))

    def relay(self, packet: bytes = PACKET) -> None:
        self.ws.send('451-["relay",{"_placeholder":true,"num":0}]')
        self.ws.send(packet)

    def events(self, timeout: float = EVENT_TIMEOUT_S) -> Iterator[tuple[str, Any]]:
        """Socket.IO events as they come (pings answered) until the connection closes."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                message = self.ws.recv(timeout=max(0.0, deadline - time.monotonic()))
                if message == "2":
                    self.ws.send("3")
                elif isinstance(message, str) and message.startswith("42"):
                    name, *args = json.loads(message[2:])
                    yield name, args[0] if args else None
        except (ConnectionClosed, TimeoutError):
            return

    def error_code(self, timeout: float = EVENT_TIMEOUT_S) -> str | None:
        """The ``code`` of the first ``error`` event before the connection ends."""
        for name, payload in self.events(timeout):
            if name == "error":
                return str(payload.get("code"))
        return None

    def closed(self, timeout: float = EVENT_TIMEOUT_S) -> bool:
        """Whether the server closes the WebSocket within ``timeout`` (what comes first is
        read and ignored)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        except ConnectionClosed:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread() as srv:
        yield srv


def token_server() -> ServerThread:
    return ServerThread(options=ServerOptions(token_secret=SECRET))


def relay_between(a: Peer, b: Peer, count: int) -> None:
    """``a`` relays ``count`` packets to ``b``, which must receive every one, in order."""
    for seq in range(count):
        a.emit("relay", seq.to_bytes(4, "big"))
    for seq in range(count):
        assert b.expect("relay") == seq.to_bytes(4, "big")


def test_a_flooding_client_is_cut_off_and_the_other_pairs_lose_nothing(
    server: ServerThread,
) -> None:
    a, b = Peer(server.url, "a"), Peer(server.url, "b")
    a.join("calm")
    b.join("calm")
    a.expect("paired")
    b.expect("paired")
    flooder, partner = RawClient(server.url), Peer(server.url, "partner")
    flooder.emit("join", {"room": "flood"})
    partner.join("flood")
    partner.expect("paired")
    limits = server.relay.limits
    # Ten times what the flooder may send in its burst and grace together.
    for _ in range(10 * limits.max_flood_drops):
        try:
            flooder.relay()
        except ConnectionClosed:
            break
    assert flooder.error_code() == "rate_limited"
    assert flooder.closed()
    wait_until(lambda: server.stats.disconnected_flooding == 1)
    # The partner got what the server let through, then was told its peer is gone.
    received = 0
    while (event := partner.events.get(timeout=EVENT_TIMEOUT_S))[0] == "relay":
        received += 1
    assert event == ("peer_left", {"player_index": 0})
    assert received == server.stats.relay_messages
    assert server.stats.throttled > limits.max_flood_drops
    relay_between(a, b, 100)
    relay_between(b, a, 100)
    for peer in (a, b, partner):
        peer.close()


def feed_until_the_reader_is_dropped(server: ServerThread, send: Callable[[bytes], Any]) -> None:
    """Send 4 KiB packets as fast as the limits allow until the server drops the peer as a slow
    reader (30 s at most), then check that it was dropped, once, after dropping packets."""
    big = b"\x04" + bytes(4095)
    deadline = time.monotonic() + 30
    while server.stats.disconnected_slow_reader == 0 and time.monotonic() < deadline:
        send(big)
        time.sleep(0.001)
    assert server.stats.disconnected_slow_reader == 1
    assert server.stats.dropped_slow_reader > 0


def test_a_client_that_stops_reading_is_dropped_and_the_sender_is_not_blamed() -> None:
    # Limits raised for the sender only so that the reader's kernel buffers fill in seconds.
    limits = ClientLimits(relay_per_s=5000, relay_bytes_per_s=20e6, slow_reader_s=1)
    with ServerThread(options=ServerOptions(limits=limits)) as server:
        sender = RawClient(server.url)
        reader = RawClient(server.url, recv_buffer=4096)
        sender.emit("join", {"room": "slow"})
        reader.emit("join", {"room": "slow"})
        wait_until(lambda: server.stats.rooms_open == 1 and server.stats.joins == 2)
        # The reader reads nothing at all.
        feed_until_the_reader_is_dropped(server, sender.relay)
        assert server.stats.disconnected_flooding == 0
        # The sender is still connected: told its peer left, it can go on.
        assert ("peer_left", {"player_index": 1}) in sender.events(timeout=EVENT_TIMEOUT_S)
        assert server.stats.connected == 1
        sender.close()
        reader.close()


def test_a_socket_that_never_joins_is_closed() -> None:
    with ServerThread(options=ServerOptions(limits=ClientLimits(join_timeout_s=0.5))) as server:
        idle = RawClient(server.url)
        assert idle.error_code() == "join_timeout"
        # Not only Socket.IO: the WebSocket itself is closed, at once.
        assert idle.closed()
        wait_until(lambda: server.stats.connected == 0)
        assert server.stats.join_timeouts == 1
        idle.close()


def test_a_full_server_makes_room_by_closing_a_socket_that_has_not_joined() -> None:
    with ServerThread(options=ServerOptions(limits=ClientLimits(max_connections=2))) as server:
        joined, idle = RawClient(server.url), RawClient(server.url)
        joined.emit("join", {"room": "r"})
        assert next(joined.events()) == ("joined", {"room": "r", "player_index": 0})
        newcomer = RawClient(server.url)
        # The idle socket made room; the joined player kept its place.
        assert idle.error_code() == "evicted"
        newcomer.emit("join", {"room": "r"})
        assert next(newcomer.events()) == ("joined", {"room": "r", "player_index": 1})
        assert server.stats.refusals == {"evicted_unjoined": 1}
        # Now every socket has joined: the next one is refused at the door.
        with pytest.raises(InvalidStatus) as refused:
            RawClient(server.url)
        assert refused.value.response.status_code == 403
        assert server.stats.connections_refused == 1
        assert server.stats.refusals == {"evicted_unjoined": 1, "server_full": 1}
        for client in (joined, idle, newcomer):
            client.close()


JUNK: list[str | bytes] = ["4junk", "42[", '42{"a":1}', b"\x00\x01", "9", "42[1,2]", "4" + "[" * 50]


def test_junk_is_counted_logged_once_and_its_sender_dropped(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = Peer(server.url, "a"), Peer(server.url, "b")
    a.join("fine")
    b.join("fine")
    a.expect("paired")
    b.expect("paired")
    junk = RawClient(server.url)
    junk.emit("join", {"room": "junk"})
    with caplog.at_level(logging.INFO):
        for _ in range(server.relay.limits.max_malformed + 5):
            for message in JUNK:
                try:
                    junk.ws.send(message)
                except ConnectionClosed:
                    break
        codes = {p["code"] for name, p in junk.events() if name == "error"}
        # "42[1,2]" is a well-formed event with an unknown name: refused, not malformed.
        assert codes == {"refused", "malformed"}
        wait_until(lambda: server.stats.connected == 2)
    assert server.stats.malformed > server.relay.limits.max_malformed
    assert "Traceback" not in caplog.text
    assert not any(record.exc_info for record in caplog.records)
    logged = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert 1 <= len(logged) <= 3, [r.getMessage() for r in logged]
    relay_between(a, b, 20)
    a.close()
    b.close()


def test_engineio_junk_leaves_no_traceback(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        for message in ("junk", "x" * 10):
            client = RawClient(server.url)
            client.ws.send(message)
            list(client.events(timeout=2))
            client.close()
        wait_until(lambda: server.stats.malformed >= 2)
    assert "Traceback" not in caplog.text
    assert not any(record.exc_info for record in caplog.records)


# --- tokens --------------------------------------------------------------------------------------


def test_without_a_valid_token_nobody_gets_in() -> None:
    with token_server() as server:
        for token, why in (
            (None, "need a token"),
            ("not-a-token", "invalid token"),
            (mint_token(b"x" * 32, "r", 0), "invalid token"),  # another secret: forged
            (mint_token(SECRET, "r", 0, ttl_s=10, now=time.time() - 100), "expired"),
            (mint_token(SECRET, "other-room", 0), "for room 'other-room'"),
        ):
            client = RawClient(server.url)
            client.emit("join", {"room": "r"} if token is None else {"room": "r", "token": token})
            name, payload = next(client.events())
            assert name == "error", (token, name, payload)
            assert payload["code"] == "unauthorized"
            assert why in payload["message"]
            client.close()
        assert server.stats.token_refusals == 5
        assert server.stats.joins == 0


def test_the_token_names_the_slot_so_nobody_can_squat_player_0() -> None:
    with token_server() as server:
        second = RawClient(server.url)
        second.emit("join", {"room": "r", "token": mint_token(SECRET, "r", 1)})
        assert next(second.events()) == ("joined", {"room": "r", "player_index": 1})
        first = RawClient(server.url)
        first.emit("join", {"room": "r", "token": mint_token(SECRET, "r", 0)})
        assert next(first.events()) == ("joined", {"room": "r", "player_index": 0})
        second.close()
        first.close()


def test_the_token_holder_takes_a_half_open_slot_back_at_once_and_the_peer_stays() -> None:
    with token_server() as server:
        token0 = mint_token(SECRET, "r", 0)
        stale, peer = RawClient(server.url), RawClient(server.url)
        stale.emit("join", {"room": "r", "token": token0, "client": "page-a"})
        peer.emit("join", {"room": "r", "token": mint_token(SECRET, "r", 1), "client": "page-b"})
        peer_events = peer.events(timeout=EVENT_TIMEOUT_S)
        assert [next(peer_events)[0], next(peer_events)[0]] == ["joined", "paired"]
        # The stale connection says nothing more (as if its TCP connection had vanished); the
        # same page comes back on a new one.
        back = RawClient(server.url)
        back.emit("join", {"room": "r", "token": token0, "client": "page-a"})
        back_events = back.events()
        assert next(back_events) == ("joined", {"room": "r", "player_index": 0})
        name, detail = next(back_events)
        assert isinstance(detail.pop("relay_ticket"), str)
        assert (name, detail) == (
            "paired",
            {"room": "r", "player_index": 0, "peer_index": 1, "peer_client": "page-b"},
        )
        # The peer is told the same player is back (no peer_left), and the stale socket goes.
        name, detail = next(peer_events)
        assert isinstance(detail.pop("relay_ticket"), str)
        assert (name, detail) == (
            "paired",
            {"room": "r", "player_index": 1, "peer_index": 0, "peer_client": "page-a"},
        )
        assert stale.error_code() == "replaced"
        wait_until(lambda: server.stats.connected == 2)
        assert server.stats.slots_reclaimed == 1
        # A stranger with no token still cannot take either slot.
        stranger = RawClient(server.url)
        stranger.emit("join", {"room": "r"})
        assert stranger.error_code() == "unauthorized"
        for client in (stale, peer, back, stranger):
            client.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token-secret-file", "SHORT"], "a token secret needs at least 32 bytes, has 5"),
        (["--turn-urls", "turn:127.0.0.1:3478"], "--turn-secret-file and --turn-urls go together"),
        (["--turn-secret-file", "LONG", "--turn-urls", "http://x"], "is not a TURN URL"),
    ],
)
def test_wrong_security_options_stop_the_server_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    from p2p_server.server import main

    (tmp_path / "SHORT").write_text("short\n")
    (tmp_path / "LONG").write_text("x" * 40)
    argv = [str(tmp_path / a) if a in ("SHORT", "LONG") else a for a in args]
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
