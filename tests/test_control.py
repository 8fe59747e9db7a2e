"""ReliableControlChannel on a fake clock and scheduler: ordering, acks, resends, bounds."""

from __future__ import annotations

import itertools

import pytest

from p2p_transport.protocol.control import (
    INITIAL_RTO_MS,
    MAX_ACK_DELAY_MS,
    MAX_RTO_MS,
    MIN_RTO_MS,
    TIMER_TICK_MS,
    ControlChannelClosed,
    ControlWindowFull,
    ReliableControlChannel,
)
from p2p_transport.wire.codec import decode, encode_control
from p2p_transport.wire.messages import ControlAck, ControlMessage
from tests.fakes import FakeClock, FakeScheduler


class Endpoint:
    """One channel, recording what it transmits and what it delivers."""

    def __init__(self, clock: FakeClock, scheduler: FakeScheduler, window: int = 32) -> None:
        self.wire: list[bytes] = []
        self.delivered: list[tuple[int, bytes]] = []
        self.channel = ReliableControlChannel(
            self.transmit,
            lambda kind, payload: self.delivered.append((kind, payload)),
            clock=clock,
            scheduler=scheduler,
            window=window,
        )

    def transmit(self, packet: bytes) -> bool:
        self.wire.append(packet)
        return True

    def take(self) -> list[ControlMessage | ControlAck]:
        out = [decode(packet) for packet in self.wire]
        self.wire.clear()
        assert all(isinstance(m, ControlMessage | ControlAck) for m in out)
        return out  # type: ignore[return-value]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(0.0)


@pytest.fixture
def scheduler(clock: FakeClock) -> FakeScheduler:
    return FakeScheduler(clock)


def feed(messages: list[ControlMessage | ControlAck], to: ReliableControlChannel) -> None:
    for message in messages:
        if isinstance(message, ControlMessage):
            to.on_control(message)
        else:
            to.on_ack(message)


def test_send_numbers_messages_and_starts_one_timer(
    clock: FakeClock, scheduler: FakeScheduler
) -> None:
    a = Endpoint(clock, scheduler)
    assert not a.channel.timer_running
    assert a.channel.send(0x80, b"x") == 0
    assert a.channel.send(0x81) == 1
    assert a.take() == [ControlMessage(0, 0x80, b"x"), ControlMessage(1, 0x81, b"")]
    assert a.channel.in_flight == 2
    assert len(scheduler.active) == 1
    assert scheduler.active[scheduler.started[0]].interval_ms == TIMER_TICK_MS


def test_delivery_in_order_with_acks_stops_the_timer(
    clock: FakeClock, scheduler: FakeScheduler
) -> None:
    a, b = Endpoint(clock, scheduler), Endpoint(clock, scheduler)
    for i in range(3):
        a.channel.send(0x80 + i, bytes([i]))
    clock.advance(40)
    feed(a.take(), b.channel)
    assert b.delivered == [(0x80, b"\x00"), (0x81, b"\x01"), (0x82, b"\x02")]
    assert b.take() == [ControlAck(0), ControlAck(1), ControlAck(2)]
    assert b.channel.ack == 2
    a.channel.on_ack(ControlAck(2))
    assert a.channel.in_flight == 0
    assert not a.channel.timer_running and scheduler.active == {}
    assert a.channel.delivery_times_ms == (40.0, 40.0, 40.0)
    assert a.channel.srtt_ms == 40.0
    assert a.channel.counters.acked == 3 and b.channel.counters.delivered == 3


def test_out_of_order_arrivals_wait_for_the_gap(clock: FakeClock, scheduler: FakeScheduler) -> None:
    b = Endpoint(clock, scheduler)
    b.channel.on_control(ControlMessage(2, 0x82, b""))
    b.channel.on_control(ControlMessage(1, 0x81, b""))
    assert b.delivered == []
    assert b.take() == [ControlAck(None), ControlAck(None)]
    b.channel.on_control(ControlMessage(0, 0x80, b""))
    assert [kind for kind, _ in b.delivered] == [0x80, 0x81, 0x82]
    assert b.take() == [ControlAck(2)]


def test_duplicates_are_acked_not_delivered(clock: FakeClock, scheduler: FakeScheduler) -> None:
    b = Endpoint(clock, scheduler)
    b.channel.on_control(ControlMessage(0, 0x80, b""))
    b.channel.on_control(ControlMessage(0, 0x80, b""))  # the ack was lost; the peer resent
    b.channel.on_control(ControlMessage(2, 0x82, b""))
    b.channel.on_control(ControlMessage(2, 0x82, b""))  # already buffered
    assert b.delivered == [(0x80, b"")]
    assert b.take() == [ControlAck(0)] * 4
    assert b.channel.counters.duplicates == 2


def test_far_ahead_messages_are_not_buffered(clock: FakeClock, scheduler: FakeScheduler) -> None:
    b = Endpoint(clock, scheduler, window=4)
    b.channel.on_control(ControlMessage(4, 0x80, b""))
    b.channel.on_control(ControlMessage(1_000_000, 0x80, b""))
    assert b.channel.counters.out_of_window == 2
    b.channel.on_control(ControlMessage(3, 0x83, b""))  # the last one the window holds
    assert b.channel.counters.out_of_window == 2
    assert b.delivered == []


def test_resends_with_exponential_backoff_until_acked(
    clock: FakeClock, scheduler: FakeScheduler
) -> None:
    a = Endpoint(clock, scheduler)
    a.channel.send(0x80)
    clock.advance(40)
    a.channel.on_ack(ControlAck(0))
    assert a.channel.rto_ms == 170.0  # 40 + 4 x 20 + 50
    a.channel.send(0x81)
    start = clock()
    a.take()
    sends_at: list[float] = []
    for _ in range(int(5_000 / TIMER_TICK_MS)):
        scheduler.advance(TIMER_TICK_MS)
        if a.take():
            sends_at.append(clock() - start)
    # 170 ms, then each wait doubled (340, 680) until the 1 s ceiling.
    assert sends_at[:5] == [170.0, 510.0, 1190.0, 2190.0, 3190.0]
    gaps = {later - earlier for earlier, later in itertools.pairwise(sends_at[3:])}
    assert gaps == {MAX_RTO_MS}
    assert a.channel.counters.retransmits == len(sends_at)
    a.channel.on_ack(ControlAck(1))
    assert not a.channel.timer_running
    assert a.channel.srtt_ms == 40.0  # Karn: a resent message's ack is no RTT sample


def test_before_any_rtt_the_initial_timeout_applies(
    clock: FakeClock, scheduler: FakeScheduler
) -> None:
    a = Endpoint(clock, scheduler)
    a.channel.send(0x80)
    a.take()
    scheduler.advance(INITIAL_RTO_MS - TIMER_TICK_MS)
    assert a.take() == []
    scheduler.advance(TIMER_TICK_MS)
    assert len(a.take()) == 1


def test_rto_is_quics_probe_timeout_within_the_ceiling(
    clock: FakeClock, scheduler: FakeScheduler
) -> None:
    a = Endpoint(clock, scheduler)
    assert a.channel.rto_ms == INITIAL_RTO_MS
    a.channel.send(0x80)
    clock.advance(10)
    a.channel.on_ack(ControlAck(0))
    assert (a.channel.srtt_ms, a.channel.rttvar_ms) == (10.0, 5.0)
    assert a.channel.rto_ms == 10 + 4 * 5 + MAX_ACK_DELAY_MS
    # Steady round trips shrink RTTVAR; 4 RTTVAR then counts for the 1 ms granularity.
    for sequence in range(1, 40):
        a.channel.send(0x80)
        clock.advance(10)
        a.channel.on_ack(ControlAck(sequence))
    assert a.channel.rttvar_ms is not None and a.channel.rttvar_ms < 0.25
    assert a.channel.rto_ms == pytest.approx(10 + 1 + MAX_ACK_DELAY_MS)
    assert MIN_RTO_MS == 1 + MAX_ACK_DELAY_MS
    a.channel.send(0x80)
    clock.advance(5000)
    a.channel.on_ack(ControlAck(40))
    assert a.channel.rto_ms == MAX_RTO_MS


def test_first_resend_after_the_measured_rto(clock: FakeClock, scheduler: FakeScheduler) -> None:
    a = Endpoint(clock, scheduler)
    a.channel.send(0x80)
    clock.advance(100)
    a.channel.on_ack(ControlAck(0))
    rto = a.channel.rto_ms
    assert rto == 350.0  # 100 + 4 x 50 + 50
    a.channel.send(0x81)
    a.take()
    scheduler.advance(rto - TIMER_TICK_MS)
    assert a.take() == []
    scheduler.advance(TIMER_TICK_MS)
    assert a.take() == [ControlMessage(1, 0x81, b"")]


def test_window_full_refuses_with_a_clear_error(clock: FakeClock, scheduler: FakeScheduler) -> None:
    a = Endpoint(clock, scheduler, window=2)
    a.channel.send(0x80)
    a.channel.send(0x81)
    with pytest.raises(ControlWindowFull, match="2 control messages are unacknowledged"):
        a.channel.send(0x82)
    assert a.channel.counters.sent == 2
    a.channel.on_ack(ControlAck(0))
    assert a.channel.send(0x82) == 2  # the refused message took no sequence number


def test_implausible_and_stale_acks_are_ignored(clock: FakeClock, scheduler: FakeScheduler) -> None:
    a = Endpoint(clock, scheduler)
    a.channel.send(0x80)
    a.channel.on_ack(ControlAck(None))
    a.channel.on_ack(ControlAck(5))
    assert a.channel.in_flight == 1 and a.channel.counters.implausible_acks == 1
    a.channel.on_ack(ControlAck(0))
    a.channel.on_ack(ControlAck(0))
    assert a.channel.counters.acked == 1


def test_invalid_messages_raise_value_error(clock: FakeClock, scheduler: FakeScheduler) -> None:
    a = Endpoint(clock, scheduler)
    with pytest.raises(ValueError, match="payload is at most 1024 bytes"):
        a.channel.send(0x80, bytes(1025))
    with pytest.raises(ValueError, match=r"kind must be in 0\.\.255"):
        a.channel.send(256)
    assert a.channel.in_flight == 0 and not a.channel.timer_running
    with pytest.raises(ValueError, match="window must be at least 1"):
        Endpoint(clock, scheduler, window=0)


def test_a_raising_callback_loses_nothing(clock: FakeClock, scheduler: FakeScheduler) -> None:
    seen: list[int] = []

    def on_message(kind: int, payload: bytes) -> None:
        seen.append(kind)
        if kind == 0x80:
            raise RuntimeError("game bug")

    channel = ReliableControlChannel(
        lambda packet: True, on_message, clock=clock, scheduler=scheduler
    )
    channel.on_control(ControlMessage(1, 0x81, b""))
    channel.on_control(ControlMessage(0, 0x80, b""))
    channel.on_control(ControlMessage(0, 0x80, b""))
    assert seen == [0x80, 0x81]
    assert channel.counters.callback_errors == 1 and channel.counters.delivered == 2


def test_close_stops_the_timer_and_refuses_sends(
    clock: FakeClock, scheduler: FakeScheduler
) -> None:
    a = Endpoint(clock, scheduler)
    a.channel.send(0x80)
    a.channel.close()
    a.channel.close()
    assert scheduler.active == {} and not a.channel.timer_running
    with pytest.raises(ControlChannelClosed):
        a.channel.send(0x80)
    a.take()
    a.channel.on_control(ControlMessage(0, 0x80, b""))
    assert a.wire == [] and a.delivered == []


def test_stats_and_percentiles(clock: FakeClock, scheduler: FakeScheduler) -> None:
    a = Endpoint(clock, scheduler)
    assert a.channel.delivery_p50_ms is None
    for delay in range(1, 101):
        a.channel.send(0x80)
        clock.advance(delay)
        a.channel.on_ack(ControlAck(delay - 1))
    assert (a.channel.delivery_p50_ms, a.channel.delivery_p99_ms) == (50.0, 99.0)
    stats = a.channel.stats()
    assert stats["sent"] == 100 and stats["delivery_p99_ms"] == 99.0 and stats["in_flight"] == 0


def test_transmit_failures_are_retried(clock: FakeClock, scheduler: FakeScheduler) -> None:
    attempts: list[bytes] = []

    def transmit(packet: bytes) -> bool:
        attempts.append(packet)
        return False  # no path open

    channel = ReliableControlChannel(
        transmit, lambda kind, payload: None, clock=clock, scheduler=scheduler
    )
    channel.send(0x80)
    scheduler.advance(INITIAL_RTO_MS)
    assert attempts == [encode_control(0, 0x80, b"")] * 2


def test_rtt_hint_sets_the_rto_until_measured(clock: FakeClock, scheduler: FakeScheduler) -> None:
    hint: list[tuple[float, float] | None] = [None]
    channel = ReliableControlChannel(
        lambda packet: True,
        lambda kind, payload: None,
        clock=clock,
        scheduler=scheduler,
        rtt_hint=lambda: hint[0],
    )
    assert channel.rto_ms == INITIAL_RTO_MS
    hint[0] = (100.0, 50.0)
    assert channel.rto_ms == 350.0  # 100 + 4 x 50 + 50
    channel.send(0x80)
    clock.advance(40)
    channel.on_ack(ControlAck(0))
    assert channel.rto_ms == 170.0  # its own measurement now: 40 + 4 x 20 + 50


def test_an_ack_that_proves_a_loss_resends_at_once(
    clock: FakeClock, scheduler: FakeScheduler
) -> None:
    a = Endpoint(clock, scheduler)
    a.channel.send(0x80)
    clock.advance(40)
    a.channel.on_ack(ControlAck(0))  # SRTT 40
    a.channel.send(0x81)  # seq 1: lost
    clock.advance(20)
    a.channel.send(0x82)  # seq 2: arrives; its ack still says 0
    a.take()
    clock.advance(20)
    a.channel.on_ack(ControlAck(0))  # 40 ms after seq 1: within SRTT + a quarter, no verdict
    assert a.take() == []
    clock.advance(20)
    a.channel.on_ack(ControlAck(0))  # 60 ms after seq 1 was sent, and it is still not covered
    assert a.take() == [ControlMessage(1, 0x81, b"")]
    a.channel.on_ack(ControlAck(0))  # just resent: wait for the resend's answer
    assert a.take() == []
    assert a.channel.counters.retransmits == 1


def test_no_rtt_sample_from_an_ack_that_may_answer_a_later_message(
    clock: FakeClock, scheduler: FakeScheduler
) -> None:
    a = Endpoint(clock, scheduler)
    a.channel.send(0x80)
    clock.advance(100)
    a.channel.send(0x81)
    clock.advance(40)
    a.channel.on_ack(ControlAck(0))  # seq 1 is out: this ack may be its arrival's, gap or not
    assert a.channel.srtt_ms is None
    a.channel.on_ack(ControlAck(1))
    assert a.channel.srtt_ms == 40.0


def test_an_ack_that_comes_back_inside_a_resend_is_taken(caplog: pytest.LogCaptureFixture) -> None:
    # A link that delivers at once brings the peer's ack back before transmit returns, while the
    # retransmit timer is still walking the messages in flight.
    clock = FakeClock()
    scheduler = FakeScheduler(clock)
    receiver = ReliableControlChannel(
        lambda packet: None, lambda kind, payload: None, clock=clock, scheduler=scheduler
    )
    link_up = False

    def transmit(packet: bytes) -> None:
        if link_up:
            message = decode(packet)
            assert isinstance(message, ControlMessage)
            receiver.on_control(message)
            sender.on_ack(ControlAck(receiver.ack))

    sender = ReliableControlChannel(
        transmit, lambda kind, payload: None, clock=clock, scheduler=scheduler
    )
    sender.send(0x80, b"a")
    sender.send(0x80, b"b")
    link_up = True
    scheduler.advance(2000)
    assert sender.in_flight == 0
    assert sender.counters.acked == 2
    assert sender.counters.retransmits == 2  # each resent once, by the first timeout
    assert "retransmit timer failed" not in caplog.text
