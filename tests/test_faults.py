"""FaultyChannel: loss, bursts, delay, duplicates and reordering, seeded and measured."""

from __future__ import annotations

import itertools
import math

import pytest

from p2p_transport.protocol.faults import FaultConfig, FaultCounters, FaultyChannel
from p2p_transport.protocol.sender import SenderCounters, try_send
from p2p_transport.timing import FRAME_MS
from tests.fakes import FakeChannel, FakeClock


def numbered(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") for i in range(n)]


def numbers(sent: list[bytes]) -> list[int]:
    return [int.from_bytes(data, "big") for data in sent]


def faulty(config: FaultConfig, seed: int = 1) -> tuple[FaultyChannel, FakeChannel, FakeClock]:
    clock = FakeClock(0.0)
    inner = FakeChannel()
    return FaultyChannel(inner, config, clock, seed), inner, clock


def drop_runs(outcomes: list[bool]) -> list[int]:
    """Lengths of the runs of consecutive drops."""
    return [len(list(run)) for dropped, run in itertools.groupby(outcomes) if dropped]


def test_without_faults_packets_pass_straight_through() -> None:
    channel, inner, _ = faulty(FaultConfig())
    inner.bufferedAmount = 77
    assert channel.readyState == "open"
    assert channel.bufferedAmount == 77
    for data in numbered(5):
        channel.send(data)
    assert inner.sent == numbered(5)
    assert channel.queued == 0
    assert channel.next_due_ms is None
    assert channel.counters == FaultCounters(packets=5, forwarded=5)


def test_it_serves_try_send_like_any_channel() -> None:
    channel, inner, _ = faulty(FaultConfig())
    counters = SenderCounters()
    assert try_send(channel, b"\x04", 1024, counters)
    inner.readyState = "closed"
    assert not try_send(channel, b"\x04", 1024, counters)
    assert (counters.packets_sent, counters.skipped_closed) == (1, 1)


@pytest.mark.parametrize("loss", [0.1, 0.3, 0.5])
def test_independent_loss_drops_the_configured_fraction(loss: float) -> None:
    n = 100_000
    channel, inner, _ = faulty(FaultConfig(loss=loss), seed=int(loss * 100))
    for data in numbered(n):
        channel.send(data)
    dropped = channel.counters.dropped
    # Binomial: 5 sigma.
    assert abs(dropped / n - loss) <= 5 * math.sqrt(loss * (1 - loss) / n)
    assert len(inner.sent) == n - dropped
    assert numbers(inner.sent) == sorted(numbers(inner.sent))


@pytest.mark.parametrize(("loss", "burst"), [(0.1, 5), (0.3, 5), (0.2, 3)])
def test_bursts_drop_runs_of_the_burst_length_at_the_configured_fraction(
    loss: float, burst: int
) -> None:
    n = 200_000
    channel, _, _ = faulty(FaultConfig(loss=loss, burst=burst), seed=burst)
    outcomes: list[bool] = []
    # Past n, send on until a packet gets through, so no burst is cut short by the end.
    while len(outcomes) < n or outcomes[-1]:
        before = channel.counters.dropped
        channel.send(b"x")
        outcomes.append(channel.counters.dropped > before)
    n = len(outcomes)
    # A burst may start right after another ends, so a run is a whole number of bursts.
    runs = drop_runs(outcomes)
    assert all(run % burst == 0 for run in runs)
    assert sum(runs) == channel.counters.dropped == burst * channel.counters.bursts
    # In the long run a fraction p of packets is dropped, b per burst: n p / b bursts. The count
    # is close to binomial, so 5 sigma of a Poisson count bounds its spread generously.
    expected_bursts = n * loss / burst
    assert abs(channel.counters.bursts - expected_bursts) <= 5 * math.sqrt(expected_bursts)
    assert abs(channel.counters.dropped / n - loss) <= 0.01


def test_burst_start_probability() -> None:
    assert FaultConfig(loss=0.3).burst_start_probability == pytest.approx(0.3)
    # p = 0.3, b = 5: s = 0.3 / (5 * 0.7 + 0.3)
    assert FaultConfig(loss=0.3, burst=5).burst_start_probability == pytest.approx(0.3 / 3.8)
    assert FaultConfig(loss=1.0, burst=5).burst_start_probability == 1.0
    assert FaultConfig(burst=5).burst_start_probability == 0.0


def test_the_same_seed_gives_the_same_faults() -> None:
    config = FaultConfig(loss=0.2, burst=2, duplicate=0.1, reorder=0.1, delay_ms=5)

    def run(seed: int) -> list[int]:
        channel, inner, clock = faulty(config, seed)
        for data in numbered(2000):
            channel.send(data)
            clock.advance(1)
            channel.pump()
        clock.advance(1000)
        channel.pump()
        return numbers(inner.sent)

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_delay_holds_packets_until_pump_finds_them_due() -> None:
    channel, inner, clock = faulty(FaultConfig(delay_ms=40))
    channel.send(b"a")
    clock.advance(10)
    channel.send(b"b")
    assert channel.queued == 2
    assert channel.next_due_ms == 40
    clock.advance(29)
    assert channel.pump() == 0
    assert inner.sent == []
    clock.advance(1)
    assert channel.pump() == 1
    assert inner.sent == [b"a"]
    assert channel.next_due_ms == 50
    clock.advance(100)
    assert channel.pump() == 1
    assert inner.sent == [b"a", b"b"]
    assert channel.next_due_ms is None


def test_duplicates_arrive_twice_back_to_back() -> None:
    n = 20_000
    channel, inner, clock = faulty(FaultConfig(duplicate=0.25, delay_ms=1))
    for data in numbered(n):
        channel.send(data)
        clock.advance(2)
        channel.pump()
    got = numbers(inner.sent)
    assert len(got) == n + channel.counters.duplicated
    assert sorted(set(got)) == list(range(n))
    assert got == sorted(got)  # in order, each duplicate right after its original
    assert abs(channel.counters.duplicated / n - 0.25) <= 5 * math.sqrt(0.25 * 0.75 / n)


def test_reordered_packets_are_held_back_and_overtaken() -> None:
    # Without added delay, packets not reordered still go at once; reordered ones wait 50 ms.
    channel, inner, clock = faulty(FaultConfig(reorder=0.2), seed=3)
    sent_at: dict[int, float] = {}
    delays: dict[int, float] = {}
    inner.on_send = lambda data: delays.__setitem__(
        int.from_bytes(data, "big"), clock() - sent_at[int.from_bytes(data, "big")]
    )
    n = 3000
    for number, data in enumerate(numbered(n)):
        sent_at[number] = clock()
        channel.send(data)
        clock.advance(FRAME_MS)
        channel.pump()
    clock.advance(1000)
    channel.pump()
    got = numbers(inner.sent)
    assert sorted(got) == list(range(n))
    # Each packet went at once or one pump after its 50 ms, and as many waited as were reordered.
    held = [number for number, delay in delays.items() if delay > 0]
    # (The last few waited for the final pump.)
    assert all(50 - 1e-6 <= delays[number] <= 50 + FRAME_MS + 1e-6 for number in sorted(held)[:-4])
    assert len(held) == channel.counters.reordered
    assert abs(len(held) / n - 0.2) <= 5 * math.sqrt(0.2 * 0.8 / n)
    # A held packet is overtaken by the packets sent meanwhile that were not held themselves.
    for number in held:
        overtaken_by = {other for other in got[: got.index(number)] if other > number}
        meanwhile = {
            other
            for other in range(number + 1, min(n, number + 4))
            if other not in held and sent_at[other] < sent_at[number] + delays[number]
        }
        assert overtaken_by == meanwhile


def test_a_new_config_ends_a_burst_under_way() -> None:
    channel, inner, _ = faulty(FaultConfig(loss=1.0, burst=10))
    channel.send(b"x")
    assert channel.counters.dropped == 1
    channel.config = FaultConfig()  # the link recovers
    channel.send(b"y")
    assert inner.sent == [b"y"]


def test_queued_packets_meeting_a_closed_or_failing_channel_are_lost_in_flight() -> None:
    channel, inner, clock = faulty(FaultConfig(delay_ms=10))
    for data in numbered(3):
        channel.send(data)
    clock.advance(10)
    inner.readyState = "closed"
    assert channel.pump() == 0
    inner.readyState = "open"
    inner.send_error = RuntimeError("closed during send")
    channel.send(b"z")
    clock.advance(10)
    assert channel.pump() == 0
    assert channel.counters.lost_in_flight == 4
    assert channel.counters.forwarded == 0


def test_an_immediate_send_on_a_failing_channel_raises_like_the_real_one() -> None:
    channel, inner, _ = faulty(FaultConfig())
    inner.send_error = RuntimeError("InvalidStateError")
    with pytest.raises(RuntimeError):
        channel.send(b"a")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": -0.1}, "loss must be in"),
        ({"loss": 1.5}, "loss must be in"),
        ({"duplicate": float("nan")}, "duplicate must be in"),
        ({"reorder": 2}, "reorder must be in"),
        ({"burst": 0}, "burst must be at least 1, got 0"),
        ({"burst": True}, "burst must be an int"),
        ({"delay_ms": -1}, "delay_ms must be finite and not negative"),
        ({"reorder_ms": float("inf")}, "reorder_ms must be finite"),
    ],
)
def test_config_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultConfig(**kwargs)


def test_holds_packets_only_with_delay_or_reordering() -> None:
    assert not FaultConfig().holds_packets
    assert not FaultConfig(loss=0.3, burst=5, duplicate=0.1).holds_packets
    assert FaultConfig(delay_ms=1).holds_packets
    assert FaultConfig(reorder=0.1).holds_packets
    assert not FaultConfig(reorder=0.1, reorder_ms=0).holds_packets


def test_replacing_the_channel_loses_what_was_queued_for_the_old_one() -> None:
    channel, old, clock = faulty(FaultConfig(delay_ms=10))
    for data in numbered(3):
        channel.send(data)
    new = FakeChannel()
    assert channel.replace_channel(new) == 3
    assert channel.queued == 0
    assert channel.counters.lost_in_flight == 3
    channel.send(b"\x04")
    clock.advance(10)
    assert channel.pump() == 1
    assert old.sent == []
    assert new.sent == [b"\x04"]
    assert channel.counters.packets == 4
