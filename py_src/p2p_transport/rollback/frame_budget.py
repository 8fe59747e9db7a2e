"""The frame budget: what the game's steps cost, which frames overran, and the input delay that
keeps a rollback inside one frame.

A rollback of depth ``d`` simulates ``d`` frames again, then the new one, all in one tick. A
numpy grid world whose step costs milliseconds (cogrid: 2.5 ms in CPython, more in Pyodide) can
afford only a few of them in a 16.7 ms frame. The depth a side suffers is how late the peer's
inputs come (half a round trip, plus a frame when a packet is lost and the next one carries
the input again) less the *peer's* input delay. So each side works out the delay the peer must
use for its own rollbacks to fit, and both sides use the larger of the two figures.
"""

from __future__ import annotations

import math
from typing import Any, Final

__all__ = ["FrameBudget"]

#: The share of a frame the layer may fill with simulation: the rest is the page's (rendering,
#: the transport, the browser's own work).
BUDGET_SHARE: Final = 0.75
#: One lost packet delays an input by one frame (the next packet carries it again): covered.
LOSS_MARGIN_FRAMES: Final = 1
#: Each step cost is a moving average with this weight for the newest step: about the last 50
#: steps, so a slow spell (a garbage collection) moves it little and a slower machine moves it
#: within a second.
COST_WEIGHT: Final = 0.02


class FrameBudget:
    """Step costs (moving averages, ms), and each frame's CPU time against the frame period."""

    def __init__(self, fps: float) -> None:
        self.frame_ms = 1000.0 / fps
        self.advance_ms: float | None = None
        self.resimulate_ms: float | None = None
        self._frames = 0
        self._total_ms = 0.0
        self._max_ms = 0.0
        self._overruns = 0

    def step_took(self, ms: float, *, resimulating: bool) -> None:
        if resimulating:
            self.resimulate_ms = _moving(self.resimulate_ms, ms)
        else:
            self.advance_ms = _moving(self.advance_ms, ms)

    def frame_took(self, ms: float) -> None:
        """One ``advance_frame`` call took ``ms`` of CPU; past a frame period it overran."""
        self._frames += 1
        self._total_ms += ms
        self._max_ms = max(self._max_ms, ms)
        if ms > self.frame_ms:
            self._overruns += 1

    def wanted_delay(self, rtt_ms: float, low: int, high: int) -> int:
        """The input delay in ``low..high`` the peer must use so that this side's rollbacks,
        and the new frame, fit in :data:`BUDGET_SHARE` of a frame."""
        advance = self.advance_ms
        if advance is None:
            return low
        late = math.ceil(rtt_ms / 2 / self.frame_ms) + LOSS_MARGIN_FRAMES
        again = self.resimulate_ms or advance
        spare = BUDGET_SHARE * self.frame_ms - advance
        depth = max(0, math.floor(spare / again)) if again > 0 else late
        return max(low, min(high, late - depth))

    def stats(self) -> dict[str, Any]:
        return {
            "advance_ms": None if self.advance_ms is None else round(self.advance_ms, 4),
            "resimulate_ms": None if self.resimulate_ms is None else round(self.resimulate_ms, 4),
            "frame_cpu_ms_mean": round(self._total_ms / self._frames, 4) if self._frames else 0.0,
            "frame_cpu_ms_max": round(self._max_ms, 4),
            "overrun_frames": self._overruns,
        }


def _moving(average: float | None, sample: float) -> float:
    return sample if average is None else average + COST_WEIGHT * (sample - average)
