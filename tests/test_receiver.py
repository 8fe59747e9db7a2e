"""InputReceiver: exactly-once delivery whatever the copies and order, and its counters."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_transport.protocol.receiver import MAX_FRAME_JUMP, InputReceiver, ReceiverCounters
from p2p_transport.wire.messages import AckedInputPacket, InputPacket

PEER = 1


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, frame: int, action: int) -> None:
        self.calls.append((frame, action))

    @property
    def frames(self) -> list[int]:
        return [frame for frame, _ in self.calls]


def action_of(frame: int) -> int:
    return (frame * 7 + 3) % 256


def packet(*frames: int, player: int = PEER, actions: dict[int, int] | None = None) -> InputPacket:
    actions = actions or {}
    return InputPacket(
        player,
        frames[-1] if frames else 0,
        tuple((f, actions.get(f, action_of(f))) for f in frames),
    )


def stream(n: int, redundancy: int = 3, start: int = 0) -> list[InputPacket]:
    """The packets a sender with this redundancy sends for frames start..start+n-1."""
    return [packet(*range(max(start, f - redundancy + 1), f + 1)) for f in range(start, start + n)]


def receiver(history_frames: int = 256) -> tuple[InputReceiver, Recorder]:
    recorder = Recorder()
    return InputReceiver(PEER, recorder, history_frames), recorder


def test_in_order_stream_delivers_each_frame_once() -> None:
    r, got = receiver()
    packets = stream(10)
    delivered = [r.receive(p) for p in packets]
    assert delivered == [1] * 10
    assert got.calls == [(f, action_of(f)) for f in range(10)]
    # Inputs carried: 1 + 2 + 3 * 8 = 27; 10 new, the other 17 duplicates.
    assert r.counters == ReceiverCounters(packets=10, inputs_delivered=10, duplicates=17)
    assert r.newest_frame == 9


def test_the_same_packet_twice_is_delivered_once() -> None:
    r, got = receiver()
    p = packet(4, 5, 6)
    assert r.receive(p) == 3
    assert r.receive(p) == 0
    assert got.frames == [4, 5, 6]
    assert r.counters.duplicates == 3
    assert r.counters.conflicts == 0
    assert r.counters.inputs_delivered == 3


def test_conflicting_duplicate_is_counted_and_first_wins() -> None:
    r, got = receiver()
    r.receive(packet(5, actions={5: 1}))
    r.receive(packet(5, 6, actions={5: 2, 6: 9}))
    assert got.calls == [(5, 1), (6, 9)]
    assert r.counters.conflicts == 1
    assert r.counters.duplicates == 1


def test_wrong_player_is_dropped_and_counted() -> None:
    r, got = receiver()
    assert r.receive(packet(0, 1, 2, player=0)) == 0
    assert r.receive(packet(0, player=2)) == 0
    assert got.calls == []
    assert r.counters == ReceiverCounters(wrong_player=2)
    assert r.newest_frame is None
    # The real peer's frames are unaffected by the impostor's.
    assert r.receive(packet(0, 1, 2)) == 3


def test_recovered_counts_inputs_saved_by_a_redundant_slot() -> None:
    r, got = receiver()
    packets = stream(6)
    for p in packets[:2] + packets[3:4]:  # packet 2 lost
        r.receive(p)
    # Packet 3 carries (1, 2, 3): frame 2 first arrives in its middle slot.
    assert got.frames == [0, 1, 2, 3]
    assert r.counters.recovered == 1
    # Packet 4 lost too; packet 5 carries (3, 4, 5): 4 is recovered, 5 is its newest slot.
    r.receive(packets[5])
    assert got.frames == [0, 1, 2, 3, 4, 5]
    assert r.counters.recovered == 2
    assert r.counters.gaps == 0


def test_gap_counted_when_redundancy_moved_past_and_filled_by_a_late_copy() -> None:
    r, got = receiver()
    for p in stream(4):  # frames 0..3
        r.receive(p)
    r.receive(packet(5, 6, 7))  # packets 4..6 lost: frame 4 is no longer carried by anything
    assert r.counters.gaps == 1
    assert r.counters.gaps_filled == 0
    assert 4 not in got.frames
    r.receive(packet(2, 3, 4))  # the relay (or a reordered packet) brings it after all
    assert got.frames == [0, 1, 2, 3, 5, 6, 7, 4]
    assert r.counters.gaps_filled == 1
    assert r.counters.gaps == 1
    assert r.counters.lost == 0


def test_no_gap_while_redundancy_can_still_bring_the_frame() -> None:
    r, got = receiver()
    r.receive(packet(0))
    r.receive(packet(0, 1))
    r.receive(packet(1, 2, 3))  # frame 2 skipped in 'newest' terms, but carried: no gap
    assert r.counters.gaps == 0
    r.receive(packet(3, 4, 5))  # oldest 3: frames below 3 all arrived
    assert r.counters.gaps == 0
    assert got.frames == [0, 1, 2, 3, 4, 5]


def test_lost_when_a_frame_falls_out_of_history_and_stale_after() -> None:
    r, got = receiver(history_frames=4)
    for f in (0, 1, 2, 4, 5, 6):  # redundancy 1, frame 3 never sent
        r.receive(packet(f))
    assert r.counters.gaps == 1
    assert r.counters.lost == 0  # history is frames 3..6: frame 3 could still come
    r.receive(packet(7))  # history is now 4..7
    assert r.counters.lost == 1
    r.receive(packet(3))  # too late
    assert r.counters.stale == 1
    assert 3 not in got.frames
    assert r.counters.gaps_filled == 0
    # A frame delivered long ago, arriving again, is stale rather than redelivered.
    r.receive(packet(0))
    assert got.frames.count(0) == 1
    assert r.counters.stale == 2


def test_late_frame_within_history_is_still_delivered() -> None:
    r, got = receiver(history_frames=4)
    for f in (0, 1, 2, 4, 5, 6):
        r.receive(packet(f))
    r.receive(packet(3))
    assert got.frames[-1] == 3
    assert r.counters.gaps_filled == 1
    r.receive(packet(7))
    assert r.counters.lost == 0


def test_frames_before_the_first_one_seen_are_accepted_but_not_gaps() -> None:
    r, got = receiver()
    r.receive(packet(10, 11, 12))  # the first packets of the episode were lost or slow
    r.receive(packet(13, 14, 15))
    assert r.counters.gaps == 0
    r.receive(packet(7, 8, 9))
    assert got.frames == [10, 11, 12, 13, 14, 15, 7, 8, 9]
    for f in range(16, 300):
        r.receive(packet(f))
    # Frames 0..6 never came, but nothing said they existed: not gaps, not lost.
    assert r.counters.gaps == 0
    assert r.counters.lost == 0


def test_first_packet_far_into_the_episode_sets_the_history_floor() -> None:
    r, got = receiver(history_frames=10)
    r.receive(packet(100))
    r.receive(packet(95))  # within 10 frames of 100
    r.receive(packet(90))  # too old to believe it was not delivered already
    assert got.frames == [100, 95]
    assert r.counters.stale == 1


def test_implausible_jump_is_dropped() -> None:
    assert MAX_FRAME_JUMP == 1024
    r, got = receiver()
    r.receive(packet(0))
    assert r.receive(packet(1 + MAX_FRAME_JUMP)) == 0
    assert r.counters.implausible == 1
    assert r.newest_frame == 0
    assert got.frames == [0]
    # Frames after the ignored jump are still fresh, and no gaps were invented by it.
    r.receive(packet(1))
    assert got.frames == [0, 1]
    assert r.counters.gaps == 0
    # The largest believable jump is accepted.
    assert r.receive(packet(1 + MAX_FRAME_JUMP)) == 1
    assert r.newest_frame == 1 + MAX_FRAME_JUMP


def test_callback_exception_is_counted_and_the_rest_of_the_packet_delivered() -> None:
    seen: list[int] = []

    def on_input(frame: int, action: int) -> None:
        seen.append(frame)
        if frame == 1:
            raise RuntimeError("game bug")

    r = InputReceiver(PEER, on_input)
    assert r.receive(packet(0, 1, 2)) == 3
    assert seen == [0, 1, 2]
    assert r.counters.callback_errors == 1
    assert r.counters.inputs_delivered == 3
    # The failed frame counts as delivered: a later copy is a duplicate, not a retry.
    r.receive(packet(1, 2, 3))
    assert seen == [0, 1, 2, 3]
    assert r.counters.callback_errors == 1


def test_empty_packet() -> None:
    r, got = receiver()
    assert r.receive(InputPacket(PEER, 5, ())) == 0
    assert got.calls == []
    assert r.counters.packets == 1
    assert r.newest_frame is None


def test_reset_forgets_frames_and_keeps_counters() -> None:
    r, got = receiver()
    for p in stream(20):
        r.receive(p)
    before = r.counters.inputs_delivered
    r.reset()
    assert r.newest_frame is None
    for p in stream(5):  # a new episode: frame numbers restart at 0
        r.receive(p)
    assert got.frames == list(range(20)) + list(range(5))
    assert r.counters.inputs_delivered == before + 5
    assert r.counters.stale == 0


def test_history_must_be_positive() -> None:
    with pytest.raises(ValueError, match="history_frames must be at least 1"):
        InputReceiver(PEER, Recorder(), 0)


def test_stats_is_a_plain_dict_of_every_counter() -> None:
    r, _ = receiver()
    r.receive(packet(0))
    stats = r.stats()
    assert stats["inputs_delivered"] == 1
    assert set(stats) == {
        "packets",
        "inputs_delivered",
        "duplicates",
        "recovered",
        "conflicts",
        "wrong_player",
        "implausible",
        "stale",
        "gaps",
        "gaps_filled",
        "lost",
        "callback_errors",
    }


# --- properties -------------------------------------------------------------------------------


@st.composite
def shuffled_streams(draw: st.DrawFn) -> tuple[int, list[InputPacket]]:
    """A sender's packet stream, every packet at least once, with extra copies, in any order."""
    n = draw(st.integers(1, 80))
    redundancy = draw(st.integers(1, 5))
    start = draw(st.integers(0, 1000))
    packets = stream(n, redundancy, start)
    extra = draw(st.lists(st.sampled_from(packets), max_size=2 * n))
    arrivals = draw(st.permutations(packets + extra))
    return start, arrivals


@settings(max_examples=200)
@given(shuffled_streams())
def test_any_order_and_duplication_delivers_each_frame_exactly_once(
    case: tuple[int, list[InputPacket]],
) -> None:
    _start, arrivals = case
    r, got = receiver()
    for p in arrivals:
        r.receive(p)
    frames = {f for p in arrivals for f, _ in p.inputs}
    assert Counter(got.frames) == Counter(frames)  # every frame, each exactly once
    assert all(action == action_of(frame) for frame, action in got.calls)
    carried = sum(len(p.inputs) for p in arrivals)
    assert r.counters.inputs_delivered == len(frames)
    assert r.counters.duplicates == carried - len(frames)
    assert r.counters.conflicts == 0
    assert r.counters.lost == 0
    assert r.counters.stale == 0
    # Every gap was a reordering, and every one was filled.
    assert r.counters.gaps_filled == r.counters.gaps
    assert r.newest_frame == max(frames)


@given(
    st.integers(1, 60),
    st.integers(1, 4),
    st.data(),
)
def test_any_subset_in_any_order_delivers_what_arrived_exactly_once(
    n: int, redundancy: int, data: st.DataObject
) -> None:
    packets = stream(n, redundancy)
    kept = data.draw(st.lists(st.sampled_from(packets), max_size=3 * n))
    arrivals = data.draw(st.permutations(kept))
    r, got = receiver()
    for p in arrivals:
        r.receive(p)
    assert Counter(got.frames) == Counter({f for p in arrivals for f, _ in p.inputs})


# --- the ack to send back ---------------------------------------------------------------------


def acked(*frames: int, ack: int | None = None) -> AckedInputPacket:
    return AckedInputPacket(PEER, frames[-1], ack, tuple((f, action_of(f)) for f in frames))


def test_ack_is_none_until_something_is_delivered() -> None:
    r, _ = receiver()
    assert r.ack_frame is None
    r.receive(packet(0, player=0))  # not the peer
    r.receive(packet())  # no inputs
    assert r.ack_frame is None


def test_ack_follows_an_in_order_stream() -> None:
    r, _ = receiver()
    for p in stream(5):
        r.receive(p)
        assert r.ack_frame == p.current_frame


def test_ack_starts_at_frame_0_so_first_frames_lost_on_every_path_are_not_acknowledged() -> None:
    # Frames 0..9 went in packets that were all lost: acknowledging 12 would make the peer drop
    # them for good, and a rollback game would wait for frame 0 forever.
    r, _ = receiver()
    r.receive(packet(10, 11, 12))
    assert r.ack_frame is None
    r.receive(packet(*range(13)))
    assert r.ack_frame == 12


def test_a_peer_whose_frames_start_later_says_so_with_its_first_acked_packet() -> None:
    r, _ = receiver()
    r.receive(acked(10, 11, 12))
    assert r.ack_frame == 12


def test_ack_waits_for_a_missing_frame_then_jumps_over_what_came_meanwhile() -> None:
    r, _ = receiver()
    r.receive(packet(0))
    r.receive(packet(1))
    r.receive(packet(3))
    r.receive(packet(4))
    assert r.ack_frame == 1
    r.receive(packet(2))
    assert r.ack_frame == 4


def test_version_one_redundancy_moving_past_a_frame_does_not_move_the_ack() -> None:
    # A version-1 packet's oldest frame says only how much redundancy the peer uses; a frame
    # older than that may still come over another path, so the ack waits for it.
    r, _ = receiver()
    for p in stream(4):
        r.receive(p)
    r.receive(packet(5, 6, 7))
    assert r.counters.gaps == 1
    assert r.ack_frame == 3


def test_an_acked_packet_settles_the_frames_before_its_oldest() -> None:
    # The acked sender carries every unacknowledged input; one it left out was given up.
    r, got = receiver()
    r.receive(acked(0, 1, 2))
    r.receive(acked(5, 6, 7))
    assert r.ack_frame == 7
    assert 3 not in got.frames
    r.receive(acked(3, 4, 5, 6, 7, 8))  # a delayed copy still delivers, and moves nothing back
    assert got.frames == [0, 1, 2, 5, 6, 7, 3, 4, 8]
    assert r.ack_frame == 8


def test_an_acked_packet_does_not_settle_frames_after_a_gap_in_it() -> None:
    r, _ = receiver()
    r.receive(acked(0, 1))
    r.receive(acked(3, 4))  # frame 2 given up
    assert r.ack_frame == 4
    r.receive(acked(5, 7))  # not a sender's packet (6 missing inside), but the ack must hold at 5
    assert r.ack_frame == 5


def test_ack_passes_frames_that_fell_out_of_the_history() -> None:
    r, _ = receiver(history_frames=4)
    r.receive(packet(0))
    r.receive(packet(2))
    assert r.ack_frame == 0
    for f in range(3, 6):
        r.receive(packet(f))
    # Frame 1 is below the floor (5 - 4 + 1 = 2): lost, and no longer worth waiting for.
    assert r.counters.lost == 1
    assert r.ack_frame == 5


def test_ack_ignores_rejected_packets_and_resets_with_the_episode() -> None:
    r, _ = receiver()
    r.receive(packet(0, 1))
    r.receive(packet(5000))  # implausible jump
    r.receive(packet(2, player=7))
    assert r.ack_frame == 1
    r.reset()
    assert r.ack_frame is None
    r.receive(packet(0))
    assert r.ack_frame == 0


@given(st.integers(1, 60), st.data())
def test_ack_is_the_end_of_the_delivered_run_from_frame_0(n: int, data: st.DataObject) -> None:
    packets = stream(n, redundancy=2)
    arrivals = data.draw(st.lists(st.sampled_from(packets), max_size=2 * n))
    r, got = receiver()
    for p in arrivals:
        r.receive(p)
        delivered = set(got.frames)
        expected = None
        frame = 0
        while frame in delivered:
            expected = frame
            frame += 1
        assert r.ack_frame == expected
