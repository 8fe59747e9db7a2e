"""Round-trip time tracking from ping/pong samples."""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterable
from typing import Final

from p2p_transport._checks import check_finite
from p2p_transport.errors import UsageError
from p2p_transport.timing import Clock

__all__ = ["DEFAULT_RTT_WINDOW", "RTTTracker", "nearest_rank", "rfc6298_update"]

#: The seed design averaged the last 10 samples: at one ping per 500 ms that is the last 5 seconds,
#: long enough to smooth one slow answer, short enough to follow a real change.
DEFAULT_RTT_WINDOW: Final = 10
# RFC 6298 section 2 gains: SRTT moves 1/8 and RTTVAR 1/4 of the way to each new sample.
_ALPHA: Final = 1 / 8
_BETA: Final = 1 / 4


def nearest_rank(values: Iterable[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in (0, 1]) of a non-empty collection."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def rfc6298_update(
    srtt_ms: float | None, rttvar_ms: float | None, sample_ms: float
) -> tuple[float, float]:
    """SRTT and RTTVAR after one more round-trip sample (RFC 6298, section 2)."""
    if srtt_ms is None or rttvar_ms is None:
        return sample_ms, sample_ms / 2
    rttvar_ms = (1 - _BETA) * rttvar_ms + _BETA * abs(srtt_ms - sample_ms)
    return (1 - _ALPHA) * srtt_ms + _ALPHA * sample_ms, rttvar_ms


class RTTTracker:
    """Keeps round-trip samples in milliseconds and the figures derived from them.

    Window figures (average, min, max, jitter, p50, p95) cover the last ``window`` samples; the
    smoothed RTT and RTT variation follow RFC 6298 over every sample since the last reset. Every
    figure is ``None`` until the first sample.
    """

    def __init__(self, clock: Clock, window: int = DEFAULT_RTT_WINDOW) -> None:
        if window < 1:
            raise UsageError(f"window must be at least 1, got {window}")
        self._clock = clock
        self._samples: deque[float] = deque(maxlen=window)
        self.sample_count = 0
        self.srtt_ms: float | None = None
        self.rttvar_ms: float | None = None
        self.last_sample_ms: float | None = None
        self.last_sample_at_ms: float | None = None

    @property
    def samples(self) -> tuple[float, ...]:
        """The samples in the window, oldest first."""
        return tuple(self._samples)

    @property
    def window(self) -> int:
        return self._samples.maxlen or 0

    def add_sample(self, rtt_ms: float) -> None:
        """Record one round trip. Raises ``ValueError`` for a non-finite or non-positive sample."""
        check_finite("RTT sample", rtt_ms)
        if rtt_ms <= 0:
            raise UsageError(f"RTT sample must be positive, got {rtt_ms}")
        self._samples.append(rtt_ms)
        self.sample_count += 1
        self.last_sample_ms = rtt_ms
        self.last_sample_at_ms = self._clock()
        self.srtt_ms, self.rttvar_ms = rfc6298_update(self.srtt_ms, self.rttvar_ms, rtt_ms)

    def reset(self) -> None:
        self._samples.clear()
        self.sample_count = 0
        self.srtt_ms = self.rttvar_ms = self.last_sample_ms = self.last_sample_at_ms = None

    @property
    def average_ms(self) -> float | None:
        return sum(self._samples) / len(self._samples) if self._samples else None

    @property
    def one_way_ms(self) -> float | None:
        """Half the window average: the usual estimate when the two directions are alike."""
        average = self.average_ms
        return None if average is None else average / 2

    @property
    def min_ms(self) -> float | None:
        return min(self._samples) if self._samples else None

    @property
    def max_ms(self) -> float | None:
        return max(self._samples) if self._samples else None

    @property
    def jitter_ms(self) -> float | None:
        """Mean absolute difference between consecutive samples in the window (RFC 3550's idea)."""
        if len(self._samples) < 2:
            return None if not self._samples else 0.0
        samples = list(self._samples)
        return sum(abs(b - a) for a, b in itertools.pairwise(samples)) / (len(samples) - 1)

    def percentile_ms(self, fraction: float) -> float | None:
        if not 0 < fraction <= 1:
            raise UsageError(f"fraction must be in (0, 1], got {fraction}")
        return nearest_rank(self._samples, fraction) if self._samples else None

    @property
    def p50_ms(self) -> float | None:
        return self.percentile_ms(0.50)

    @property
    def p95_ms(self) -> float | None:
        return self.percentile_ms(0.95)

    def snapshot(self) -> dict[str, float | int | None]:
        """Every figure as a plain dict, for stats and telemetry."""
        return {
            "rtt_samples": self.sample_count,
            "rtt_last_ms": self.last_sample_ms,
            "rtt_avg_ms": self.average_ms,
            "rtt_min_ms": self.min_ms,
            "rtt_max_ms": self.max_ms,
            "rtt_p50_ms": self.p50_ms,
            "rtt_p95_ms": self.p95_ms,
            "rtt_jitter_ms": self.jitter_ms,
            "srtt_ms": self.srtt_ms,
            "rttvar_ms": self.rttvar_ms,
            "one_way_ms": self.one_way_ms,
        }
