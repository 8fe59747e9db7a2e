"""Rollback netcode on :class:`~p2p_transport.session.P2PSession` objects: the game runs every
frame on time, predicting the other players' inputs until they arrive, and re-simulates when a
prediction was wrong.

Two players play over one session. A room of N players (up to
:data:`~p2p_transport.wire.signaling.MAX_PLAYERS`) is a full mesh: each side holds one session per
other player, and the layer keeps a :class:`~.seats.Seat` for each (its inputs, its predictions,
the time sync on its link). A frame is confirmed once every player's input for it is known; the
local action, the control messages and the state hashes go to every other player, each over its
own session, so every pair of players compares its states.

Each call to :meth:`RollbackSession.advance_frame` does, in order:

1. in a room of more than two, notice the players who left (see below);
2. roll back if an input that arrived since contradicts what a simulated frame assumed: load
   the state saved before the earliest wrong frame and re-simulate up to the present;
3. send the state hashes of frames newly confirmed (every input known, simulated with them) and
   end the episode if its last frame is now confirmed;
4. measure the frame advantage on each link and, a few times a second, report it on that link;
5. wait (simulate nothing, return ``False``) at a frame a player whose page is hidden asked
   everyone to pause at, and stall if the next frame would be more than ``max_prediction``
   frames past the last confirmed input of the player furthest behind;
6. schedule the local action for ``current_frame + input_delay``, send it, and simulate one frame.

When the game's own code raises in any of these, the frame state stays as it was before the
frame (or the rollback) that failed, and ``on_game_error`` decides: go on (the frame or the
rollback is tried again on the next call), or end the session for every side, the reason in
every side's record.

With ``repair_desync``, a desync is repaired: the player with the lowest index sends its state
after its newest confirmed frame (in chunks over the reliable control path, with a digest) to
every other player once any of its links reports a desync; each receiver loads it once it has
confirmed that frame too, re-simulates its predicted frames on it, and all go on; each side's
record lists the transfer. Two players who differ both differ from the lowest index's state
(hashes of one frame are equal or not), so its links see every desync.

With ``delay_range``, the layer chooses the input delay itself (see :mod:`.frame_budget`): each
side works out the delay the others must use so that its own rollbacks fit in a frame (from its
slowest link), sends it to all, and all use the largest, changed only between frames.

In a room of more than two, a player who leaves plays its idle action from a frame the others
agree on (:mod:`.seats`), and the others go on. A seat has left when its session is shut down
(``P2PSession.close()``: the mesh closes the session with a player the server says left) or
when :meth:`RollbackSession.seat_left` says so. A DataChannel that closed is not a player who
left: the relay carries on and a reconnection may follow. A game of two waits for the other
player instead (:mod:`.resume`): a page that reloads, or a long drop, idles its seat or stalls
the game until it is back with the game under way, or until ``return_limit_ms``.

A player whose page is hidden (:meth:`RollbackSession.set_hidden`) idles its seat, pauses the
game, or stalls the others, as the game's ``hidden_policy`` says (:mod:`.visibility`).

Frame numbers on the wire never restart: episode ``n`` uses the transport frames from its base
on, and the next base lies past every frame any side can have sent in episode ``n``, but for the
idle actions a hidden side sends ahead: those past the base are the next episode's first ones, on
every side (this side keeps its own for that episode). An input from an old episode that arrives
late therefore never lands in a new one.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from functools import partial
from typing import Any, Final

from p2p_transport._checks import check_finite, check_int
from p2p_transport._guard import call_guarded
from p2p_transport.errors import InvalidStateError, P2PTransportError, UsageError
from p2p_transport.protocol.acked_sender import PENDING_LIMIT
from p2p_transport.protocol.chunks import ChunkAssembler, chunk_payloads
from p2p_transport.protocol.desync import Desync
from p2p_transport.rollback.absence import Absence
from p2p_transport.rollback.errors import GameError
from p2p_transport.rollback.frame_budget import FrameBudget
from p2p_transport.rollback.game import (
    Game,
    as_action,
    check_game,
    episode_params,
    game_over,
    idle_action,
    resimulate,
)
from p2p_transport.rollback.resume import (
    DEFAULT_RETURN_LIMIT_MS,
    LONG_DROP_MS,
    ResumePackage,
    earlier_records,
)
from p2p_transport.rollback.seats import Seat, forwarded_frames
from p2p_transport.rollback.state_ring import StateRing
from p2p_transport.rollback.time_sync import REPORT_INTERVAL_MS, TimeSync
from p2p_transport.rollback.visibility import (
    CATCH_UP_THRESHOLD,
    HIDDEN_GRACE_MS,
    HiddenPolicy,
    IdleRanges,
    Mark,
    idle_lead,
)
from p2p_transport.session.delivery import LayerHandlers
from p2p_transport.session.edge import SessionState
from p2p_transport.session.session import P2PSession
from p2p_transport.wire.codec import DecodeError
from p2p_transport.wire.control_payloads import (
    MAX_HASH_SIZE,
    RollbackKind,
    decode_episode_end_payload,
    decode_episode_ready_payload,
    decode_input_delay_payload,
    decode_rollback_end_payload,
    decode_seat_hidden_payload,
    decode_seat_left_payload,
    decode_time_sync_payload,
    encode_input_delay_payload,
    encode_rollback_end_payload,
    encode_seat_hidden_payload,
    encode_time_sync_payload,
)
from p2p_transport.wire.messages import ControlKind
from p2p_transport.wire.signaling import MAX_PLAYERS, MIN_PLAYERS, PLAYERS_PER_ROOM

__all__ = [
    "MAX_INPUT_DELAY",
    "MAX_PREDICTION",
    "RollbackSession",
    "RollbackState",
    "episode_span",
]

logger = logging.getLogger(__name__)

#: Half a second at 60 Hz: more input delay than that is not a game anyone can play. It also
#: bounds the frames an episode's inputs can run past its end (see the module docstring).
MAX_INPUT_DELAY: Final = 30
#: GGPO and GGRS default to 8 frames and allow a few more; 60 would re-simulate a second of game
#: per frame, which no game affords.
MAX_PREDICTION: Final = 60
#: GGPO's and GGRS's default prediction window: 133 ms at 60 Hz before a late input stalls.
DEFAULT_MAX_PREDICTION: Final = 8
#: The deployed peers' examples use 2-3 frames: at 60 Hz, 2 frames hide a 33 ms one-way trip.
DEFAULT_INPUT_DELAY: Final = 2
#: Every 10th confirmed frame is hashed and compared: 6 small control messages a second at 60 Hz,
#: and a desync is found within a sixth of a second of game time.
DEFAULT_CHECK_INTERVAL: Final = 10
#: A chosen input delay shrinks by one frame at most this often (see ``_choose_delay``).
DELAY_SHRINK_MS: Final = 2000.0
#: frames_ahead samples kept for telemetry: 5 a second (one per report) for 30 minutes.
MAX_FRAMES_AHEAD_SAMPLES: Final = 9000
#: The control messages this layer consumes; the session hands the rest to the game's callbacks.
_OWN_KINDS: Final = frozenset(
    (
        ControlKind.EPISODE_END,
        ControlKind.EPISODE_READY,
        ControlKind.TIME_SYNC,
        RollbackKind.ROLLBACK_END,
        RollbackKind.INPUT_DELAY,
        RollbackKind.STATE_CHUNK,
        RollbackKind.SEAT_LEFT,
        RollbackKind.SEAT_HIDDEN,
        RollbackKind.RESUME_ASK,
        RollbackKind.RESUME,
    )
)
# Read for every seat each frame: a member named through its enum class costs about 75 ns.
_IDLE: Final = HiddenPolicy.IDLE
#: The inputs of a player who left that each report hands on: enough whatever the delay and
#: prediction window (see ``forwarded_frames``).
FORWARDED_FRAMES: Final = forwarded_frames(MAX_PREDICTION, MAX_INPUT_DELAY)


def episode_span(last_frames: Iterable[int]) -> int:
    """How many wire frames an episode takes, given each player's last frame of it: past every
    frame any side can have sent, its last frame plus the input delay. The next episode's
    frame 0 is that many frames on (the server's input record is split the same way)."""
    return max(last_frames) + 1 + MAX_INPUT_DELAY


class RollbackState(StrEnum):
    #: Frames advance.
    RUNNING = "running"
    #: This episode's last frame is confirmed; the game resets and calls ``start_next_episode``.
    ENDED = "ended"
    #: ``start_next_episode`` was called; waiting for the other players' ends and readiness.
    WAITING = "waiting"
    #: A game's code raised (this side's or another player's), or the other player did not come
    #: back in time, and the session ended: see ``RollbackSession.end_reason``. Nothing advances
    #: any more.
    CLOSED = "closed"
    #: A page that came back waits for the game under way (``resume=True``, see :mod:`.resume`).
    RESUMING = "resuming"


#: The states in which a game of two notices the other player gone (see .resume).
_GOES_ON: Final = frozenset((RollbackState.RUNNING, RollbackState.ENDED, RollbackState.WAITING))
#: The states in which it answers the page that came back (waiting for the next episode's start,
#: which the absent player's readiness does not hold up, it waits a frame).
_ANSWERS: Final = frozenset((RollbackState.RUNNING, RollbackState.ENDED))


class RollbackSession:
    """A game of two to eight players over their sessions, simulated with input delay,
    prediction and rollback.

    ``session`` is the :class:`P2PSession` with the other player of two (in the browser,
    ``BrowserTransport.session`` once paired), or, for a room, a mapping from each other
    player's index to the session with that player (``MeshTransport.sessions``): every session
    has this side's ``player_index``, the indices are 0 to N - 1, and
    :meth:`~p2p_transport.rollback.game.Game.advance` gets N actions in player order. The
    rollback layer attaches to each session (:meth:`P2PSession.attach_layer`) and consumes the
    other player's inputs, whatever ``on_input`` the session was built with, and the control
    messages of the kinds it uses (``EPISODE_END``, ``EPISODE_READY``, ``TIME_SYNC``); other
    control messages, and desyncs after this layer saw them, still reach the session's own
    callbacks.

    ``episode_frames`` ends every episode after that many frames; a game's ``done()`` can end it
    sooner. ``on_desync(desync)`` hears the first confirmed frame whose state hashes differ on
    any link (:class:`~p2p_transport.protocol.desync.Desync`: episode, frame, both hashes).

    ``on_game_error(error)`` hears a :class:`~p2p_transport.rollback.errors.GameError` (the
    game's own code raised: which method, the frame, whether it was a re-simulation); returning
    true goes on, anything else (or no handler) ends the session for every player.

    ``repair_desync=True`` repairs a desync by a state transfer (see the module's docstring);
    the game then has ``encode_state(state) -> bytes`` and ``decode_state(data) -> state``
    (plain data: never unpickle what a peer sent).

    ``delay_range=(low, high)`` lets the layer choose the input delay in ``low..high`` from the
    measured RTT and the game's measured step cost (:mod:`.frame_budget`); ``input_delay`` is
    the delay until it has measured. Setting :attr:`input_delay` fixes it again. ``timer`` is
    the CPU clock the step costs are measured with (seconds; ``time.perf_counter``).

    In a room of more than two, a player who leaves is noticed by :meth:`advance_frame` (its
    session shut down) or told by :meth:`seat_left`; the others agree on the frame from which
    it plays its idle action, and each episode record says so (``"left": {"<player>":
    frame}``, its last real input; -1 for a whole episode). A side that has finished its
    episodes keeps calling :meth:`advance_frame` until the room ends, or the others wait for its
    report.

    The page calls :meth:`set_hidden` on every ``visibilitychange``; ``hidden_policy`` (``"idle"``,
    ``"pause"`` or ``"stall"``) says what a hidden player's seat does (:mod:`.visibility`), every
    episode record lists the frames each seat idled (``"idled": {"<player>": [[first, end],
    ...]}``, ``end`` exclusive), and ``on_peer_hidden(player, hidden)`` hears another player's
    seat start and stop idling or pausing. Back from hidden, the game loop catches up while
    :attr:`frames_behind` says so.

    In a game of two whose game has ``encode_state``/``decode_state``, the other player's page
    may go and come back (:mod:`.resume`): this side waits up to ``return_limit_ms`` (its seat
    idling, or the game stalled, as ``hidden_policy`` says), ``on_peer_absent(player, event)``
    hears ``"absent"`` then ``"resumed"`` or ``"gone"``, and the glue hands the returning page's
    session to :meth:`replace_session` when :meth:`awaits` says so. The page that comes back
    makes its layer with ``resume=True``: it takes the game under way (or, with nobody waiting,
    starts the first episode). :attr:`absences` and :attr:`resumed` keep what happened.
    """

    # The episode's state, set by _start_episode.
    _current: int
    _local: bytearray  # this side's scheduled actions, by frame
    _last_action: int
    _checksums: dict[int, bytes]  # hashes of simulated frames not yet confirmed
    _end_frame: int | None  # the simulated frame that ends the episode, once simulated
    _hashed_through: int
    _first_wrong: int | None  # the earliest simulated frame an arrived input contradicts
    _ended_at: int | None  # the episode's last frame, once it ended on this side

    def __init__(
        self,
        game: Game,
        session: P2PSession | Mapping[int, P2PSession],
        *,
        input_delay: int = DEFAULT_INPUT_DELAY,
        max_prediction: int = DEFAULT_MAX_PREDICTION,
        fps: float = 60.0,
        check_interval: int = DEFAULT_CHECK_INTERVAL,
        episode_frames: int | None = None,
        on_desync: Callable[[Desync], None] | None = None,
        on_game_error: Callable[[GameError], object] | None = None,
        delay_range: tuple[int, int] | None = None,
        repair_desync: bool = False,
        timer: Callable[[], float] = time.perf_counter,
        hidden_policy: HiddenPolicy | str = HiddenPolicy.IDLE,
        on_peer_hidden: Callable[[int, bool], None] | None = None,
        resume: bool = False,
        return_limit_ms: float = DEFAULT_RETURN_LIMIT_MS,
        on_peer_absent: Callable[[int, str], None] | None = None,
    ) -> None:
        check_game(game)
        if not isinstance(hidden_policy, str) or hidden_policy not in set(HiddenPolicy):
            raise UsageError(
                f"hidden_policy must be one of {[policy.value for policy in HiddenPolicy]}, "
                f"got {hidden_policy!r}"
            )
        check_int("max_prediction", max_prediction, MAX_PREDICTION)
        check_finite("fps", fps)
        if not fps > 0:
            raise UsageError(f"fps must be positive, got {fps}")
        check_int("check_interval", check_interval, minimum=1)
        check_finite("return_limit_ms", return_limit_ms)
        if not return_limit_ms >= 0:
            raise UsageError(f"return_limit_ms must not be negative, got {return_limit_ms}")
        if episode_frames is not None:
            check_int("episode_frames", episode_frames, minimum=1)
        sessions = _room_of(session)
        first = next(iter(sessions.values()))
        self._player_index = first.player_index
        self._player_count = len(sessions) + 1
        self.game = game
        self.max_prediction = max_prediction
        self.fps = float(fps)
        self.check_interval = check_interval
        self.episode_frames = episode_frames
        self.on_desync = on_desync
        self.on_game_error = on_game_error
        self.hidden_policy = HiddenPolicy(hidden_policy)
        self.on_peer_hidden = on_peer_hidden
        self.input_delay = input_delay  # checked by the setter
        self._idle = idle_action(game)
        predict = getattr(game, "predict", None)
        self._predict: Callable[[int, int, int], object] | None = (
            predict if callable(predict) else None
        )
        encodes = all(
            callable(getattr(game, name, None)) for name in ("encode_state", "decode_state")
        )
        if repair_desync and not encodes:
            raise UsageError("repair_desync needs the game's encode_state and decode_state")
        if resume and not encodes:
            raise UsageError("resume needs the game's encode_state and decode_state")
        if resume and self._player_count != PLAYERS_PER_ROOM:
            raise UsageError("resume is for a game of two: a player who leaves a room is gone")
        self.repair_desync = repair_desync
        # A game of two whose state travels waits for the other player to come back (.resume).
        self._awaits_returns = encodes and self._player_count == PLAYERS_PER_ROOM
        self.return_limit_ms = float(return_limit_ms)
        self._send_state = False
        self._state_chunks = ChunkAssembler()
        self._received_state: tuple[int, int, bytes] | None = None
        #: The state transfers that repaired a desync: role ("sent" or "received"), episode,
        #: frame (the state is the one after it), size in bytes.
        self.state_transfers: list[dict[str, Any]] = []
        self._timer = timer
        self._budget = FrameBudget(fps)
        self._delay_range: tuple[int, int] | None = None
        if delay_range is not None:
            low, high = delay_range
            check_int("delay_range's low", low, MAX_INPUT_DELAY)
            check_int("delay_range's high", high, MAX_INPUT_DELAY, minimum=low)
            self._delay_range = (low, high)
            self._input_delay = min(max(input_delay, low), high)
        self._delay_wanted_sent: int | None = None
        self._delay_changed_ms: float | None = None
        self._delay_sent_ms: float | None = None
        #: Why the session ended (``state`` CLOSED): who ("local", or "peer": another player), the
        #: episode, the frame, whether it was a re-simulation, the game's exception. ``None``
        #: while it runs.
        self.end_reason: dict[str, Any] | None = None
        self.last_game_error: GameError | None = None
        self._clock = first.parts.clock
        # Each other player, in player order; those still in the game (all, in a game of two).
        self._seats = {peer: Seat(peer, sessions[peer], fps) for peer in sorted(sessions)}
        self._seat_list = list(self._seats.values())
        self._playing = self._seat_list
        self._ring = StateRing(max_prediction + 2)
        for seat in self._seats.values():
            self._attach(seat)
        self.state = RollbackState.RUNNING
        self.episode = 0
        for seat in self._seats.values():
            seat.session.parts.desync.start_episode(0)
        #: One record per finished episode: its inputs, length and final checksum.
        self.episodes: list[dict[str, Any]] = []
        self._base = 0  # the transport frame of this episode's frame 0
        self._episodes_before = 0  # those a page that came back did not play (see .resume)
        self._end_state: bytes | None = None  # the encoded state after the episode's last frame
        self._counts: Counter[str] = Counter()
        self._absence = Absence(on_peer_absent, self._counts)
        self._depths: Counter[int] = Counter()
        self._stall_ms = 0.0
        self._stall_started: float | None = None
        self._frames_ahead_max = 0.0
        self._frames_ahead_series: deque[tuple[float, float]] = deque(
            maxlen=MAX_FRAMES_AHEAD_SAMPLES
        )
        self._last_report_ms: float | None = None
        self.first_desync: Desync | None = None
        # This side's page (see .visibility): hidden since when, and for how long before.
        self._hidden_since: float | None = None
        self._hidden_ms = 0.0
        self._idle_lead = idle_lead(self.fps)
        # This side's seat idles: its idle actions go out ahead of the others (the last of
        # self._idled's stretches is open); and back in front, it has caught up since (its
        # actions then count from the first frame not yet scheduled, the few frames of idle
        # actions sent ahead being played first).
        self._idling = False
        self._caught_up = False
        self._idled = IdleRanges()
        # Each player's idle stretches, by player index, this side's own included.
        idled = {player: seat.idled for player, seat in self._seats.items()}
        idled[self._player_index] = self._idled
        self._idled_by_player = dict(sorted(idled.items()))
        # The pauses asked for (this side's own too): player -> the frame nobody may simulate.
        self._pauses: dict[int, Mark] = {}
        # Control messages a full window refused, per player, oldest first: (kind, payload).
        self._unsent: dict[int, list[tuple[int, bytes]]] = {}
        self._params = episode_params(game)
        self._next_params: dict[str, Any] | None = None
        self._start_episode()
        if resume:
            self.state = RollbackState.RESUMING
            self._absence.asked_ms = self._clock()
            for seat in self._seat_list:
                self._tell(seat, RollbackKind.RESUME_ASK, b"")

    def _attach(self, seat: Seat) -> None:
        seat.session.attach_layer(
            LayerHandlers(
                on_input=partial(self._on_peer_input, seat),
                control_kinds=_OWN_KINDS,
                on_control=partial(self._on_control, seat),
                on_desync=self._on_session_desync,
            )
        )

    # --- what the game calls ------------------------------------------------------------------

    @property
    def absences(self) -> list[dict[str, Any]]:
        """The other player's absences (see :mod:`.resume`): each with the player, when it
        started and ended (ms on the session's clock), the episode and frame, and how it ended
        (``"resumed"``, ``"gone"``, or ``None`` while it lasts)."""
        return self._absence.records

    @property
    def resumed(self) -> dict[str, Any] | None:
        """This page came back (``resume=True``): what it got (``None`` until then)."""
        return self._absence.resumed

    @property
    def on_peer_absent(self) -> Callable[[int, str], None] | None:
        """Hears ``(player, event)``: ``"absent"``, then ``"resumed"`` or ``"gone"``."""
        return self._absence.on_peer_absent

    @on_peer_absent.setter
    def on_peer_absent(self, told: Callable[[int, str], None] | None) -> None:
        self._absence.on_peer_absent = told

    @property
    def input_delay(self) -> int:
        return self._input_delay

    @input_delay.setter
    def input_delay(self, frames: int) -> None:
        """Frames between an action and the frame it acts on; may change between frames.
        Setting it fixes it: the layer no longer chooses it (``delay_range``)."""
        check_int("input_delay", frames, MAX_INPUT_DELAY)
        self._input_delay = frames
        self._delay_range = None

    @property
    def player_index(self) -> int:
        """This side's player index."""
        return self._player_index

    @property
    def player_count(self) -> int:
        """The players of the game, this side included (2 to 8)."""
        return self._player_count

    @property
    def sessions(self) -> dict[int, P2PSession]:
        """The session with each other player, by the player's index."""
        return {player: seat.session for player, seat in self._seats.items()}

    @property
    def session(self) -> P2PSession:
        """The session with the other player of two; a room has one per player
        (:attr:`sessions`)."""
        if self._player_count != PLAYERS_PER_ROOM:
            raise InvalidStateError(
                f"a game of {self._player_count} players has one session per other player: "
                "see sessions"
            )
        (seat,) = self._seats.values()
        return seat.session

    @property
    def current_frame(self) -> int:
        """The next frame to simulate (frames simulated so far in this episode)."""
        return self._current

    @property
    def confirmed_frame(self) -> int:
        """The last frame simulated with every player's real input (-1: none yet)."""
        known = self._inputs_known_through()
        return self._current - 1 if known is None else min(known, self._current - 1)

    @property
    def frames_ahead(self) -> float:
        """How many frames this side runs ahead of the player furthest behind (negative: it is
        behind every other player)."""
        return self._time_sync_ahead().frames_ahead

    @property
    def tick_stretch(self) -> float:
        """By how much to lengthen the game loop's next tick (1.0: not at all): a side that
        runs ahead slows down gradually instead of stalling."""
        return self._time_sync_ahead().tick_stretch

    @property
    def frame_ms(self) -> float:
        """The game loop's next tick in milliseconds: ``1000 / fps`` times :attr:`tick_stretch`."""
        return 1000.0 / self.fps * self.tick_stretch

    @property
    def frames_behind(self) -> int:
        """How many frames this side trails the others while it comes back from a hidden page
        whose seat idled (see :mod:`.visibility`): the frames every other player still playing
        has sent its inputs for, less that player's input delay, past the current frame; 0 the
        rest of the time. While it is above
        :data:`~p2p_transport.rollback.visibility.CATCH_UP_THRESHOLD`, the game loop calls
        :meth:`advance_frame` several times a tick, at most
        :data:`~p2p_transport.rollback.visibility.CATCH_UP_FRAMES_PER_TICK`."""
        if not self._idling or self._caught_up or self.state is not RollbackState.RUNNING:
            return 0
        return self._behind()

    @property
    def hidden(self) -> bool:
        """The page is hidden, as :meth:`set_hidden` last said."""
        return self._hidden_since is not None

    def set_hidden(self, hidden: bool) -> None:
        """The page was hidden (``True``: ``document.visibilityState`` is ``"hidden"``) or is
        visible again (``False``): call it on every ``visibilitychange``. Once the page has stayed
        hidden for :data:`~p2p_transport.rollback.visibility.HIDDEN_GRACE_MS`, ``hidden_policy``
        applies (:mod:`.visibility`); the next call into the layer (a tick, or a message from
        another player) sees to it. Every other player's session hears this side's focus
        (:meth:`P2PSession.send_focus`, which deployed peers keep track of). Saying the same
        again changes nothing."""
        if not isinstance(hidden, bool):
            raise UsageError(f"hidden must be a bool, got {type(hidden).__name__}")
        if hidden is self.hidden:
            return
        now = self._clock()
        if hidden:
            self._hidden_since = now
            self._caught_up = False
        else:
            assert self._hidden_since is not None
            self._hidden_ms += now - self._hidden_since
            self._hidden_since = None
            own = self._pauses.pop(self._player_index, None)
            if own is not None:
                episode, frame = own
                self._tell_hidden(encode_seat_hidden_payload(frame, episode, False, True))
        frame = self._base + self._current
        for seat in self._playing:
            seat.session.send_focus(not hidden, frame)

    @property
    def finished_episodes(self) -> int:
        """How many of the game's episodes have ended on this side: those in :attr:`episodes`,
        and for a page that came back (``resume=True``) those before the one it resumed in."""
        return self._episodes_before + len(self.episodes)

    @property
    def episode_over(self) -> bool:
        """The episode's last frame is confirmed on this side: reset the game, then call
        :meth:`start_next_episode`."""
        return self.state is RollbackState.ENDED

    def advance_frame(self, local_action: int) -> bool:
        """Simulate one frame with ``local_action`` (0..255, any integer type); ``False`` if
        nothing was simulated (another player's inputs are too far behind, a hidden player
        paused the game, the episode is over, the game raised, the session ended), and then the
        action is not used: pass the current one on the next call. While this side's seat idles
        (its page hidden, see :mod:`.visibility`) the action is not used either."""
        action = as_action("local_action", local_action)
        started = self._timer()
        try:
            return self._advance(action)
        finally:
            self._budget.frame_took((self._timer() - started) * 1000.0)

    def _advance(self, local_action: int) -> bool:
        now = self._clock()
        if self._player_count > PLAYERS_PER_ROOM:
            self._notice_departures()
        elif self._awaits_returns:
            self._tend_absence(now)
            if self._absence.cut_off_since is not None:
                self._counts["cut_off_frames"] += 1
                return False
        if self.state is RollbackState.WAITING:
            self._try_start()
        if self._unsent:
            self._send_unsent()
        if self.state is not RollbackState.RUNNING:
            return False
        if self._hidden_since is not None or self._idling:
            self._tend_hidden()
        if self._received_state is not None:
            self._load_received_state()
        if not self._correct():
            return False
        self._confirm()
        if self.state is not RollbackState.RUNNING:
            return False
        if self._send_state:
            self._send_confirmed_state()
        if self._awaits_returns and (seat := self._seat_list[0]).resume_due:
            self._send_resume(seat, now)
        if not self._idling:
            # Idling, this side runs far behind on purpose: its advantage would mislead.
            self._measure(now)
        if self._pauses and self._paused():
            return False
        if self._end_frame is not None:
            self._counts["end_wait_frames"] += 1
            return False
        known = self._inputs_known_through()
        if known is not None and self._current - known > self.max_prediction:
            self._counts["stall_frames"] += 1
            if self._stall_started is None:
                self._stall_started = now
            return False
        self._stall_over(now)
        self._choose_delay(now)
        self._schedule(local_action)
        frame = self._current
        try:
            self._simulate(frame, first_time=True)
        except GameError as error:
            return self._new_frame_failed(error)
        self._current = frame + 1
        if self._idling and not self._caught_up and self._hidden_since is None:
            # Judged after the frame, as the game loop reads frames_behind. Once caught up, for
            # good, even if it falls a frame behind again: its actions must get past the idle
            # ones scheduled.
            self._caught_up = self._behind() <= CATCH_UP_THRESHOLD
        return True

    def _stall_over(self, now: float) -> None:
        if self._stall_started is not None:
            self._stall_ms += now - self._stall_started
            self._stall_started = None

    def start_next_episode(self) -> None:
        """Start the next episode once every other player is ready too: call it after resetting
        the game (every side's game must start the episode in the same state). Until all are
        ready, :meth:`advance_frame` returns ``False``."""
        if self.state is RollbackState.CLOSED:
            raise InvalidStateError("the rollback session ended (see end_reason)")
        if self.state is RollbackState.WAITING:
            others = "the peer" if self._player_count == PLAYERS_PER_ROOM else "the other players"
            raise InvalidStateError(f"episode {self.episode + 1} already waits for {others}")
        if self.state is RollbackState.RUNNING:
            raise InvalidStateError(f"episode {self.episode} is not over yet (see episode_over)")
        self.state = RollbackState.WAITING
        self._next_params = episode_params(self.game)
        if self._player_count > PLAYERS_PER_ROOM:
            self._notice_departures()
        for seat in self._playing:
            self._send(seat.session.send_episode_ready, self.episode + 1)
        self._try_start()

    def seat_left(self, player: int) -> None:
        """Player ``player`` left the room (of more than two): from a frame the players who stay
        agree on, it plays its idle action (see :mod:`.seats`). :meth:`advance_frame` notices a
        player whose session was shut down by itself; call this when the game learns it first.
        Saying it again changes nothing."""
        if self._player_count == PLAYERS_PER_ROOM:
            raise UsageError(
                "a game of two ends when the peer leaves: seat_left is for rooms of more"
            )
        seat = self._seats.get(player) if isinstance(player, int) else None
        if seat is None:
            raise UsageError(
                f"player must be another player's index ({sorted(self._seats)}), got {player!r}"
            )
        if not seat.left:
            self._seat_leaves(seat)

    def stats(self) -> dict[str, Any]:
        """Counters and figures as a plain, JSON-serialisable dict; reading changes nothing."""
        counts = self._counts
        now = self._clock()
        stall_ms = self._stall_ms
        if self._stall_started is not None:
            stall_ms += now - self._stall_started
        hidden_ms = self._hidden_ms
        if self._hidden_since is not None:
            hidden_ms += now - self._hidden_since
        desync = self.first_desync
        checks = [seat.session.parts.desync.counters for seat in self._seats.values()]
        return {
            "state": self.state.value,
            "player_count": self._player_count,
            "episode": self.episode,
            "frame": self._current,
            "confirmed_frame": self.confirmed_frame,
            "input_delay": self._input_delay,
            "max_prediction": self.max_prediction,
            "frames_advanced": counts["frames_advanced"],
            "frames_predicted": counts["frames_predicted"],
            "frames_resimulated": counts["frames_resimulated"],
            "rollbacks": counts["rollbacks"],
            "max_rollback_depth": max(self._depths, default=0),
            "rollback_depths": {str(depth): n for depth, n in sorted(self._depths.items())},
            "stall_frames": counts["stall_frames"],
            "stall_ms": round(stall_ms, 3),
            "end_wait_frames": counts["end_wait_frames"],
            "frames_ahead": round(self.frames_ahead, 3),
            "frames_ahead_max": round(self._frames_ahead_max, 3),
            "tick_stretch": round(self.tick_stretch, 3),
            "desyncs": sum(checker.mismatches for checker in checks),
            "first_desync_episode": None if desync is None else desync.episode,
            "first_desync_frame": None if desync is None else desync.frame,
            "hashes_compared": sum(checker.matches + checker.mismatches for checker in checks),
            "episode_end_mismatches": counts["episode_end_mismatches"],
            "inputs_dropped_by_delay": counts["inputs_dropped_by_delay"],
            "stale_inputs": counts["stale_inputs"],
            "duplicate_inputs": counts["duplicate_inputs"],
            "time_sync_sent": counts["time_sync_sent"],
            "time_sync_received": counts["time_sync_received"],
            "malformed_control": counts["malformed_control"],
            "control_send_failures": counts["control_send_failures"],
            "callback_errors": counts["callback_errors"],
            "episodes_finished": self.finished_episodes,
            **self._budget.stats(),
            "state_transfers": len(self.state_transfers),
            "delay_changes": counts["delay_changes"],
            "game_errors": counts["game_errors"],
            "ended_by": None if self.end_reason is None else self.end_reason["by"],
            "seat_reports_ignored": counts["seat_reports_ignored"],
            "hidden": self.hidden,
            "hidden_ms": round(hidden_ms, 3),
            "frames_idled": counts["frames_idled"],
            "paused_frames": counts["paused_frames"],
            "cut_off_frames": counts["cut_off_frames"],
            "stale_resumes": counts["stale_resumes"],
            "peers": {
                str(player): {
                    "confirmed_frame": seat.inputs.confirmed_frame,
                    "frames_ahead": round(seat.time_sync.frames_ahead, 3),
                    "left": seat.left_detail(),
                    "hidden": None if seat.away is None else seat.away.value,
                }
                for player, seat in self._seats.items()
            },
        }

    def telemetry(self) -> dict[str, Any]:
        """What the experiment keeps: :meth:`stats`; ``frames_ahead`` over time (``[ms,
        frames]`` on the session's clock, one per report); the first desync with both
        checksums; each finished episode's record (``inputs``: ``[player 0, player 1, ...]``
        per frame, which :func:`~p2p_transport.rollback.replay.replay` re-simulates; ``left``:
        the players who left, each with its last real input; ``idled``: the frames each player
        idled while its page was hidden, ``[first, end]`` with ``end`` exclusive); the
        confirmed frames of the episode under way, so a session cut short keeps them too; the
        other player's absences and this page's own return (see :mod:`.resume`)."""
        desync = self.first_desync
        under_way: dict[str, Any] | None = None
        if self.state in (RollbackState.RUNNING, RollbackState.CLOSED) and self._ended_at is None:
            confirmed = self.confirmed_frame + 1
            under_way = {
                "episode": self.episode,
                "frames": confirmed,
                **self._params_entry(),
                "inputs": self._inputs_of(confirmed),
                **self._left_entry(confirmed),
                **self._idled_entry(self.episode, confirmed),
            }
        return {
            **self.stats(),
            "frames_ahead_series": [
                [round(t, 1), round(a, 3)] for t, a in self._frames_ahead_series
            ],
            "first_desync": None
            if desync is None
            else {
                "episode": desync.episode,
                "frame": desync.frame,
                "local_checksum": desync.local_hash.hex(),
                "peer_checksum": desync.peer_hash.hex(),
            },
            "episode_records": list(self.episodes),
            "episode_under_way": under_way,
            "end_reason": None if self.end_reason is None else dict(self.end_reason),
            "state_transfer_records": [dict(t) for t in self.state_transfers],
            "absences": [dict(absence) for absence in self.absences],
            "resumed": None if self.resumed is None else dict(self.resumed),
        }

    def _params_entry(self) -> dict[str, Any]:
        """``{"params": ...}`` for a game that declares its episode parameters, else nothing."""
        return {} if self._params is None else {"params": self._params}

    def _inputs_of(self, frames: int) -> list[list[int]]:
        """Every player's actions of the episode's first ``frames`` frames, by player index."""
        columns = [seat.recorded(frames, self._idle) for seat in self._seats.values()]
        columns.insert(self._player_index, bytes(self._local[:frames]))
        return [list(actions) for actions in zip(*columns, strict=True)]

    def _left_entry(self, frames: int) -> dict[str, Any]:
        """``{"left": {"<player>": last real frame}}`` for the players who played their idle
        action in any of the episode's first ``frames`` frames, else nothing."""
        left = {
            str(player): seat.idle_from - 1
            for player, seat in self._seats.items()
            if seat.idle_from is not None and seat.idle_from < frames
        }
        return {"left": left} if left else {}

    def _inputs_known_through(self) -> int | None:
        """The last frame every other player's input is known for; ``None`` when all are (every
        other player left)."""
        playing = self._playing
        if playing is self._seat_list:
            # Nobody left: the common case, read twice a frame.
            return min(seat.inputs.confirmed_frame for seat in playing)
        episode = self.episode
        known = [seat.confirmed_frame(episode) for seat in self._seats.values()]
        return min((frame for frame in known if frame is not None), default=None)

    def _time_sync_ahead(self) -> TimeSync:
        """The time sync of the link this side runs furthest ahead on (the player furthest
        behind): it sets the pace. Once every other player left, theirs, all reset."""
        playing = self._playing or self._seat_list
        return max(playing, key=lambda seat: seat.time_sync.frames_ahead).time_sync

    # --- the frame ----------------------------------------------------------------------------

    def _schedule(self, action: int) -> None:
        """Schedule ``action`` for ``current + input_delay`` and send it; frames the delay skips
        (it grew) repeat the last action, and a frame already scheduled (it shrank) keeps its
        action, this one being dropped. While this side idles (see :mod:`.visibility`), the idle
        action goes in its place, and once it has caught up the first frame not yet scheduled
        takes the action; while it pauses the game, nothing is scheduled."""
        if self._player_index in self._pauses:
            return  # its frames from the pause on wait for its return
        target = self._current + self._input_delay
        local = self._local
        if self._idling:
            if self._keeps_idling():
                self._send_idle(target + 1 - len(local))
                return
            if target < len(local):
                return  # an idle action sent ahead holds that frame
            self._stop_idling(target)
        elif target < len(local):
            self._counts["inputs_dropped_by_delay"] += 1
            return
        while len(local) < target:
            self._send_next_action(self._last_action)
        self._send_next_action(action)
        self._last_action = action

    def _send_next_action(self, action: int) -> None:
        """Schedule ``action`` for the first frame not yet scheduled, and send it to every other
        player."""
        self._local.append(action)
        frame = self._base + len(self._local) - 1
        for seat in self._playing:
            seat.session.step(frame, action)

    def _simulate(self, frame: int, *, first_time: bool) -> None:
        """Simulate ``frame`` (the game's calls raise as :class:`GameError`, the layer's own
        bookkeeping untouched: it is done after every call of the game's succeeded)."""
        game = self.game
        phase = "save_state"
        seats = self._seat_list
        try:
            self._ring.save(frame, game.save_state())
            actions: list[int] = []
            predicted = False
            for seat in seats:
                action = seat.action(frame, self._idle)
                if action is None:
                    phase = "predict"
                    action = self._prediction(seat, frame)
                    predicted = True
                actions.append(action)
            own = self._player_index
            inputs = (*actions[:own], self._local[frame], *actions[own:])
            phase = "advance" if first_time else "resimulate"
            started = self._timer()
            if first_time:
                game.advance(inputs)
            else:
                resimulate(game, inputs)
            cost_ms = (self._timer() - started) * 1000.0
            phase = "done"
            ends = game_over(game) or frame + 1 == self.episode_frames
            phase = "checksum"
            checksum = (
                _digest(game.checksum()) if ends or frame % self.check_interval == 0 else None
            )
        except Exception as error:
            raise GameError(phase, self.episode, frame, not first_time, error) from error
        self._budget.step_took(cost_ms, resimulating=not first_time)
        if first_time:
            for seat, action in zip(seats, actions, strict=True):
                seat.used.append(action)
            self._counts["frames_advanced"] += 1
            if predicted:
                self._counts["frames_predicted"] += 1
        else:
            for seat, action in zip(seats, actions, strict=True):
                seat.used[frame] = action
            self._counts["frames_resimulated"] += 1
        if ends:
            self._end_frame = frame
        if checksum is not None:
            self._checksums[frame] = checksum

    def _prediction(self, seat: Seat, frame: int) -> int:
        if seat.left:
            return self._idle  # what it plays once the others agree where it stopped
        last = seat.inputs.prediction(self._idle)
        if self._predict is None:
            return last
        return as_action("predict()", self._predict(seat.player, frame, last))

    def _correct(self) -> bool:
        """Roll back to the earliest frame simulated with a wrong prediction, and re-simulate;
        ``False`` if the game raised (and the session goes on: the rollback is tried again)."""
        wrong = self._first_wrong
        if wrong is None:
            return True
        self._first_wrong = None
        present = self._current
        self._counts["rollbacks"] += 1
        self._depths[present - wrong] += 1
        end_frame = self._end_frame
        saved = self._ring.load(wrong)
        try:
            try:
                self.game.load_state(saved)
            except Exception as error:
                raise GameError("load_state", self.episode, wrong, True, error) from error
            self._end_frame = None
            self._current = wrong
            while self._current < present and self._end_frame is None:
                self._simulate(self._current, first_time=False)
                self._current += 1
        except GameError as error:
            # Tried again from the same frame on the next call: the state saved before it is
            # still the right one, whatever this pass saved after it.
            self._first_wrong = wrong
            self._current = present
            self._end_frame = end_frame
            for frame in [f for f in self._checksums if f >= wrong]:
                del self._checksums[frame]
            self._game_failed(error)
            return False
        # The corrected past may end the episode sooner: what was simulated after is void.
        for seat in self._seats.values():
            del seat.used[self._current :]
        for frame in [f for f in self._checksums if f >= self._current]:
            del self._checksums[frame]
        return True

    def _new_frame_failed(self, error: GameError) -> bool:
        """A new frame's simulation raised: the frame did not happen. Back to the state saved
        before it (``save_state`` itself raising left the game untouched)."""
        if error.phase != "save_state":
            try:
                self.game.load_state(self._ring.load(error.frame))
            except Exception as reload_error:
                logger.error("the game's load_state raised restoring frame %d", error.frame)
                self._game_failed(error)
                if self.state is not RollbackState.CLOSED:
                    fatal = GameError("load_state", self.episode, error.frame, False, reload_error)
                    self._close_for(fatal)
                return False
        self._game_failed(error)
        return False

    def _game_failed(self, error: GameError) -> None:
        """Hand ``error`` to the designer's handler; end the session unless it says go on."""
        self._counts["game_errors"] += 1
        self.last_game_error = error
        logger.warning("%s", error)
        go_on = False
        if self.on_game_error is not None:
            try:
                go_on = bool(self.on_game_error(error))
            except Exception:
                self._counts["callback_errors"] += 1
                logger.exception("on_game_error raised; the session ends")
        if not go_on:
            self._close_for(error)

    def _close_for(self, error: GameError) -> None:
        self._close("local", error.episode, error.frame, error.resimulating, error.reason)
        payload = encode_rollback_end_payload(
            error.frame, error.episode, error.resimulating, error.reason
        )
        for seat in self._playing:
            self._send(seat.session.parts.control.send, RollbackKind.ROLLBACK_END, payload)

    def _close(self, by: str, episode: int, frame: int, resimulating: bool, reason: str) -> None:
        self.state = RollbackState.CLOSED
        self.end_reason = {
            "by": by,
            "episode": episode,
            "frame": frame,
            "resimulating": resimulating,
            "reason": reason,
        }

    def _confirm(self) -> None:
        """Hash what is newly confirmed; end the episode once its last frame is."""
        confirmed = self.confirmed_frame
        if confirmed <= self._hashed_through:
            return
        playing = self._playing
        for frame in sorted(f for f in self._checksums if f <= confirmed):
            checksum = self._checksums.pop(frame)
            for seat in playing:
                # An absent seat's page cannot agree with frames this side decided alone.
                if seat.absent_since is None:
                    self._send(seat.session.parts.desync.add_local_hash, frame, checksum)
        self._hashed_through = confirmed
        end = self._end_frame
        if end is not None and confirmed >= end:
            self._finish_episode(end)

    def _finish_episode(self, end: int) -> None:
        self.state = RollbackState.ENDED
        self._ended_at = end
        if self._awaits_returns:
            # For a page that comes back before the next episode starts (the game reset by then).
            self._end_state = self._encoded_state_before(end + 1)
        for seat in self._seat_list:
            if seat.absent_since is not None:
                seat.end_for_absent(self.episode, end)
        self.episodes.append(
            {
                "episode": self.episode,
                **self._params_entry(),
                "frames": end + 1,
                "final_checksum": _digest(self.game.checksum()).hex(),
                "inputs": self._inputs_of(end + 1),
                **self._left_entry(end + 1),
                **self._idled_entry(self.episode, end + 1),
            }
        )
        for seat in self._playing:
            self._send(seat.session.send_episode_end, end, self.episode)

    def _try_start(self) -> None:
        """Start the next episode if every player still in the game has ended this one and is
        ready."""
        episode = self.episode
        playing = self._playing
        seat_ends: list[int] = []
        for seat in playing:
            seat_end = seat.ends.get(episode)
            if seat_end is None or episode + 1 not in seat.ready:
                return
            seat_ends.append(seat_end)
        end = self.episodes[-1]["frames"] - 1
        for seat, seat_end in zip(playing, seat_ends, strict=True):
            if seat_end != end:
                self._counts["episode_end_mismatches"] += 1
                logger.warning(
                    "episode %d ended at frame %d here, %d at player %d",
                    episode,
                    end,
                    seat_end,
                    seat.player,
                )
        span = episode_span((end, *seat_ends))
        while len(self._local) < span:
            self._send_next_action(self._idle)
        # Idle actions a hidden side sent past the span are the next episode's first ones.
        ahead = bytes(self._local[span:])
        early = {seat: seat.inputs.take_from(span) for seat in self._seats.values()}
        self._base += span
        self.episode = episode + 1
        for seat in playing:
            seat.session.parts.desync.start_episode(self.episode)
        for seat, inputs in early.items():
            seat.start_episode(self.episode, inputs)
        self._params = self._next_params
        self._start_episode(ahead)
        self.state = RollbackState.RUNNING

    def _start_episode(self, scheduled: bytes = b"") -> None:
        self._current = 0
        self._local = bytearray(scheduled)
        self._last_action = self._idle
        self._ended_at = None
        self._ring.clear()
        self._checksums = {}
        self._end_frame = None
        self._hashed_through = -1
        self._first_wrong = None
        for seat in self._seats.values():
            seat.time_sync.reset()
        self._send_state = False
        self._state_chunks.clear()
        self._received_state = None

    def _send_confirmed_state(self) -> None:
        """Send the state after the newest confirmed frame, in chunks."""
        frame = self.confirmed_frame
        if frame < 0:
            return
        self._send_state = False
        data = self._encoded_state_before(frame + 1)
        if data is None:
            return
        for payload in chunk_payloads(frame, self.episode, data):
            for seat in self._playing:
                self._tell(seat, RollbackKind.STATE_CHUNK, payload)
        self.state_transfers.append(
            {"role": "sent", "episode": self.episode, "frame": frame, "bytes": len(data)}
        )

    def _encoded_state_before(self, frame: int) -> bytes | None:
        """The game's state before ``frame`` (≤ the current frame: the one saved before it, or
        the game's own if it is not simulated yet), encoded; ``None`` if the game raised."""
        game: Any = self.game
        try:
            state = game.save_state() if frame == self._current else self._ring.load(frame)
            return bytes(game.encode_state(state))
        except Exception as error:
            self._game_failed(GameError("encode_state", self.episode, frame - 1, False, error))
            return None

    def _on_state_chunk(self, payload: bytes) -> None:
        whole = self._state_chunks.add(payload)
        if whole is None:
            return
        frame, episode, data = whole
        if episode != self.episode or not self.repair_desync:
            self._counts["stale_state_chunks"] += 1
            return
        self._received_state = (episode, frame, data)

    def _load_received_state(self) -> None:
        """Take the sender's state after frame F once this side has confirmed F (its frames up
        to F are then never re-simulated, so nothing rebuilds them from its own diverged
        states), and re-simulate from F + 1 on it."""
        assert self._received_state is not None
        episode, frame, data = self._received_state
        if episode != self.episode:
            self._received_state = None
            return
        if self.confirmed_frame < frame:
            return
        self._received_state = None
        try:
            state = self.game.decode_state(data)  # type: ignore[attr-defined]
        except Exception as error:
            self._game_failed(GameError("decode_state", episode, frame, False, error))
            return
        self._ring.save(frame + 1, state)
        self._first_wrong = frame + 1
        self.state_transfers.append(
            {"role": "received", "episode": episode, "frame": frame, "bytes": len(data)}
        )

    def _choose_delay(self, now: float) -> None:
        """With ``delay_range``: work out the delay this side needs the others to use (from its
        slowest link), tell them, and use the largest of every side's figure. It grows at once,
        and the others hear of it at once (rollbacks overrun until they do); it shrinks a frame
        at a time, DELAY_SHRINK_MS apart, and a smaller figure is sent at most every
        REPORT_INTERVAL_MS, so a round trip's jitter does not make it flap."""
        bounds = self._delay_range
        if bounds is None:
            return
        playing = self._playing
        rtt = max((_rtt_ms(seat.session) for seat in playing), default=0.0)
        wanted = self._budget.wanted_delay(rtt, *bounds)
        sent, sent_ms = self._delay_wanted_sent, self._delay_sent_ms
        if wanted != sent and (
            sent is None or wanted > sent or now - (sent_ms or 0.0) >= REPORT_INTERVAL_MS
        ):
            payload = encode_input_delay_payload(wanted)
            sends = [
                self._send(seat.session.parts.control.send, RollbackKind.INPUT_DELAY, payload)
                for seat in playing
            ]
            if all(sends):
                self._delay_wanted_sent, self._delay_sent_ms = wanted, now
        target = max([wanted, *(seat.delay_wanted or bounds[0] for seat in playing)])
        delay, changed = self._input_delay, self._delay_changed_ms
        if target > delay or (
            target < delay and (changed is None or now - changed >= DELAY_SHRINK_MS)
        ):
            self._input_delay = target if target > delay else delay - 1
            self._counts["delay_changes"] += 1
            self._delay_changed_ms = now

    def _measure(self, now: float) -> None:
        """Sample the frame advantage on each link; report it on that link every
        REPORT_INTERVAL_MS."""
        samples: list[tuple[Seat, float]] = []
        for seat in self._playing:
            if seat.newest >= 0 and seat.away is not _IDLE:
                rtt = _rtt_ms(seat.session)
                samples.append((seat, seat.time_sync.sample(self._current, seat.newest, rtt)))
        if not samples:
            return
        if self._last_report_ms is not None and now - self._last_report_ms < REPORT_INTERVAL_MS:
            return
        self._last_report_ms = now
        for seat, advantage in samples:
            payload = encode_time_sync_payload(advantage, self._input_delay)
            if self._send(seat.session.send_time_sync, payload):
                self._counts["time_sync_sent"] += 1
        ahead = self.frames_ahead
        self._frames_ahead_series.append((now, ahead))
        self._frames_ahead_max = max(self._frames_ahead_max, ahead)

    def _send(self, send: Callable[..., object], *args: Any) -> bool:
        """A control message or hash: a full window or a version-1 peer is counted, not raised."""
        try:
            send(*args)
        except P2PTransportError as error:
            self._counts["control_send_failures"] += 1
            logger.warning("rollback control message not sent: %s", error)
            return False
        return True

    # --- players who leave (see .seats) -------------------------------------------------------

    def _notice_departures(self) -> None:
        """Take a seat whose session was shut down as gone; send the reports a full window
        refused before."""
        for seat in self._playing:
            if seat.session.state is SessionState.SHUT_DOWN:
                self._seat_leaves(seat)
        for seat in self._seats.values():
            if seat.unreported:
                self._send_report(seat)

    def _seat_leaves(self, seat: Seat) -> None:
        """``seat`` left, as this side just learned: report how far this side holds its inputs
        to every player still in the game, and see whether that completes an agreement."""
        seat.leave(self._player_index, self.episode, FORWARDED_FRAMES)
        self._pauses.pop(seat.player, None)
        self._playing = [other for other in self._playing if other is not seat]
        seat.unreported = {other.player for other in self._playing}
        self._send_report(seat)
        self._agree()

    def _send_report(self, seat: Seat) -> None:
        for player in sorted(seat.unreported):
            other = self._seats[player]
            if other.session.state is SessionState.SHUT_DOWN and not other.left:
                continue  # it left too: noticed at the next frame
            if other.left or self._send(
                other.session.parts.control.send, RollbackKind.SEAT_LEFT, seat.report_payload
            ):
                seat.unreported.discard(player)

    def _on_seat_report(self, reporter: Seat, payload: bytes) -> None:
        """Another player's report that a seat left: take the inputs it hands on, and agree once
        every player still in the game has reported."""
        last, episode, player, actions = decode_seat_left_payload(payload)
        seat = self._seats.get(player)
        if (
            self._player_count == PLAYERS_PER_ROOM
            or seat is None
            or seat is reporter
            or reporter.player in seat.reports
        ):
            # About this side, about the reporter itself, or a second report: nothing to take.
            self._counts["seat_reports_ignored"] += 1
            return
        if not seat.left:
            self._seat_leaves(seat)
        handed_on = seat.take_report(reporter.player, episode, last, actions, self.episode)
        for frame, action in handed_on.items():
            self._take_input(seat, frame, action)
        self._agree()

    def _agree(self) -> None:
        """Settle every departure all players still in the game have reported; roll back the
        frames simulated otherwise than the agreement says."""
        reporters = [self._player_index, *(seat.player for seat in self._playing)]
        for seat in self._seats.values():
            if seat.left and seat.agreed is None:
                wrong = seat.agree(reporters, self.episode, self._idle)
                if wrong is not None:
                    self._note_wrong(wrong)

    # --- hidden pages (see .visibility) -------------------------------------------------------

    def _tend_hidden(self) -> None:
        """On every call into the layer while this side's page is hidden or its seat idles: once
        the grace is over, apply the policy; while idling, keep the idle actions ahead."""
        if self._unsent:
            self._send_unsent()
        if self.state is not RollbackState.RUNNING:
            return
        since = self._hidden_since
        if (
            since is not None
            and not self._idling
            and self._player_index not in self._pauses
            and self.hidden_policy is not HiddenPolicy.STALL
            and self._clock() - since >= HIDDEN_GRACE_MS
        ):
            self._go_away()
        if self._idling and self._keeps_idling():
            self._top_up()

    def _go_away(self) -> None:
        """The grace is over: idle from the first frame not yet scheduled, or ask everyone to
        pause there; tell every other player."""
        episode, frame = self.episode, len(self._local)
        pause = self.hidden_policy is HiddenPolicy.PAUSE
        if pause:
            self._pauses[self._player_index] = (episode, frame)
        else:
            self._idled.start(episode, frame)
            self._idling = True
            for seat in self._seat_list:
                seat.time_sync.reset()
        self._tell_hidden(encode_seat_hidden_payload(frame, episode, True, pause))

    def _keeps_idling(self) -> bool:
        """This side's seat goes on idling ahead: its page is hidden, or it has not caught up
        since (the game it shows is in the past, where nothing the player does can count)."""
        return self._hidden_since is not None or not self._caught_up

    def _behind(self) -> int:
        """See :attr:`frames_behind`."""
        reach = [
            seat.inputs.confirmed_frame
            - (
                delay
                if (delay := seat.time_sync.peer_input_delay) is not None
                else self._input_delay
            )
            for seat in self._playing
            if seat.away is not _IDLE
        ]
        return max(0, min(reach) + 1 - self._current) if reach else 0

    def _top_up(self) -> None:
        """Keep the idle actions scheduled past the newest frame heard from a player still
        playing (an idling player's inputs run ahead of its game): by the lead while hidden,
        since the next tick may be a throttled second away; by nothing while catching up, which
        ticks every frame. At most what every link's acked sender can still keep pending."""
        newest = max(
            (seat.newest for seat in self._playing if seat.away is not _IDLE),
            default=None,
        )
        if newest is None:
            return
        lead = self._idle_lead if self._hidden_since is not None else 0
        wanted = newest + 1 + lead - len(self._local)
        if wanted > 0:
            self._send_idle(min(wanted, self._pending_room()))

    def _pending_room(self) -> int:
        """How many more inputs every link's acked sender can keep unacknowledged."""
        room = PENDING_LIMIT
        for seat in self._playing:
            acked = seat.session.parts.inputs.acked
            if acked.acks_expected:
                room = min(room, PENDING_LIMIT - acked.pending_count)
        return room

    def _send_idle(self, count: int) -> None:
        """Schedule and send the idle action for the next ``count`` frames not yet scheduled."""
        if count > 0:
            for _ in range(count):
                self._send_next_action(self._idle)
            self._counts["frames_idled"] += count

    def _stop_idling(self, frame: int) -> None:
        """This side has caught up: its actions count again from ``frame`` (the frames before it
        not yet scheduled idle too), and every other player hears so."""
        self._send_idle(frame - len(self._local))
        self._idling = False
        self._idled.end(self.episode, frame)
        for seat in self._seat_list:
            seat.time_sync.reset()
        self._tell_hidden(encode_seat_hidden_payload(frame, self.episode, False, False))

    def _tell_hidden(self, payload: bytes) -> None:
        """Send a SEAT_HIDDEN to every other player still in the game."""
        for seat in self._playing:
            self._tell(seat, RollbackKind.SEAT_HIDDEN, payload)

    def _tell(self, seat: Seat, kind: int, payload: bytes) -> None:
        """Send a control message to ``seat`` in order: one a full control window refuses
        waits, with those after it, for a later call."""
        waiting = self._unsent.get(seat.player)
        if waiting is not None:
            waiting.append((kind, payload))
        elif seat.session.parts.control.window_full:
            self._unsent[seat.player] = [(kind, payload)]
        else:
            self._send(seat.session.parts.control.send, kind, payload)

    def _send_unsent(self) -> None:
        """Send what a full window refused, as far as the windows let; forget a player's once it
        left, or its session was replaced."""
        for player, waiting in list(self._unsent.items()):
            seat = self._seats[player]
            while waiting and not seat.left and not seat.session.parts.control.window_full:
                self._send(seat.session.parts.control.send, *waiting[0])
                del waiting[0]
            if not waiting or seat.left:
                del self._unsent[player]

    def _on_seat_hidden(self, seat: Seat, payload: bytes) -> None:
        """Another player's seat idles or pauses the game, or is back."""
        frame, episode, hidden, pause = decode_seat_hidden_payload(payload)
        if pause:
            if hidden:
                self._pauses[seat.player] = (episode, frame)
            else:
                self._pauses.pop(seat.player, None)
            seat.away = HiddenPolicy.PAUSE if hidden else None
        else:
            if hidden:
                seat.idled.start(episode, frame)
            else:
                seat.idled.end(episode, frame)
            seat.away = HiddenPolicy.IDLE if hidden else None
            # Its inputs ran ahead of its game: what the windows hold says nothing of its pace.
            seat.time_sync.reset()
            # A record may have been written before this arrived: correct it (those of earlier
            # episodes stay as they are: a page back from a reload got them whole, in the
            # package, and holds no idle stretches of theirs).
            for record in self.episodes:
                if record["episode"] >= episode:
                    record.pop("idled", None)
                    record.update(self._idled_entry(record["episode"], record["frames"]))
        told = self.on_peer_hidden
        if told is not None and not call_guarded(told, seat.player, hidden, what="on_peer_hidden"):
            self._counts["callback_errors"] += 1

    def _paused(self) -> bool:
        """Whether a pause holds this side at the current frame: the earliest one asked for,
        once reached. A side that simulated past it (on a guess of the input of the player who
        asked, which nobody has) goes back to it."""
        episode, frame = min(self._pauses.values())
        if (self.episode, self._current) < (episode, frame):
            return False
        if episode == self.episode and self._current > frame:
            self._rewind(frame)
        self._stall_over(self._clock())
        self._counts["paused_frames"] += 1
        return True

    def _rewind(self, frame: int) -> None:
        """Go back to the state saved before ``frame``, forgetting what was simulated after."""
        try:
            saved = self._ring.load(frame)
        except LookupError:
            return  # past the prediction window: only a confused peer asks for that
        try:
            self.game.load_state(saved)
        except Exception as error:
            self._game_failed(GameError("load_state", self.episode, frame, True, error))
            return
        self._current = frame
        for seat in self._seats.values():
            del seat.used[frame:]
        for simulated in [f for f in self._checksums if f >= frame]:
            del self._checksums[simulated]
        if self._end_frame is not None and self._end_frame >= frame:
            self._end_frame = None

    def _idled_entry(self, episode: int, frames: int) -> dict[str, Any]:
        """``{"idled": {"<player>": [[first, end], ...]}}`` for the players who idled while
        hidden in any of the episode's first ``frames`` frames, else nothing."""
        idled = {
            str(player): spans
            for player, ranges in self._idled_by_player.items()
            if (spans := ranges.within(episode, frames))
        }
        return {"idled": idled} if idled else {}

    # --- a page that comes back (see .resume) --------------------------------------------------

    def awaits(self, player: int) -> bool:
        """Whether this side waits for ``player`` to come back (a game of two whose game can
        travel, see :mod:`.resume`, and the session with it shut down while the game goes on):
        then give it the player's new session with :meth:`replace_session`, rather than
        starting a new game."""
        seat = self._seats.get(player)
        return (
            seat is not None
            and self._awaits_returns
            and (
                seat.absent_since is not None
                or (seat.session.state is SessionState.SHUT_DOWN and self.state in _GOES_ON)
            )
        )

    def replace_session(self, player: int, session: P2PSession) -> None:
        """``player``, whom this side :meth:`awaits`, is back on ``session`` (its page reloaded,
        and the server paired it again): the layer attaches to it, and answers the page's
        ``RESUME_ASK`` with the game under way."""
        if not isinstance(player, int) or not self.awaits(player):
            raise UsageError(f"this side does not wait for player {player!r} to come back")
        seat = self._seats[player]
        if seat.absent_since is None:
            self._seat_absent(seat, self._clock())  # shut down since this side last looked
        if not isinstance(session, P2PSession) or (session.player_index, session.peer_index) != (
            self._player_index,
            player,
        ):
            raise UsageError(
                f"the session must be player {self._player_index}'s with player {player}"
            )
        self._unsent.pop(player, None)  # what was for the old session
        seat.session = session
        seat.asked = False
        self._playing = self._seat_list
        self._attach(seat)
        session.parts.desync.start_episode(self.episode)

    def _tend_absence(self, now: float) -> None:
        """A game of two, on every frame: notice the other player gone, keep its seat idling
        while it is, answer its page's ask once an episode runs, or give up past the limit."""
        seat = self._seat_list[0]
        since = seat.absent_since
        session = seat.session
        if since is None:
            if self.state not in _GOES_ON:
                return
            if session.state is SessionState.SHUT_DOWN:
                self._seat_absent(seat, now)
                return
            silence = session.parts.watchdog.peer_silence_ms
            if self._player_index > seat.player and self.hidden_policy is _IDLE:
                version = session.parts.inputs.negotiation.peer_version
                if self._absence.tend_cut_off(version, silence, now):
                    # Heard again: the answer says whether anybody idled this seat (_on_resume).
                    self._tell(seat, RollbackKind.RESUME_ASK, b"")
            if silence <= LONG_DROP_MS:
                return
            if self.hidden_policy is _IDLE and self._player_index < seat.player:
                self._seat_absent(seat, now)  # this side decides (see .resume)
            elif silence > self.return_limit_ms:
                self._close(
                    "local",
                    self.episode,
                    self._current,
                    False,
                    f"player {seat.player} was silent for more than "
                    f"{self.return_limit_ms / 1000:g} s",
                )
            return
        if seat.resume_due:
            # Sent once this frame's rollback is done (_advance), or at once from an episode's
            # end, whose state is final.
            if self.state is RollbackState.ENDED:
                self._send_resume(seat, now)
            return
        if (seat.asked and self.state in _ANSWERS) or (
            session.state is not SessionState.SHUT_DOWN
            and self.state in _ANSWERS
            and seat.back_from_drop(now)
        ):
            # Its new page asked, or its page is back after a long drop.
            if self.state is RollbackState.ENDED:
                self._send_resume(seat, now)
            else:
                if self.hidden_policy is _IDLE:
                    # Past every frame it sent before a long drop: what it played there alone,
                    # nobody saw, and its next input is the next frame of its session.
                    held = seat.held_while_absent.newest
                    self._idle_absent(seat, max(self._current + self._input_delay - 1, held))
                # The states of the frames just decided are right once the rollback is done.
                seat.resume_due = True
        elif now - since > self.return_limit_ms:
            self._close(
                "local",
                self.episode,
                self._current,
                False,
                f"player {seat.player} did not come back within {self.return_limit_ms / 1000:g} s",
            )
            self._end_absence(seat, now, "gone")
        elif self.hidden_policy is _IDLE and self.state is RollbackState.RUNNING:
            self._idle_absent(seat, self._current + self._input_delay - 1)

    def _idle_absent(self, seat: Seat, through: int) -> None:
        """The absent seat plays its idle action up to frame ``through``."""
        for frame in range(seat.inputs.confirmed_frame + 1, through + 1):
            self._take_input(seat, frame, self._idle)

    def _seat_absent(self, seat: Seat, now: float) -> None:
        """The other player's session was shut down, or nothing came from it for a long drop:
        its seat idles from the frame after its last input here (this side decides alone), or
        the game stalls, until it comes back."""
        first = seat.go_absent(now, self.episode, self.hidden_policy is _IDLE)
        self._absence.cut_off_since = None  # it is the one away
        if seat.session.state is SessionState.SHUT_DOWN:
            self._playing = []  # nothing to send it until it is back
        self._pauses.pop(seat.player, None)
        self._unsent.pop(seat.player, None)
        if self._ended_at is not None:
            seat.end_for_absent(self.episode, self._ended_at)
        self._absence.begin(seat.player, now, self.episode, first)

    def _send_resume(self, seat: Seat, now: float) -> None:
        """The game under way, to the page that came back (see :mod:`.resume`): the episode
        running, or the one that ended here (the game may be over)."""
        seat.resume_due = False
        ended = self._ended_at
        if ended is None:
            next_frame = self.confirmed_frame + 1
            state = self._encoded_state_before(next_frame)
            if self._end_frame is not None and self._end_frame < next_frame:
                ended = self._end_frame  # confirmed, the episode ends at the next _confirm
        else:
            next_frame, state = ended + 1, self._end_state
        if state is None:
            return
        actions = [seat.inputs.confirmed for seat in self._seat_list]
        actions.insert(self._player_index, bytes(self._local))
        package = ResumePackage(
            self.episode,
            next_frame,
            self._base,
            self._input_delay,
            tuple(actions),
            state,
            self._params,
            {
                player: spans
                for player, ranges in self._idled_by_player.items()
                if (spans := ranges.in_episode(self.episode))
            },
            ended=ended is not None,
            earlier=earlier_records(self.episodes, self.episode),
        )
        data = package.encode()
        for payload in chunk_payloads(next_frame, self.episode, data):
            self._tell(seat, RollbackKind.RESUME, payload)
        if ended is not None:
            self._send(seat.session.send_episode_end, ended, self.episode)
        # Idling, its inputs go on running ahead of its game until its SEAT_HIDDEN says it is
        # back in front (.visibility).
        seat.time_sync.reset()
        self._end_absence(seat, now, "resumed", len(data))
        # What it sent past the frames the package decides (a long drop) counts as sent.
        decided = seat.inputs.confirmed_frame
        for frame, action in seat.held_while_absent.take():
            if frame > decided:
                self._take_input(seat, frame, action)

    def _end_absence(
        self, seat: Seat, now: float, how: str, package_bytes: int | None = None
    ) -> None:
        seat.absent_since = None
        seat.asked = False
        self._absence.end(seat.player, now, how, package_bytes)

    def _on_resume_ask(self, seat: Seat) -> None:
        """A page that came back asks for the game under way: answered once an episode runs,
        if this side waits for that player; with nothing otherwise."""
        if seat.absent_since is not None and self.state is not RollbackState.CLOSED:
            seat.asked = True  # answered at the next frame (_tend_absence) ...
            if self.state is RollbackState.ENDED:
                self._send_resume(seat, self._clock())  # ... or now: the game may be over
        else:
            self._tell(seat, RollbackKind.RESUME, b"")

    def _on_resume(self, seat: Seat, payload: bytes) -> None:
        """The answer to this page's ask: nothing (start the first episode as any page would),
        or a chunk of the game under way."""
        if self.state is not RollbackState.RESUMING and not (
            self.state in _GOES_ON and seat.player < self._player_index
        ):
            # (A page cut off for a long drop takes the game from the lower index, see .resume.)
            self._counts["stale_resumes"] += 1
            return
        now = self._clock()
        absence = self._absence
        if self.state is not RollbackState.RESUMING and not payload:
            absence.cut_off_since = None  # nobody idled this seat: play on
            return
        if not payload:
            self.state = RollbackState.RUNNING
            for player, kept in absence.before_resume.items():
                for frame, action in kept:
                    self._on_peer_input(self._seats[player], frame, action)
            absence.before_resume.clear()
            absence.started_fresh(now)
            return
        whole = absence.chunks.add(payload)
        if whole is not None:
            self._load_resume(ResumePackage.decode(whole[2]), now)

    def _load_resume(self, package: ResumePackage, now: float) -> None:
        """Take the game under way from ``package`` and play on from its next frame."""
        if len(package.actions) != self._player_count:
            raise DecodeError(f"a resume package for {len(package.actions)} players")
        if package.input_delay > MAX_INPUT_DELAY:
            raise DecodeError(f"a resume package's input delay {package.input_delay}")
        episode, next_frame = package.episode, package.next_frame
        try:
            state = self.game.decode_state(package.state)  # type: ignore[attr-defined]
            self.game.load_state(state)
        except Exception as error:
            self._game_failed(GameError("decode_state", episode, next_frame - 1, False, error))
            return
        held: dict[int, dict[int, int]] = {}  # player -> transport frame -> action
        if self.state is not RollbackState.RESUMING:
            # Cut off for a long drop: what it played since is replaced, what it holds of the
            # other's inputs kept (by transport frame), its records of earlier episodes kept.
            for seat in self._seat_list:
                held[seat.player] = {
                    self._base + frame: action for frame, action in seat.inputs.held().items()
                }
            self.episodes = [r for r in self.episodes if r["episode"] < episode]
        else:
            self.episodes = list(package.earlier)
        self.episode = episode
        self._episodes_before = episode - len(self.episodes)
        old_base, self._base = self._base, package.base
        self._input_delay = package.input_delay
        self._params = package.params
        own = bytearray(package.actions[self._player_index])
        if self.state is not RollbackState.RESUMING:
            # What this side sent past the package's frames the other took as sent (see
            # _send_resume): they stay this side's actions.
            for frame, action in enumerate(self._local):
                if old_base + frame - package.base == len(own):
                    own.append(action)
        self._start_episode(bytes(own))
        self._current = next_frame
        self._hashed_through = next_frame - 1
        if package.ended:
            # The episode ended there: the next _confirm finishes it (its record, its end sent).
            self._end_frame = next_frame - 1
            self._hashed_through = next_frame - 2
        self._last_action = own[-1] if own else self._idle
        for seat in self._seat_list:
            actions = package.actions[seat.player]
            early = dict(enumerate(actions))
            kept = self._absence.before_resume.pop(seat.player, None)
            arrived = {**dict(kept or ()), **held.get(seat.player, {})}
            for frame, action in arrived.items():
                early.setdefault(frame - package.base, action)
            seat.start_episode(episode, {f: a for f, a in early.items() if f >= 0})
            seat.used = bytearray(actions[:next_frame])
            seat.session.parts.desync.start_episode(episode)
        if any(player not in self._idled_by_player for player in package.idled):
            raise DecodeError(f"idle stretches of players {sorted(package.idled)}")
        for player, ranges in self._idled_by_player.items():
            ranges.set_episode(episode, package.idled.get(player, []))
        if self._idled.open:
            # It idled while this page was away: it catches up as a page back from hidden does.
            self._idling = True
            self._caught_up = False
        self.state = RollbackState.RUNNING
        self._absence.loaded(episode, next_frame, now, len(package.state))

    # --- what the sessions deliver ------------------------------------------------------------

    def _on_peer_input(self, seat: Seat, transport_frame: int, action: int) -> None:
        if self.state is RollbackState.RESUMING:
            if not self._absence.keep_before_resume(seat.player, transport_frame, action):
                self._counts["stale_inputs"] += 1
            return
        frame = transport_frame - self._base
        if frame < 0:
            self._counts["stale_inputs"] += 1
            return
        if seat.left:
            return  # what it holds was reported; the others hand on the rest
        if seat.absent_since is not None:
            # Sent before a long drop (its page went on): those past the frames this side
            # decides are taken once it has (_send_resume).
            if not seat.held_while_absent.keep(frame, action):
                self._counts["stale_inputs"] += 1
            now = self._clock()
            if self.state is RollbackState.ENDED and seat.back_from_drop(now):
                self._send_resume(seat, now)  # the game may be over: no frame comes
            return
        if not self._take_input(seat, frame, action):
            self._counts["duplicate_inputs"] += 1
        elif self._hidden_since is not None or self._idling:
            # A hidden page's handlers run at once where its timers wait: its idle actions keep
            # ahead from here. Sending from inside the session's packet handler is safe: the
            # input path only reads the acknowledgement as it stood before this packet (an
            # older one, which the next packet brings up to date).
            self._tend_hidden()

    def _take_input(self, seat: Seat, frame: int, action: int) -> bool:
        """Take ``seat``'s real ``action`` for ``frame``; ``False`` if it was already here."""
        idle_from = seat.idle_from
        if idle_from is not None and frame >= idle_from:
            return True  # it plays its idle action there, whatever arrives
        if not seat.inputs.add(frame, action):
            return False
        if frame > seat.newest:
            seat.newest = frame
        used = seat.used
        if frame < len(used) and used[frame] != action:
            self._note_wrong(frame)
        return True

    def _note_wrong(self, frame: int) -> None:
        wrong = self._first_wrong
        self._first_wrong = frame if wrong is None else min(wrong, frame)

    def _on_control(self, seat: Seat, kind: int, payload: bytes) -> None:
        try:
            if kind == ControlKind.TIME_SYNC:
                advantage, delay = decode_time_sync_payload(payload)
                if seat.away is not _IDLE:  # one sent before it idled: stale
                    seat.time_sync.on_report(advantage, delay)
                self._counts["time_sync_received"] += 1
            elif kind == RollbackKind.STATE_CHUNK:
                self._on_state_chunk(payload)
            elif kind == RollbackKind.INPUT_DELAY:
                seat.delay_wanted = decode_input_delay_payload(payload)
            elif kind == RollbackKind.ROLLBACK_END:
                frame, episode, resimulating, reason = decode_rollback_end_payload(payload)
                if self.state is not RollbackState.CLOSED:
                    self._close("peer", episode, frame, resimulating, reason)
            elif kind == RollbackKind.SEAT_LEFT:
                self._on_seat_report(seat, payload)
            elif kind == RollbackKind.SEAT_HIDDEN:
                self._on_seat_hidden(seat, payload)
            elif kind == RollbackKind.RESUME_ASK:
                self._on_resume_ask(seat)
            elif kind == RollbackKind.RESUME:
                self._on_resume(seat, payload)
            elif kind == ControlKind.EPISODE_END:
                frame, episode = decode_episode_end_payload(payload)
                seat.ends[episode] = frame
            else:
                seat.ready.add(decode_episode_ready_payload(payload))
        except ValueError:
            self._counts["malformed_control"] += 1
        if self._hidden_since is not None or self._idling:
            self._tend_hidden()  # another prompt handler (see _on_peer_input)

    def _on_session_desync(self, desync: Desync) -> None:
        """A link's first desync: the lowest index still in the game sends its state (with
        ``repair_desync``); the game and ``on_desync`` hear the first of any link."""
        if (
            self.repair_desync
            and desync.episode == self.episode
            and all(self._player_index < seat.player for seat in self._playing)
        ):
            self._send_state = True
        if self.first_desync is not None:
            return
        self.first_desync = desync
        told = getattr(self.game, "on_desync", None)
        if callable(told) and not call_guarded(told, desync, what="the game's on_desync"):
            self._counts["callback_errors"] += 1
        if self.on_desync is not None and not call_guarded(
            self.on_desync, desync, what="on_desync"
        ):
            self._counts["callback_errors"] += 1


def _room_of(session: P2PSession | Mapping[int, P2PSession]) -> dict[int, P2PSession]:
    """The session with each other player, checked: one player index, each session's peer the
    player it is filed under, every index from 0 to N - 1."""
    if isinstance(session, Mapping):
        sessions = dict(session)
    elif isinstance(getattr(session, "peer_index", None), int):
        sessions = {session.peer_index: session}
    else:
        raise UsageError(
            "session must be a P2PSession or a mapping from each other player's index to the "
            f"session with that player, got {type(session).__name__}"
        )
    if not sessions:
        raise UsageError("a rollback session needs at least one other player's session")
    own = {link.player_index for link in sessions.values()}
    if len(own) != 1:
        raise UsageError(f"every session must have the same player_index, got {sorted(own)}")
    for peer, link in sessions.items():
        if link.peer_index != peer:
            raise UsageError(
                f"the session under {peer!r} is with player {link.peer_index} (its peer_index)"
            )
    players = sorted([*own, *sessions])
    if not MIN_PLAYERS <= len(players) <= MAX_PLAYERS or players != list(range(len(players))):
        raise UsageError(
            f"the players must be 0 to N - 1 with N from {MIN_PLAYERS} to {MAX_PLAYERS}, "
            f"got {players}"
        )
    return sessions


def _rtt_ms(session: P2PSession) -> float:
    """The link's round trip: the DataChannel's, else the relay's, else 0 (not measured)."""
    parts = session.parts
    return parts.rtt.srtt_ms or parts.relay_rtt.srtt_ms or 0.0


def _digest(checksum: bytes) -> bytes:
    """A game's checksum as it travels: as it is up to 32 bytes, else its 16-byte BLAKE2b."""
    checksum = bytes(checksum)
    if 0 < len(checksum) <= MAX_HASH_SIZE:
        return checksum
    return hashlib.blake2b(checksum, digest_size=16).digest()
