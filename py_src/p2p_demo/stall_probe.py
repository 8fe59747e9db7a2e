"""Stalling one tab's main thread while the other pings it, and reading back what the pinger
measured: the corrected RTT (peer's hold subtracted, timed in the ping channel's worker) beside
the naive one. Shared by the stall test and the stall benchmark; never imported in the browser.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from p2p_transport.protocol.rtt import nearest_rank

__all__ = [
    "HELD_MS",
    "STALL_MS",
    "STALL_TAB_OPTIONS",
    "TARGET_MS",
    "Sample",
    "StallRun",
    "describe",
    "stall_tab",
]

#: A long environment step, as the issue's test describes it.
STALL_MS: Final = 200
#: The issue's target: corrected RTTs during stalls stay within 5 ms of the unstalled median.
TARGET_MS: Final = 5.0
#: A pong whose hold (as the answering peer's worker measured it) is this long answered a ping the
#: peer held through a stall; a shorter hold is ordinary event-loop delay (a 60 Hz frame is
#: 16.7 ms, an idle page answers in well under 1 ms).
HELD_MS: Final = 10.0
#: Demo options for both tabs. Pings every 100 ms, so every 200 ms stall has pings arriving in
#: it; nothing through the server and no page UI, so the second core (the first busy-loops) runs
#: only what carries the pings. The samples are read from the telemetry, whose ring keeps 7200.
STALL_TAB_OPTIONS: Final[dict[str, Any]] = {
    "game": "scripted",
    "frames": 1,
    "ping_interval_ms": 100.0,
    "relay_inputs": False,
    "relay_pings": False,
    "ui": False,
}
#: Between stalls, so the pinger gets unstalled answers in between.
STALL_SPACING_MS: Final = 700
# Returns when the stall began and ended, as epoch milliseconds, comparable across tabs.
_BUSY_JS: Final = """(ms) => {
  const start = performance.now();
  while (performance.now() - start < ms) {}
  return [start, performance.now()].map((t) => performance.timeOrigin + t);
}"""
# The pinger's RTT samples as the experiment's record keeps them (times on the session's clock,
# the page's performance.now()), and that clock's origin, to place the stalls on it.
_SAMPLES_JS: Final = """() => [
  p2pShim.pyodide.runPython(
    'import js; js.p2pDemo.transport.telemetry()["rtt"]["p2p"]["rows"]'
  ).toJs(),
  performance.timeOrigin,
]"""


class Sample(NamedTuple):
    """One of the pinger's RTT samples (ms): when it handled the pong, the corrected RTT (timed
    in its worker, the peer's hold taken out), the naive one (handling minus sending) and the
    hold the pong carried (0 for a pong that carries none, which the correction takes as no hold
    too)."""

    at_ms: float
    rtt_ms: float
    naive_ms: float
    hold_ms: float

    @property
    def sent_ms(self) -> float:
        """When the pinger sent the ping."""
        return self.at_ms - self.naive_ms


@dataclass(frozen=True)
class StallRun:
    """What the pinging tab measured: ``unstalled`` RTTs (ms) before any stall, then ``timed``
    samples while another tab stalled ``stalls`` times (each ``(start_ms, end_ms)``; all times on
    the pinger's clock)."""

    unstalled: list[float]
    timed: list[Sample]
    stalls: list[tuple[float, float]]

    @property
    def unstalled_median(self) -> float:
        return statistics.median(self.unstalled)

    @property
    def corrected(self) -> list[float]:
        return [s.rtt_ms for s in self.timed]

    @property
    def held(self) -> list[Sample]:
        """The samples whose ping the answering tab held through a stall: told by the hold its
        pong carries, so neither the correction under test nor a clock across tabs is involved."""
        return [s for s in self.timed if s.hold_ms >= HELD_MS]

    def in_stalls(self, during: bool) -> list[tuple[float, float]]:
        """(corrected, naive) for the samples whose round trip (from sending the ping to
        handling the pong) overlapped a stall, or, with ``during=False``, overlapped none. The
        stalls' times come from the stalling tab's clock; tabs agree on them to well under the
        100 ms between pings."""
        return [
            (s.rtt_ms, s.naive_ms)
            for s in self.timed
            if during == any(start <= s.at_ms and s.sent_ms <= end for start, end in self.stalls)
        ]

    def rows(self) -> dict[str, dict[str, float]]:
        """Figures (:func:`describe`) for the unstalled samples, those between the stalls, and
        those during them, corrected and naive."""
        median = self.unstalled_median
        during = self.in_stalls(True)
        return {
            "unstalled": describe(self.unstalled, median),
            "between stalls": describe([c for c, _ in self.in_stalls(False)], median),
            "during, corrected": describe([c for c, _ in during], median),
            "during, naive": describe([n for _, n in during], median),
        }


def describe(samples: list[float], reference_ms: float) -> dict[str, float]:
    """Count, median, p95 and max of ``samples`` (ms), and the share of them less than
    :data:`TARGET_MS` above ``reference_ms`` (the unstalled median)."""
    ordered = sorted(samples)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "median_ms": statistics.median(ordered),
        "p95_ms": nearest_rank(ordered, 0.95),
        "max_ms": ordered[-1],
        "within_target": sum(x - reference_ms < TARGET_MS for x in ordered) / len(ordered),
    }


def stall_tab(pinger: Any, staller: Any, stalls: int) -> StallRun:
    """Busy-loop ``staller``'s main thread :data:`STALL_MS` at a time, ``stalls`` times, while
    ``pinger`` (a Playwright page of the demo, already pinging on the ping channel) pings.
    ``staller`` is the tab answering the pings, or, as a control, a bystander taking no part in
    them: a core is then as busy as in a stall, but no ping is held. Samples the pinger took
    before the call are the unstalled ones."""
    before, _ = pinger.evaluate(_SAMPLES_JS)
    windows = []
    for _ in range(stalls):
        windows.append(staller.evaluate(_BUSY_JS, STALL_MS))
        staller.wait_for_timeout(STALL_SPACING_MS)
    rows, origin = pinger.evaluate(_SAMPLES_JS)
    return StallRun(
        [row[1] for row in before],
        [Sample(at, rtt, naive, hold or 0.0) for at, rtt, naive, hold, _ in rows[len(before) :]],
        [(start - origin, end - origin) for start, end in windows],
    )
