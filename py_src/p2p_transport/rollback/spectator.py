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
  counted from the episode's own frame 0, as the rollback layer's episode-end message counts it;
- ``[reporter] + control message (0x22) of kind SEAT_LEFT``: in a room of more than two, the
  index of a player who reported that another left, then
  :func:`~p2p_transport.wire.codec.encode_control` (sequence 0) of its ``SEAT_LEFT`` payload
  (:mod:`p2p_transport.wire.control_payloads`): how far it holds the inputs of the player who
  left, and the last of them.

Packets may come in any order, and repeated: the spectator keeps the first action of each
(player, frame), and the first report of each (reporter, player who left), as the server's
record does. What it cannot read, and a report the players would not take (about a player the
room does not have, or about its sender, or in a room of two), is counted and dropped.

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

A player who leaves a room of more than two plays its idle action from the frame the players who
stay agree on (:mod:`.seats`), and the spectator plays it so, with the same reports: once one
report of its leaving is here, it simulates none of its frames past the furthest report so far,
and waits there until every player who stays has reported (it does not guess); then the player's
real inputs end at the furthest report (those the relay missed come from the reports), its idle
action follows, and its end of that episode and its inputs of later ones are not waited for. The
episode records say so as the players' do (``"left"``). A spectator that simulated a frame past
where the players agree before any report came (the relay carried the player's last input to
the server but to no player who stays, which a relay that delivers what it carries rules out)
counts it in ``left_mismatches``; its records then differ from the players'.

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
from p2p_transport.rollback.game import Game, check_game, episode_params, game_over, idle_action
from p2p_transport.rollback.input_record import RoomInputs, SeatReport, is_seat_report
from p2p_transport.rollback.session import _digest
from p2p_transport.wire.codec import (
    INPUT_RECORD_TYPE,
    DecodeError,
    byte_view,
    decode,
    decode_input_record,
)
from p2p_transport.wire.control_payloads import RollbackKind
from p2p_transport.wire.messages import ControlMessage, EpisodeEnd
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
    """One packet of the spectator feed, read: the player who sent it, and either that player's
    inputs (``(wire frame, action)``), one of its episode ends (``(episode, last frame)``) or its
    report that another player left."""

    player: int
    inputs: tuple[tuple[int, int], ...] = ()
    end: tuple[int, int] | None = None
    report: SeatReport | None = None


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
    if isinstance(message, EpisodeEnd):
        return FeedPacket(player, end=(message.episode, message.frame))
    if isinstance(message, ControlMessage) and message.kind == RollbackKind.SEAT_LEFT:
        report = SeatReport.decode(message.payload)
        if not is_seat_report(players, player, report.player):
            raise DecodeError(
                f"player {player}'s report that player {report.player} left, in a room of {players}"
            )
        return FeedPacket(player, report=report)
    raise DecodeError(f"a {type(message).__name__} is not for a spectator")


class SpectatorSession:
    """``game`` watched in a room of ``players`` (2 to 8): fed with :meth:`on_packet`, advanced
    with :meth:`advance` once a tick.

    ``fps`` is the players' frame rate (the page ticks every :attr:`frame_ms`);
    ``episode_frames`` ends every episode after that many frames, as the players'
    ``RollbackSession(episode_frames=...)`` does; ``max_frames_per_tick`` bounds what one tick
    simulates while catching up.

    ``episodes`` has one record per finished episode, as the players' rollback layer keeps them:
    ``episode``, ``params`` (a game that declares ``episode_params()``), ``frames``,
    ``final_checksum`` (hex, the digest the players' records hold), ``inputs``
    (``[player 0, ..., player N-1]`` per frame) and ``left`` when a player who left idled in any
    of its frames (``{"<player>": its last real frame}``, -1 for the whole episode).

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
        self._room = RoomInputs(players, idle_action(game))
        self.episode = 0
        #: One record per finished episode (see the class docstring).
        self.episodes: list[dict[str, Any]] = []
        #: The game's exception that stopped the spectator (``None`` while it runs).
        self.game_error: GameError | None = None
        self._base = 0  # the wire frame of this episode's frame 0
        self._current = 0  # the next frame of this episode to simulate
        # The first frame of this episode (from the current one on) some player's input is not
        # known for.
        self._known = 0
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
        known = self._known
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
        if packet.report is not None:
            self._take_report(packet.player, packet.report)
        elif packet.end is None:
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
            "reports_received": counts["reports_received"],
            "duplicate_reports": counts["duplicate_reports"],
            "malformed_packets": counts["malformed_packets"],
            "episode_end_mismatches": counts["episode_end_mismatches"],
            "left_mismatches": counts["left_mismatches"],
            "left": self._left_detail(),
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
        self._find_known()

    def _take_end(self, player: int, episode: int, last_frame: int) -> None:
        if episode < self.episode:
            self._counts["stale_ends"] += 1
        elif self._room.add_end(player, episode, last_frame):
            self._counts["ends_received"] += 1
        else:
            self._counts["duplicate_ends"] += 1

    def _take_report(self, reporter: int, report: SeatReport) -> None:
        room = self._room
        settled = set(room.agreed)
        if not room.add_report(reporter, report):
            self._counts["duplicate_reports"] += 1
            return
        self._counts["reports_received"] += 1
        for player in room.agreed - settled:
            self._check_simulated(player, room.furthest[player])
        # Frames past the reports so far wait for the rest; frames past the agreement idle.
        self._known = self._current
        self._find_known()

    def _check_simulated(self, player: int, agreed: tuple[int, int]) -> None:
        """``player`` plays its real inputs up to ``agreed`` (episode, frame), as the players
        agreed: count a frame past it simulated already (with its real input, before any report
        of its leaving came)."""
        left_in, last = agreed
        episode = self.episode
        if left_in > episode:
            return
        if left_in == episode:
            past = self._current > last + 1
        else:
            past = (
                self.episodes[left_in]["frames"] > last + 1
                or episode > left_in + 1
                or self._current > 0
            )
        if past:
            self._counts["left_mismatches"] += 1
            logger.warning(
                "player %d left after frame %d of episode %d, as the players agree; the "
                "spectator simulated past it before the reports came",
                player,
                last,
                left_in,
            )

    def _find_known(self) -> None:
        """Move :attr:`_known` past the frames of this episode whose inputs are all known."""
        if self._ended_at is not None:
            return  # the next episode's base is not known yet
        room, episode, base = self._room, self.episode, self._base
        frame = max(self._known, self._current)
        while room.ready(episode, base, frame):
            frame += 1
        self._known = frame

    def _left_detail(self) -> dict[str, str | list[int]]:
        """For stats: each player reported as left, ``"pending"`` while the reports come in,
        then ``[episode, frame]``: its last real input."""
        room = self._room
        return {
            str(player): "pending" if player not in room.agreed else list(room.furthest[player])
            for player in sorted(room.reports)
        }

    # --- the frame ----------------------------------------------------------------------------

    def _simulate(self) -> bool:
        """Simulate the next frame (its inputs are here); ``False`` if the game raised."""
        frame = self._current
        wire = self._base + frame
        row = self._room.take_row(self.episode, self._base, frame)
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
            left = self._room.left(self.episode, frame + 1)
            self.episodes.append(
                {
                    "episode": self.episode,
                    **({} if self._params is None else {"params": self._params}),
                    "frames": frame + 1,
                    "final_checksum": checksum,
                    "inputs": self._inputs,
                    **({"left": left} if left else {}),
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
        # The frames between this episode's end and the next one's start: no episode plays them.
        marks = self._room.finish(episode, range(self._floor, following))
        if any(last != ended_at for last in marks):
            self._counts["episode_end_mismatches"] += 1
            logger.warning(
                "episode %d ended at frame %d here, at %s for the players",
                episode,
                ended_at,
                sorted(marks),
            )
        self._base = self._floor = following
        self.episode = episode + 1
        self._current = self._known = 0
        self._ended_at = None
        self._waiting = False
        self._inputs = []
        self._params = self._next_params
        self._find_known()
