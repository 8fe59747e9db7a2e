"""The last few saved game states, one per frame, in a fixed-size ring."""

from __future__ import annotations

from p2p_transport.errors import UsageError

__all__ = ["StateRing"]


class StateRing:
    """The state saved before each of the last ``size`` frames.

    Rolling back to frame F loads the state saved before F; a rollback never goes further back
    than the prediction window, so a ring a little larger than it holds every state it needs.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise UsageError(f"size must be at least 1, got {size}")
        self._frames: list[int] = [-1] * size
        self._states: list[object] = [None] * size

    def save(self, frame: int, state: object) -> None:
        slot = frame % len(self._frames)
        self._frames[slot] = frame
        self._states[slot] = state

    def load(self, frame: int) -> object:
        """The state saved before ``frame``; ``LookupError`` if it was never saved or is gone."""
        slot = frame % len(self._frames)
        if self._frames[slot] != frame:
            raise LookupError(
                f"no saved state for frame {frame} (the ring keeps {len(self._frames)})"
            )
        return self._states[slot]

    def clear(self) -> None:
        size = len(self._frames)
        self._frames = [-1] * size
        self._states = [None] * size
