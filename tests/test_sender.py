"""P2PInputSender: the redundancy window, the exact packets, and when it holds back; the queue
bound that spares reading bufferedAmount for every packet."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_transport.protocol.sender import (
    DEFAULT_BUFFER_THRESHOLD,
    P2PInputSender,
    QueueBound,
    SenderCounters,
    try_send,
)
from p2p_transport.wire.codec import decode
from p2p_transport.wire.messages import InputPacket
from tests.codec_helpers import h
from tests.fakes import FakeChannel


def test_first_four_packets_exact_bytes() -> None:
    channel = FakeChannel()
    sender = P2PInputSender(channel, player_index=1)  # redundancy 3
    for frame, action in enumerate((0x0A, 0x0B, 0x0C, 0x0D)):
        assert sender.record_and_send(action, frame) is True
    # type | player | current frame | count | reserved | (frame, action) ...
    assert channel.sent == [
        h("01 | 00 01 | 00 00 00 00 | 01 | 00 | 00 00 00 00 0a"),
        h("01 | 00 01 | 00 00 00 01 | 02 | 00 | 00 00 00 00 0a | 00 00 00 01 0b"),
        h("01 | 00 01 | 00 00 00 02 | 03 | 00 | 00 00 00 00 0a | 00 00 00 01 0b | 00 00 00 02 0c"),
        h("01 | 00 01 | 00 00 00 03 | 03 | 00 | 00 00 00 01 0b | 00 00 00 02 0c | 00 00 00 03 0d"),
    ]
    assert sender.counters == SenderCounters(packets_sent=4, bytes_sent=14 + 19 + 24 + 24)


def test_frames_need_not_be_consecutive() -> None:
    channel = FakeChannel()
    sender = P2PInputSender(channel, 7, redundancy=2)
    sender.record_and_send(1, 10)
    sender.record_and_send(2, 20)
    sender.record_and_send(3, 35)
    assert decode(channel.sent[-1]) == InputPacket(7, 35, ((20, 2), (35, 3)))


@pytest.mark.parametrize("redundancy", [1, 2, 5, 15])
def test_redundancy_sets_inputs_per_packet(redundancy: int) -> None:
    channel = FakeChannel()
    sender = P2PInputSender(channel, 0, redundancy=redundancy, window=15)
    for frame in range(20):
        sender.record_and_send(frame % 4, frame)
    for frame, data in enumerate(channel.sent):
        packet = decode(data)
        assert isinstance(packet, InputPacket)
        first = max(0, frame - redundancy + 1)
        assert packet.current_frame == frame
        assert packet.inputs == tuple((f, f % 4) for f in range(first, frame + 1))


def test_window_keeps_the_last_window_inputs() -> None:
    sender = P2PInputSender(FakeChannel(), 0, redundancy=3, window=4)
    for frame in range(10):
        sender.record_and_send(frame + 100, frame)
    assert sender.window == ((6, 106), (7, 107), (8, 108), (9, 109))


def test_record_returns_the_packet_without_sending() -> None:
    channel = FakeChannel()
    sender = P2PInputSender(channel, 2)
    packet = sender.record(5, 0)
    assert packet == h("01 | 00 02 | 00 00 00 00 | 01 | 00 | 00 00 00 00 05")
    assert channel.sent == []
    assert sender.send(packet) is True
    assert channel.sent == [packet]


@pytest.mark.parametrize("state", ["connecting", "closing", "closed"])
def test_closed_channel_sends_nothing_but_records(state: str) -> None:
    channel = FakeChannel(readyState=state)
    sender = P2PInputSender(channel, 0)
    assert sender.record_and_send(1, 0) is False
    assert sender.record_and_send(2, 1) is False
    assert channel.sent == []
    assert sender.counters == SenderCounters(skipped_closed=2)
    assert sender.window == ((0, 1), (1, 2))
    # Once open, the next packet still carries the inputs that could not be sent.
    channel.readyState = "open"
    assert sender.record_and_send(3, 2) is True
    assert decode(channel.sent[0]) == InputPacket(0, 2, ((0, 1), (1, 2), (2, 3)))


def test_no_channel_counts_as_closed() -> None:
    sender = P2PInputSender(None, 0)
    assert sender.record_and_send(1, 0) is False
    assert sender.counters.skipped_closed == 1


def test_congested_channel_sends_nothing_but_records() -> None:
    channel = FakeChannel(bufferedAmount=DEFAULT_BUFFER_THRESHOLD + 1)
    sender = P2PInputSender(channel, 0)
    assert sender.record_and_send(4, 0) is False
    assert channel.sent == []
    assert sender.counters == SenderCounters(skipped_congested=1)
    assert sender.window == ((0, 4),)
    # Exactly at the threshold is not above it: sent, carrying the skipped input too.
    channel.bufferedAmount = DEFAULT_BUFFER_THRESHOLD
    assert sender.record_and_send(5, 1) is True
    assert decode(channel.sent[0]) == InputPacket(0, 1, ((0, 4), (1, 5)))
    assert sender.counters == SenderCounters(packets_sent=1, bytes_sent=19, skipped_congested=1)


def test_custom_buffer_threshold() -> None:
    channel = FakeChannel(bufferedAmount=1)
    sender = P2PInputSender(channel, 0, buffer_threshold=0)
    assert sender.record_and_send(0, 0) is False
    assert sender.counters.skipped_congested == 1


def test_send_raising_is_counted_not_raised() -> None:
    channel = FakeChannel()
    channel.send_error = RuntimeError("InvalidStateError: RTCDataChannel.readyState is not 'open'")
    sender = P2PInputSender(channel, 0)
    assert sender.record_and_send(1, 0) is False
    assert sender.counters == SenderCounters(send_errors=1)
    assert sender.window == ((0, 1),)
    channel.send_error = None
    assert sender.record_and_send(2, 1) is True
    assert sender.counters.packets_sent == 1


def test_reset_empties_the_window_and_keeps_counters() -> None:
    channel = FakeChannel()
    sender = P2PInputSender(channel, 0)
    for frame in range(5):
        sender.record_and_send(1, frame)
    sender.reset()
    assert sender.window == ()
    # A new episode restarts frame numbers at 0, and the first packet carries only the new input.
    assert sender.record_and_send(9, 0) is True
    assert decode(channel.sent[-1]) == InputPacket(0, 0, ((0, 9),))
    assert sender.counters.packets_sent == 6


def test_stats_is_a_plain_dict() -> None:
    sender = P2PInputSender(FakeChannel(), 0)
    sender.record_and_send(1, 0)
    assert sender.stats() == {
        "packets_sent": 1,
        "bytes_sent": 14,
        "skipped_closed": 0,
        "skipped_congested": 0,
        "send_errors": 0,
    }


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ((5, 5), "target_frame 5 is not after the last recorded frame 5"),
        ((5, 4), "target_frame 4 is not after the last recorded frame 5"),
    ],
)
def test_frame_must_increase(frames: tuple[int, int], message: str) -> None:
    channel = FakeChannel()
    sender = P2PInputSender(channel, 0)
    sender.record_and_send(0, frames[0])
    with pytest.raises(ValueError, match=message):
        sender.record_and_send(0, frames[1])
    # The rejected input changed nothing.
    assert sender.window == ((frames[0], 0),)
    assert len(channel.sent) == 1


@pytest.mark.parametrize(
    ("action", "frame", "message"),
    [
        (256, 0, "action must be in 0..255, got 256"),
        (-1, 0, "action must be in 0..255, got -1"),
        (True, 0, "action must be an int, got bool"),
        (1.0, 0, "action must be an int, got float"),
        (0, -1, "target_frame must be in 0..4294967295, got -1"),
        (0, 2**32, "target_frame must be in 0..4294967295, got 4294967296"),
        (0, False, "target_frame must be an int"),
    ],
)
def test_bad_arguments(action: object, frame: object, message: str) -> None:
    sender = P2PInputSender(FakeChannel(), 0)
    with pytest.raises(ValueError, match=message):
        sender.record_and_send(action, frame)  # type: ignore[arg-type]
    assert sender.window == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"redundancy": 0}, "redundancy must be in 1..15, got 0"),
        ({"redundancy": 16, "window": 20}, "redundancy must be in 1..15, got 16"),
        ({"redundancy": 4, "window": 3}, r"window \(3\) must be at least redundancy \(4\)"),
        ({"buffer_threshold": -1}, "buffer_threshold must not be negative"),
        ({"player_index": 70000}, "player_index must be in 0..65535"),
    ],
)
def test_constructor_validation(kwargs: dict[str, int], message: str) -> None:
    args = {"player_index": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        P2PInputSender(FakeChannel(), **args)


def test_try_send_counts_each_outcome() -> None:
    counters = SenderCounters()
    assert try_send(None, b"x", 0, counters) is False
    assert try_send(FakeChannel(readyState="closed"), b"x", 0, counters) is False
    assert try_send(FakeChannel(bufferedAmount=11), b"x", 10, counters) is False
    failing = FakeChannel()
    failing.send_error = OSError("gone")
    assert try_send(failing, b"x", 10, counters) is False
    ok = FakeChannel(bufferedAmount=10)
    assert try_send(ok, b"abc", 10, counters) is True
    assert ok.sent == [b"abc"]
    assert counters == SenderCounters(
        packets_sent=1, bytes_sent=3, skipped_closed=2, skipped_congested=1, send_errors=1
    )


class QueueModel(FakeChannel):
    """A channel whose queue grows by what is sent and drains on its own, as a browser's does,
    counting the reads of ``bufferedAmount``."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = 0
        self.reads = 0

    @property  # type: ignore[override]
    def bufferedAmount(self) -> int:
        self.reads += 1
        return self.queued

    @bufferedAmount.setter
    def bufferedAmount(self, value: int) -> None:
        self.queued = value

    def send(self, data: bytes) -> None:
        super().send(data)
        self.queued += len(data)


@settings(max_examples=300)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.integers(1, 300), st.booleans()),
            st.tuples(st.just("drain"), st.integers(0, 2000), st.just(False)),
        ),
        max_size=300,
    ),
    threshold=st.integers(0, 4096),
)
def test_a_queue_bound_decides_as_reading_every_time_would(
    steps: list[tuple[str, int, bool]], threshold: int
) -> None:
    """Whatever the sends (checked or small) and however the queue drains, try_send with a
    QueueBound sends exactly what it would send reading bufferedAmount before every packet."""
    bounded, reading = QueueModel(), QueueModel()
    bound = QueueBound()
    counters = [SenderCounters(), SenderCounters()]
    for kind, size, small in steps:
        if kind == "drain":
            for channel in (bounded, reading):
                channel.queued = max(0, channel.queued - size)
            continue
        data = bytes(size)
        checked = None if small else threshold
        sent = try_send(bounded, data, checked, counters[0], bound=bound)
        assert sent == try_send(reading, data, checked, counters[1])
    assert bounded.sent == reading.sent
    assert counters[0] == counters[1]
    assert bounded.reads <= reading.reads


def test_a_queue_bound_reads_once_per_threshold_of_bytes_sent() -> None:
    channel = QueueModel()
    bound = QueueBound()
    counters = SenderCounters()
    packet = bytes(30)  # an input packet's size, about
    for _ in range(1000):
        assert try_send(channel, packet, DEFAULT_BUFFER_THRESHOLD, counters, bound=bound)
        channel.queued = 0  # a link that keeps up: everything leaves before the next frame
    # 1000 packets of 30 bytes are 30000 bytes: past the 16 KiB threshold once, so a second read.
    assert channel.reads == 2
    # A new channel (a reconnection) is read at once.
    other = QueueModel()
    other.queued = DEFAULT_BUFFER_THRESHOLD + 1
    assert not try_send(other, packet, DEFAULT_BUFFER_THRESHOLD, counters, bound=bound)
    assert other.reads == 1 and counters.skipped_congested == 1
