"""The server's spectator feed (p2p_server.spectator_feed) over real loopback sockets: every
player's inputs, episode ends and reports of a player who left reach a room's spectators once
each, in the feed's envelope, whatever way the players sent them (addressed per link, to the
whole room, in a pair, uploaded), a spectator that joins late first gets what the room had, and
a room's feed is bounded. The clients are tests.test_server's; the rooms are filled as
tests.test_server_rooms fills them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from p2p_server.limits import LogThrottle
from p2p_server.server import ServerThread
from p2p_server.spectator_feed import CATCH_UP_PAUSE_S, SpectatorFeed
from p2p_server.stats import ServerStats
from p2p_transport.rollback.input_record import SeatReport
from p2p_transport.wire.codec import (
    MAX_INPUTS_PER_RECORD,
    decode_input_record,
    encode_acked_input_packet,
    encode_control,
    encode_input_packet,
    encode_input_record,
    encode_v1_episode_end,
)
from p2p_transport.wire.control_payloads import RollbackKind
from tests.test_input_record import episode_end
from tests.test_server import Connect, Peer, paired, peers_of, wait_until
from tests.test_server_rooms import fill, ready

pytestmark = pytest.mark.timeout(90)

SEED = 5
#: The inputs a mesh player repeats in each packet (the acked sender's redundancy, shortened).
WINDOW = 3


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ServerThread]:
    with ServerThread() as srv:
        yield srv


@pytest.fixture
def server(shared_server: ServerThread) -> ServerThread:
    assert shared_server.stats.rooms_open == 0, "a previous test left a room open"
    return shared_server


@pytest.fixture
def connect(server: ServerThread) -> Iterator[Connect]:
    with peers_of(server) as make:
        yield make


Actions = list[list[int]]


def actions_of(frames: int, players: int) -> Actions:
    """Each player's seeded action at each wire frame: ``actions[player][frame]``."""
    rng = random.Random(SEED + players)
    return [[rng.randrange(4) for _ in range(frames)] for _ in range(players)]


def window(actions: list[int], frame: int) -> list[tuple[int, int]]:
    """The inputs a packet of ``frame`` carries: its own and the :data:`WINDOW` - 1 before."""
    return [(f, actions[f]) for f in range(max(0, frame - WINDOW + 1), frame + 1)]


def play_mesh(peers: list[Peer], actions: Actions, frames: range) -> None:
    """Each player sends each frame's input to each peer, addressed, every copy repeating the
    inputs before it (as a mesh player's acked packets do), some sent twice (a resend)."""
    for frame in frames:
        for player, peer in enumerate(peers):
            packet = encode_acked_input_packet(
                player, frame, frame - 1 if frame else None, window(actions[player], frame)
            )
            for to in range(len(peers)):
                if to != player:
                    peer.emit("relay", bytes((to,)) + packet)
            if frame % 7 == 3:
                peer.emit("relay", bytes(((player + 1) % len(peers),)) + packet)


def play_pair(peers: list[Peer], actions: Actions, frames: range) -> None:
    """Both players of a pair send each frame's input in a version-1 packet repeating the inputs
    before it."""
    for frame in frames:
        for player, peer in enumerate(peers):
            peer.emit("relay", encode_input_packet(player, frame, window(actions[player], frame)))


def drain(peers: list[Peer], count: int) -> None:
    """Read the ``count`` relayed packets each player gets."""
    for peer in peers:
        for _ in range(count):
            peer.expect("relay")


def inputs_of(packet: bytes) -> tuple[int, list[tuple[int, int]]]:
    """A feed packet's player and inputs, its format checked."""
    player, record = packet[0], decode_input_record(packet[1:])
    assert record.player_index == player
    return player, list(record.inputs)


def received(watcher: Peer, packets: int, players: int) -> list[list[tuple[int, int]]]:
    """The inputs of the next ``packets`` packets ``watcher`` gets, per player, in arrival
    order."""
    got: list[list[tuple[int, int]]] = [[] for _ in range(players)]
    for _ in range(packets):
        player, inputs = inputs_of(watcher.expect("relay"))
        got[player] += inputs
    return got


def received_inputs(watcher: Peer, inputs: int, players: int) -> list[list[tuple[int, int]]]:
    """The inputs of the packets ``watcher`` gets until ``inputs`` have come, per player: one
    packet each as they come, or fewer where the server's join handler was still sending
    ``joined`` when they came (kept, then sent to it as a catch-up)."""
    got: list[list[tuple[int, int]]] = [[] for _ in range(players)]
    while sum(len(mine) for mine in got) < inputs:
        player, new = inputs_of(watcher.expect("relay"))
        got[player] += new
    return got


def expected(actions: Actions, frames: range) -> list[list[tuple[int, int]]]:
    return [[(f, mine[f]) for f in frames] for mine in actions]


def test_a_spectator_of_three_players_gets_each_input_once_as_it_comes(
    connect: Connect, server: ServerThread
) -> None:
    watcher = connect("watcher")
    watcher.emit("join", {"room": "three", "spectator": True})
    watcher.expect("joined")
    peers = fill(connect, "three", 3)
    for _ in range(2):
        watcher.expect("waiting_for_peer")
    ready(watcher)
    frames = range(60)
    actions = actions_of(len(frames), 3)
    before = server.stats.snapshot()
    play_mesh(peers, actions, frames)
    # One packet per packet of a player that brought a new input: each frame's first copy.
    assert received(watcher, 3 * len(frames), 3) == expected(actions, frames)
    watcher.expect_silence()
    after = server.stats.snapshot()
    assert after["inputs_fed"] - before["inputs_fed"] == 3 * len(frames)
    assert after["spectator_messages"] - before["spectator_messages"] == 3 * len(frames)
    assert after["spectator_catch_ups"] == before["spectator_catch_ups"]
    assert after["spectator_feed_kept"] == 3 * len(frames)


def test_a_spectator_that_joins_after_200_frames_gets_them_all_first(
    connect: Connect, server: ServerThread
) -> None:
    peers = fill(connect, "late", 3)
    actions = actions_of(210, 3)
    play_mesh(peers, actions, range(200))
    # Player 2's end of episode 0 (resent, and on both its links), the others' still to come.
    for to in (0, 1, 0):
        peers[2].emit("relay", bytes((to,)) + episode_end(0, 0, 99))
    wait_until(lambda: server.relay.feed.kept == 3 * 200 + 1)
    catch_ups = server.stats.spectator_catch_ups
    watcher = connect("watcher")
    watcher.emit("join", {"room": "late", "spectator": True})
    watcher.expect("joined")
    ready(watcher)
    # The catch-up: the ends first, then each player's 200 inputs in one record.
    assert watcher.expect("relay") == bytes((2,)) + encode_v1_episode_end(99, 0)
    assert received(watcher, 3, 3) == expected(actions, range(200))
    watcher.expect_silence()
    assert server.stats.spectator_catch_ups == catch_ups + 1
    # Then what is new, as it comes.
    play_mesh(peers, actions, range(200, 210))
    assert received(watcher, 3 * 10, 3) == expected(actions, range(200, 210))
    for player in (0, 1):
        peers[player].emit("relay", bytes((2,)) + episode_end(0, 0, 99))
    ends = {watcher.expect("relay") for _ in range(2)}
    assert ends == {bytes((p,)) + encode_v1_episode_end(99, 0) for p in (0, 1)}
    watcher.expect_silence()


def test_a_pairs_spectator_gets_what_they_relayed_then_what_is_new(
    connect: Connect, server: ServerThread
) -> None:
    a, b = connect("a"), connect("b")
    a.join("pair")
    b.join("pair")
    paired(a)
    paired(b)
    frames = MAX_INPUTS_PER_RECORD + 44
    actions = actions_of(frames + 5, 2)
    play_pair([a, b], actions, range(frames))
    drain([a, b], frames)
    wait_until(lambda: server.relay.feed.kept == 2 * frames)
    watcher = connect("watcher")
    watcher.emit("join", {"room": "pair", "spectator": True})
    watcher.expect("joined")
    assert ready(watcher)["spectator"] is True
    # Each player's inputs in records of at most MAX_INPUTS_PER_RECORD: two each, in turn.
    chunks = [inputs_of(watcher.expect("relay")) for _ in range(4)]
    assert [(player, len(inputs)) for player, inputs in chunks] == [
        (0, MAX_INPUTS_PER_RECORD),
        (1, MAX_INPUTS_PER_RECORD),
        (0, 44),
        (1, 44),
    ]
    got: list[list[tuple[int, int]]] = [[], []]
    for player, inputs in chunks:
        got[player] += inputs
    assert got == expected(actions, range(frames))
    play_pair([a, b], actions, range(frames, frames + 5))
    assert received(watcher, 2 * 5, 2) == expected(actions, range(frames, frames + 5))
    watcher.expect_silence()


def test_uploads_reach_the_spectators_once_with_what_the_relay_carried(
    connect: Connect, server: ServerThread
) -> None:
    a, b = connect("a"), connect("b")
    watcher = connect("watcher")
    watcher.emit("join", {"room": "p2p", "spectator": True})
    watcher.expect("joined")
    a.join("p2p")
    b.join("p2p")
    paired(a)
    paired(b)
    ready(watcher)
    actions = actions_of(100, 2)
    mine = [(f, actions[0][f]) for f in range(100)]
    not_recorded = server.stats.refusals.get("record_off", 0)
    # Frame 0 went on the relay before the route moved to P2P; then uploads, one repeated in
    # part (its ack was lost): each input reaches the spectator once.
    a.emit("relay", encode_input_packet(0, 0, mine[:1]))
    assert b.expect("relay") == encode_input_packet(0, 0, mine[:1])
    assert watcher.expect("relay") == bytes((0,)) + encode_input_record(0, mine[:1])
    for start, stop in ((0, 60), (40, 100), (90, 100)):
        a.emit("relay", encode_input_record(0, mine[start:stop]))
    assert watcher.expect("relay") == bytes((0,)) + encode_input_record(0, mine[1:60])
    assert watcher.expect("relay") == bytes((0,)) + encode_input_record(0, mine[60:100])
    watcher.expect_silence()
    b.expect_silence(0)  # an upload goes to no player
    # Not recorded (this server keeps no records), fed all the same.
    assert server.stats.refusals["record_off"] == not_recorded + 3


def test_a_players_episode_ends_reach_the_spectators_once(
    connect: Connect, server: ServerThread
) -> None:
    peers = fill(connect, "ends", 4)
    watcher = connect("watcher")
    watcher.emit("join", {"room": "ends", "spectator": True})
    watcher.expect("joined")
    ready(watcher)
    for episode, last in ((0, 599), (1, 42)):
        for player, peer in enumerate(peers):
            # Sent on each link, and resent until acknowledged.
            for to in [*(i for i in range(4) if i != player), (player + 1) % 4]:
                peer.emit("relay", bytes((to,)) + episode_end(episode, episode, last))
        got = {watcher.expect("relay") for _ in range(4)}
        assert got == {bytes((p,)) + encode_v1_episode_end(last, episode) for p in range(4)}
    # An older episode's end after a newer one's: not news.
    peers[0].emit("relay", bytes((1,)) + episode_end(0, 0, 599))
    watcher.expect_silence()


def test_the_reports_of_a_player_who_left_reach_the_spectators_once(
    connect: Connect, server: ServerThread
) -> None:
    peers = fill(connect, "left", 4)
    watcher = connect("watcher")
    watcher.emit("join", {"room": "left", "spectator": True})
    watcher.expect("joined")
    ready(watcher)
    reports = {
        reporter: SeatReport(3, 0, 200 + reporter, bytes([reporter, 1, 2])) for reporter in range(3)
    }
    for reporter, report in reports.items():
        packet = encode_control(7, RollbackKind.SEAT_LEFT, report.encode())
        # Sent to each other player who stays, and resent until acknowledged.
        for to in [*(i for i in range(3) if i != reporter), (reporter + 1) % 3]:
            peers[reporter].emit("relay", bytes((to,)) + packet)
    got = {watcher.expect("relay") for _ in range(3)}
    assert got == {
        bytes((reporter,)) + encode_control(0, RollbackKind.SEAT_LEFT, report.encode())
        for reporter, report in reports.items()
    }
    # One about a player the room does not have: not for the spectators.
    bad = SeatReport(5, 0, 10, b"")
    peers[0].emit("relay", bytes((1,)) + encode_control(8, RollbackKind.SEAT_LEFT, bad.encode()))
    watcher.expect_silence()


def test_a_full_feed_refuses_new_inputs_counts_them_and_the_relay_goes_on(
    peers: list[Peer],
) -> None:
    with ServerThread() as server:
        server.relay.feed.max_inputs = 10
        a, b, watcher = Peer(server.url, "a"), Peer(server.url, "b"), Peer(server.url, "watcher")
        peers += [a, b, watcher]
        watcher.emit("join", {"room": "r", "spectator": True})
        watcher.expect("joined")
        a.join("r")
        b.join("r")
        paired(a)
        paired(b)
        for frame in range(15):
            a.emit("relay", encode_input_packet(0, frame, [(frame, 1)]))
        for frame in range(15):
            assert b.expect("relay") == encode_input_packet(0, frame, [(frame, 1)])
        watcher.expect("room_ready")
        assert received_inputs(watcher, 10, 2) == [[(f, 1) for f in range(10)], []]
        watcher.expect_silence()
        assert server.stats.refusals == {"spectator_feed_full": 5}
        assert server.stats.snapshot()["spectator_feed_kept"] == 10
        # A spectator that comes now gets what was kept.
        late = Peer(server.url, "late")
        peers.append(late)
        late.emit("join", {"room": "r", "spectator": True})
        late.expect("joined")
        late.expect("room_ready")
        assert received(late, 1, 2) == [[(f, 1) for f in range(10)], []]
        for peer in peers:
            peer.close()
        wait_until(lambda: server.stats.rooms_open == 0)
        assert server.stats.snapshot()["spectator_feed_kept"] == 0


def test_a_spectator_whose_queue_was_full_catches_up_from_what_it_missed() -> None:
    stats = ServerStats()
    written: list[bytes] = []
    full = False

    async def send(sid: str, packet: bytes) -> bool:
        if full:
            return False
        written.append(packet)
        return True

    async def scenario() -> None:
        nonlocal full
        feed = SpectatorFeed(send, lambda sid: 0, 8, stats, LogThrottle(60.0))
        feed.watch("r", "w")  # the room has nothing yet: what comes goes to it at once
        await feed.relayed("r", 2, 0, encode_input_packet(0, 0, [(0, 1)]))
        full = True
        await feed.relayed("r", 2, 1, encode_input_packet(1, 0, [(0, 2)]))  # missed
        full = False
        await feed.relayed("r", 2, 0, encode_input_packet(0, 1, [(0, 1), (1, 3)]))
        await feed.relayed("r", 2, 1, encode_input_packet(1, 1, [(1, 0)]))
        await asyncio.sleep(4 * CATCH_UP_PAUSE_S)
        await feed.relayed("r", 2, 0, encode_input_packet(0, 2, [(2, 2)]))
        feed.stop()

    asyncio.run(scenario())
    assert written == [
        bytes((0,)) + encode_input_record(0, [(0, 1)]),
        # Caught up from the first input it missed, each input once.
        bytes((0,)) + encode_input_record(0, [(1, 3)]),
        bytes((1,)) + encode_input_record(1, [(0, 2), (1, 0)]),
        # Then live again.
        bytes((0,)) + encode_input_record(0, [(2, 2)]),
    ]
    assert stats.spectator_catch_ups == 1
    assert stats.inputs_fed == 5
