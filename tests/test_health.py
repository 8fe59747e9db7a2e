"""ConnectionHealthMonitor: status from latency and silence, loss estimate, reset."""

from __future__ import annotations

import math

import pytest

from p2p_transport.protocol.health import (
    LOSS_WINDOW_PACKETS,
    ConnectionHealthMonitor,
    HealthStatus,
    HealthThresholds,
)
from p2p_transport.protocol.rtt import RTTTracker
from tests.fakes import FakeClock


def monitor(
    rtt_ms: float | None = None, thresholds: HealthThresholds | None = None
) -> tuple[ConnectionHealthMonitor, FakeClock]:
    clock = FakeClock(10_000.0)
    rtt = RTTTracker(clock)
    if rtt_ms is not None:
        rtt.add_sample(rtt_ms)
    return ConnectionHealthMonitor(clock, rtt, thresholds), clock


def test_defaults() -> None:
    t = HealthThresholds()
    assert (t.warning_one_way_ms, t.critical_one_way_ms) == (100.0, 200.0)
    assert (t.warning_silence_ms, t.disconnect_silence_ms) == (1000.0, 3000.0)


@pytest.mark.parametrize(
    ("rtt_ms", "status"),
    [
        (None, HealthStatus.GOOD),  # no latency known yet
        (20.0, HealthStatus.GOOD),
        (200.0, HealthStatus.GOOD),  # one-way 100: not above the limit
        (201.0, HealthStatus.WARNING),  # one-way 100.5
        (400.0, HealthStatus.WARNING),  # one-way 200: not above the critical limit
        (401.0, HealthStatus.CRITICAL),  # one-way 200.5
        (5000.0, HealthStatus.CRITICAL),
    ],
)
def test_status_from_latency(rtt_ms: float | None, status: HealthStatus) -> None:
    m, _ = monitor(rtt_ms)
    m.record_packet()
    assert m.status is status


def test_latency_follows_the_rtt_window_average() -> None:
    clock = FakeClock()
    rtt = RTTTracker(clock)
    m = ConnectionHealthMonitor(clock, rtt)
    rtt.add_sample(100.0)
    m.record_packet()
    assert m.status is HealthStatus.GOOD
    rtt.add_sample(500.0)  # average 300, one-way 150
    assert m.status is HealthStatus.WARNING


def test_status_from_silence() -> None:
    m, clock = monitor(20.0)
    m.record_packet()
    assert m.silence_ms == 0.0
    clock.advance(1000.0)
    assert m.status is HealthStatus.GOOD  # exactly the limit is not above it
    clock.advance(0.5)
    assert m.status is HealthStatus.WARNING
    assert m.silence_ms == 1000.5
    clock.advance(1999.5)
    assert m.silence_ms == 3000.0
    assert m.status is HealthStatus.WARNING
    clock.advance(1.0)
    assert m.status is HealthStatus.DISCONNECTED
    m.record_packet()  # the peer is back
    assert m.status is HealthStatus.GOOD


def test_disconnected_outranks_critical_latency() -> None:
    m, clock = monitor(1000.0)
    m.record_packet()
    assert m.status is HealthStatus.CRITICAL
    clock.advance(3001.0)
    assert m.status is HealthStatus.DISCONNECTED


def test_silence_counts_from_construction_when_nothing_arrived() -> None:
    m, clock = monitor()
    assert m.last_packet_at_ms is None
    clock.advance(3500.0)
    assert m.silence_ms == 3500.0
    assert m.status is HealthStatus.DISCONNECTED


def test_custom_thresholds() -> None:
    thresholds = HealthThresholds(
        warning_one_way_ms=10,
        critical_one_way_ms=20,
        warning_silence_ms=50,
        disconnect_silence_ms=60,
    )
    m, clock = monitor(30.0, thresholds)  # one-way 15
    m.record_packet()
    assert m.status is HealthStatus.WARNING
    clock.advance(61)
    assert m.status is HealthStatus.DISCONNECTED


def test_without_rtt_tracker_only_silence_matters() -> None:
    clock = FakeClock()
    m = ConnectionHealthMonitor(clock)
    m.record_packet()
    assert m.status is HealthStatus.GOOD
    clock.advance(1500)
    assert m.status is HealthStatus.WARNING


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warning_one_way_ms": 0}, "warning_one_way_ms must be positive"),
        ({"critical_one_way_ms": -1}, "critical_one_way_ms must be positive"),
        ({"warning_silence_ms": math.nan}, "warning_silence_ms must be positive"),
        ({"disconnect_silence_ms": 0}, "disconnect_silence_ms must be positive"),
        (
            {"warning_one_way_ms": 150, "critical_one_way_ms": 100},
            "critical_one_way_ms must not be below warning_one_way_ms",
        ),
        (
            {"warning_silence_ms": 5000},
            "disconnect_silence_ms must not be below warning_silence_ms",
        ),
    ],
)
def test_threshold_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HealthThresholds(**kwargs)


def test_equal_thresholds_are_allowed() -> None:
    t = HealthThresholds(warning_one_way_ms=50, critical_one_way_ms=50)
    assert t.critical_one_way_ms == 50


def test_loss_estimate_on_a_known_pattern() -> None:
    m, _ = monitor()
    assert m.loss_estimate is None
    m.record_packet(0)
    assert m.loss_estimate is None  # one frame says nothing about loss
    for frame in range(1, 10):
        if frame not in (3, 7):
            m.record_packet(frame)
    assert m.loss_estimate == pytest.approx(0.2)  # 8 of frames 0..9 arrived
    # Duplicates (and non-input packets) do not make the estimate better.
    m.record_packet(5)
    m.record_packet(None)
    assert m.loss_estimate == pytest.approx(0.2)
    assert m.packets_received == 10
    # A reordered late arrival fills its hole.
    m.record_packet(3)
    assert m.loss_estimate == pytest.approx(0.1)


def test_loss_estimate_covers_only_recent_packets() -> None:
    assert LOSS_WINDOW_PACKETS == 120
    m, _ = monitor()
    for frame in range(200):
        m.record_packet(frame)
    assert m.loss_estimate == 0.0
    # Then every other packet is lost: the 120 most recent arrivals are 200, 202, ..., 438.
    for frame in range(200, 440, 2):
        m.record_packet(frame)
    assert m.loss_estimate == pytest.approx(1 - 120 / 239)


def test_gaps_accumulate() -> None:
    m, _ = monitor()
    m.record_gaps(2)
    m.record_gaps(0)
    m.record_gaps(3)
    assert m.gaps == 5


def test_reset_restarts_watching_but_keeps_totals() -> None:
    m, clock = monitor()
    for frame in (0, 1, 3):
        m.record_packet(frame)
    m.record_gaps(1)
    clock.advance(5000)
    assert m.status is HealthStatus.DISCONNECTED
    m.reset()
    assert m.status is HealthStatus.GOOD
    assert m.silence_ms == 0.0
    assert m.last_packet_at_ms is None
    assert m.loss_estimate is None
    assert m.packets_received == 3
    assert m.gaps == 1
    clock.advance(1001)
    assert m.status is HealthStatus.WARNING  # silence counts from the reset


def test_snapshot() -> None:
    m, clock = monitor(20.0)
    m.record_packet(0)
    m.record_packet(2)
    clock.advance(250)
    assert m.snapshot() == {
        "health_status": "good",
        "health_packets_received": 2,
        "health_gaps": 0,
        "health_loss_estimate": pytest.approx(1 / 3),
        "health_silence_ms": 250.0,
    }


def test_the_game_carried_by_the_relay_alone_is_never_disconnected() -> None:
    from p2p_transport.protocol.health import carrying_health

    t = HealthThresholds()
    good, gone = HealthStatus.GOOD, HealthStatus.DISCONNECTED
    # The DataChannel carries the game while it is open and not silent past the threshold.
    assert carrying_health(good, True, None, None, t) == ("p2p", good)
    assert carrying_health(HealthStatus.WARNING, True, 50.0, 5.0, t) == (
        "p2p",
        HealthStatus.WARNING,
    )
    # Gone or closed: the relay carries it while it is heard, judged by its own figures.
    assert carrying_health(gone, True, 100.0, 5.0, t) == ("relay", good)
    assert carrying_health(good, False, 100.0, 5.0, t) == ("relay", good)
    assert carrying_health(gone, False, 1500.0, 5.0, t) == ("relay", HealthStatus.WARNING)
    assert carrying_health(gone, False, 100.0, 150.0, t) == ("relay", HealthStatus.WARNING)
    assert carrying_health(gone, False, 100.0, 250.0, t) == ("relay", HealthStatus.CRITICAL)
    # Neither path: disconnected.
    assert carrying_health(gone, False, 3500.0, 5.0, t) == (None, gone)
    assert carrying_health(gone, False, None, None, t) == (None, gone)
