"""Snapshots of what real environments keep outside themselves: the global random generators.

An env that draws from numpy's global generator (``np.random.rand``; cogrid's OvercookedV2
draws its recipes there) or from :mod:`random` keeps part of its state in the process, not in
itself: a rollback that restores the env alone leaves the generator where the mistaken
prediction left it, and the two peers draw different numbers from then on.
:func:`with_global_random` saves and restores the generators with the game's own state.
numpy is imported only when asked for, so the package itself depends on nothing.
"""

from __future__ import annotations

import importlib
import random as random_module
from typing import Any, cast

from p2p_transport.errors import UsageError
from p2p_transport.rollback.game import Game, check_game

__all__ = ["GlobalRandomGame", "with_global_random"]


class GlobalRandomGame:
    """``game`` whose snapshots also hold the global generators; everything else (``advance``,
    ``checksum``, the optional pieces of :class:`~p2p_transport.rollback.game.Game`) is the
    game's own. Each snapshot costs a copy of each generator's state: numpy's legacy generator
    is 624 32-bit words (2.5 kB), ``random``'s as many Python ints."""

    def __init__(self, game: Game, *, numpy: bool, random: bool) -> None:
        check_game(game)
        self.game = game
        self._numpy_random: Any = None
        if numpy:
            try:
                self._numpy_random = importlib.import_module("numpy").random
            except ImportError:
                raise UsageError("with_global_random(numpy=True) needs numpy installed") from None
        self._random = random

    def save_state(self) -> object:
        numpy_state = None if self._numpy_random is None else self._numpy_random.get_state()
        random_state = random_module.getstate() if self._random else None
        return (self.game.save_state(), numpy_state, random_state)

    def load_state(self, state: object) -> None:
        game_state, numpy_state, random_state = cast(tuple[object, Any, Any], state)
        self.game.load_state(game_state)
        if numpy_state is not None:
            self._numpy_random.set_state(numpy_state)
        if random_state is not None:
            random_module.setstate(random_state)

    def advance(self, inputs: tuple[int, ...]) -> None:
        self.game.advance(inputs)

    def checksum(self) -> bytes:
        return self.game.checksum()

    def __getattr__(self, name: str) -> Any:
        # The game's optional pieces (idle_action, predict, resimulate, done, episode_params)
        # and its own attributes, as they are.
        return getattr(self.game, name)


def with_global_random(game: Game, *, numpy: bool = True, random: bool = True) -> GlobalRandomGame:
    """``game`` with numpy's global generator (``numpy=True``) and :mod:`random`'s
    (``random=True``) saved and restored along with its state."""
    return GlobalRandomGame(game, numpy=numpy, random=random)
