"""Rollback netcode for Python games of two to eight players on the transport.

::

    from p2p_transport.rollback import Game, RollbackSession, SyncTestSession, DesyncError

    rb = RollbackSession(game, session, input_delay=2, max_prediction=8, fps=60)
    ok = rb.advance_frame(local_action)   # each tick; False: waiting for the peer

    rb = RollbackSession(game, mesh.sessions)   # a room: {other player's index: session}

First prove the game deterministic with :class:`SyncTestSession` (no network); keep each
episode's record (:meth:`RollbackSession.telemetry`) and :func:`replay` it offline; a relay
server's input record (:func:`read_input_record`) replays the same way.
"""

from p2p_transport.rollback.env_game import EnvGame
from p2p_transport.rollback.errors import DesyncError, GameError, NotAGameError
from p2p_transport.rollback.game import Game
from p2p_transport.rollback.input_record import read_input_record
from p2p_transport.rollback.replay import replay, replay_episode
from p2p_transport.rollback.session import RollbackSession, RollbackState
from p2p_transport.rollback.snapshots import with_global_random
from p2p_transport.rollback.sync_test import SyncTestSession

__all__ = [
    "DesyncError",
    "EnvGame",
    "Game",
    "GameError",
    "NotAGameError",
    "RollbackSession",
    "RollbackState",
    "SyncTestSession",
    "read_input_record",
    "replay",
    "replay_episode",
    "with_global_random",
]
