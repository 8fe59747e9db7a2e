"""Two Pong matches (the demo's game under the rollback layer) over seeded faulty DataChannels on
a virtual clock.

The engine behind tests/test_rollback_simulation.py and benchmarks/bench_rollback.py;
:func:`simulate_games` runs any game (a real env: tests/test_cogrid_rollback.py,
benchmarks/bench_envs.py) with each side's CPU time charged to its own loop. Each side
is a :class:`~p2p_demo.match.PongMatch`, the code the demo page runs, with its own game loop on
the fake scheduler; each DataChannel drops packets and delays every survivor by ``one_way_ms``
(:class:`~p2p_transport.protocol.faults.FaultyChannel`). Time is virtual and event-driven, so a
run is exactly reproducible for a seed.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from p2p_demo.match import LOOP_WAKE_MS, MAX_LAG_FRAMES, MAX_TICKS_PER_WAKE, PongMatch
from p2p_transport import P2PSession, SessionConfig
from p2p_transport.protocol.faults import FaultConfig, FaultyChannel, LinkConfig
from p2p_transport.protocol.routing import RouteMode
from p2p_transport.rollback import RollbackSession
from tests.fakes import FakeClock, FakeScheduler
from tests.link_sim import Pipe

#: A browser delivers a packet from its event loop, never inside the send call: even the 0 ms link
#: delivers after the sender's call returned (a microsecond later), or a pong or an ack would come
#: back before the ping or message it answers was recorded.
_AFTER_RETURN_MS = 0.001
#: After the frames: time for every match to finish its episodes (or to be found stuck).
SETTLE_MS = 20_000.0
#: After both finished: time for the last control messages (the final hashes) to arrive, with
#: their resends at the worst loss simulated.
DRAIN_MS = 3_000.0


@dataclass
class RollbackRun:
    matches: dict[str, PongMatch]
    sessions: dict[str, P2PSession]
    clock: FakeClock
    #: Virtual time at which each side finished all its episodes (None: it never did).
    finished_ms: dict[str, float | None]


def linked_sessions(
    clock: FakeClock,
    scheduler: FakeScheduler,
    fault: FaultConfig,
    seed: int,
    config: SessionConfig | None = None,
) -> tuple[list[P2PSession], list[FaultyChannel]]:
    """Players 0 and 1, open, each sending over its own seeded faulty DataChannel straight into
    the other's ``on_message`` (pump the channels to deliver what they hold)."""
    pipes = [Pipe(), Pipe()]
    channels = [FaultyChannel(pipes[p], fault, clock, seed=seed * 2 + p) for p in (0, 1)]
    sessions = [
        P2PSession(
            p,
            1 - p,
            lambda frame, action: None,
            clock=clock,
            scheduler=scheduler,
            channel=channels[p],
            config=config,
        )
        for p in (0, 1)
    ]
    for p in (0, 1):
        pipes[p].receive = sessions[1 - p].edge.on_message
        sessions[p].edge.on_open()
    return sessions, channels


def simulate_matches(
    *,
    loss: float = 0.0,
    one_way_ms: float = 20.0,
    episode_frames: int = 600,
    episodes: int = 1,
    seed: int = 0,
    input_delay: int = 2,
    max_prediction: int = 8,
    late_start_ms: float = 0.0,
    perturb_at: int | None = None,
    settle_ms: float = SETTLE_MS,
) -> RollbackRun:
    """Play ``episodes`` episodes of ``episode_frames`` frames; side b starts ``late_start_ms``
    after side a, and with ``perturb_at`` side b's game deliberately diverges at that frame."""
    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    fault = FaultConfig(loss=loss, delay_ms=max(one_way_ms, _AFTER_RETURN_MS))
    # The DataChannel alone, so the loss is what the game sees (no relay to hide it).
    config = SessionConfig(relay_inputs=False, route_mode=RouteMode.P2P)
    pair, faulty = linked_sessions(clock, scheduler, fault, seed, config)
    sessions = dict(zip(("a", "b"), pair, strict=True))
    channels = dict(zip(("a", "b"), faulty, strict=True))
    matches = {
        side: PongMatch(
            sessions[side],
            scheduler,
            clock,
            episodes=episodes,
            episode_frames=episode_frames,
            seed=seed,
            input_delay=input_delay,
            max_prediction=max_prediction,
            perturb_at=perturb_at if side == "b" else None,
        )
        for side in ("a", "b")
    }
    matches["a"].start()
    matches["b"].start(late_start_ms)

    def run_until(end_ms: float, stop_early: bool) -> None:
        while clock() < end_ms:
            if stop_early and all(match.finished for match in matches.values()):
                return
            due = [c.next_due_ms for c in channels.values() if c.next_due_ms is not None]
            due += [timer.next_due_ms for timer in scheduler.active.values()]
            next_ms = min(due, default=end_ms)
            scheduler.advance(max(0.0, min(next_ms, end_ms) - clock()))
            for channel in channels.values():
                channel.pump()

    run_until(late_start_ms + episodes * episode_frames * 1000 / 60 + settle_ms, stop_early=True)
    run_until(clock() + DRAIN_MS, stop_early=False)
    return RollbackRun(
        matches,
        sessions,
        clock,
        {side: match.finished_at_ms for side, match in matches.items()},
    )


@dataclass
class GameLoop:
    """One side's game loop for :func:`simulate_games`: a tick every frame (``frame_ms``, as
    the time sync stretches it), charged the
    CPU time it took (times ``charge``) on the virtual clock, during which it cannot tick. CPU
    time is the thread's own (``time.thread_time``), so other work on a loaded machine does not
    count as the game's."""

    rollback: RollbackSession
    game: Any
    player: int
    action: Callable[[int, int], int]
    charge: float
    frame_ms: float
    next_due: float = 0.0
    busy_until: float = 0.0
    ticks: int = 0
    #: Ticks that started more than half a frame after they were due.
    late: int = 0
    #: Charged CPU milliseconds of each tick.
    cpu_ms: list[float] = field(default_factory=list)
    finished_at_ms: float | None = None

    def wake(self, now: float) -> None:
        if self.finished_at_ms is not None or now < self.busy_until:
            return
        ticks = 0
        while now >= self.next_due and ticks < MAX_TICKS_PER_WAKE:
            if now - self.next_due > self.frame_ms / 2:
                self.late += 1
            started = time.thread_time()
            if self.rollback.episode_over or self.rollback.state.value == "closed":
                self.finished_at_ms = now
                return
            self.rollback.advance_frame(self.action(self.player, self.ticks))
            cpu = (time.thread_time() - started) * 1000.0 * self.charge
            self.cpu_ms.append(cpu)
            self.busy_until = now + cpu
            self.ticks += 1
            self.next_due += self.rollback.frame_ms  # longer while this side runs ahead
            ticks += 1
            if self.busy_until > now:
                break  # the rest waits until this tick's CPU time has passed
        if now - self.next_due > MAX_LAG_FRAMES * self.frame_ms:
            self.next_due = now


def simulate_games(
    make_game: Callable[[], Any],
    action: Callable[[int, int], int],
    *,
    frames: int,
    loss: float = 0.0,
    one_way_ms: float = 20.0,
    seed: int = 0,
    fps: float = 60.0,
    charge: float = 1.0,
    perturb: Callable[[GameLoop], None] | None = None,
    start_ms: float = 0.0,
    link: LinkConfig | None = None,
    **options: Any,
) -> dict[str, GameLoop]:
    """One episode of ``frames`` frames of ``make_game()`` on both sides, ``action(player,
    tick)`` choosing each tick's action, over the seeded faulty link; ``options`` go to both
    RollbackSessions. ``perturb(side b's loop)`` is called after every tick of side b. The
    first frame is due at ``start_ms``: the sessions ping from 0 (in a page, pairing and the
    DataChannel's validation take seconds, and the RTT is known when the game starts)."""
    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    fault = FaultConfig(loss=loss, delay_ms=max(one_way_ms, _AFTER_RETURN_MS))
    # ``link``: the whole-link emulation on both sessions, on top of the faulty channels.
    config = SessionConfig(relay_inputs=False, route_mode=RouteMode.P2P, link=link)
    pair, faulty = linked_sessions(clock, scheduler, fault, seed, config)
    loops: dict[str, GameLoop] = {}
    for side, session in zip(("a", "b"), pair, strict=True):
        game = make_game()
        if "timer" in inspect.signature(RollbackSession).parameters:  # not an older layer's
            options["timer"] = lambda: time.thread_time() * charge
        rollback = RollbackSession(game, session, fps=fps, episode_frames=frames, **options)
        loops[side] = GameLoop(
            rollback, game, session.player_index, action, charge, 1000 / fps, next_due=start_ms
        )

    def wake(side: str) -> None:
        loops[side].wake(clock())
        if side == "b" and perturb is not None:
            perturb(loops["b"])

    for side in loops:
        scheduler.set_interval(lambda s=side: wake(s), LOOP_WAKE_MS)
    end_ms = start_ms + frames * 1000 / fps + SETTLE_MS
    while clock() < end_ms and not all(loop.finished_at_ms is not None for loop in loops.values()):
        due = [c.next_due_ms for c in faulty if c.next_due_ms is not None]
        due += [timer.next_due_ms for timer in scheduler.active.values()]
        scheduler.advance(max(0.0, min(min(due, default=end_ms), end_ms) - clock()))
        for channel in faulty:
            channel.pump()
    drain_end = clock() + DRAIN_MS
    while clock() < drain_end:
        due = [c.next_due_ms for c in faulty if c.next_due_ms is not None]
        scheduler.advance(max(0.0, min(min(due, default=drain_end), drain_end) - clock()))
        for channel in faulty:
            channel.pump()
    return loops
