"""The rollback layer's errors: a game that is not deterministic, an object that is not a game,
a game whose own code raised."""

from __future__ import annotations

from p2p_transport.errors import UsageError

__all__ = ["DesyncError", "GameError", "NotAGameError"]


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


class GameError(UsageError, RuntimeError):
    """The game's own code raised while the rollback layer ran it; the game's exception is
    ``__cause__``. A :class:`~p2p_transport.errors.UsageError`, as :class:`DesyncError` is: the
    fault is in the game, the designer's code; also a ``RuntimeError``.

    ``phase`` is the game's method that raised (``save_state``, ``load_state``, ``advance``,
    ``resimulate``, ``predict``, ``done``, ``checksum``), ``episode`` and ``frame`` the frame the
    layer was simulating (or loading the state before), ``resimulating`` whether that was a
    re-simulation during a rollback. The layer hands it to the session's ``on_game_error``; it
    is never raised out of ``advance_frame``.
    """

    def __init__(
        self, phase: str, episode: int, frame: int, resimulating: bool, cause: BaseException
    ) -> None:
        self.phase = phase
        self.episode = episode
        self.frame = frame
        self.resimulating = resimulating
        self.cause = cause
        during = "re-simulating" if resimulating else "simulating"
        super().__init__(
            f"the game's {phase} raised while {during} frame {frame} of episode {episode}: "
            f"{type(cause).__name__}: {cause}"
        )

    @property
    def reason(self) -> str:
        """What the record keeps: the game's exception, type and message."""
        return f"{self.phase}: {type(self.cause).__name__}: {self.cause}"
