"""The rollback layer in rooms of three to eight players: whole rooms over a seeded lossy mesh
(tests/mesh_sim.py) agree on every frame, over episodes, with a late joiner, with players who
leave, with a desync repaired and with the input delay chosen for the slowest link; and, frame
by frame, how the players who stay agree where a player who left stops."""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_transport import Callbacks, P2PSession
from p2p_transport.errors import InvalidStateError, UsageError
from p2p_transport.rollback import RollbackSession, replay
from p2p_transport.wire.codec import decode
from p2p_transport.wire.control_payloads import (
    RollbackKind,
    encode_episode_end_payload,
    encode_seat_left_payload,
)
from p2p_transport.wire.messages import ControlKind
from tests.fakes import FakeChannel, FakeClock, FakeScheduler
from tests.mesh_sim import Leave, MeshRun, RingGame, simulate_mesh
from tests.test_rollback import HistoryGame

FRAMES = 900
#: Every 10th frame and each episode's last one are hashed, and compared on every link.
HASHED_PER_EPISODE = FRAMES // 10 + 1
INPUT_DELAY = 2
MAX_PREDICTION = 8


def _assert_agree(run: MeshRun, *, episodes: int, frames: int = FRAMES, seed: int) -> None:
    """Every player still in the room finished, with the same records, which replay to their
    checksums; nobody saw a desync."""
    staying = run.staying()
    assert all(player.finished_at_ms is not None for player in staying)
    records = staying[0].rollback.episodes
    assert len(records) == episodes
    for player in staying:
        assert player.rollback.episodes == records
        stats = player.rollback.stats()
        assert stats["desyncs"] == 0 and player.rollback.first_desync is None
        assert stats["duplicate_inputs"] == 0
        assert stats["episode_end_mismatches"] == 0
    players = len(run.players)
    for index, record in enumerate(records):
        assert record["episode"] == index and record["frames"] == frames
        assert all(len(row) == players for row in record["inputs"])
        # Episode n is played from RingGame(seed + n), as the loop resets it.
        fresh = RingGame(players, seed + index)
        assert replay(fresh, record["inputs"]).hex() == record["final_checksum"]


def _assert_idle_after(record: dict[str, Any], player: int) -> int:
    """The frame after which ``player`` plays its idle action, as the record says; checked."""
    last: int = record["left"][str(player)]
    assert all(row[player] == RingGame.idle_action for row in record["inputs"][last + 1 :])
    return last


@pytest.mark.parametrize("players", [3, 4, 8])
def test_a_room_agrees_on_a_lossy_mesh(players: int) -> None:
    run = simulate_mesh(players, frames=FRAMES, loss=0.3, seed=players)
    _assert_agree(run, episodes=1, seed=players)
    # Every link has a delay of its own, 5 to 60 ms each way.
    assert len(set(run.delays_ms.values())) == players * (players - 1) // 2
    for player in run.players:
        stats = player.rollback.stats()
        assert stats["player_count"] == players
        # Every hash each peer sent was compared; a hash the peer's full control window
        # refused (30% loss can hold a message back for seconds) is skipped, and counted there.
        unsent = sum(
            run.players[peer].rollback.sessions[player.index].parts.desync.counters.hashes_unsent
            for peer in player.rollback.sessions
        )
        assert stats["hashes_compared"] == (players - 1) * HASHED_PER_EPISODE - unsent
        assert stats["rollbacks"] > 0  # 30% loss: predictions miss
        assert set(stats["peers"]) == {str(p) for p in range(players) if p != player.index}


def test_a_link_whose_early_packets_and_probes_were_all_lost_does_not_deadlock() -> None:
    # Seed 11: players 1 and 3 lost each other's first inputs with every copy and every probe
    # sent while they stepped; both then waited for the other, sending nothing, and version 1
    # resends nothing: they waited for good until the ping timer probed for them.
    run = simulate_mesh(4, frames=600, loss=0.3, seed=11)
    _assert_agree(run, episodes=1, frames=600, seed=11)


def test_two_episodes_in_a_room_of_four() -> None:
    run = simulate_mesh(4, frames=600, episodes=2, loss=0.3, seed=12)
    _assert_agree(run, episodes=2, frames=600, seed=12)
    for player in run.players:
        assert player.rollback.stats()["hashes_compared"] == 3 * 2 * (600 // 10 + 1)
    # Each player's input delay fills the second episode's first frames with its idle action.
    second = run.players[0].rollback.episodes[1]["inputs"]
    assert second[:INPUT_DELAY] == [[0, 0, 0, 0]] * INPUT_DELAY


LEAVER = 3
LEAVE_FRAME = 300


@settings(max_examples=4, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    loss=st.sampled_from([0.1, 0.3]),
    reorder=st.sampled_from([0.0, 0.2]),
)
def test_a_player_who_leaves_idles_from_the_frame_the_others_agree_on(
    seed: int, loss: float, reorder: float
) -> None:
    run = simulate_mesh(
        4,
        frames=FRAMES,
        loss=loss,
        reorder=reorder,
        seed=seed,
        leaving=[Leave(LEAVER, LEAVE_FRAME)],
    )
    assert list(run.left_at_ms) == [LEAVER] and len(run.heard_at_ms) == 3
    _assert_agree(run, episodes=1, seed=seed)
    record = run.staying()[0].rollback.episodes[0]
    assert set(record["left"]) == {str(LEAVER)}
    # Its idle action after the agreed frame; before, its real inputs as it sent them.
    agreed = _assert_idle_after(record, LEAVER)
    for player in run.staying():
        assert player.rollback.stats()["peers"][str(LEAVER)]["left"] == [0, agreed]
    sent = dict(run.sessions[(LEAVER, 0)].parts.inputs.history(0, 10**6))
    assert agreed <= max(sent)
    assert all(
        record["inputs"][frame][LEAVER] == action
        for frame, action in sent.items()
        if frame <= agreed
    )
    # No one who stayed ran more than a prediction window past the leaver's inputs it held,
    # nor it past theirs: the furthest of them held it nearly to where it stopped.
    assert agreed >= LEAVE_FRAME - 2 * (MAX_PREDICTION + 1) - INPUT_DELAY


def test_two_players_leave_one_after_the_other() -> None:
    run = simulate_mesh(5, frames=FRAMES, loss=0.3, seed=33, leaving=[Leave(1, 250), Leave(4, 500)])
    assert sorted(run.left_at_ms) == [1, 4]
    _assert_agree(run, episodes=1, seed=33)
    record = run.staying()[0].rollback.episodes[0]
    assert set(record["left"]) == {"1", "4"}
    first, second = _assert_idle_after(record, 1), _assert_idle_after(record, 4)
    assert first < second
    for player in run.staying():
        peers = player.rollback.stats()["peers"]
        assert (peers["1"]["left"], peers["4"]["left"]) == ([0, first], [0, second])


def test_a_player_who_leaves_as_an_episode_ends_idles_through_the_next() -> None:
    # It leaves once it has simulated the episode's last frame (599) and sent its inputs to
    # 601 (its input delay); the others still have to confirm the end.
    run = simulate_mesh(4, frames=600, episodes=2, loss=0.3, seed=9, leaving=[Leave(LEAVER, 600)])
    _assert_agree(run, episodes=2, frames=600, seed=9)
    first, second = run.staying()[0].rollback.episodes
    # Someone held all it sent: the first episode is its own to the end, the next all idle.
    assert "left" not in first
    assert second["left"] == {str(LEAVER): -1}
    assert _assert_idle_after(second, LEAVER) == -1
    for player in run.staying():
        stats = player.rollback.stats()
        assert stats["peers"][str(LEAVER)]["left"] == [0, 601]
        assert stats["control_send_failures"] == 0  # nothing went to the closed sessions


def test_a_desync_is_repaired_by_the_lowest_index_for_everyone() -> None:
    run = simulate_mesh(4, frames=FRAMES, loss=0.3, seed=4, diverge=(2, 123), repair_desync=True)
    for player in run.players:
        desync = player.rollback.first_desync
        # The state after frame 123 differs on player 2; every 10th frame is hashed: each link
        # with player 2 finds frame 130, and only those (player 2 has three).
        assert desync is not None and (desync.episode, desync.frame) == (0, 130)
        assert player.rollback.stats()["desyncs"] == (3 if player.index == 2 else 1)
    sender, *receivers = run.players
    transfers = sender.rollback.state_transfers
    assert [t["role"] for t in transfers] == ["sent"] and transfers[0]["frame"] >= 130
    for player in receivers:
        assert player.rollback.state_transfers == [{**transfers[0], "role": "received"}]
    # Every player goes on from player 0's state and ends on the checksum the inputs give.
    records = sender.rollback.episodes
    assert all(player.rollback.episodes == records for player in receivers)
    assert replay(RingGame(4, 4), records[0]["inputs"]).hex() == records[0]["final_checksum"]


def test_the_input_delay_chosen_covers_the_slowest_link_of_anyone() -> None:
    # Every step "costs" 5 ms of a fake CPU clock, so a rollback of more than a frame does not
    # fit: each player wants a delay that covers its slowest link, and all use the largest.
    ticks = count()
    run = simulate_mesh(
        4,
        frames=FRAMES,
        loss=0.1,
        seed=8,
        delay_range_ms=(5.0, 90.0),
        delay_range=(0, 8),
        timer=lambda: next(ticks) * 0.005,
    )
    _assert_agree(run, episodes=1, seed=8)
    assert max(run.delays_ms.values()) == 86.8  # players 0 and 2
    assert max(run.delays_ms[link] for link in ((0, 3), (1, 3), (2, 3))) == 26.0  # player 3
    # 86.8 ms is 6 frames, plus 1 for a loss, less the one re-simulated frame that fits in a
    # frame beside the new one: 6. Player 3's own links would ask for 2; it uses 6 too.
    assert [player.rollback.input_delay for player in run.players] == [6, 6, 6, 6]
    assert all(player.rollback.stats()["delay_changes"] > 0 for player in run.players)


def test_a_late_joiner_is_waited_for() -> None:
    run = simulate_mesh(4, frames=FRAMES, loss=0.3, seed=21, start_ms={2: 2000.0})
    _assert_agree(run, episodes=1, seed=21)
    for player in run.players:
        telemetry = player.rollback.telemetry()
        if player.index == 2:
            assert telemetry["stall_ms"] < 500.0
        else:
            # The prediction window (8 frames, 133 ms) filled, then they waited for it.
            assert telemetry["stall_ms"] >= 1800.0
            # The measure is smoothed: waiting 8 frames ahead reads as a few.
            assert telemetry["frames_ahead_max"] >= 4
        # From 4 s after it started, every player keeps within about a frame of the one
        # furthest behind.
        settled = [ahead for at_ms, ahead in telemetry["frames_ahead_series"] if at_ms >= 6000.0]
        assert settled and max(abs(ahead) for ahead in settled) <= 1.5, (player.index, settled)


# --- frame by frame ----------------------------------------------------------------------------


class Room:
    """Player 0 of a room of three over real sessions whose channels record what is sent; the
    test plays players 1 and 2 through those sessions' callbacks."""

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock(0.0)
        self.channels = {peer: FakeChannel() for peer in (1, 2)}
        self.sessions = {
            peer: P2PSession(
                0,
                peer,
                Callbacks(on_input=lambda frame, action: None),
                clock=self.clock,
                scheduler=FakeScheduler(self.clock),
                channel=self.channels[peer],
            )
            for peer in (1, 2)
        }
        self.game = HistoryGame()
        self.rb = RollbackSession(self.game, self.sessions, input_delay=0, **options)

    def inputs(self, peer: int, frames: range, action: int) -> None:
        for frame in frames:
            self.sessions[peer].parts.delivery.on_input(frame, action)

    def control(self, peer: int, kind: int, payload: bytes) -> None:
        self.sessions[peer].parts.delivery.on_control(kind, payload)

    def advance(self, frames: int, action: int = 7) -> None:
        for _ in range(frames):
            assert self.rb.advance_frame(action)

    def sent(self, peer: int, kind: int) -> list[bytes]:
        payloads = []
        for data in self.channels[peer].sent:
            message = decode(data)
            if getattr(message, "kind", None) == kind:
                payloads.append(bytes(message.payload))  # type: ignore[attr-defined]
        return payloads


def test_the_seat_that_left_plays_real_inputs_to_the_furthest_report_then_idles() -> None:
    room = Room(episode_frames=16)
    rb, game = room.rb, room.game
    assert (rb.player_count, rb.player_index) == (3, 0)
    room.inputs(1, range(12), 1)
    room.inputs(2, range(7), 2)
    room.advance(10)
    # Frames 7-9 predicted player 2's last action.
    assert game.history[7] == (7, 1, 2)
    rb.seat_left(2)
    # This side holds player 2's inputs to frame 6, and hands on those it has; to player 1 only.
    report = encode_seat_left_payload(6, 0, 2, bytes([2] * 7))
    assert room.sent(1, RollbackKind.SEAT_LEFT) == [report]
    assert room.sent(2, RollbackKind.SEAT_LEFT) == []
    assert rb.stats()["peers"]["2"]["left"] == "pending"
    assert rb.confirmed_frame == 6  # past what a report vouches for, nothing is certain
    room.advance(2)
    assert game.history[10:] == ((7, 1, 0), (7, 1, 0))  # a player who left is predicted idle
    # Player 1 held player 2's inputs to frame 8: the furthest report, and its last actions.
    room.control(1, RollbackKind.SEAT_LEFT, encode_seat_left_payload(8, 0, 2, b"\x02\x05\x05"))
    assert rb.stats()["peers"]["2"]["left"] == [0, 8]
    room.advance(1)
    assert game.history[6:] == (
        (7, 1, 2),
        (7, 1, 5),
        (7, 1, 5),
        *[(7, 1, 0)] * 4,
    )
    assert rb.stats()["rollbacks"] == 1
    assert rb.confirmed_frame == 11  # player 1's inputs; player 2's are all known now
    under_way = rb.telemetry()["episode_under_way"]
    assert under_way["left"] == {"2": 8}
    room.inputs(1, range(12, 16), 1)
    room.advance(3)
    assert not rb.advance_frame(7)
    assert rb.episode_over
    record = rb.episodes[0]
    assert record["left"] == {"2": 8}
    assert [row[2] for row in record["inputs"]] == [2] * 7 + [5, 5] + [0] * 7
    # The episode's end goes to player 1 alone; the next starts without player 2's.
    assert room.sent(1, ControlKind.EPISODE_END) == [encode_episode_end_payload(15, 0)]
    assert room.sent(2, ControlKind.EPISODE_END) == []
    rb.start_next_episode()
    room.control(1, ControlKind.EPISODE_END, encode_episode_end_payload(15, 0))
    room.control(1, ControlKind.EPISODE_READY, (1).to_bytes(4, "big"))
    game.history = ()
    base = 16 + 30  # episode_span: the last frame, plus one, plus the most input delay
    room.inputs(1, range(base, base + 1), 3)
    assert rb.advance_frame(7)
    assert rb.episode == 1 and game.history == ((7, 3, 0),)


def test_a_shut_down_session_is_a_player_who_left_and_a_report_spreads_it() -> None:
    room = Room()
    rb = room.rb
    room.inputs(1, range(5), 1)
    room.inputs(2, range(5), 2)
    room.advance(3)
    room.sessions[2].close()
    room.advance(1)  # noticed at the start of the frame
    assert room.sent(1, RollbackKind.SEAT_LEFT) == [
        encode_seat_left_payload(4, 0, 2, bytes([2] * 5))
    ]
    # Player 1 says player 2 left too, holding less: this side's report is the furthest.
    room.control(1, RollbackKind.SEAT_LEFT, encode_seat_left_payload(3, 0, 2, bytes([2] * 4)))
    assert rb.stats()["peers"]["2"]["left"] == [0, 4]
    # A report about this side, or a second one from the same player, changes nothing.
    room.control(1, RollbackKind.SEAT_LEFT, encode_seat_left_payload(2, 0, 0, b""))
    room.control(1, RollbackKind.SEAT_LEFT, encode_seat_left_payload(9, 0, 2, b""))
    assert rb.stats()["seat_reports_ignored"] == 2
    assert rb.stats()["peers"]["2"]["left"] == [0, 4]


def test_a_report_from_another_player_comes_first() -> None:
    room = Room()
    rb = room.rb
    room.inputs(1, range(6), 1)
    room.inputs(2, range(3), 2)
    room.advance(4)
    # Player 1 saw player 2 leave; this side had not: it reports at once, and both reports
    # are in, so they agree.
    room.control(1, RollbackKind.SEAT_LEFT, encode_seat_left_payload(4, 0, 2, b"\x06\x06"))
    assert room.sent(1, RollbackKind.SEAT_LEFT) == [encode_seat_left_payload(2, 0, 2, b"\x02" * 3)]
    assert rb.stats()["peers"]["2"]["left"] == [0, 4]
    room.advance(2)
    assert [inputs[2] for inputs in room.game.history] == [2, 2, 2, 6, 6, 0]


# --- what a caller gets wrong -----------------------------------------------------------------


def _session(player: int, peer: int) -> P2PSession:
    clock = FakeClock(0.0)
    return P2PSession(
        player,
        peer,
        lambda frame, action: None,
        clock=clock,
        scheduler=FakeScheduler(clock),
        channel=FakeChannel(),
    )


@pytest.mark.parametrize(
    ("sessions", "message"),
    [
        ({1: (0, 1), 2: (1, 2)}, r"every session must have the same player_index, got \[0, 1\]"),
        ({1: (0, 1), 3: (0, 2)}, r"the session under 3 is with player 2 \(its peer_index\)"),
        ({1: (0, 1), 3: (0, 3)}, r"the players must be 0 to N - 1 .*, got \[0, 1, 3\]"),
        ({p: (0, p) for p in range(1, 9)}, r"N from 2 to 8, got \[0, 1, 2, 3, 4, 5, 6, 7, 8\]"),
        ({}, "needs at least one other player's session"),
    ],
)
def test_a_room_that_is_not_one_is_refused(
    sessions: dict[int, tuple[int, int]], message: str
) -> None:
    links = {peer: _session(*indices) for peer, indices in sessions.items()}
    with pytest.raises(UsageError, match=message):
        RollbackSession(HistoryGame(), links)


def test_what_a_room_and_a_pair_refuse() -> None:
    with pytest.raises(UsageError, match="must be a P2PSession or a mapping"):
        RollbackSession(HistoryGame(), [_session(0, 1)])  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"got \[0, 2\]"):
        RollbackSession(HistoryGame(), _session(0, 2))
    room = RollbackSession(HistoryGame(), {0: _session(2, 0), 1: _session(2, 1)})
    assert (room.player_index, room.player_count, sorted(room.sessions)) == (2, 3, [0, 1])
    with pytest.raises(InvalidStateError, match="one session per other player"):
        room.session  # noqa: B018
    for player in (2, 3, "1"):
        with pytest.raises(UsageError, match=r"another player's index \(\[0, 1\]\)"):
            room.seat_left(player)  # type: ignore[arg-type]
    pair = RollbackSession(HistoryGame(), _session(1, 0))
    assert (pair.player_index, pair.player_count) == (1, 2)
    with pytest.raises(UsageError, match="a game of two ends when the peer leaves"):
        pair.seat_left(0)
    # A pair's layer takes the kind, and ignores it.
    pair.session.parts.delivery.on_control(
        RollbackKind.SEAT_LEFT, encode_seat_left_payload(3, 0, 1, b"")
    )
    assert pair.stats()["seat_reports_ignored"] == 1
