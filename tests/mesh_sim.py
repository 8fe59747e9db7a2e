"""A room of N players under the rollback layer, over a full mesh of seeded faulty DataChannels on a
virtual clock.

The engine behind tests/test_rollback_mesh.py. Every pair of players has its own pair of
sessions, each sending over a :class:`~p2p_transport.protocol.faults.FaultyChannel` with that
link's loss and one-way delay (the links' delays differ); the sessions use the DataChannel alone,
so the loss is what the game sees. Each player runs a game loop on the fake scheduler that ticks
every ``frame_ms`` (as the rollback layer stretches it), its actions chosen by a seeded bot, and
plays :class:`RingGame`, a small deterministic game of N players. A player's page can be hidden
for a while (:class:`Hide`): its timers then wake once a second, as Chromium's do. Time is virtual
and event-driven, and nothing depends on the machine's speed, so a run is exactly reproducible for
a seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any, Final

from p2p_demo.match import LOOP_WAKE_MS, MAX_LAG_FRAMES, MAX_TICKS_PER_WAKE, advance_tick
from p2p_transport import P2PSession, SessionConfig
from p2p_transport.protocol.faults import FaultConfig, FaultyChannel
from p2p_transport.protocol.routing import RouteMode
from p2p_transport.rollback import RollbackSession
from p2p_transport.rollback.visibility import THROTTLED_WAKE_MS
from tests.fakes import FakeClock, FakeScheduler
from tests.link_sim import Pipe
from tests.rollback_sim import _AFTER_RETURN_MS, DRAIN_MS, SETTLE_MS

#: The ring's cells: a prime, so tokens that move by 1 and 3 reach every cell.
RING: Final = 101
#: How far each action moves a player's token: 0 (idle) stays.
STEPS: Final = (0, 1, -1, 3, -3)


class RingGame:
    """``players`` tokens on a ring of :data:`RING` cells. Each frame every player's action moves
    its own token (:data:`STEPS`), then a token that lands on a cell another holds pushes the
    other one on a cell, lower players first; a running score folds in every position, so every
    player's every input counts for the checksum. ``perturb_at`` makes this game's score differ
    from everyone else's after that frame (a deliberate desync)."""

    idle_action = 0

    def __init__(self, players: int, seed: int = 0, perturb_at: int | None = None) -> None:
        self.players = players
        self.perturb_at = perturb_at
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.positions = tuple((seed * 7 + player * 13) % RING for player in range(self.players))
        self.score = seed
        self.frame = 0

    def save_state(self) -> object:
        return (self.positions, self.score, self.frame)

    def load_state(self, state: object) -> None:
        self.positions, self.score, self.frame = state  # type: ignore[misc]

    def advance(self, inputs: tuple[int, ...]) -> None:
        if len(inputs) != self.players:
            raise ValueError(f"{len(inputs)} actions for {self.players} players")
        moved = [
            (cell + STEPS[action]) % RING
            for cell, action in zip(self.positions, inputs, strict=True)
        ]
        for player in range(self.players):
            for other in range(self.players):
                if other != player and moved[other] == moved[player]:
                    moved[other] = (moved[other] + 1) % RING
        score = self.score
        for cell in moved:
            score = (score * 31 + cell) & 0xFFFFFFFF
        if self.frame == self.perturb_at:
            score ^= 0x5A5A
        self.positions = tuple(moved)
        self.score = score
        self.frame += 1

    def encode_state(self, state: object) -> bytes:
        positions, score, frame = state  # type: ignore[misc]
        return bytes(positions) + score.to_bytes(4, "big") + frame.to_bytes(4, "big")

    def decode_state(self, data: bytes) -> object:
        cells = len(data) - 8
        score, frame = int.from_bytes(data[cells:-4], "big"), int.from_bytes(data[-4:], "big")
        return (tuple(data[:cells]), score, frame)

    def checksum(self) -> bytes:
        state = (self.positions, self.score, self.frame)
        return hashlib.blake2b(repr(state).encode(), digest_size=16).digest()


def bot_actions(seed: int, player: int, count: int = 600) -> bytes:
    """A player's actions, one per tick (repeating): each held for 1 to 11 ticks, as keys are."""
    rng = random.Random(seed * 1000 + player)
    actions = bytearray()
    while len(actions) < count:
        actions += bytes([rng.randrange(len(STEPS))]) * rng.randrange(1, 12)
    return bytes(actions[:count])


@dataclass
class MeshPlayer:
    """One tab: its game, its rollback layer over its sessions, and its game loop."""

    index: int
    game: RingGame
    rollback: RollbackSession
    actions: bytes
    episodes: int
    seed: int
    next_due: float
    ticks: int = 0
    #: Virtual time at which it finished all its episodes.
    finished_at_ms: float | None = None
    #: It left the room: its loop no longer ticks.
    gone: bool = False
    #: Every tick: (virtual ms, frames simulated, frames_behind after, (episode, frame) after).
    ticks_log: list[tuple[float, int, int, tuple[int, int]]] = field(default_factory=list)

    def wake(self, now: float) -> None:
        if self.gone:
            return
        ticks = 0
        while now >= self.next_due and ticks < MAX_TICKS_PER_WAKE and not self.gone:
            self._tick(now)
            self.next_due += self.rollback.frame_ms
            ticks += 1
        if now - self.next_due > MAX_LAG_FRAMES * self.rollback.frame_ms:
            self.next_due = now

    def _tick(self, now: float) -> None:
        rollback = self.rollback
        if rollback.episode_over and rollback.finished_episodes < self.episodes:
            self.game.reset(self.seed + rollback.episode + 1)
            rollback.start_next_episode()
        if self.finished_at_ms is None and rollback.finished_episodes >= self.episodes:
            self.finished_at_ms = now
        # A player that finished keeps ticking: it still has to report a player who leaves.
        frames = advance_tick(rollback, self.actions[self.ticks % len(self.actions)])
        self.ticks_log.append(
            (now, frames, rollback.frames_behind, (rollback.episode, rollback.current_frame))
        )
        self.ticks += 1

    def frames_between(self, start_ms: float, end_ms: float) -> int:
        """Frames its loop simulated from ``start_ms`` (included) to ``end_ms`` (excluded)."""
        return sum(frames for at, frames, _, _ in self.ticks_log if start_ms <= at < end_ms)

    def frame_at(self, at_ms: float) -> tuple[int, int]:
        """(episode, frame) after its last tick before ``at_ms``."""
        mark = (0, 0)
        for at, _, _, after in self.ticks_log:
            if at >= at_ms:
                break
            mark = after
        return mark


@dataclass(frozen=True)
class Leave:
    """``player`` leaves once its own frame reaches ``frame``: it closes its sessions at once, and
    each other player closes its session with it when the server's word reaches it, 20 to 200 ms
    later (seeded)."""

    player: int
    frame: int


@dataclass(frozen=True)
class Reload:
    """``player``'s page reloads once its own frame reaches ``frame`` (a game of two): the page is
    gone at once (its sessions stop), and the other player closes its session with it when the
    server's word reaches it, 20 to 200 ms later (seeded). ``back_ms`` after it left, its new page
    is paired again: a session each way on a new link, a new game and a ``RollbackSession`` with
    ``resume=True`` on its side; the other player's layer gets its session
    (``replace_session``)."""

    player: int
    frame: int
    back_ms: float


@dataclass(frozen=True)
class Cut:
    """Every link loses every packet sent from ``from_ms`` to ``to_ms`` (a long drop: both pages
    alive, nothing gets through)."""

    from_ms: float
    to_ms: float


@dataclass(frozen=True)
class Hide:
    """``player``'s page is hidden from ``from_ms`` to ``to_ms``: its loop calls
    ``set_hidden(True)`` and ``set_hidden(False)`` at the edges (``visibilitychange`` runs at once),
    and meanwhile each of its timers (its game loop's, its sessions') runs only on its first firing
    in each whole second, as Chromium throttles a background tab; its message handlers still run
    as packets arrive."""

    player: int
    from_ms: float
    to_ms: float


class PageTimers:
    """One page's timers on the shared scheduler, throttled while the page is hidden."""

    def __init__(self, scheduler: FakeScheduler) -> None:
        self._scheduler = scheduler
        self.hidden = False

    def set_interval(self, callback: Callable[[], None], interval_ms: float) -> object:
        last_second: list[int | None] = [None]
        clock = self._scheduler.clock

        def throttled() -> None:
            if self.hidden:
                second = int(clock() // THROTTLED_WAKE_MS)
                if second == last_second[0]:
                    return
                last_second[0] = second
            callback()

        return self._scheduler.set_interval(throttled, interval_ms)

    def clear_interval(self, handle: object) -> None:
        self._scheduler.clear_interval(handle)


@dataclass
class MeshRun:
    players: list[MeshPlayer]
    #: (player, peer) -> the player's session with that peer.
    sessions: dict[tuple[int, int], P2PSession]
    channels: list[FaultyChannel]
    clock: FakeClock
    #: (lower, higher) -> the link's one-way delay in ms.
    delays_ms: dict[tuple[int, int], float]
    #: When each leaving player left, and when each other player heard of it: (player who
    #: left, player who heard) -> ms.
    left_at_ms: dict[int, float] = field(default_factory=dict)
    heard_at_ms: dict[tuple[int, int], float] = field(default_factory=dict)
    #: The pages that reloaded, as they were before (their new ones are in ``players``), and
    #: when each new one was paired again.
    reloaded: list[MeshPlayer] = field(default_factory=list)
    back_at_ms: dict[int, float] = field(default_factory=dict)

    def staying(self) -> list[MeshPlayer]:
        return [player for player in self.players if not player.gone]


def simulate_mesh(
    count: int,
    *,
    frames: int,
    episodes: int = 1,
    loss: float = 0.3,
    reorder: float = 0.0,
    delay_range_ms: tuple[float, float] = (5.0, 60.0),
    seed: int = 0,
    input_delay: int = 2,
    max_prediction: int = 8,
    start_ms: dict[int, float] | None = None,
    leaving: Sequence[Leave] = (),
    hiding: Sequence[Hide] = (),
    reloading: Sequence[Reload] = (),
    cutting: Sequence[Cut] = (),
    diverge: tuple[int, int] | None = None,
    **options: Any,
) -> MeshRun:
    """``count`` players play ``episodes`` episodes of ``frames`` frames of :class:`RingGame`
    (episode ``n`` from seed ``seed + n``); player ``p``'s loop starts at ``start_ms[p]`` (0 by
    default). Each link's one-way delay is drawn from ``delay_range_ms``; each direction drops
    ``loss`` of its packets and holds back ``reorder`` of them a further 50 ms. Each of
    ``leaving`` leaves as :class:`Leave` says, each of ``hiding`` hides its page as :class:`Hide`
    says, each of ``cutting`` cuts every link as :class:`Cut` says, each of ``reloading``
    reloads its page as :class:`Reload` says (the first page's
    :class:`MeshPlayer` then stays in ``run.reloaded``, the new one takes its place).
    ``diverge=(player, frame)`` makes that player's
    game differ after that frame of the first episode. ``options`` go to every player's
    :class:`RollbackSession`."""
    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    rng = random.Random(seed)
    config = SessionConfig(relay_inputs=False, route_mode=RouteMode.P2P)
    sessions: dict[tuple[int, int], P2PSession] = {}
    channels: list[FaultyChannel] = []
    # The players who hide get timers of their own (the others share the scheduler as it is).
    pages = {hide.player: PageTimers(scheduler) for hide in hiding}
    pipes: dict[tuple[int, int], Pipe] = {}
    delays: dict[tuple[int, int], float] = {}

    def link(low: int, high: int, generation: int) -> None:
        """A session each way between ``low`` and ``high`` over a new faulty link."""
        delay = delays[(low, high)]
        fault = FaultConfig(loss=loss, delay_ms=max(delay, _AFTER_RETURN_MS), reorder=reorder)
        for player, peer in ((low, high), (high, low)):
            pipe = pipes[(player, peer)] = Pipe()
            channel_seed = seed * 10_000 + player * 100 + peer + generation * 1_000_000
            channel = FaultyChannel(pipe, fault, clock, seed=channel_seed)
            channels.append(channel)
            sessions[(player, peer)] = P2PSession(
                player,
                peer,
                lambda frame, action: None,
                clock=clock,
                scheduler=pages.get(player, scheduler),
                channel=channel,
                config=config,
            )
        for player, peer in ((low, high), (high, low)):
            pipes[(player, peer)].receive = sessions[(peer, player)].edge.on_message
            sessions[(player, peer)].edge.on_open()

    for low, high in combinations(range(count), 2):
        delays[(low, high)] = round(rng.uniform(*delay_range_ms), 1)
        link(low, high, 0)
    starts = start_ms or {}

    def new_player(index: int, next_due: float, **more: Any) -> MeshPlayer:
        """Player ``index``'s page: its game, its layer over its sessions, its bot."""
        perturb_at = diverge[1] if diverge is not None and diverge[0] == index else None
        game = RingGame(count, seed, perturb_at)
        links = {peer: sessions[(index, peer)] for peer in range(count) if peer != index}
        rollback = RollbackSession(
            game,
            links,
            input_delay=input_delay,
            max_prediction=max_prediction,
            episode_frames=frames,
            **options,
            **more,
        )
        actions = bot_actions(seed, index)
        return MeshPlayer(index, game, rollback, actions, episodes, seed, next_due=next_due)

    players = [new_player(index, starts.get(index, 0.0)) for index in range(count)]
    run = MeshRun(players, sessions, channels, clock, delays)

    def one_shot(callback: Callable[[], None], after_ms: float) -> None:
        handle: list[object] = []

        def fire() -> None:
            scheduler.clear_interval(handle[0])
            callback()

        handle.append(scheduler.set_interval(fire, after_ms))

    def close_link(player: int, peer: int, session: P2PSession | None = None) -> None:
        """``player`` hears that ``peer`` left: it closes its session with it (``session``,
        the one there was when it left: a reloaded peer may have a new one by then)."""
        (session or sessions[(player, peer)]).close()
        run.heard_at_ms[(peer, player)] = clock()

    leaves_at = {leave.player: leave.frame for leave in leaving}
    reloads = {reload.player: reload for reload in reloading}
    away: set[int] = set()  # reloaded pages not back yet

    def come_back(reload: Reload) -> None:
        """The reloaded page is paired again: new links, a new game and layer that resume."""
        index = reload.player
        away.discard(index)
        old = players[index]
        run.reloaded.append(old)
        for peer in range(count):
            if peer != index:
                # Paired with a new session, the pairing closes the old one if the server's
                # peer_left has not come yet.
                sessions[(peer, index)].close()
                link(min(index, peer), max(index, peer), len(run.reloaded))
        new = players[index] = new_player(index, clock(), resume=True)
        run.back_at_ms[index] = clock()
        for peer in range(count):
            if peer != index:
                players[peer].rollback.replace_session(index, sessions[(peer, index)])
        scheduler.set_interval(lambda: wake(new), LOOP_WAKE_MS)

    def wake(player: MeshPlayer) -> None:
        player.wake(clock())
        reload = reloads.get(player.index)
        if reload is not None and not player.gone and player.rollback.current_frame >= reload.frame:
            del reloads[player.index]  # once
            away.add(player.index)
            player.gone = True
            run.left_at_ms[player.index] = clock()
            for peer in range(count):
                if peer != player.index:
                    sessions[(player.index, peer)].close()
                    old = sessions[(peer, player.index)]
                    one_shot(
                        lambda p=peer, o=old: close_link(p, player.index, o),
                        rng.uniform(20.0, 200.0),
                    )
            one_shot(lambda: come_back(reload), reload.back_ms)
            return
        frame = leaves_at.get(player.index)
        if frame is not None and not player.gone and player.rollback.current_frame >= frame:
            player.gone = True
            run.left_at_ms[player.index] = clock()
            for peer in range(count):
                if peer != player.index and not players[peer].gone:
                    sessions[(player.index, peer)].close()
                    at_ms = rng.uniform(20.0, 200.0)
                    one_shot(lambda p=peer: close_link(p, player.index), at_ms)

    for player in players:
        pages.get(player.index, scheduler).set_interval(lambda p=player: wake(p), LOOP_WAKE_MS)

    def set_hidden(player: int, hidden: bool) -> None:
        pages[player].hidden = hidden
        players[player].rollback.set_hidden(hidden)

    for hide in hiding:
        one_shot(lambda p=hide.player: set_hidden(p, True), hide.from_ms)
        one_shot(lambda p=hide.player: set_hidden(p, False), hide.to_ms)

    def cut(cutting: bool) -> None:
        for channel in channels:
            channel.config = replace(channel.config, loss=1.0 if cutting else loss)

    for gap in cutting:
        one_shot(lambda: cut(True), gap.from_ms)
        one_shot(lambda: cut(False), gap.to_ms)

    def run_until(end_ms: float, stop_early: bool) -> None:
        while clock() < end_ms:
            if stop_early and not away and all(p.finished_at_ms is not None for p in run.staying()):
                return
            due = [c.next_due_ms for c in channels if c.next_due_ms is not None]
            due += [timer.next_due_ms for timer in scheduler.active.values()]
            next_ms = min(due, default=end_ms)
            scheduler.advance(max(0.0, min(next_ms, end_ms) - clock()))
            for channel in channels:
                channel.pump()

    latest = max(starts.values(), default=0.0)
    run_until(latest + episodes * frames * 1000 / 60 + SETTLE_MS, stop_early=True)
    run_until(clock() + DRAIN_MS, stop_early=False)
    return run
