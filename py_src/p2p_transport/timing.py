"""The injected dependencies every sans-IO class takes instead of reaching for globals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeAlias

__all__ = ["Clock", "Scheduler"]

#: Milliseconds from an arbitrary origin, never going backwards: ``performance.now`` in the browser,
#: ``time.monotonic() * 1000`` under CPython, a fake in tests.
Clock: TypeAlias = Callable[[], float]


class Scheduler(Protocol):
    """Starts and stops repeating timers: the JS shim's ``setInterval`` in the browser."""

    def set_interval(self, callback: Callable[[], None], interval_ms: float) -> object:
        """Call ``callback`` every ``interval_ms``; return a handle for :meth:`clear_interval`."""
        ...

    def clear_interval(self, handle: object) -> None: ...
