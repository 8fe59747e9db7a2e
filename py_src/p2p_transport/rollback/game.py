"""What the rollback layer needs of a game: four methods, and optionally a fifth.

A game is deterministic: the same state and the same inputs give the same next state, on every
machine. That is what lets two browsers simulate the same game from each other's inputs alone,
and what :class:`~p2p_transport.rollback.sync_test.SyncTestSession` checks before a study.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from p2p_transport.rollback.errors import NotAGameError

__all__ = ["Game", "check_game", "game_over"]

#: The methods every game has; ``done`` is optional (see :class:`Game`).
_REQUIRED = ("save_state", "load_state", "advance", "checksum")


@runtime_checkable
class Game(Protocol):
    """Anything with these four methods is a game.

    ``save_state`` returns a snapshot that ``load_state`` restores exactly, and that later
    ``advance`` calls do not change (return immutable values or copies). ``advance`` simulates one
    frame: ``inputs[i]`` is player ``i``'s action (0..255). ``checksum`` digests the current state
    (any length; at most 32 bytes travel as they are, longer ones are hashed first).

    A game may also define ``done() -> bool``: true after the frame that ends an episode (a goal
    scored, a time limit). The rollback layer then ends the episode at the first confirmed frame
    after which it is true.
    """

    def save_state(self) -> object: ...

    def load_state(self, state: object) -> None: ...

    def advance(self, inputs: tuple[int, ...]) -> None: ...

    def checksum(self) -> bytes: ...


def check_game(game: object) -> None:
    """Raise :class:`~p2p_transport.rollback.errors.NotAGameError` (a ``TypeError``) naming what
    ``game`` lacks of :class:`Game`."""
    missing = [name for name in _REQUIRED if not callable(getattr(game, name, None))]
    if missing:
        raise NotAGameError(
            f"{type(game).__name__} is not a Game: it has no {', '.join(missing)} method "
            "(a Game has save_state, load_state, advance and checksum)"
        )


def game_over(game: object) -> bool:
    """Whether ``game`` says its episode is over (``False`` if it has no ``done`` method)."""
    done = getattr(game, "done", None)
    return bool(done()) if callable(done) else False
