"""SyncTest: prove a game deterministic before it goes online, with no network at all.

Every frame, after simulating it, the session rolls back ``check_distance`` frames and simulates
them again with the same inputs, comparing each frame's checksum with the first simulation's.
A game that keeps state outside ``save_state``, whose ``load_state`` misses something, or whose
``advance`` depends on anything but the state and the inputs, fails within a few frames, at the
frame where it first differs. GGPO and GGRS offer the same check under the same name.
"""

from __future__ import annotations

from collections.abc import Sequence

from p2p_transport._checks import check_int
from p2p_transport.errors import UsageError
from p2p_transport.rollback.errors import DesyncError
from p2p_transport.rollback.game import Game, as_action, check_game, resimulate
from p2p_transport.rollback.state_ring import StateRing

__all__ = ["SyncTestSession"]


class SyncTestSession:
    """Runs ``game`` locally with every player's inputs given, re-simulating as it goes."""

    def __init__(self, game: Game, num_players: int = 2, check_distance: int = 2) -> None:
        check_game(game)
        check_int("num_players", num_players, minimum=1)
        check_int("check_distance", check_distance, minimum=1)
        self.game = game
        self.num_players = num_players
        self.check_distance = check_distance
        self.current_frame = 0
        #: Frames simulated again, and compared, so far.
        self.frames_checked = 0
        self._ring = StateRing(check_distance + 1)
        # Frame -> its inputs and first checksum, for the frames a check can still reach.
        self._inputs: dict[int, tuple[int, ...]] = {}
        self._checksums: dict[int, bytes] = {}

    def advance_frame(self, inputs: Sequence[int]) -> None:
        """Simulate one frame with ``inputs`` (one action per player, any integer type), then
        check the last ``check_distance`` frames, simulated again by the game's ``resimulate``
        if it has one; raises :class:`DesyncError` at the first difference."""
        frame_inputs = tuple(inputs)
        if len(frame_inputs) != self.num_players:
            raise UsageError(
                f"inputs must have one action per player ({self.num_players}), got {frame_inputs}"
            )
        frame_inputs = tuple(as_action("action", action) for action in frame_inputs)
        game = self.game
        frame = self.current_frame
        self._ring.save(frame, game.save_state())
        game.advance(frame_inputs)
        self._inputs[frame] = frame_inputs
        self._checksums[frame] = bytes(game.checksum())
        self.current_frame = frame + 1
        start = self.current_frame - self.check_distance
        if start < 0:
            return
        game.load_state(self._ring.load(start))
        if start > 0:
            self._compare(start - 1, "the state load_state restored")
        for again in range(start, self.current_frame):
            resimulate(game, self._inputs[again])
            self._compare(again, "simulated again from the saved state")
            self.frames_checked += 1
        # Only the window (and the frame before it) is ever looked at again.
        self._inputs.pop(start - 1, None)
        self._checksums.pop(start - 2, None)

    def _compare(self, frame: int, what: str) -> None:
        expected = self._checksums[frame]
        actual = bytes(self.game.checksum())
        if actual != expected:
            raise DesyncError(frame, expected, actual, what)
