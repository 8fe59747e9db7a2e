"""What the rollback layer needs of a game: four methods, and a few optional pieces.

A game is deterministic: the same state and the same inputs give the same next state, on every
machine. That is what lets two browsers simulate the same game from each other's inputs alone,
and what :class:`~p2p_transport.rollback.sync_test.SyncTestSession` checks before a study.
"""

from __future__ import annotations

import operator
from typing import Any, Final, Protocol, runtime_checkable

from p2p_transport._checks import check_int
from p2p_transport.errors import UsageError
from p2p_transport.rollback.errors import NotAGameError
from p2p_transport.wire.codec import MAX_ACTION

__all__ = [
    "DEFAULT_ACTION",
    "Game",
    "as_action",
    "check_game",
    "episode_params",
    "game_over",
    "idle_action",
    "resimulate",
]

#: The action of a player nobody has an input from, for a game without ``idle_action``: before
#: the first input, and in the frames an input delay skips at the start.
DEFAULT_ACTION: Final = 0

#: The methods every game has; the rest of :class:`Game`'s pieces are optional.
_REQUIRED = ("save_state", "load_state", "advance", "checksum")


@runtime_checkable
class Game(Protocol):
    """Anything with these four methods is a game.

    ``save_state`` returns a snapshot that ``load_state`` restores exactly, and that later
    ``advance`` calls do not change (return immutable values or copies). ``advance`` simulates one
    frame: ``inputs[i]`` is player ``i``'s action (0..255). ``checksum`` digests the current state
    (any length; at most 32 bytes travel as they are, longer ones are hashed first).

    Optional pieces, each read where it is used, so a game defines only what it needs:

    - ``done() -> bool``: true after the frame that ends an episode (a goal scored, a time
      limit). The rollback layer then ends the episode at the first confirmed frame after which
      it is true.
    - ``idle_action``: an int attribute, what a player does while the layer has no input from it
      (before its first one, and in the first ``input_delay`` frames); 0 without it. An env whose
      action 0 moves (cogrid's 0 is ``move_up``) names its no-op here.
    - ``predict(player, frame, last_confirmed) -> int``: the action to assume for ``player`` at
      ``frame`` while its input has not arrived; ``last_confirmed`` is the player's newest
      confirmed action (``idle_action`` before any). Without it the layer predicts
      ``last_confirmed``: players hold keys. A game whose key presses last one frame predicts
      its idle action instead, and rolls back less.
    - ``resimulate(inputs)``: what the layer calls instead of ``advance`` for a frame it
      simulates again during a rollback (and SyncTest for its checks). Same state change as
      ``advance``; a game skips what nobody reads of a past frame (observations, rendering,
      sounds). The newest frame is always simulated by ``advance``.
    - ``episode_params() -> dict``: JSON-serialisable parameters the episode started from (a
      reset seed, a layout), read when each episode starts and kept in its record, so
      :func:`~p2p_transport.rollback.replay.replay_episode` rebuilds the game from the record.
    - ``on_desync(desync)``: told of the first confirmed frame whose state differs from the
      peer's (:class:`~p2p_transport.protocol.desync.Desync`).
    - ``encode_state(state) -> bytes`` and ``decode_state(data) -> state``: a snapshot as plain
      bytes and back, for ``repair_desync``'s state transfer.
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
    idle_action(game)  # a wrong idle action is the designer's mistake: say so at once


def as_action(name: str, value: object) -> int:
    """``value`` as a plain int action (0..255): any integer type is taken (numpy's ``int64``,
    what ``action_space.sample()`` returns, through ``__index__``), a bool or a float is not."""
    if isinstance(value, bool):
        raise UsageError(f"{name} must be an int, got bool")
    try:
        action = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise UsageError(f"{name} must be an int, got {type(value).__name__}") from None
    check_int(name, action, MAX_ACTION)
    return action


def idle_action(game: object) -> int:
    """The game's ``idle_action``, or :data:`DEFAULT_ACTION`."""
    return as_action("idle_action", getattr(game, "idle_action", DEFAULT_ACTION))


def game_over(game: object) -> bool:
    """Whether ``game`` says its episode is over (``False`` if it has no ``done`` method)."""
    done = getattr(game, "done", None)
    return bool(done()) if callable(done) else False


def resimulate(game: Game, inputs: tuple[int, ...]) -> None:
    """Simulate a frame again: the game's ``resimulate`` if it has one, else ``advance``."""
    again = getattr(game, "resimulate", None)
    if callable(again):
        again(inputs)
    else:
        game.advance(inputs)


def episode_params(game: object) -> dict[str, Any] | None:
    """The game's ``episode_params()``, or ``None`` if it declares none."""
    params = getattr(game, "episode_params", None)
    if not callable(params):
        return None
    value = params()
    if not isinstance(value, dict):
        raise UsageError(f"episode_params() must return a dict, got {type(value).__name__}")
    return dict(value)
