"""Re-simulating a finished episode from its record, offline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from p2p_transport.rollback.game import Game, check_game

__all__ = ["replay", "replay_episode"]


def replay(game: Game, inputs: Iterable[Sequence[int]]) -> bytes:
    """Advance ``game`` (fresh, as the episode started) through ``inputs`` (one ``[player 0,
    player 1, ...]`` per frame, as an episode record of :meth:`RollbackSession.telemetry` keeps
    them) and return its final checksum: the one every player ended the episode on, if the game
    is deterministic."""
    check_game(game)
    for frame_inputs in inputs:
        game.advance(tuple(frame_inputs))
    return game.checksum()


def replay_episode(make_game: Callable[..., Game], record: Mapping[str, Any]) -> bytes:
    """:func:`replay` an episode record on ``make_game(**record["params"])``: a game that
    declares ``episode_params()`` (a reset seed, say) is rebuilt from the record alone.
    ``make_game()`` for a record without parameters."""
    return replay(make_game(**record.get("params", {})), record["inputs"])
