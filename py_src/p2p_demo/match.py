"""A match of Pong between two tabs (or team Pong among 3 to 8): the game, the rollback layer over
the tab's session (or its session with each peer), and a game loop that keeps time the way the
rollback layer recommends.

Sans-IO like the transport: the clock and the timers are injected, so the CPython tests run two
matches over a simulated link and the page runs the same code on the browser's timers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from p2p_demo.pong import PongBot, PongGame
from p2p_transport.protocol.desync import Desync
from p2p_transport.rollback import RollbackSession
from p2p_transport.rollback.spectator import SpectatorSession
from p2p_transport.rollback.visibility import CATCH_UP_FRAMES_PER_TICK, CATCH_UP_THRESHOLD
from p2p_transport.session import P2PSession
from p2p_transport.timing import Clock, Scheduler

__all__ = ["LOOP_WAKE_MS", "FrameLoop", "PongMatch", "SpectatorMatch", "advance_tick"]

#: How often the loop wakes to see whether a frame is due: a quarter of a 60 Hz frame, so a tick
#: that the rollback layer lengthens by a few percent is honoured within 4 ms (browsers clamp
#: repeating timers to 4 ms anyway).
LOOP_WAKE_MS: Final = 4.0
#: A tab that was held up (a long frame, a busy machine) catches up at most this many frames per
#: wake; further behind than MAX_LAG_FRAMES, it gives up the lost time instead of racing.
MAX_TICKS_PER_WAKE: Final = 2
MAX_LAG_FRAMES: Final = 4


def advance_tick(rollback: RollbackSession, action: int) -> int:
    """One tick's frames: one, and more while the rollback layer says this side trails the others
    (back from a hidden tab, see :mod:`p2p_transport.rollback.visibility`), at most
    CATCH_UP_FRAMES_PER_TICK in all. Returns how many it simulated."""
    frames = 0
    while rollback.advance_frame(action):
        frames += 1
        if frames == CATCH_UP_FRAMES_PER_TICK or rollback.frames_behind <= CATCH_UP_THRESHOLD:
            break
    return frames


class FrameLoop:
    """A match's game loop on the page's timers: it wakes every :data:`LOOP_WAKE_MS` and ticks
    once a frame is due, :attr:`frame_ms` apart, catching up a little after a late wake. A
    subclass (a player's match, a spectator's) gives :attr:`frame_ms` and :meth:`_tick`, and
    calls :meth:`_finish` when it is done."""

    def __init__(
        self, scheduler: Scheduler, clock: Clock, game: PongGame, episodes: int, seed: int
    ) -> None:
        if episodes < 1:
            raise ValueError(f"episodes must be at least 1, got {episodes}")
        #: The game, episode ``n`` played from ``seed + n``, for ``episodes`` episodes.
        self.game = game
        self.episodes = episodes
        self.seed = seed
        self._scheduler = scheduler
        self._clock = clock
        self._timer: object | None = None
        self._next_due = 0.0
        self.started_at_ms: float | None = None
        self.finished_at_ms: float | None = None

    @property
    def frame_ms(self) -> float:
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        return self.finished_at_ms is not None

    @property
    def started(self) -> bool:
        """The loop was started (it may still be waiting for a late start)."""
        return self._timer is not None or self.finished

    def start(self, delay_ms: float = 0.0) -> None:
        """Start the loop; the first frame is due ``delay_ms`` from now."""
        if self._timer is None and not self.finished:
            self._next_due = self._clock() + delay_ms
            self._timer = self._scheduler.set_interval(self._wake, LOOP_WAKE_MS)

    def stop(self) -> None:
        if self._timer is not None:
            timer, self._timer = self._timer, None
            self._scheduler.clear_interval(timer)

    def _wake(self) -> None:
        now = self._clock()
        ticks = 0
        while now >= self._next_due and ticks < MAX_TICKS_PER_WAKE and self._timer is not None:
            if self.started_at_ms is None:
                self.started_at_ms = now
            self._tick(now)
            self._next_due += self.frame_ms
            ticks += 1
        if now - self._next_due > MAX_LAG_FRAMES * self.frame_ms:
            self._next_due = now

    def _tick(self, now: float) -> None:
        raise NotImplementedError

    def _finish(self, now: float) -> None:
        self.finished_at_ms = now
        self.stop()

    def _progress(self, finished: list[dict[str, Any]]) -> dict[str, Any]:
        """How far the match is, from its finished episodes' records."""
        state = self.game.state
        return {
            "frames": sum(record["frames"] for record in finished),
            "final_checksum": finished[-1]["final_checksum"] if finished else None,
            "episodes_finished": len(finished),
            "episodes": self.episodes,
            "score": [state.score0, state.score1],
            "finished": self.finished,
            "started_at_ms": self.started_at_ms,
            "finished_at_ms": self.finished_at_ms,
        }


class PongMatch(FrameLoop):
    """``episodes`` episodes of Pong over ``session`` (a :class:`P2PSession`, or in a room of more
    than two the session with each peer, by its index), played by a bot until a key is pressed.

    ``seed`` picks every episode's serves (episode ``n`` uses ``seed + n``); every tab uses the
    same. ``perturb_at`` makes this tab's game differ from the others' from that frame on (a
    deliberate desync, for the tests). ``resume``: this tab is a page that came back (a reload)
    and takes the game under way from the other player, if there is one
    (:mod:`p2p_transport.rollback.resume`); ``on_peer_absent(player, event)`` hears the other's
    page go (``"absent"``) and come back (``"resumed"``) or not (``"gone"``).
    """

    def __init__(
        self,
        session: P2PSession | Mapping[int, P2PSession],
        scheduler: Scheduler,
        clock: Clock,
        *,
        episodes: int = 1,
        episode_frames: int | None = None,
        seed: int = 0,
        input_delay: int = 2,
        max_prediction: int = 8,
        perturb_at: int | None = None,
        resume: bool = False,
        on_peer_absent: Callable[[int, str], None] | None = None,
    ) -> None:
        players = 2 if isinstance(session, P2PSession) else len(session) + 1
        super().__init__(
            scheduler, clock, PongGame(seed, perturb_at, players=players), episodes, seed
        )
        self.rollback = RollbackSession(
            self.game,
            session,
            input_delay=input_delay,
            max_prediction=max_prediction,
            episode_frames=episode_frames,
            on_desync=self._on_desync,
            resume=resume,
            on_peer_absent=on_peer_absent,
        )
        self.bot = PongBot(self.rollback.player_index, seed)
        #: The keyboard's action bits once the player pressed a key (``None``: the bot plays).
        self.keys: int | None = None
        self.desync: Desync | None = None

    @property
    def frame_ms(self) -> float:
        return self.rollback.frame_ms

    def progress(self) -> tuple[int, str]:
        """The episode under way and the rollback layer's state, for the page to draw."""
        return self.rollback.episode, self.rollback.state.value

    def set_keys(self, bits: int) -> None:
        """The keyboard's action bits (UP, DOWN); from the first key on, the bot stops."""
        self.keys = bits

    def _tick(self, now: float) -> None:
        rollback = self.rollback
        if rollback.episode_over:
            if rollback.finished_episodes >= self.episodes:
                self._finish(now)
                return
            self.game.reset(self.seed + rollback.episode + 1)
            rollback.start_next_episode()
        action = self.keys if self.keys is not None else self.bot.action(self.game)
        advance_tick(rollback, action)

    def _on_desync(self, desync: Desync) -> None:
        self.desync = desync

    def report(self) -> dict[str, Any]:
        """The match in figures (the episodes' inputs are in :meth:`records`)."""
        stats = self.rollback.stats()
        finished = self.rollback.episodes
        keys = (
            "episode",
            "frames_advanced",
            "frames_predicted",
            "rollbacks",
            "max_rollback_depth",
            "rollback_depths",
            "frames_resimulated",
            "stall_frames",
            "stall_ms",
            "desyncs",
            "first_desync_frame",
            "frames_ahead",
            "frames_ahead_max",
            "input_delay",
        )
        return {
            **{key: stats[key] for key in keys},
            **self._progress(finished),
            "absences": self.rollback.absences,
            "resumed": self.rollback.resumed,
        }

    def records(self) -> list[dict[str, Any]]:
        """Each finished episode's record: frames, final checksum and every player's inputs."""
        return list(self.rollback.episodes)


class SpectatorMatch(FrameLoop):
    """``episodes`` episodes of (team) Pong for ``players``, watched: a
    :class:`~p2p_transport.rollback.spectator.SpectatorSession` fed with :meth:`on_packet`,
    advanced every frame, the game reset between episodes as the players' tabs reset theirs."""

    def __init__(
        self,
        players: int,
        scheduler: Scheduler,
        clock: Clock,
        *,
        episodes: int = 1,
        episode_frames: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(scheduler, clock, PongGame(seed, players=players), episodes, seed)
        self.spectator = SpectatorSession(self.game, players, episode_frames=episode_frames)

    @property
    def frame_ms(self) -> float:
        return self.spectator.frame_ms

    def on_packet(self, data: bytes) -> None:
        self.spectator.on_packet(data)

    def progress(self) -> tuple[int, str]:
        """The episode under way and whether it is over (or waiting for the next), as
        :meth:`PongMatch.progress` says it."""
        spectator = self.spectator
        return spectator.episode, "ended" if spectator.episode_over else "running"

    def _tick(self, now: float) -> None:
        spectator = self.spectator
        if spectator.episode_over:
            if len(spectator.episodes) >= self.episodes:
                self._finish(now)
                return
            self.game.reset(self.seed + spectator.episode + 1)
            spectator.start_next_episode()
        spectator.advance()

    def report(self) -> dict[str, Any]:
        stats = self.spectator.stats()
        finished = self.spectator.episodes
        return {**stats, "spectator": True, **self._progress(finished)}

    def records(self) -> list[dict[str, Any]]:
        return list(self.spectator.episodes)
