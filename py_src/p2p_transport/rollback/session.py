"""Rollback netcode on a :class:`~p2p_transport.session.P2PSession`: the game runs every frame
on time, predicting the peer's input until it arrives, and re-simulates when a prediction was
wrong.

Each call to :meth:`RollbackSession.advance_frame` does, in order:

1. roll back if an input that arrived since contradicts what a simulated frame assumed: load
   the state saved before the earliest wrong frame and re-simulate up to the present;
2. send the state hashes of frames newly confirmed (both inputs known, simulated with them) and
   end the episode if its last frame is now confirmed;
3. measure the frame advantage and, a few times a second, report it to the peer;
4. stall (simulate nothing, return ``False``) if the next frame would be more than
   ``max_prediction`` frames past the peer's last confirmed input;
5. schedule the local action for ``current_frame + input_delay``, send it, and simulate one frame.

When the game's own code raises in any of these, the frame state stays as it was before the
frame (or the rollback) that failed, and ``on_game_error`` decides: go on (the frame or the
rollback is tried again on the next call), or end the session for both sides, the reason in
both sides' records.

With ``repair_desync``, a desync is repaired: the side with the lower player index sends its
state after its newest confirmed frame (in chunks over the reliable control path, with a
digest), the other loads it once it has confirmed that frame too, re-simulates its predicted
frames on it, and both go on; each side's record lists the transfer.

With ``delay_range``, the layer chooses the input delay itself (see :mod:`.frame_budget`): each
side works out the delay the other must use so that its own rollbacks fit in a frame, both send
it, and both use the larger, changed only between frames.

Frame numbers on the wire never restart: episode ``n`` uses the transport frames from its base
on, and the next base lies past every frame either side can have sent in episode ``n``. An input
from an old episode that arrives late therefore never lands in a new one.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, Final

from p2p_transport._checks import check_finite, check_int
from p2p_transport._guard import call_guarded
from p2p_transport.errors import InvalidStateError, P2PTransportError, UsageError
from p2p_transport.protocol.desync import Desync
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
from p2p_transport.rollback.peer_inputs import PeerInputs
from p2p_transport.rollback.state_ring import StateRing
from p2p_transport.rollback.time_sync import REPORT_INTERVAL_MS, TimeSync
from p2p_transport.session.delivery import LayerHandlers
from p2p_transport.session.session import P2PSession
from p2p_transport.wire.control_payloads import (
    MAX_CHUNK_DATA,
    MAX_HASH_SIZE,
    STATE_DIGEST_SIZE,
    RollbackKind,
    decode_episode_end_payload,
    decode_episode_ready_payload,
    decode_input_delay_payload,
    decode_rollback_end_payload,
    decode_state_chunk_payload,
    decode_time_sync_payload,
    encode_input_delay_payload,
    encode_rollback_end_payload,
    encode_state_chunk_payload,
    encode_time_sync_payload,
)
from p2p_transport.wire.messages import ControlKind

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
    )
)


def episode_span(last_frames: Iterable[int]) -> int:
    """How many wire frames an episode takes, given each player's last frame of it: past every
    frame either side can have sent, its last frame plus the input delay. The next episode's
    frame 0 is that many frames on (the server's input record is split the same way)."""
    return max(last_frames) + 1 + MAX_INPUT_DELAY


class RollbackState(StrEnum):
    #: Frames advance.
    RUNNING = "running"
    #: This episode's last frame is confirmed; the game resets and calls ``start_next_episode``.
    ENDED = "ended"
    #: ``start_next_episode`` was called; waiting for the peer's end and readiness.
    WAITING = "waiting"
    #: A game's code raised (this side's or the peer's) and the session ended: see
    #: ``RollbackSession.end_reason``. Nothing advances any more.
    CLOSED = "closed"


class RollbackSession:
    """Two players' game over ``session``, simulated with input delay, prediction and rollback.

    ``session`` is a :class:`P2PSession` (in the browser, ``BrowserTransport.session`` once
    paired) whose players are 0 and 1. The rollback layer attaches to it
    (:meth:`P2PSession.attach_layer`) and consumes the peer's inputs, whatever ``on_input`` the
    session was built with, and the control messages of the kinds it uses (``EPISODE_END``,
    ``EPISODE_READY``, ``TIME_SYNC``); other control messages, and desyncs after this layer saw
    them, still reach the session's own callbacks.

    ``episode_frames`` ends every episode after that many frames; a game's ``done()`` can end it
    sooner. ``on_desync(desync)`` hears the first confirmed frame whose state hashes differ
    (:class:`~p2p_transport.protocol.desync.Desync`: episode, frame, both hashes).

    ``on_game_error(error)`` hears a :class:`~p2p_transport.rollback.errors.GameError` (the
    game's own code raised: which method, the frame, whether it was a re-simulation); returning
    true goes on, anything else (or no handler) ends the session for both sides.

    ``repair_desync=True`` repairs a desync by a state transfer (see the module's docstring);
    the game then has ``encode_state(state) -> bytes`` and ``decode_state(data) -> state``
    (plain data: never unpickle what a peer sent).

    ``delay_range=(low, high)`` lets the layer choose the input delay in ``low..high`` from the
    measured RTT and the game's measured step cost (:mod:`.frame_budget`); ``input_delay`` is
    the delay until it has measured. Setting :attr:`input_delay` fixes it again. ``timer`` is
    the CPU clock the step costs are measured with (seconds; ``time.perf_counter``).
    """

    # The episode's state, set by _start_episode.
    _peer: PeerInputs
    _peer_newest: int
    _current: int
    _local: bytearray  # this side's scheduled actions, by frame
    _last_action: int
    _used: bytearray  # the peer action each simulated frame used (real or predicted)
    _checksums: dict[int, bytes]  # hashes of simulated frames not yet confirmed
    _end_frame: int | None  # the simulated frame that ends the episode, once simulated
    _hashed_through: int
    _first_wrong: int | None  # the earliest simulated frame an arrived input contradicts
    _ended_at: int | None  # the episode's last frame, once it ended on this side

    def __init__(
        self,
        game: Game,
        session: P2PSession,
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
    ) -> None:
        check_game(game)
        check_int("max_prediction", max_prediction, MAX_PREDICTION)
        check_finite("fps", fps)
        if not fps > 0:
            raise UsageError(f"fps must be positive, got {fps}")
        check_int("check_interval", check_interval, minimum=1)
        if episode_frames is not None:
            check_int("episode_frames", episode_frames, minimum=1)
        players = {session.player_index, session.peer_index}
        if players != {0, 1}:
            raise UsageError(f"a rollback session is for players 0 and 1, got {sorted(players)}")
        self.game = game
        self.session = session
        self.max_prediction = max_prediction
        self.fps = float(fps)
        self.check_interval = check_interval
        self.episode_frames = episode_frames
        self.on_desync = on_desync
        self.on_game_error = on_game_error
        self.input_delay = input_delay  # checked by the setter
        self._idle = idle_action(game)
        predict = getattr(game, "predict", None)
        self._predict: Callable[[int, int, int], object] | None = (
            predict if callable(predict) else None
        )
        self._peer_index = session.peer_index
        if repair_desync and not all(
            callable(getattr(game, name, None)) for name in ("encode_state", "decode_state")
        ):
            raise UsageError("repair_desync needs the game's encode_state and decode_state")
        self.repair_desync = repair_desync
        self._send_state = False
        self._chunks: dict[tuple[int, int, bytes], dict[int, bytes]] = {}
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
        self._peer_delay_wanted: int | None = None
        self._delay_changed_ms: float | None = None
        self._delay_sent_ms: float | None = None
        #: Why the session ended (``state`` CLOSED): who ("local" or "peer"), the episode, the
        #: frame, whether it was a re-simulation, the game's exception. ``None`` while it runs.
        self.end_reason: dict[str, Any] | None = None
        self.last_game_error: GameError | None = None
        self._clock = session.parts.clock
        self._local_first = session.player_index == 0
        self._time_sync = TimeSync(fps)
        self._ring = StateRing(max_prediction + 2)
        session.attach_layer(
            LayerHandlers(
                on_input=self._on_peer_input,
                control_kinds=_OWN_KINDS,
                on_control=self._on_control,
                on_desync=self._on_session_desync,
            )
        )
        self.state = RollbackState.RUNNING
        self.episode = 0
        session.parts.desync.start_episode(0)
        #: One record per finished episode: its inputs, length and final checksum.
        self.episodes: list[dict[str, Any]] = []
        self._base = 0  # the transport frame of this episode's frame 0
        self._peer_ends: dict[int, int] = {}
        self._peer_ready: set[int] = set()
        self._counts: Counter[str] = Counter()
        self._depths: Counter[int] = Counter()
        self._stall_ms = 0.0
        self._stall_started: float | None = None
        self._frames_ahead_max = 0.0
        self._frames_ahead_series: deque[tuple[float, float]] = deque(
            maxlen=MAX_FRAMES_AHEAD_SAMPLES
        )
        self._last_report_ms: float | None = None
        self.first_desync: Desync | None = None
        self._params = episode_params(game)
        self._next_params: dict[str, Any] | None = None
        self._start_episode(PeerInputs(), -1)

    # --- what the game calls ------------------------------------------------------------------

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
    def current_frame(self) -> int:
        """The next frame to simulate (frames simulated so far in this episode)."""
        return self._current

    @property
    def confirmed_frame(self) -> int:
        """The last frame simulated with both players' real inputs (-1: none yet)."""
        return min(self._peer.confirmed_frame, self._current - 1)

    @property
    def frames_ahead(self) -> float:
        """How many frames this side runs ahead of the peer (negative: behind)."""
        return self._time_sync.frames_ahead

    @property
    def tick_stretch(self) -> float:
        """By how much to lengthen the game loop's next tick (1.0: not at all): a side that
        runs ahead slows down gradually instead of stalling."""
        return self._time_sync.tick_stretch

    @property
    def frame_ms(self) -> float:
        """The game loop's next tick in milliseconds: ``1000 / fps`` times :attr:`tick_stretch`."""
        return 1000.0 / self.fps * self._time_sync.tick_stretch

    @property
    def episode_over(self) -> bool:
        """The episode's last frame is confirmed on this side: reset the game, then call
        :meth:`start_next_episode`."""
        return self.state is RollbackState.ENDED

    def advance_frame(self, local_action: int) -> bool:
        """Simulate one frame with ``local_action`` (0..255, any integer type); ``False`` if
        nothing was simulated (the peer's inputs are too far behind, the episode is over, the
        game raised, the session ended), and then the action is not used: pass the current one
        on the next call."""
        action = as_action("local_action", local_action)
        started = self._timer()
        try:
            return self._advance(action)
        finally:
            self._budget.frame_took((self._timer() - started) * 1000.0)

    def _advance(self, local_action: int) -> bool:
        now = self._clock()
        if self.state is RollbackState.WAITING:
            self._try_start()
        if self.state is not RollbackState.RUNNING:
            return False
        if self._received_state is not None:
            self._load_received_state()
        if not self._correct():
            return False
        self._confirm()
        if self.state is not RollbackState.RUNNING:
            return False
        if self._send_state:
            self._send_confirmed_state()
        self._measure(now)
        if self._end_frame is not None:
            self._counts["end_wait_frames"] += 1
            return False
        if self._current - self._peer.confirmed_frame > self.max_prediction:
            self._counts["stall_frames"] += 1
            if self._stall_started is None:
                self._stall_started = now
            return False
        if self._stall_started is not None:
            self._stall_ms += now - self._stall_started
            self._stall_started = None
        self._choose_delay(now)
        self._schedule(local_action)
        frame = self._current
        try:
            self._simulate(frame, first_time=True)
        except GameError as error:
            return self._new_frame_failed(error)
        self._current = frame + 1
        return True

    def start_next_episode(self) -> None:
        """Start the next episode once the peer is ready too: call it after resetting the game
        (both sides' games must start the episode in the same state). Until both are ready,
        :meth:`advance_frame` returns ``False``."""
        if self.state is RollbackState.CLOSED:
            raise InvalidStateError("the rollback session ended (see end_reason)")
        if self.state is RollbackState.WAITING:
            raise InvalidStateError(f"episode {self.episode + 1} already waits for the peer")
        if self.state is RollbackState.RUNNING:
            raise InvalidStateError(f"episode {self.episode} is not over yet (see episode_over)")
        self.state = RollbackState.WAITING
        self._next_params = episode_params(self.game)
        self._send(self.session.send_episode_ready, self.episode + 1)
        self._try_start()

    def stats(self) -> dict[str, Any]:
        """Counters and figures as a plain, JSON-serialisable dict; reading changes nothing."""
        counts = self._counts
        stall_ms = self._stall_ms
        if self._stall_started is not None:
            stall_ms += self._clock() - self._stall_started
        desync = self.first_desync
        return {
            "state": self.state.value,
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
            "desyncs": self.session.parts.desync.counters.mismatches,
            "first_desync_episode": None if desync is None else desync.episode,
            "first_desync_frame": None if desync is None else desync.frame,
            "hashes_compared": self.session.parts.desync.counters.matches
            + self.session.parts.desync.counters.mismatches,
            "episode_end_mismatches": counts["episode_end_mismatches"],
            "inputs_dropped_by_delay": counts["inputs_dropped_by_delay"],
            "stale_inputs": counts["stale_inputs"],
            "duplicate_inputs": counts["duplicate_inputs"],
            "time_sync_sent": counts["time_sync_sent"],
            "time_sync_received": counts["time_sync_received"],
            "malformed_control": counts["malformed_control"],
            "control_send_failures": counts["control_send_failures"],
            "callback_errors": counts["callback_errors"],
            "episodes_finished": len(self.episodes),
            **self._budget.stats(),
            "state_transfers": len(self.state_transfers),
            "delay_changes": counts["delay_changes"],
            "game_errors": counts["game_errors"],
            "ended_by": None if self.end_reason is None else self.end_reason["by"],
        }

    def telemetry(self) -> dict[str, Any]:
        """What the experiment keeps: :meth:`stats`; ``frames_ahead`` over time (``[ms,
        frames]`` on the session's clock, one per report); the first desync with both
        checksums; each finished episode's record (``inputs``: ``[player 0, player 1]`` per
        frame, which :func:`~p2p_transport.rollback.replay.replay` re-simulates); and the
        confirmed frames of the episode under way, so a session cut short keeps them too."""
        desync = self.first_desync
        under_way: dict[str, Any] | None = None
        if self.state in (RollbackState.RUNNING, RollbackState.CLOSED) and self._ended_at is None:
            confirmed = self.confirmed_frame + 1
            under_way = {
                "episode": self.episode,
                "frames": confirmed,
                **self._params_entry(),
                "inputs": self._inputs_of(confirmed),
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
        }

    def _params_entry(self) -> dict[str, Any]:
        """``{"params": ...}`` for a game that declares its episode parameters, else nothing."""
        return {} if self._params is None else {"params": self._params}

    def _inputs_of(self, frames: int) -> list[list[int]]:
        """Both players' actions of the episode's first ``frames`` frames, by player index."""
        local = self._local[:frames]
        peer = self._peer.confirmed[:frames]
        first, second = (local, peer) if self._local_first else (peer, local)
        return [[a, b] for a, b in zip(first, second, strict=True)]

    # --- the frame ----------------------------------------------------------------------------

    def _schedule(self, action: int) -> None:
        """Schedule ``action`` for ``current + input_delay`` and send it; frames the delay skips
        (it grew) repeat the last action, and a frame already scheduled (it shrank) keeps its
        action, this one being dropped."""
        target = self._current + self._input_delay
        local = self._local
        if target < len(local):
            self._counts["inputs_dropped_by_delay"] += 1
            return
        while len(local) < target:
            self._send_next_action(self._last_action)
        self._send_next_action(action)
        self._last_action = action

    def _send_next_action(self, action: int) -> None:
        """Schedule ``action`` for the first frame not yet scheduled, and send it."""
        self._local.append(action)
        self.session.step(self._base + len(self._local) - 1, action)

    def _simulate(self, frame: int, *, first_time: bool) -> None:
        """Simulate ``frame`` (the game's calls raise as :class:`GameError`, the layer's own
        bookkeeping untouched: it is done after every call of the game's succeeded)."""
        game = self.game
        phase = "save_state"
        try:
            self._ring.save(frame, game.save_state())
            peer = self._peer.get(frame)
            predicted = peer is None
            if peer is None:
                phase = "predict"
                peer = self._prediction(frame)
            local = self._local[frame]
            inputs = (local, peer) if self._local_first else (peer, local)
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
            self._used.append(peer)
            self._counts["frames_advanced"] += 1
            if predicted:
                self._counts["frames_predicted"] += 1
        else:
            self._used[frame] = peer
            self._counts["frames_resimulated"] += 1
        if ends:
            self._end_frame = frame
        if checksum is not None:
            self._checksums[frame] = checksum

    def _prediction(self, frame: int) -> int:
        last = self._peer.prediction(self._idle)
        if self._predict is None:
            return last
        return as_action("predict()", self._predict(self._peer_index, frame, last))

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
        del self._used[self._current :]
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
        self._send(self.session.parts.control.send, RollbackKind.ROLLBACK_END, payload)

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
        for frame in sorted(f for f in self._checksums if f <= confirmed):
            self._send(self.session.parts.desync.add_local_hash, frame, self._checksums.pop(frame))
        self._hashed_through = confirmed
        end = self._end_frame
        if end is not None and confirmed >= end:
            self._finish_episode(end)

    def _finish_episode(self, end: int) -> None:
        self.state = RollbackState.ENDED
        self._ended_at = end
        self.episodes.append(
            {
                "episode": self.episode,
                **self._params_entry(),
                "frames": end + 1,
                "final_checksum": _digest(self.game.checksum()).hex(),
                "inputs": self._inputs_of(end + 1),
            }
        )
        self._send(self.session.send_episode_end, end, self.episode)

    def _try_start(self) -> None:
        """Start the next episode if both sides have ended this one and are ready."""
        episode = self.episode
        peer_end = self._peer_ends.get(episode)
        if peer_end is None or episode + 1 not in self._peer_ready:
            return
        end = self.episodes[-1]["frames"] - 1
        if peer_end != end:
            self._counts["episode_end_mismatches"] += 1
            logger.warning(
                "episode %d ended at frame %d here, %d at the peer", episode, end, peer_end
            )
        span = episode_span((end, peer_end))
        while len(self._local) < span:
            self._send_next_action(self._idle)
        early = self._peer.take_from(span)
        self._base += span
        self.episode = episode + 1
        self.session.parts.desync.start_episode(self.episode)
        peer = PeerInputs()
        for frame in sorted(early):
            peer.add(frame, early[frame])
        self._params = self._next_params
        self._start_episode(peer, max(early, default=-1))
        self.state = RollbackState.RUNNING

    def _start_episode(self, peer: PeerInputs, peer_newest: int) -> None:
        self._peer = peer
        self._peer_newest = peer_newest
        self._current = 0
        self._local = bytearray()
        self._last_action = self._idle
        self._ended_at = None
        self._used = bytearray()
        self._ring.clear()
        self._checksums = {}
        self._end_frame = None
        self._hashed_through = -1
        self._first_wrong = None
        self._time_sync.reset()
        self._send_state = False
        self._chunks = {}
        self._received_state = None

    def _send_confirmed_state(self) -> None:
        """Send the state after the newest confirmed frame (the state saved before the next
        one, or the game's own if that one is not simulated yet), in chunks."""
        frame = self.confirmed_frame
        if frame < 0:
            return
        self._send_state = False
        game: Any = self.game
        try:
            state = game.save_state() if frame + 1 == self._current else self._ring.load(frame + 1)
            data = bytes(game.encode_state(state))
        except Exception as error:
            self._game_failed(GameError("encode_state", self.episode, frame, False, error))
            return
        digest = hashlib.blake2b(data, digest_size=STATE_DIGEST_SIZE).digest()
        pieces = [data[i : i + MAX_CHUNK_DATA] for i in range(0, len(data), MAX_CHUNK_DATA)]
        pieces = pieces or [b""]
        for index, piece in enumerate(pieces):
            payload = encode_state_chunk_payload(
                frame, self.episode, index, len(pieces), digest, piece
            )
            self._send(self.session.parts.control.send, RollbackKind.STATE_CHUNK, payload)
        self.state_transfers.append(
            {"role": "sent", "episode": self.episode, "frame": frame, "bytes": len(data)}
        )

    def _on_state_chunk(self, payload: bytes) -> None:
        frame, episode, index, count, digest, data = decode_state_chunk_payload(payload)
        if episode != self.episode or not self.repair_desync:
            self._counts["stale_state_chunks"] += 1
            return
        key = (frame, count, digest)
        pieces = self._chunks.setdefault(key, {})
        pieces[index] = data
        if len(pieces) < count:
            return
        del self._chunks[key]
        whole = b"".join(pieces[i] for i in range(count))
        if hashlib.blake2b(whole, digest_size=STATE_DIGEST_SIZE).digest() != digest:
            self._counts["state_transfers_corrupt"] += 1
            return
        self._received_state = (episode, frame, whole)

    def _load_received_state(self) -> None:
        """Take the peer's state after frame F once this side has confirmed F (its frames up
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
        """With ``delay_range``: work out the delay this side needs the peer to use, tell the
        peer, and use the larger of both sides' figures. It grows at once, and the peer hears
        of it at once (rollbacks overrun until it does); it shrinks a frame at a time,
        DELAY_SHRINK_MS apart, and a smaller figure is sent at most every REPORT_INTERVAL_MS,
        so a round trip's jitter does not make it flap."""
        bounds = self._delay_range
        if bounds is None:
            return
        parts = self.session.parts
        rtt = parts.rtt.srtt_ms or parts.relay_rtt.srtt_ms or 0.0
        wanted = self._budget.wanted_delay(rtt, *bounds)
        sent, sent_ms = self._delay_wanted_sent, self._delay_sent_ms
        if wanted != sent and (
            sent is None or wanted > sent or now - (sent_ms or 0.0) >= REPORT_INTERVAL_MS
        ):
            payload = encode_input_delay_payload(wanted)
            if self._send(parts.control.send, RollbackKind.INPUT_DELAY, payload):
                self._delay_wanted_sent, self._delay_sent_ms = wanted, now
        target = max(wanted, self._peer_delay_wanted or bounds[0])
        delay, changed = self._input_delay, self._delay_changed_ms
        if target > delay or (
            target < delay and (changed is None or now - changed >= DELAY_SHRINK_MS)
        ):
            self._input_delay = target if target > delay else delay - 1
            self._counts["delay_changes"] += 1
            self._delay_changed_ms = now

    def _measure(self, now: float) -> None:
        """Sample the frame advantage; report it to the peer every REPORT_INTERVAL_MS."""
        if self._peer_newest < 0:
            return
        session = self.session
        rtt = session.parts.rtt.srtt_ms or session.parts.relay_rtt.srtt_ms or 0.0
        advantage = self._time_sync.sample(self._current, self._peer_newest, rtt)
        if self._last_report_ms is not None and now - self._last_report_ms < REPORT_INTERVAL_MS:
            return
        self._last_report_ms = now
        payload = encode_time_sync_payload(advantage, self._input_delay)
        if self._send(session.send_time_sync, payload):
            self._counts["time_sync_sent"] += 1
        ahead = self._time_sync.frames_ahead
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

    # --- what the session delivers ------------------------------------------------------------

    def _on_peer_input(self, transport_frame: int, action: int) -> None:
        frame = transport_frame - self._base
        if frame < 0:
            self._counts["stale_inputs"] += 1
            return
        if not self._peer.add(frame, action):
            self._counts["duplicate_inputs"] += 1
            return
        if frame > self._peer_newest:
            self._peer_newest = frame
        if frame < len(self._used) and self._used[frame] != action:
            wrong = self._first_wrong
            self._first_wrong = frame if wrong is None else min(wrong, frame)

    def _on_control(self, kind: int, payload: bytes) -> None:
        try:
            if kind == ControlKind.TIME_SYNC:
                self._time_sync.on_report(*decode_time_sync_payload(payload))
                self._counts["time_sync_received"] += 1
            elif kind == RollbackKind.STATE_CHUNK:
                self._on_state_chunk(payload)
            elif kind == RollbackKind.INPUT_DELAY:
                self._peer_delay_wanted = decode_input_delay_payload(payload)
            elif kind == RollbackKind.ROLLBACK_END:
                frame, episode, resimulating, reason = decode_rollback_end_payload(payload)
                if self.state is not RollbackState.CLOSED:
                    self._close("peer", episode, frame, resimulating, reason)
            elif kind == ControlKind.EPISODE_END:
                frame, episode = decode_episode_end_payload(payload)
                self._peer_ends[episode] = frame
            else:
                self._peer_ready.add(decode_episode_ready_payload(payload))
        except ValueError:
            self._counts["malformed_control"] += 1

    def _on_session_desync(self, desync: Desync) -> None:
        self.first_desync = desync
        if (
            self.repair_desync
            and desync.episode == self.episode
            and self.session.player_index < self._peer_index
        ):
            self._send_state = True
        told = getattr(self.game, "on_desync", None)
        if callable(told) and not call_guarded(told, desync, what="the game's on_desync"):
            self._counts["callback_errors"] += 1
        if self.on_desync is not None and not call_guarded(
            self.on_desync, desync, what="on_desync"
        ):
            self._counts["callback_errors"] += 1


def _digest(checksum: bytes) -> bytes:
    """A game's checksum as it travels: as it is up to 32 bytes, else its 16-byte BLAKE2b."""
    checksum = bytes(checksum)
    if 0 < len(checksum) <= MAX_HASH_SIZE:
        return checksum
    return hashlib.blake2b(checksum, digest_size=16).digest()
