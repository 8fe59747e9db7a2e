"""The error a determinism check raises."""

from __future__ import annotations

__all__ = ["DesyncError"]


class DesyncError(AssertionError):
    """A re-simulated frame's checksum differs from the first simulation's: the game is not
    deterministic (state outside ``save_state``, a float that depends on the path taken, an
    unseeded random number, a ``load_state`` that does not restore everything).

    ``frame`` is the first frame found different, ``expected`` the checksum first computed for
    it, ``actual`` the one computed again.
    """

    def __init__(self, frame: int, expected: bytes, actual: bytes, what: str = "") -> None:
        self.frame = frame
        self.expected = expected
        self.actual = actual
        detail = f" ({what})" if what else ""
        super().__init__(
            f"frame {frame} is not deterministic{detail}: checksum {expected.hex()} at first, "
            f"{actual.hex()} when simulated again"
        )
