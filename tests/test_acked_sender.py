"""AckedInputSender: what each packet carries, how acks drop inputs, the pending bound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_transport.protocol.acked_sender import PENDING_LIMIT, AckedInputSender, AckedSenderCounters
from p2p_transport.wire.codec import decode
from p2p_transport.wire.messages import AckedInputPacket
from tests.codec_helpers import h


def inputs_of(data: bytes) -> tuple[tuple[int, int], ...]:
    packet = decode(data)
    assert isinstance(packet, AckedInputPacket)
    return packet.inputs


def test_packets_carry_everything_unacknowledged_exact_bytes() -> None:
    sender = AckedInputSender(player_index=1, redundancy=1)
    sender.add_pending(0, 0x0A)
    assert sender.packet(None) == h("20 | 00 01 | 00 00 00 00 | ff ff ff ff | 01 | 00000000 0a")
    sender.add_pending(1, 0x0B)
    # Nothing acknowledged yet: both inputs, whatever the redundancy. The ack is ours, of the
    # peer's inputs, and is carried as given.
    assert sender.packet(7) == h(
        "20 | 00 01 | 00 00 00 01 | 00 00 00 07 | 02 | 00000000 0a | 00000001 0b"
    )
    assert sender.on_ack(0) == 1
    sender.add_pending(2, 0x0C)
    assert sender.packet(8) == h(
        "20 | 00 01 | 00 00 00 02 | 00 00 00 08 | 02 | 00000001 0b | 00000002 0c"
    )


def test_acknowledged_inputs_drop_out_down_to_the_redundancy() -> None:
    sender = AckedInputSender(0, redundancy=3)
    for frame in range(10):
        sender.add_pending(frame, frame)
    assert len(inputs_of(sender.packet(None))) == 10
    assert sender.on_ack(5) == 6
    assert sender.pending == tuple((f, f) for f in range(6, 10))
    assert [f for f, _ in inputs_of(sender.packet(None))] == [6, 7, 8, 9]
    assert sender.on_ack(9) == 4
    assert not sender.has_pending
    # All acknowledged: the packet still carries the three most recent.
    assert [f for f, _ in inputs_of(sender.packet(None))] == [7, 8, 9]
    assert sender.counters.inputs_acked == 10
    assert sender.acked_through == 9


def test_pending_packet_carries_only_pending_and_is_a_pure_ack_when_none() -> None:
    sender = AckedInputSender(3, redundancy=3)
    assert decode(sender.pending_packet(None)) == AckedInputPacket(3, 0, None, ())
    for frame in range(4):
        sender.add_pending(frame, 1)
    sender.on_ack(2)
    assert decode(sender.pending_packet(11)) == AckedInputPacket(3, 3, 11, ((3, 1),))
    sender.on_ack(3)
    assert decode(sender.pending_packet(12)) == AckedInputPacket(3, 3, 12, ())


def test_old_none_and_implausible_acks_change_nothing() -> None:
    sender = AckedInputSender(0)
    assert sender.on_ack(0) == 0  # nothing recorded: nothing to acknowledge
    for frame in range(5):
        sender.add_pending(frame, 0)
    assert sender.on_ack(None) == 0
    assert sender.on_ack(3) == 4
    assert sender.on_ack(1) == 0  # overtaken by the ack of 3
    assert sender.on_ack(3) == 0
    assert sender.on_ack(99) == 0  # a frame never sent
    assert sender.counters == AckedSenderCounters(inputs_acked=4, implausible_acks=1)
    assert sender.pending == ((4, 0),)


def test_frames_need_not_be_consecutive() -> None:
    sender = AckedInputSender(0, redundancy=1)
    for frame in (10, 20, 35):
        sender.add_pending(frame, 1)
    assert sender.on_ack(25) == 2
    assert sender.pending == ((35, 1),)


def test_without_acks_expected_the_bound_drops_quietly() -> None:
    # Before the peer is known to ack (it may speak only version 1), the oldest inputs fall out.
    sender = AckedInputSender(0)
    for frame in range(PENDING_LIMIT + 36):
        sender.add_pending(frame, frame % 256)
    assert len(sender.pending) == PENDING_LIMIT
    assert sender.pending[0][0] == 36
    assert not sender.stalled
    assert sender.counters == AckedSenderCounters()


def test_past_the_bound_the_peer_is_stalled_and_memory_stays_bounded() -> None:
    sender = AckedInputSender(0)
    sender.acks_expected = True
    for frame in range(1000):
        sender.add_pending(frame, frame % 256)
        assert len(sender.pending) <= PENDING_LIMIT
    assert sender.stalled
    assert sender.counters.inputs_abandoned == 1000 - PENDING_LIMIT
    assert sender.counters.stalls == 1
    packet = inputs_of(sender.packet(None))
    assert [f for f, _ in packet] == list(range(1000 - PENDING_LIMIT, 1000))
    assert len(sender.packet(None)) == 12 + 5 * PENDING_LIMIT
    # The peer acknowledges again: the stall is over, and a new one would be counted anew.
    assert sender.on_ack(990) == PENDING_LIMIT - 9
    assert not sender.stalled
    for frame in range(1000, 1000 + PENDING_LIMIT):
        sender.add_pending(frame, 0)
    assert sender.stalled
    assert sender.counters.stalls == 2


def test_acknowledged_inputs_falling_out_are_not_abandoned() -> None:
    sender = AckedInputSender(0)
    sender.acks_expected = True
    for frame in range(PENDING_LIMIT):
        sender.add_pending(frame, 0)
    sender.on_ack(10)
    for frame in range(PENDING_LIMIT, PENDING_LIMIT + 11):
        sender.add_pending(frame, 0)
    assert sender.counters.inputs_abandoned == 0
    sender.add_pending(PENDING_LIMIT + 11, 0)  # now frame 11, never acknowledged, falls out
    assert sender.counters.inputs_abandoned == 1


def test_reset_forgets_inputs_and_acks() -> None:
    sender = AckedInputSender(0)
    sender.acks_expected = True
    for frame in range(PENDING_LIMIT + 1):
        sender.add_pending(frame, 0)
    sender.on_ack(20)
    sender.reset()
    assert sender.pending == ()
    assert sender.acked_through is None
    assert not sender.stalled
    sender.add_pending(0, 5)  # frame numbers restart
    assert sender.pending == ((0, 5),)
    assert sender.acks_expected
    assert sender.stats()["inputs_acked"] == 20  # frames 1..20; frame 0 was abandoned


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.add_pending(0, 256), "action must be in 0..255, got 256"),
        (lambda s: s.add_pending(0, True), "action must be an int, got bool"),
        (lambda s: s.add_pending(-1, 0), "target_frame must be in 0..4294967295, got -1"),
        (
            lambda s: s.add_pending(2**32, 0),
            "target_frame must be in 0..4294967295, got 4294967296",
        ),
        (
            lambda s: (s.add_pending(5, 0), s.add_pending(5, 0)),
            "not after the last recorded frame 5",
        ),
    ],
)
def test_add_pending_rejects_bad_arguments(call, message: str) -> None:
    sender = AckedInputSender(0)
    with pytest.raises(ValueError, match=message):
        call(sender)


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match=r"redundancy must be in 1\.\.64"):
        AckedInputSender(0, redundancy=0)
    with pytest.raises(ValueError, match=r"redundancy must be in 1\.\.64"):
        AckedInputSender(0, redundancy=65)
    with pytest.raises(ValueError, match=r"player_index must be in 0\.\.65535"):
        AckedInputSender(70000)


@given(
    st.integers(1, 8),
    st.lists(st.one_of(st.just(None), st.integers(0, 300)), max_size=300),
)
def test_packets_always_carry_every_pending_input_and_the_recent_ones(
    redundancy: int, script: list[int | None]
) -> None:
    """A random mix of new inputs (None) and acks: every packet is the last max(pending,
    redundancy) inputs recorded, pending is exactly what follows the highest valid ack."""
    sender = AckedInputSender(0, redundancy)
    sender.acks_expected = True
    recorded: list[tuple[int, int]] = []
    acked = -1
    for step in script:
        if step is None:
            frame = len(recorded)
            sender.add_pending(frame, frame % 256)
            recorded.append((frame, frame % 256))
        else:
            sender.on_ack(step)
            if step < len(recorded):
                acked = max(acked, step)
        pending = [x for x in recorded[-PENDING_LIMIT:] if x[0] > acked]
        assert list(sender.pending) == pending
        count = max(len(pending), min(redundancy, len(recorded)))
        assert list(inputs_of(sender.packet(None))) == recorded[len(recorded) - count :]
        assert list(inputs_of(sender.pending_packet(None))) == pending
