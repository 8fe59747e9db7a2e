"""The rollback layer's errors: a game that is not deterministic, an object that is not a game."""

from __future__ import annotations

from p2p_transport.errors import UsageError

__all__ = ["DesyncError", "NotAGameError"]


class DesyncError(UsageError, AssertionError):
    """A re-simulated frame's checksum differs from the first simulation's: the game is not
    deterministic (state outside ``save_state``, a float that depends on the path taken, an
    unseeded random number, a ``load_state`` that does not restore everything).

    A :class:`~p2p_transport.errors.UsageError`: only
    :class:`~p2p_transport.rollback.sync_test.SyncTestSession` raises it, with no network
    involved, so the fault is the game's own code. Two peers whose states diverge
    online are reported as a :class:`~p2p_transport.protocol.desync.Desync` (``on_desync``),
    never raised. Also an ``AssertionError``, as it was.

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


class NotAGameError(UsageError, TypeError):
    """The object given as the game lacks methods of :class:`~p2p_transport.rollback.game.Game`.
    Also a ``TypeError``, as it was: the object is of the wrong type."""
