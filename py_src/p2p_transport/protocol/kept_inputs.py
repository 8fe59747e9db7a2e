"""One player's inputs kept until the game knows where they go: a page that came back keeps
the other's until the game under way is loaded, a side cut off keeps what arrives during a long
drop (:mod:`p2p_transport.rollback.resume`), a JavaScript page keeps them until its game is
handed over (:mod:`.handoff`). Bounded, since a peer decides how many come."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["KeptInputs"]


class KeptInputs:
    """Frame -> action, at most ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._actions: dict[int, int] = {}

    def keep(self, frame: int, action: int) -> bool:
        """Keep ``action`` for ``frame`` (replacing one kept for it); ``False`` when full: the
        caller counts what it lost."""
        if len(self._actions) >= self._limit:
            return False
        self._actions[frame] = action
        return True

    def __bool__(self) -> bool:
        return bool(self._actions)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """``(frame, action)`` in frame order."""
        return iter(sorted(self._actions.items()))

    @property
    def newest(self) -> int:
        """The highest frame kept (-1: none)."""
        return max(self._actions, default=-1)

    def clear(self) -> None:
        self._actions.clear()

    def take(self) -> list[tuple[int, int]]:
        """``(frame, action)`` in frame order, forgetting them."""
        taken = list(self)
        self._actions.clear()
        return taken
