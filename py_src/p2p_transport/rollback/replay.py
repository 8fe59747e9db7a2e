"""Re-simulating a finished episode from its record, offline."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from p2p_transport.rollback.game import Game, check_game

__all__ = ["replay"]


def replay(game: Game, inputs: Iterable[Sequence[int]]) -> bytes:
    """Advance ``game`` (fresh, as the episode started) through ``inputs`` (one ``[player 0,
    player 1]`` per frame, as an episode record of :meth:`RollbackSession.telemetry` keeps them)
    and return its final checksum: the one both players ended the episode on, if the game is
    deterministic."""
    check_game(game)
    for frame_inputs in inputs:
        game.advance(tuple(frame_inputs))
    return game.checksum()
