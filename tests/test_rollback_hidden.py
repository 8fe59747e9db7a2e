"""A player whose page is hidden, under the rollback layer (p2p_transport.rollback.visibility).

Rooms of players on tests/mesh_sim.py: while a player's page is hidden its timers (game loop and
sessions) wake once a second, as Chromium's do, and its message handlers run at once. With the
default policy its seat idles and the others play on; with "pause" everyone waits at one frame;
with "stall" the others stall as before. Every side must end on the same records, idle ranges
included.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from p2p_transport.errors import UsageError
from p2p_transport.rollback import RollbackSession
from p2p_transport.rollback.replay import replay
from p2p_transport.rollback.visibility import (
    CATCH_UP_FRAMES_PER_TICK,
    CATCH_UP_THRESHOLD,
    HIDDEN_GRACE_MS,
    THROTTLED_WAKE_MS,
    IdleRanges,
    idle_lead,
)
from p2p_transport.wire.codec import decode
from p2p_transport.wire.control_payloads import RollbackKind, encode_seat_hidden_payload
from p2p_transport.wire.messages import FocusState
from tests.fakes import FakeChannel, FakeClock, FakeScheduler
from tests.mesh_sim import Hide, MeshPlayer, MeshRun, RingGame, simulate_mesh
from tests.test_rollback import Harness, HistoryGame

#: The hidden window of the long runs: 10 s (600 frames at 60 Hz) in the middle of 1800 frames.
HIDE_FROM_MS = 10_000.0
HIDE_TO_MS = 20_000.0
HIDDEN_FRAMES = 600
#: At least 95% of the hidden window's frames on time, for every player still in front.
ON_TIME = math.ceil(0.95 * HIDDEN_FRAMES)


def records(player: MeshPlayer) -> list[dict[str, Any]]:
    return player.rollback.episodes


def assert_same_records(run: MeshRun, episodes: int, frames: int, seed: int) -> None:
    """Every side finished the same episodes: same inputs, same checksums, same idle ranges; each
    replays offline to its checksum, with the idle action in every idled frame."""
    first = records(run.players[0])
    assert len(first) == episodes
    for player in run.players[1:]:
        assert records(player) == first
    count = len(run.players)
    for record in first:
        assert record["frames"] == frames
        game = RingGame(count, seed + record["episode"])
        assert replay(game, record["inputs"]).hex() == record["final_checksum"]
        for seat, spans in record.get("idled", {}).items():
            for start, end in spans:
                assert 0 <= start < end <= frames
                assert {frame[int(seat)] for frame in record["inputs"][start:end]} == {0}
    for player in run.players:
        stats = player.rollback.stats()
        assert stats["desyncs"] == 0
        assert stats["hashes_compared"] > 0


def catch_up_ticks(player: MeshPlayer, since_ms: float) -> int:
    """Ticks from ``since_ms`` until ``frames_behind`` is down to the threshold; fails if never."""
    after = [behind for at, _, behind, _ in player.ticks_log if at >= since_ms]
    return next(i for i, behind in enumerate(after) if behind <= CATCH_UP_THRESHOLD) + 1


def check_idled_seat(run: MeshRun, hidden: int, delay: int) -> None:
    """The hidden seat's one idle range, as every side recorded it: from the first frame it had
    not scheduled when it went away (after the grace) to where its actions counted again, past
    every frame the others played while it was hidden."""
    (record,) = records(run.players[0])
    assert list(record["idled"]) == [str(hidden)]
    ((first, end),) = record["idled"][str(hidden)]
    player = run.players[hidden]
    # It goes away on the first call into the layer after the grace: its own throttled tick or
    # another player's message, within a second (the others' time sync reports come 5 a second).
    assert player.frame_at(HIDE_FROM_MS)[1] + delay <= first
    assert first <= player.frame_at(HIDE_FROM_MS + HIDDEN_GRACE_MS + 1000)[1] + delay
    # Its actions count again once it has caught up and played the idle actions it had sent
    # ahead: at most the lead past where the others were then.
    caught_up_at = next(
        at for at, _, behind, _ in player.ticks_log if at >= HIDE_TO_MS and behind == 0
    )
    for other in run.players:
        if other.index != hidden:
            assert first <= other.frame_at(HIDE_FROM_MS + HIDDEN_GRACE_MS + 250)[1]
            assert other.frame_at(HIDE_TO_MS)[1] < end
            assert end <= other.frame_at(caught_up_at)[1] + delay + idle_lead(60.0) + 5
    stats = player.rollback.stats()
    assert stats["frames_idled"] == end - first
    assert stats["hidden_ms"] == HIDE_TO_MS - HIDE_FROM_MS
    assert stats["hidden"] is False
    assert stats["paused_frames"] == 0


def check_catch_up(player: MeshPlayer) -> None:
    """Back in front, it simulated at most CATCH_UP_FRAMES_PER_TICK frames a tick, that many
    while far behind, and caught up within the ticks that rate needs (plus a few for the others'
    frames meanwhile)."""
    assert max(frames for _, frames, _, _ in player.ticks_log) == CATCH_UP_FRAMES_PER_TICK
    behind = next(b for at, f, b, _ in player.ticks_log if at >= HIDE_TO_MS)
    ticks = catch_up_ticks(player, HIDE_TO_MS)
    assert ticks <= math.ceil(behind / (CATCH_UP_FRAMES_PER_TICK - 1)) + 3
    assert player.rollback.frames_behind == 0


# --- idle: the others play on -------------------------------------------------------------------


def test_two_players_one_hidden_ten_seconds_the_other_plays_on() -> None:
    heard: list[tuple[int, bool]] = []
    run = simulate_mesh(
        2,
        frames=1800,
        loss=0.05,
        seed=3,
        hiding=[Hide(1, HIDE_FROM_MS, HIDE_TO_MS)],
        on_peer_hidden=lambda player, hidden: heard.append((player, hidden)),
    )
    other, hidden = run.players
    assert other.frames_between(HIDE_FROM_MS, HIDE_TO_MS) >= ON_TIME
    assert_same_records(run, 1, 1800, 3)
    check_idled_seat(run, 1, delay=2)
    check_catch_up(hidden)
    assert heard == [(1, True), (1, False)]
    # The others never predicted the idle seat: it was always ahead of them.
    assert other.rollback.stats()["peers"]["1"]["hidden"] is None


def test_four_players_at_ten_percent_loss_one_hidden_the_three_others_play_on() -> None:
    run = simulate_mesh(
        4, frames=1800, loss=0.1, seed=5, hiding=[Hide(2, HIDE_FROM_MS, HIDE_TO_MS)]
    )
    for player in run.players:
        if player.index != 2:
            assert player.frames_between(HIDE_FROM_MS, HIDE_TO_MS) >= ON_TIME
    assert_same_records(run, 1, 1800, 5)
    check_idled_seat(run, 2, delay=2)
    check_catch_up(run.players[2])


def test_a_hide_shorter_than_the_grace_changes_nothing() -> None:
    short = HIDDEN_GRACE_MS - 50
    run = simulate_mesh(
        3, frames=900, loss=0.1, seed=7, hiding=[Hide(1, HIDE_FROM_MS, HIDE_FROM_MS + short)]
    )
    assert_same_records(run, 1, 900, 7)
    assert "idled" not in records(run.players[0])[0]
    stats = run.players[1].rollback.stats()
    assert stats["frames_idled"] == 0
    assert stats["hidden_ms"] == short
    for player in run.players:
        assert player.rollback.stats()["paused_frames"] == 0
        assert max(frames for _, frames, _, _ in player.ticks_log) == 1  # no catch-up either


def test_a_hide_across_an_episode_end_idles_into_the_next_episode() -> None:
    # Episodes of 10 s: the others wait at the first one's end for the hidden side's game (its
    # throttled loop gets there, or its catch-up once back), and the idle actions it sent past
    # that episode's last wire frame are the next episode's first ones, on every side.
    run = simulate_mesh(
        2, frames=600, episodes=2, loss=0.1, seed=2, hiding=[Hide(1, 9000.0, 12_000.0)]
    )
    assert_same_records(run, 2, 600, 2)
    first, second = (record["idled"]["1"] for record in records(run.players[0]))
    ((start, end),) = first
    assert start < end == 600
    ((start, end),) = second
    assert start == 0 < end


# --- stall and pause ----------------------------------------------------------------------------


def test_policy_stall_leaves_the_others_stalled_as_before() -> None:
    run = simulate_mesh(
        2,
        frames=1800,
        loss=0.05,
        seed=3,
        hiding=[Hide(1, HIDE_FROM_MS, HIDE_TO_MS)],
        hidden_policy="stall",
    )
    other, hidden = run.players
    # The hidden side's loop ticks twice a second: so few inputs let the other play little.
    assert other.frames_between(HIDE_FROM_MS, HIDE_TO_MS) < 60
    assert other.rollback.stats()["stall_frames"] > 300
    assert_same_records(run, 1, 1800, 3)
    assert "idled" not in records(other)[0]
    assert hidden.rollback.stats()["frames_idled"] == 0
    assert hidden.rollback.stats()["hidden_ms"] == HIDE_TO_MS - HIDE_FROM_MS


@pytest.mark.parametrize(("count", "hidden"), [(2, 1), (3, 0)])
def test_policy_pause_stops_everyone_at_one_frame_then_resumes(count: int, hidden: int) -> None:
    run = simulate_mesh(
        count,
        frames=1800,
        loss=0.1,
        seed=11,
        hiding=[Hide(hidden, HIDE_FROM_MS, HIDE_TO_MS)],
        hidden_policy="pause",
    )
    # From a couple of seconds in (the request's grace and travel; the hidden side's own last
    # frames at its throttled pace) to its return, every side stands at the same frame.
    during = {
        mark
        for player in run.players
        for at, _, _, mark in player.ticks_log
        if HIDE_FROM_MS + 2500 <= at < HIDE_TO_MS
    }
    (paused_at,) = during
    episode, frame = paused_at
    assert episode == 0
    assert run.players[hidden].frame_at(HIDE_FROM_MS)[1] < frame
    assert frame <= run.players[hidden].frame_at(HIDE_FROM_MS)[1] + 2 + CATCH_UP_FRAMES_PER_TICK
    for player in run.players:
        stats = player.rollback.stats()
        assert stats["paused_frames"] > 0
        assert stats["frames_idled"] == 0
        if player.index != hidden:
            # Paused, not stalled: only the grace, before the request came, was a stall.
            assert stats["paused_frames"] > 400
            assert stats["stall_frames"] < 40
            assert player.frame_at(HIDE_TO_MS + 2000)[1] > frame + 60  # it resumed
    assert_same_records(run, 1, 1800, 11)
    assert "idled" not in records(run.players[0])[0]


# --- agreement under loss and reordering --------------------------------------------------------


# Derandomized: the same examples every run.
@settings(
    max_examples=16,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    count=st.sampled_from([2, 3]),
    start_ms=st.integers(1000, 12_000),
    length_ms=st.integers(0, 6000),
    loss=st.sampled_from([0.0, 0.1, 0.3]),
    reorder=st.sampled_from([0.0, 0.2]),
    seed=st.integers(0, 1000),
    policy=st.sampled_from(["idle", "idle", "pause"]),
)
# Back from 1.1 s hidden, a side that trails by 3 frames before each frame and 2 after it: it
# must count as caught up (the game loop, reading 2 after the frame, does no more catching up).
@example(count=2, start_ms=1108, length_ms=1108, loss=0.0, reorder=0.0, seed=0, policy="idle")
def test_every_side_agrees_on_the_records_and_idle_ranges(
    count: int, start_ms: int, length_ms: int, loss: float, reorder: float, seed: int, policy: str
) -> None:
    # Two episodes of 10 s: a hide can straddle the end of the first.
    run = simulate_mesh(
        count,
        frames=600,
        episodes=2,
        loss=loss,
        reorder=reorder,
        seed=seed,
        hiding=[Hide(1, start_ms, start_ms + length_ms)],
        hidden_policy=policy,
    )
    assert all(player.finished_at_ms is not None for player in run.players)
    assert_same_records(run, 2, 600, seed)
    idled = [record.get("idled", {}) for record in records(run.players[0])]
    assert all(set(entry) <= {"1"} for entry in idled)
    recorded = sum(end - start for entry in idled for start, end in entry.get("1", []))
    stats = run.players[1].rollback.stats()
    # What its seat idled past the last episode's end is in no record. It idled no longer than
    # the others played meanwhile, its catch-up included (7 frames gained a tick), and the lead.
    assert recorded <= stats["frames_idled"]
    assert stats["frames_idled"] <= length_ms * 60 / 1000 * 8 / 7 + idle_lead(60.0) + 10
    if length_ms < HIDDEN_GRACE_MS or policy == "pause":
        assert stats["frames_idled"] == 0
    elif length_ms >= HIDDEN_GRACE_MS + THROTTLED_WAKE_MS:
        # Its own throttled loop woke after the grace, if no message of the others' did.
        assert recorded > 0
    assert stats["hidden_ms"] == length_ms
    for player in run.players:
        if length_ms < HIDDEN_GRACE_MS or policy == "idle":
            assert player.rollback.stats()["paused_frames"] == 0
        assert max(frames for _, frames, _, _ in player.ticks_log) <= CATCH_UP_FRAMES_PER_TICK


# --- the pieces ---------------------------------------------------------------------------------


def test_idle_ranges_per_episode() -> None:
    ranges = IdleRanges()
    ranges.start(0, 500)
    assert ranges.open
    assert ranges.within(0, 600) == [[500, 600]]
    assert ranges.within(0, 400) == []  # the episode ended before it began
    assert ranges.within(1, 600) == [[0, 600]]  # still idling in the next episode
    ranges.end(1, 32)
    assert not ranges.open
    assert ranges.within(1, 600) == [[0, 32]]
    assert ranges.within(2, 600) == []
    ranges.start(2, 0)
    ranges.end(2, 0)  # back before it idled a frame: nothing
    ranges.start(2, 10)
    ranges.end(2, 20)
    assert ranges.within(2, 600) == [[10, 20]]
    assert ranges.within(2, 15) == [[10, 15]]
    with pytest.raises(ValueError, match="does not idle"):
        ranges.end(2, 30)
    ranges.start(2, 40)
    with pytest.raises(ValueError, match="already idles"):
        ranges.start(2, 50)
    with pytest.raises(ValueError, match="cannot end before"):
        ranges.end(2, 39)


def test_idle_lead_covers_a_throttled_wake_within_the_pending_bound() -> None:
    assert idle_lead(60.0) == 60
    assert idle_lead(30.0) == 30
    assert idle_lead(144.0) == 64  # the acked sender's pending bound


def two_sessions() -> tuple[list[RollbackSession], list[FakeChannel], FakeClock]:
    """Two rollback sessions whose DataChannels record what they send (nothing is delivered)."""
    from p2p_transport import P2PSession

    clock = FakeClock(1000.0)
    scheduler = FakeScheduler(clock)
    channels = [FakeChannel(), FakeChannel()]
    sessions = [
        P2PSession(
            p,
            1 - p,
            lambda frame, action: None,
            clock=clock,
            scheduler=scheduler,
            channel=channels[p],
        )
        for p in (0, 1)
    ]
    return [RollbackSession(HistoryGame(), session) for session in sessions], channels, clock


def test_set_hidden_sends_the_focus_state_to_every_peer() -> None:
    (rollback, _), (channel, _), clock = two_sessions()
    for _ in range(5):
        rollback.advance_frame(1)  # frames 0..2 (the prediction window lets it run ahead)
    frame = rollback.current_frame
    rollback.set_hidden(True)
    rollback.set_hidden(True)  # the same again: nothing
    clock.advance(1234.5)
    rollback.set_hidden(False)
    focus = [decode(packet) for packet in channel.sent if packet[0] == 0x14]
    assert focus == [FocusState(False, frame), FocusState(True, frame)]
    assert rollback.stats()["hidden_ms"] == 1234.5


def test_usage_errors() -> None:
    from tests.test_stats_reference import session

    choices = r"\['idle', 'pause', 'stall'\]"
    with pytest.raises(UsageError, match=f"hidden_policy must be one of {choices}"):
        RollbackSession(HistoryGame(), session(), hidden_policy="sleep")
    with pytest.raises(UsageError, match="hidden_policy must be one of"):
        RollbackSession(HistoryGame(), session(), hidden_policy=1)  # type: ignore[arg-type]
    rollback = RollbackSession(HistoryGame(), session(), hidden_policy="pause")
    assert rollback.hidden_policy == "pause"
    with pytest.raises(UsageError, match="hidden must be a bool, got int"):
        rollback.set_hidden(1)  # type: ignore[arg-type]


def seat_hidden_sent(h: Harness) -> list[bytes]:
    """The SEAT_HIDDEN payloads the harness's side sent."""
    return [payload for kind, payload in h.sent_controls() if kind == RollbackKind.SEAT_HIDDEN]


def test_the_idle_seat_goes_out_ahead_from_a_message_and_hands_over_once_caught_up() -> None:
    h = Harness(input_delay=2)
    rb = h.rb
    for frame in range(10):
        h.peer_input(frame, 3)
    for _ in range(5):
        assert rb.advance_frame(1)
    # Frames 0 and 1 idle (before the first action), 2..6 the action: 7 scheduled, at frame 5.
    assert len(h.sent_inputs()) == 7
    rb.set_hidden(True)
    h.clock.advance(HIDDEN_GRACE_MS)
    assert seat_hidden_sent(h) == []  # the grace is over, but nothing called in yet
    # Its handlers run at once: the next input of the peer's sends the idle actions ahead, to
    # the lead past the peer's newest frame (10 + 60).
    h.peer_input(10, 3)
    assert seat_hidden_sent(h) == [encode_seat_hidden_payload(7, 0, True, False)]
    sent = h.sent_inputs()
    assert max(sent) == 10 + idle_lead(60.0)
    assert {sent[frame] for frame in range(7, 71)} == {0}
    h.peer_input(11, 3)
    assert max(h.sent_inputs()) == 71  # one more with each frame of the peer's
    assert rb.advance_frame(1)  # a throttled tick: one frame, nothing scheduled
    assert max(h.sent_inputs()) == 71
    rb.set_hidden(False)
    # The peer's inputs reach frame 11, less its delay: frame 9 is the last it has played.
    assert rb.current_frame == 6
    assert rb.frames_behind == 4
    assert rb.advance_frame(1)
    assert rb.frames_behind == 3
    assert rb.advance_frame(1)
    assert rb.frames_behind == 0  # 2, the threshold: caught up, for good
    for frame in range(12, 90):
        h.peer_input(frame, 3)
    assert rb.frames_behind == 0
    while rb.current_frame < 75:
        assert rb.advance_frame(1)
    # The idle actions sent ahead were played first; the actions count again from frame 72.
    assert seat_hidden_sent(h) == [
        encode_seat_hidden_payload(7, 0, True, False),
        encode_seat_hidden_payload(72, 0, False, False),
    ]
    sent = h.sent_inputs()
    assert sent[71] == 0 and sent[72] == 1
    stats = rb.stats()
    assert stats["frames_idled"] == 72 - 7
    assert stats["inputs_dropped_by_delay"] == 0
    assert rb.telemetry()["episode_under_way"]["idled"] == {"0": [[7, 72]]}


def test_a_record_written_before_its_seat_hidden_came_is_corrected() -> None:
    h = Harness(input_delay=0, episode_frames=5)
    rb = h.rb
    for frame in range(5):
        h.peer_input(frame, 3)
    while not rb.episode_over:
        rb.advance_frame(1)
    assert "idled" not in rb.episodes[0]
    # The peer idled from frame 3; its message came after its idle inputs.
    h.peer_control(RollbackKind.SEAT_HIDDEN, encode_seat_hidden_payload(3, 0, True, False))
    assert rb.episodes[0]["idled"] == {"1": [[3, 5]]}
    h.peer_control(RollbackKind.SEAT_HIDDEN, encode_seat_hidden_payload(4, 0, False, False))
    assert rb.episodes[0]["idled"] == {"1": [[3, 4]]}


def test_a_confused_seat_hidden_is_counted_not_raised() -> None:
    (rollback, _), _, _ = two_sessions()
    on_control = rollback.sessions[1].parts.delivery.on_control
    # Real inputs again, from a seat that never idled; then garbage.
    on_control(RollbackKind.SEAT_HIDDEN, encode_seat_hidden_payload(10, 0, False, False))
    on_control(RollbackKind.SEAT_HIDDEN, b"\x00")
    assert rollback.stats()["malformed_control"] == 2
    on_control(RollbackKind.SEAT_HIDDEN, encode_seat_hidden_payload(10, 0, True, False))
    assert rollback.stats()["peers"]["1"]["hidden"] == "idle"
    on_control(
        RollbackKind.SEAT_HIDDEN, encode_seat_hidden_payload(9, 0, False, False)
    )  # before it began
    assert rollback.stats()["malformed_control"] == 3
