"""Rooms of more than two players and spectators on the reference server (p2p_server.rooms), over
real loopback sockets: filling a room of N, the events that say how many are missing and who is
there, signals addressed by player index, the relay's fan-out and envelope, spectators, and the
limits that still hold for one client however many its packets reach.

The clients are tests.test_server's: python-socketio's sync client over WebSocket, recording every
event in order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from p2p_server.limits import ClientLimits
from p2p_server.server import ServerOptions, ServerThread
from p2p_server.tokens import ALGORITHM, mint_token
from p2p_transport.wire.codec import encode_input_packet, encode_input_record
from p2p_transport.wire.signaling import MAX_SPECTATORS, RELAY_TO_ALL
from tests.test_server import Connect, Peer, paired, peers_of, wait_until

pytestmark = pytest.mark.timeout(90)

SECRET = b"rooms-test-secret-of-at-least-32-bytes"


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ServerThread]:
    with ServerThread() as srv:
        yield srv


@pytest.fixture
def connect(shared_server: ServerThread) -> Iterator[Connect]:
    assert shared_server.stats.rooms_open == 0, "a previous test left a room open"
    with peers_of(shared_server) as make:
        yield make


def ready(peer: Peer) -> dict[str, Any]:
    """The next event, which must be ``room_ready``, without its (random) relay ticket."""
    detail: dict[str, Any] = peer.expect("room_ready")
    ticket = detail.pop("relay_ticket")
    assert isinstance(ticket, str) and len(ticket) >= 16
    return detail


def fill(connect: Connect, room: str, players: int) -> list[Peer]:
    """A room of ``players`` filled in index order, every event up to ``room_ready`` consumed."""
    peers = [connect(f"p{i}") for i in range(players)]
    for index, peer in enumerate(peers):
        peer.emit("join", {"room": room, "players": players, "client": f"page-{index}"})
        assert peer.expect("joined")["player_index"] == index
    for index, peer in enumerate(peers):
        # Every join but the last told everyone there that someone is still missing.
        for _ in range(index, players - 1):
            peer.expect("waiting_for_peer")
        ready(peer)
    return peers


# --- filling a room of N --------------------------------------------------------------------------


@pytest.mark.parametrize("players", [3, 4, 8])
def test_a_room_of_n_fills_in_index_order_telling_everyone_how_many_are_missing(
    connect: Connect, players: int
) -> None:
    peers = [connect(f"p{i}") for i in range(players)]
    for index, peer in enumerate(peers):
        peer.emit("join", {"room": "n", "players": players, "client": f"page-{index}"})
        missing = players - index - 1
        assert peer.expect("joined") == {
            "room": "n",
            "player_index": index,
            "players": players,
            "missing": missing,
        }
        if missing:
            waiting = {
                "room": "n",
                "players": players,
                "present": list(range(index + 1)),
                "missing": missing,
            }
            for earlier in peers[: index + 1]:
                assert earlier.expect("waiting_for_peer") == waiting
    for index, peer in enumerate(peers):
        assert ready(peer) == {
            "room": "n",
            "player_index": index,
            "players": players,
            "peers": [
                {"player_index": i, "client": f"page-{i}"} for i in range(players) if i != index
            ],
        }
        peer.expect_silence(0)
    extra = connect("extra")
    extra.emit("join", {"room": "n", "players": players})
    assert extra.expect("error")["code"] == "room_full"


def test_the_full_room_event_of_a_4_player_room_exactly(connect: Connect) -> None:
    peers = [connect(f"p{i}") for i in range(4)]
    for index, peer in enumerate(peers):
        # Player 2 names no client id: its peers get its index alone.
        join: dict[str, Any] = {"room": "four", "players": 4}
        if index != 2:
            join["client"] = f"page-{index}"
        peer.emit("join", join)
        assert peer.expect("joined")["player_index"] == index
    for _ in range(3):
        peers[0].expect("waiting_for_peer")
    assert ready(peers[0]) == {
        "room": "four",
        "player_index": 0,
        "players": 4,
        "peers": [
            {"player_index": 1, "client": "page-1"},
            {"player_index": 2},
            {"player_index": 3, "client": "page-3"},
        ],
    }


@pytest.mark.parametrize("join_extra", [{}, {"players": 2}], ids=["no-players", "players-2"])
def test_a_two_player_room_is_paired_exactly_as_before(
    connect: Connect, join_extra: dict[str, Any]
) -> None:
    a, b = connect("a"), connect("b")
    a.emit("join", {"room": "two", "client": "page-a", **join_extra})
    assert a.expect("joined") == {"room": "two", "player_index": 0}
    a.expect_silence()  # no waiting event in a two-player room
    b.emit("join", {"room": "two", "client": "page-b", **join_extra})
    assert b.expect("joined") == {"room": "two", "player_index": 1}
    assert paired(a) == {"room": "two", "player_index": 0, "peer_index": 1, "peer_client": "page-b"}
    assert paired(b) == {"room": "two", "player_index": 1, "peer_index": 0, "peer_client": "page-a"}


def test_the_first_joiner_fixes_the_number_of_players(connect: Connect) -> None:
    first = connect("first")
    first.emit("join", {"room": "fixed", "players": 4})
    first.expect("joined")
    for join in ({"room": "fixed", "players": 3}, {"room": "fixed"}):  # no players: two
        other = connect("other")
        other.emit("join", join)
        error = other.expect("error")
        assert error["code"] == "room_size"
        assert "is a 4-player room" in error["message"]
    for bad in (1, 9, "4", True):
        other = connect("bad")
        other.emit("join", {"room": "elsewhere", "players": bad})
        assert "'players' must be a whole number 2..8" in other.expect("error")["message"]


def test_a_player_leaving_a_room_of_three_is_told_and_the_room_waits_again(
    connect: Connect,
) -> None:
    peers = fill(connect, "three", 3)
    peers[1].close()
    for peer in (peers[0], peers[2]):
        assert peer.expect("peer_left") == {"player_index": 1}
        assert peer.expect("waiting_for_peer") == {
            "room": "three",
            "players": 3,
            "present": [0, 2],
            "missing": 1,
        }
    back = connect("back")
    back.emit("join", {"room": "three", "players": 3, "client": "page-1"})
    assert back.expect("joined")["player_index"] == 1
    for index, peer in ((0, peers[0]), (2, peers[2]), (1, back)):
        assert ready(peer)["player_index"] == index


# --- signals --------------------------------------------------------------------------------------


def test_signals_go_to_the_player_they_name_with_the_sender_added(connect: Connect) -> None:
    p0, p1, p2 = fill(connect, "sig", 3)
    offer = {"type": "offer", "sdp": "v=0\r\n...", "to": 2}
    p0.emit("webrtc_signal", offer)
    assert p2.expect("webrtc_signal") == {**offer, "from": 0}
    p2.emit("webrtc_signal", {"type": "answer", "sdp": "x", "to": 0, "from": 1})  # not believed
    assert p0.expect("webrtc_signal") == {"type": "answer", "sdp": "x", "to": 0, "from": 2}
    p1.expect_silence()

    for bad, why in (
        ({"type": "offer"}, "names the player it is for with 'to'"),
        ({"type": "offer", "to": 0}, "no other player 0"),  # itself
        ({"type": "offer", "to": 3}, "no other player 3"),
        ({"type": "offer", "to": "1"}, "'to' must be a player index"),
    ):
        p0.emit("webrtc_signal", bad)
        assert why in p0.expect("error")["message"]
    p1.expect_silence(0)
    p2.expect_silence(0)


def test_a_two_player_room_takes_an_addressed_signal_too(connect: Connect) -> None:
    a, b = connect("a"), connect("b")
    a.join("two")
    b.join("two")
    a.expect("paired")
    b.expect("paired")
    a.emit("webrtc_signal", {"type": "offer", "to": 1})
    assert b.expect("webrtc_signal") == {"type": "offer", "to": 1, "from": 0}


# --- the relay ------------------------------------------------------------------------------------


def test_a_packet_for_the_room_fans_out_to_every_other_player_and_its_input_to_the_spectators(
    connect: Connect, shared_server: ServerThread
) -> None:
    watcher = connect("watcher")
    watcher.emit("join", {"room": "fan", "spectator": True})
    assert watcher.expect("joined") == {
        "room": "fan",
        "spectator": True,
        "players": None,
        "missing": None,
    }
    peers = fill(connect, "fan", 4)
    for _ in range(3):
        watcher.expect("waiting_for_peer")
    assert ready(watcher) == {
        "room": "fan",
        "spectator": True,
        "players": 4,
        "peers": [{"player_index": i, "client": f"page-{i}"} for i in range(4)],
    }
    before = shared_server.stats.snapshot()
    assert before["spectators"] == 1

    packet = encode_input_packet(1, 7, [(6, 2), (7, 3)])
    peers[1].emit("relay", bytes((RELAY_TO_ALL,)) + packet)
    for index in (0, 2, 3):
        assert peers[index].expect("relay") == b"\x01" + packet  # the sender's index first
    # The spectators get the server's feed of it instead (tests/test_spectator_feed.py).
    assert watcher.expect("relay") == b"\x01" + encode_input_record(1, [(6, 2), (7, 3)])
    # Addressed: to player 3 only, and nothing to the spectators (no input in it).
    peers[2].emit("relay", b"\x03" + b"\x02ping")
    assert peers[3].expect("relay") == b"\x02\x02ping"
    for other in (peers[0], peers[1], peers[2], watcher):
        other.expect_silence()
    after = shared_server.stats.snapshot()
    assert after["relay_messages"] - before["relay_messages"] == 4
    assert after["spectator_messages"] - before["spectator_messages"] == 1

    for bad, why in ((b"\x09x", "no other player 9"), (b"\x01x", "no other player 1")):
        peers[1].emit("relay", bad)
        assert why in peers[1].expect("error")["message"]


def test_a_spectator_of_a_two_player_room_gets_each_input_with_its_sender(
    connect: Connect,
) -> None:
    a, b = connect("a"), connect("b")
    a.join("pair")
    b.join("pair")
    a.expect("paired")
    b.expect("paired")
    watcher = connect("watcher")
    watcher.emit("join", {"room": "pair", "spectator": True})
    assert watcher.expect("joined") == {
        "room": "pair",
        "spectator": True,
        "players": 2,
        "missing": 0,
    }
    assert ready(watcher)["peers"] == [{"player_index": 0}, {"player_index": 1}]
    packet = encode_input_packet(1, 0, [(0, 2)])
    b.emit("relay", packet)
    assert a.expect("relay") == packet  # the players' packets as they always were
    assert watcher.expect("relay") == b"\x01" + encode_input_record(1, [(0, 2)])
    b.expect_silence()


def test_a_spectators_input_is_refused_and_counted(
    connect: Connect, shared_server: ServerThread
) -> None:
    peers = fill(connect, "watched", 3)
    watcher = connect("watcher")
    watcher.emit("join", {"room": "watched", "spectator": True})
    watcher.expect("joined")
    ready(watcher)
    refused = shared_server.stats.refusals.get("spectator_input", 0)
    watcher.emit("relay", bytes((RELAY_TO_ALL,)) + b"\x01input")
    error = watcher.expect("error")
    assert error["code"] == "spectator_input"
    watcher.emit("webrtc_signal", {"type": "offer", "to": 0})
    assert "sends no signals" in watcher.expect("error")["message"]
    for peer in peers:
        peer.expect_silence()
    assert shared_server.stats.refusals["spectator_input"] == refused + 1


def test_the_spectator_past_the_limit_is_refused(
    connect: Connect, shared_server: ServerThread
) -> None:
    watchers = [connect(f"w{i}") for i in range(MAX_SPECTATORS + 1)]
    for watcher in watchers[:MAX_SPECTATORS]:
        watcher.emit("join", {"room": "crowded", "spectator": True})
        watcher.expect("joined")
    assert shared_server.stats.snapshot()["spectators"] == MAX_SPECTATORS
    watchers[-1].emit("join", {"room": "crowded", "spectator": True})
    error = watchers[-1].expect("error")
    assert error["code"] == "spectators_full"
    assert f"has its {MAX_SPECTATORS} spectators" in error["message"]
    # A player still gets in.
    player = connect("player")
    assert player.join("crowded")["player_index"] == 0


def test_a_clients_packets_count_once_against_limits_scaled_by_its_links() -> None:
    limits = ClientLimits(relay_per_s=10.0, burst_s=1.0)
    with ServerThread(options=ServerOptions(limits=limits)) as server, peers_of(server) as connect:
        peers = fill(connect, "limited", 4)
        sent = 50
        for i in range(sent):
            peers[0].emit("relay", bytes((RELAY_TO_ALL, 1, i)))
        stats = server.stats
        wait_until(lambda: stats.relay_messages + 3 * stats.throttled >= 3 * sent)
        passed = sent - stats.throttled
        # A player of 4 has 3 links: its bucket holds 3 x 10 packets (more refill while they
        # are sent), each counted once although it reaches 3 players: counted 3 times, only 10
        # would have passed.
        assert 30 <= passed < sent
        assert stats.relay_messages == 3 * passed
        for peer in peers[1:]:
            got = [peer.expect("relay") for _ in range(passed)]
            assert all(packet[:2] == b"\x00\x01" for packet in got)
            peer.expect_silence()
        assert server.stats.snapshot()["disconnected_flooding"] == 0


# --- tokens ---------------------------------------------------------------------------------------


def test_tokens_name_the_number_of_players_and_a_slot_past_it_is_refused() -> None:
    options = ServerOptions(token_secret=SECRET)
    with ServerThread(options=options) as server, peers_of(server) as connect:
        forged_slot = jwt.encode(
            {"room": "t", "player": 5, "players": 4, "exp": int(time.time()) + 60},
            SECRET,
            algorithm=ALGORITHM,
        )
        outsider = connect("slot-5")
        outsider.emit("join", {"room": "t", "token": forged_slot})
        error = outsider.expect("error")
        assert error["code"] == "unauthorized"
        assert "player must be 0..3 in a 4-player room, got 5" in error["message"]

        peers = [connect(f"p{i}") for i in range(4)]
        for index, peer in enumerate(peers):
            # The join's own 'players' is not read: the token decides.
            token = mint_token(SECRET, "t", index, players=4)
            peer.emit("join", {"room": "t", "token": token, "players": 2})
            assert peer.expect("joined")["players"] == 4
        assert ready(peers[3])["players"] == 4

        spectator_token = mint_token(SECRET, "t", None)
        as_player = connect("as-player")
        as_player.emit("join", {"room": "t", "token": spectator_token})
        assert "only watches" in as_player.expect("error")["message"]
        spectator = connect("spectator")
        spectator.emit("join", {"room": "t", "token": spectator_token, "spectator": True})
        assert spectator.expect("joined")["spectator"] is True
        assert server.stats.token_refusals == 2


# --- the input record -----------------------------------------------------------------------------


def test_the_input_record_of_a_room_of_three_names_three_players(tmp_path: Path) -> None:
    options = ServerOptions(record_dir=tmp_path)
    with ServerThread(options=options) as server, peers_of(server) as connect:
        peers = fill(connect, "rec", 3)
        peers[2].emit("relay", bytes((RELAY_TO_ALL,)) + encode_input_packet(2, 5, [(5, 7)]))
        peers[0].expect("relay")
        wait_until(lambda: server.stats.inputs_recorded == 1)
    (path,) = (tmp_path / "rec").iterdir()
    header, line = path.read_text().splitlines()
    assert json.loads(header)["players"] == 3
    assert json.loads(line) == [5, 2, 7]
