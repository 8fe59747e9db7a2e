"""RTTTracker: the sliding window, RFC 6298 smoothing, and the window statistics."""

from __future__ import annotations

import math

import pytest

from p2p_transport.protocol.rtt import DEFAULT_RTT_WINDOW, RTTTracker
from tests.fakes import FakeClock


def tracker(*samples: float, window: int = DEFAULT_RTT_WINDOW) -> RTTTracker:
    t = RTTTracker(FakeClock(), window)
    for sample in samples:
        t.add_sample(sample)
    return t


def test_everything_is_none_before_the_first_sample() -> None:
    t = tracker()
    assert t.sample_count == 0
    for name in ("average_ms", "one_way_ms", "min_ms", "max_ms", "jitter_ms", "p50_ms", "p95_ms"):
        assert getattr(t, name) is None, name
    assert t.srtt_ms is None
    assert t.rttvar_ms is None
    assert t.last_sample_ms is None
    assert t.last_sample_at_ms is None


def test_default_window_is_ten_and_keeps_only_the_last_ten() -> None:
    assert DEFAULT_RTT_WINDOW == 10
    t = tracker(*[10 * i for i in range(1, 13)])  # 10, 20, ..., 120
    assert t.window == 10
    assert t.sample_count == 12
    # The window holds 30..120: 10 and 20 have left it.
    assert t.min_ms == 30
    assert t.max_ms == 120
    assert t.average_ms == 75.0
    assert t.one_way_ms == 37.5
    assert t.jitter_ms == 10.0
    assert t.p50_ms == 70  # nearest rank ceil(0.5 * 10) = 5th of 30..120
    assert t.p95_ms == 120  # ceil(9.5) = 10th
    assert t.last_sample_ms == 120


def test_average_and_one_way() -> None:
    t = tracker(30.0, 50.0, 100.0)
    assert t.average_ms == 60.0
    assert t.one_way_ms == 30.0


def test_rfc6298_smoothing_by_hand() -> None:
    t = tracker()
    # First sample R: SRTT = R, RTTVAR = R / 2.
    t.add_sample(100.0)
    assert (t.srtt_ms, t.rttvar_ms) == (100.0, 50.0)
    # RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 37.5 + 25 = 62.5 (with the OLD SRTT)
    # SRTT   = 7/8 * 100 + 1/8 * 200 = 87.5 + 25 = 112.5
    t.add_sample(200.0)
    assert (t.srtt_ms, t.rttvar_ms) == (112.5, 62.5)
    # RTTVAR = 3/4 * 62.5 + 1/4 * |112.5 - 40| = 46.875 + 18.125 = 65.0
    # SRTT   = 7/8 * 112.5 + 1/8 * 40 = 98.4375 + 5 = 103.4375
    t.add_sample(40.0)
    assert (t.srtt_ms, t.rttvar_ms) == (103.4375, 65.0)


def test_smoothing_covers_samples_that_left_the_window() -> None:
    # Window 1: the window statistics see only the last sample, SRTT still remembers the first.
    t = tracker(100.0, 200.0, window=1)
    assert t.average_ms == 200.0
    assert t.srtt_ms == 112.5


def test_window_statistics_exact() -> None:
    t = tracker(50.0, 10.0, 40.0, 30.0, 20.0)
    assert t.min_ms == 10.0
    assert t.max_ms == 50.0
    assert t.average_ms == 30.0
    # |10-50| + |40-10| + |30-40| + |20-30| = 40 + 30 + 10 + 10 = 90, over 4 differences
    assert t.jitter_ms == 22.5
    # sorted 10, 20, 30, 40, 50: p50 rank ceil(2.5) = 3 -> 30; p95 rank ceil(4.75) = 5 -> 50
    assert t.p50_ms == 30.0
    assert t.p95_ms == 50.0
    assert t.percentile_ms(0.2) == 10.0  # rank ceil(1.0) = 1
    assert t.percentile_ms(0.21) == 20.0  # rank ceil(1.05) = 2
    assert t.percentile_ms(1.0) == 50.0


def test_percentiles_with_a_full_window_of_twenty() -> None:
    t = tracker(*range(20, 0, -1), window=20)  # 20 .. 1 in descending order
    assert t.p50_ms == 10  # rank 10
    assert t.p95_ms == 19  # rank ceil(19.0) = 19, not 20
    assert t.percentile_ms(0.05) == 1


def test_single_sample() -> None:
    t = tracker(42.0)
    assert t.jitter_ms == 0.0
    assert t.p50_ms == t.p95_ms == t.min_ms == t.max_ms == t.average_ms == 42.0
    assert t.one_way_ms == 21.0


@pytest.mark.parametrize("fraction", [0, -0.5, 1.01, math.nan])
def test_percentile_fraction_must_be_in_range(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction must be in"):
        tracker(1.0).percentile_ms(fraction)


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (0, "must be positive, got 0"),
        (0.0, "must be positive, got 0.0"),
        (-5.0, "must be positive, got -5.0"),
        (math.nan, "must be finite, got nan"),
        (math.inf, "must be finite, got inf"),
        (-math.inf, "must be finite, got -inf"),
        (10**400, "must be finite, got an int beyond float64"),
        (True, "must be a number, got bool"),
        ("12", "must be a number, got str"),
        (None, "must be a number, got NoneType"),
    ],
)
def test_rejects_bad_samples_and_records_nothing(sample: object, message: str) -> None:
    t = tracker(10.0)
    with pytest.raises(ValueError) as info:
        t.add_sample(sample)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert t.sample_count == 1
    assert t.average_ms == 10.0
    assert t.srtt_ms == 10.0


def test_integer_samples_are_accepted() -> None:
    t = tracker(3, 5)
    assert t.average_ms == 4.0


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window must be at least 1"):
        RTTTracker(FakeClock(), 0)


def test_reset_forgets_everything() -> None:
    t = tracker(10.0, 20.0)
    t.reset()
    assert t.sample_count == 0
    assert t.average_ms is None
    assert t.srtt_ms is None
    assert t.rttvar_ms is None
    assert t.last_sample_ms is None
    assert t.last_sample_at_ms is None
    # After a reset the next sample starts RFC 6298 afresh.
    t.add_sample(80.0)
    assert (t.srtt_ms, t.rttvar_ms, t.average_ms) == (80.0, 40.0, 80.0)


def test_injected_clock_stamps_samples() -> None:
    clock = FakeClock(1000.0)
    t = RTTTracker(clock)
    t.add_sample(25.0)
    assert t.last_sample_at_ms == 1000.0
    clock.advance(500.0)
    assert t.last_sample_at_ms == 1000.0  # a reading, not a live view
    t.add_sample(30.0)
    assert t.last_sample_at_ms == 1500.0


def test_snapshot_reports_every_figure() -> None:
    clock = FakeClock(7.0)
    t = RTTTracker(clock)
    t.add_sample(100.0)
    t.add_sample(200.0)
    assert t.snapshot() == {
        "rtt_samples": 2,
        "rtt_last_ms": 200.0,
        "rtt_avg_ms": 150.0,
        "rtt_min_ms": 100.0,
        "rtt_max_ms": 200.0,
        "rtt_p50_ms": 100.0,
        "rtt_p95_ms": 200.0,
        "rtt_jitter_ms": 100.0,
        "srtt_ms": 112.5,
        "rttvar_ms": 62.5,
        "one_way_ms": 75.0,
    }
