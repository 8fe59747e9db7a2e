"""A spectator's game: simulated from every player's inputs as the relay server passes them on,
behind the players, with no input of its own.

A tab joins the room with ``{room, spectator: true}`` (see
:data:`~p2p_transport.wire.signaling.JOIN_EVENT`); the server sends it every player's inputs and
episode ends as it learns them (``p2p_server.spectator_feed``), and everything the room had before
it joined, so the players send nothing more for it. Each packet it receives goes to
:meth:`SpectatorSession.on_packet`, whole, in the feed's envelope:

- ``[player] + input record (0x30)``: the player index, then
  :func:`~p2p_transport.wire.codec.encode_input_record` of that player's inputs, frames on the
  wire (never restarting across episodes), strictly increasing within the packet;
- ``[player] + episode end (0x05)``: the player index, then
  :func:`~p2p_transport.wire.codec.encode_v1_episode_end` of the episode and its last frame,
  counted from the episode's own frame 0, as the rollback layer's episode-end message counts it.

Packets may come in any order, and repeated: the spectator keeps the first action of each
(player, frame), as the server's record does. What it cannot read is counted and dropped.

The game loop calls :meth:`SpectatorSession.advance` once a tick. It simulates the next frame
once every player's input for it is here, numbering the frames of each episode from the
episode's own frame 0 as the players' rollback layer does, and splitting the wire frames into
episodes by the players' episode ends as the server's input record is read
(:class:`~p2p_transport.rollback.input_record.RoomInputs`). An episode ends where the players'
ends it: the game's ``done()``, ``episode_frames``, or the earliest last frame a player sent
(whichever comes first); pass the players' ``episode_frames``. Then, as with
:class:`~p2p_transport.rollback.session.RollbackSession`, the page resets the game and calls
:meth:`SpectatorSession.start_next_episode`; the next episode starts once every player's end is
known (its first wire frame depends on all of them).

A spectator more than :data:`CATCH_UP_BEHIND_FRAMES` behind the newest frame it could simulate
(one that joined late, or whose tab was in the background) simulates several frames a tick, at
most ``max_frames_per_tick``, until it is that close again.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from p2p_transport._checks import check_finite, check_int
from p2p_transport.errors import InvalidStateError, UsageError
from p2p_transport.rollback.errors import GameError
from p2p_transport.rollback.game import Game, check_game, episode_params, game_over
from p2p_transport.rollback.input_record import RoomInputs
from p2p_transport.rollback.session import _digest
from p2p_transport.wire.codec import (
    INPUT_RECORD_TYPE,
    DecodeError,
    byte_view,
    decode,
    decode_input_record,
)
from p2p_transport.wire.messages import EpisodeEnd
from p2p_transport.wire.signaling import MAX_PLAYERS, MIN_PLAYERS

__all__ = [
    "CATCH_UP_BEHIND_FRAMES",
    "MAX_FRAMES_PER_TICK",
    "FeedPacket",
    "SpectatorSession",
    "read_feed_packet",
]

logger = logging.getLogger(__name__)

#: Up to this many frames behind, a spectator simulates one frame a tick, as the players do: the
#: players' ticks and the relay's delivery wander by a frame or two, and speeding up for that
#: would make the game it shows jerk.
CATCH_UP_BEHIND_FRAMES: Final = 4
#: Frames a catching-up spectator simulates in one tick at most: 8 frames of a game that costs
#: 1 ms a frame in Pyodide take half of a 60 Hz tick, so the page still draws every tick; it
#: gains 7 frames a tick on the players, so 5 s behind (300 frames) takes under a second.
MAX_FRAMES_PER_TICK: Final = 8


@dataclass(frozen=True, slots=True)
class FeedPacket:
    """One packet of the spectator feed, read: the player it is about, and either that player's
    inputs (``(wire frame, action)``) or one of its episode ends (``(episode, last frame)``)."""

    player: int
    inputs: tuple[tuple[int, int], ...] = ()
    end: tuple[int, int] | None = None


def read_feed_packet(data: bytes, players: int) -> FeedPacket:
    """A packet of the spectator feed of a room of ``players`` (see the module's docstring);
    :class:`~p2p_transport.wire.codec.DecodeError` if it is not one."""
    view = byte_view(data)
    if len(view) < 2:
        raise DecodeError(f"a packet of {len(view)} bytes has no message")
    player, body = view[0], view[1:]
    if player >= players:
        raise DecodeError(f"player {player} in a room of {players}")
    if body[0] == INPUT_RECORD_TYPE:
        record = decode_input_record(body)
        if record.player_index != player:
            raise DecodeError(
                f"the envelope names player {player}, the record {record.player_index}"
            )
        return FeedPacket(player, record.inputs)
    message = decode(body)
    if not isinstance(message, EpisodeEnd):
        raise DecodeError(f"a {type(message).__name__} is not for a spectator")
    return FeedPacket(player, end=(message.episode, message.frame))


class SpectatorSession:
    """``game`` watched in a room of ``players`` (2 to 8): fed with :meth:`on_packet`, advanced
    with :meth:`advance` once a tick.

    ``fps`` is the players' frame rate (the page ticks every :attr:`frame_ms`);
    ``episode_frames`` ends every episode after that many frames, as the players'
    ``RollbackSession(episode_frames=...)`` does; ``max_frames_per_tick`` bounds what one tick
    simulates while catching up.

    ``episodes`` has one record per finished episode, as the players' rollback layer keeps them:
    ``episode``, ``params`` (a game that declares ``episode_params()``), ``frames``,
    ``final_checksum`` (hex, the digest the players' records hold) and ``inputs``
    (``[player 0, ..., player N-1]`` per frame).

    If the game's own code raises, the spectator stops there: :attr:`game_error` says where
    (a :class:`~p2p_transport.rollback.errors.GameError`), and nothing advances any more.
    """

    def __init__(
        self,
        game: Game,
        players: int,
        *,
        fps: float = 60.0,
        episode_frames: int | None = None,
        max_frames_per_tick: int = MAX_FRAMES_PER_TICK,
    ) -> None:
        check_game(game)
        check_int("players", players, MAX_PLAYERS, minimum=MIN_PLAYERS)
        check_finite("fps", fps)
        if not fps > 0:
            raise UsageError(f"fps must be positive, got {fps}")
        if episode_frames is not None:
            check_int("episode_frames", episode_frames, minimum=1)
        check_int("max_frames_per_tick", max_frames_per_tick, minimum=1)
        self.game = game
        self.players = players
        self.fps = float(fps)
        self.episode_frames = episode_frames
        self.max_frames_per_tick = max_frames_per_tick
        self._room = RoomInputs(players)
        self.episode = 0
        #: One record per finished episode (see the class docstring).
        self.episodes: list[dict[str, Any]] = []
        #: The game's exception that stopped the spectator (``None`` while it runs).
        self.game_error: GameError | None = None
        self._base = 0  # the wire frame of this episode's frame 0
        self._current = 0  # the next frame of this episode to simulate
        # The first wire frame some player's input is missing for.
        self._complete = 0
        # Inputs of wire frames below it are played, or lie before the episode under way: stale.
        self._floor = 0
        self._ended_at: int | None = None  # this episode's last frame, once simulated
        self._waiting = False  # start_next_episode was called: waiting for the players' ends
        self._inputs: list[list[int]] = []
        self._params = episode_params(game)
        self._next_params: dict[str, Any] | None = None
        self._counts: Counter[str] = Counter()
        self._most_in_a_tick = 0

    # --- what the page calls ------------------------------------------------------------------

    @property
    def frame_ms(self) -> float:
        """The game loop's tick in milliseconds."""
        return 1000.0 / self.fps

    @property
    def current_frame(self) -> int:
        """The next frame of the episode to simulate (frames simulated so far in it)."""
        return self._current

    @property
    def episode_over(self) -> bool:
        """The episode's last frame is simulated: reset the game, then call
        :meth:`start_next_episode`."""
        return self._ended_at is not None and not self._waiting

    @property
    def waiting(self) -> bool:
        """:meth:`start_next_episode` was called and the next episode waits for the players'
        episode ends (every one is needed to know where it starts)."""
        return self._waiting

    @property
    def frames_behind(self) -> int:
        """Frames of the episode under way whose inputs are all here and that are not simulated
        yet (0 once its last frame is simulated)."""
        if self._ended_at is not None or self.game_error is not None:
            return 0
        known = self._complete - self._base
        limit = self._room.limit(self.episode)
        if limit is not None:
            known = min(known, limit)
        return max(0, known - self._current)

    def on_packet(self, data: bytes) -> None:
        """A packet from the server's spectator feed, with its envelope (see the module's
        docstring). Never raises: what it cannot read is counted (``malformed_packets``)."""
        self._counts["packets"] += 1
        try:
            packet = read_feed_packet(data, self.players)
        except DecodeError as error:
            self._counts["malformed_packets"] += 1
            logger.debug("spectator packet dropped: %s", error)
            return
        if packet.end is None:
            self._take_inputs(packet.player, packet.inputs)
        else:
            self._take_end(packet.player, *packet.end)

    def advance(self) -> int:
        """Simulate this tick's frames: the next one if its inputs are here, or several while
        more than :data:`CATCH_UP_BEHIND_FRAMES` behind (at most ``max_frames_per_tick``, and
        never past the episode's end). Returns how many it simulated."""
        if self._waiting:
            self._try_start()
        behind = self.frames_behind
        if self._waiting or behind == 0:
            self._counts["idle_ticks"] += 1
            return 0
        if behind > CATCH_UP_BEHIND_FRAMES:
            count = min(self.max_frames_per_tick, behind - CATCH_UP_BEHIND_FRAMES)
            self._counts["catch_up_ticks"] += 1
        else:
            count = 1
        done = 0
        while done < count and self._ended_at is None and self._simulate():
            done += 1
        self._most_in_a_tick = max(self._most_in_a_tick, done)
        return done

    def start_next_episode(self) -> None:
        """Start the next episode once every player's end of this one is known: call it after
        resetting the game (as the players do). Until then :meth:`advance` simulates nothing."""
        if self.game_error is not None:
            raise InvalidStateError(f"the spectator stopped: {self.game_error}")
        if self._waiting:
            raise InvalidStateError(f"episode {self.episode + 1} already waits for the players")
        if self._ended_at is None:
            raise InvalidStateError(f"episode {self.episode} is not over yet (see episode_over)")
        self._next_params = episode_params(self.game)
        self._waiting = True
        self._try_start()

    def stats(self) -> dict[str, Any]:
        """Counters and figures as a plain, JSON-serialisable dict; reading changes nothing."""
        counts = self._counts
        return {
            "players": self.players,
            "episode": self.episode,
            "frame": self._current,
            "frames_behind": self.frames_behind,
            "episode_over": self.episode_over,
            "waiting": self._waiting,
            "frames_simulated": counts["frames_simulated"],
            "catch_up_ticks": counts["catch_up_ticks"],
            "idle_ticks": counts["idle_ticks"],
            "most_frames_in_a_tick": self._most_in_a_tick,
            "packets": counts["packets"],
            "inputs_received": counts["inputs_received"],
            "duplicate_inputs": counts["duplicate_inputs"],
            "stale_inputs": counts["stale_inputs"],
            "ends_received": counts["ends_received"],
            "duplicate_ends": counts["duplicate_ends"],
            "stale_ends": counts["stale_ends"],
            "malformed_packets": counts["malformed_packets"],
            "episode_end_mismatches": counts["episode_end_mismatches"],
            "episodes_finished": len(self.episodes),
            "game_error": None if self.game_error is None else self.game_error.reason,
        }

    # --- what the feed brings -----------------------------------------------------------------

    def _take_inputs(self, player: int, inputs: tuple[tuple[int, int], ...]) -> None:
        counts, room, floor = self._counts, self._room, self._floor
        for frame, action in inputs:
            if frame < floor:
                counts["stale_inputs"] += 1
            elif room.add_input(player, frame, action):
                counts["inputs_received"] += 1
            else:
                counts["duplicate_inputs"] += 1
        self._find_complete()

    def _take_end(self, player: int, episode: int, last_frame: int) -> None:
        if episode < self.episode:
            self._counts["stale_ends"] += 1
        elif self._room.add_end(player, episode, last_frame):
            self._counts["ends_received"] += 1
        else:
            self._counts["duplicate_ends"] += 1

    def _find_complete(self) -> None:
        """Move :attr:`_complete` past the frames whose inputs have all arrived."""
        room, frame = self._room, self._complete
        while room.complete(frame):
            frame += 1
        self._complete = frame

    # --- the frame ----------------------------------------------------------------------------

    def _simulate(self) -> bool:
        """Simulate the next frame (its inputs are here); ``False`` if the game raised."""
        frame = self._current
        wire = self._base + frame
        row = self._room.take_row(wire)
        assert row is not None, "frames_behind counts only frames whose inputs are here"
        game = self.game
        checksum: str | None = None
        phase = "advance"
        try:
            game.advance(tuple(row))
            phase = "done"
            if (
                game_over(game)
                or frame + 1 == self.episode_frames
                or frame + 1 == self._room.limit(self.episode)
            ):
                phase = "checksum"
                checksum = _digest(game.checksum()).hex()
        except Exception as error:
            self.game_error = GameError(phase, self.episode, frame, False, error)
            self._counts["game_errors"] += 1
            logger.warning("the spectator stops: %s", self.game_error)
            return False
        self._inputs.append(row)
        self._current = frame + 1
        self._floor = wire + 1
        self._counts["frames_simulated"] += 1
        if checksum is not None:
            self._ended_at = frame
            self.episodes.append(
                {
                    "episode": self.episode,
                    **({} if self._params is None else {"params": self._params}),
                    "frames": frame + 1,
                    "final_checksum": checksum,
                    "inputs": self._inputs,
                }
            )
        return True

    def _try_start(self) -> None:
        """Start the next episode if every player's end of this one is known."""
        episode, ended_at = self.episode, self._ended_at
        assert ended_at is not None
        following = self._room.next_base(episode, self._base)
        if following is None:
            return
        marks = self._room.ends.pop(episode)
        if any(last != ended_at for last in marks.values()):
            self._counts["episode_end_mismatches"] += 1
            logger.warning(
                "episode %d ended at frame %d here, at %s for the players",
                episode,
                ended_at,
                sorted(marks.values()),
            )
        # The frames between this episode's end and the next one's start: no episode plays them.
        self._room.discard(range(self._floor, following))
        self._base = self._floor = following
        self._complete = max(self._complete, following)
        self._find_complete()
        self.episode = episode + 1
        self._current = 0
        self._ended_at = None
        self._waiting = False
        self._inputs = []
        self._params = self._next_params
