"""Two sessions over seeded faulty DataChannels on a virtual clock.

The engine behind tests/test_ack_simulation.py and benchmarks/bench_loss.py. Each side steps one
input per 60 Hz frame; its DataChannel is a :class:`~p2p_transport.faults.FaultyChannel` that drops
packets (independently or in bursts) and delays each survivor by exactly ``ONE_WAY_MS``. Time is
virtual and event-driven: the clock jumps to the next frame, packet arrival or timer, so a packet
arrives exactly ``ONE_WAY_MS`` after it was sent and timers fire exactly when due. After the last
frame the link recovers (no more loss) and the game stays paused for ``idle_ms``, so what is still
pending can arrive through the resend timer. Everything is deterministic for a given seed.

Every input packet a session sends is recorded with whether the link dropped it, so a test can
check what arrived, and when, against what the link did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from p2p_transport import P2PSession, SessionConfig
from p2p_transport.protocol.faults import FaultConfig, FaultyChannel
from p2p_transport.timing import FRAME_MS
from p2p_transport.wire.messages import MessageType
from tests.fakes import FakeClock, FakeScheduler

#: 20 ms each way: a 40 ms round trip, a typical P2P path between players in one region.
ONE_WAY_MS = 20.0
#: Paused after the last frame: long enough for the resend timer to bring anything pending at a
#: recovered link, and to show that it then goes quiet.
IDLE_MS = 2000.0
_INPUT_TYPES = (MessageType.INPUT, MessageType.ACKED_INPUT)


def action_for(player: int, frame: int) -> int:
    return (frame * 31 + player * 17) % 256


class Pipe:
    """The far end of a channel: hands each packet to a receive function (the peer) at once."""

    readyState = "open"
    bufferedAmount = 0

    def __init__(self) -> None:
        self.receive: Callable[[bytes], None] = lambda data: None

    def send(self, data: bytes) -> None:
        self.receive(data)


@dataclass
class SentInput:
    """One input packet as a session sent it."""

    at_ms: float
    kind: MessageType
    size: int
    dropped: bool


class _Tap:
    """Between a session and its faulty channel: records every input packet and its fate."""

    def __init__(self, channel: FaultyChannel, record: list[SentInput], clock: FakeClock) -> None:
        self._channel = channel
        self._record = record
        self._clock = clock

    @property
    def readyState(self) -> str:
        return self._channel.readyState

    @property
    def bufferedAmount(self) -> int:
        return self._channel.bufferedAmount

    def send(self, data: bytes) -> None:
        dropped_before = self._channel.counters.dropped
        self._channel.send(data)
        if data[0] in _INPUT_TYPES:
            dropped = self._channel.counters.dropped > dropped_before
            self._record.append(SentInput(self._clock(), MessageType(data[0]), len(data), dropped))


@dataclass
class Direction:
    """What one side's game sent and the other side's game received."""

    #: Frame -> virtual time at which the receiving game got it.
    delivered_at: dict[int, float] = field(default_factory=dict)
    #: Frames the receiving game got more than once, or with the wrong action (never expected).
    errors: list[str] = field(default_factory=list)
    #: Every input packet the sending side sent, in order.
    sent: list[SentInput] = field(default_factory=list)

    def extra_delay_frames(self, frame: int) -> float:
        """How many frames later than a lossless link the frame arrived."""
        delay = self.delivered_at[frame] - frame * FRAME_MS - ONE_WAY_MS
        return max(0.0, delay) / FRAME_MS


@dataclass
class SimRun:
    frames: int
    sessions: dict[str, P2PSession]
    channels: dict[str, FaultyChannel]
    #: "a" is what side a sent and b received; "b" the other way.
    directions: dict[str, Direction]


def simulate(
    config: SessionConfig,
    fault: FaultConfig,
    *,
    frames: int,
    seed: int,
    idle_ms: float = IDLE_MS,
) -> SimRun:
    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    directions = {"a": Direction(), "b": Direction()}
    pipes = {"a": Pipe(), "b": Pipe()}  # pipes["a"] carries what a sends
    channels = {
        side: FaultyChannel(pipes[side], fault, clock, seed=seed * 2 + index)
        for index, side in enumerate(("a", "b"))
    }
    sessions: dict[str, P2PSession] = {}
    for side, player in (("a", 0), ("b", 1)):
        other = "b" if side == "a" else "a"
        sessions[side] = P2PSession(
            player,
            1 - player,
            _recorder(directions[other], 1 - player, clock),
            clock=clock,
            scheduler=scheduler,
            channel=_Tap(channels[side], directions[side].sent, clock),
            config=config,
        )
    for side, other in (("a", "b"), ("b", "a")):
        pipes[side].receive = sessions[other].edge.on_message
    for session in sessions.values():
        session.edge.on_open()

    def advance_to(end_ms: float) -> None:
        while True:
            due = [c.next_due_ms for c in channels.values() if c.next_due_ms is not None]
            due += [timer.next_due_ms for timer in scheduler.active.values()]
            next_ms = min((d for d in due if d <= end_ms), default=None)
            if next_ms is None:
                break
            scheduler.advance(max(0.0, next_ms - clock()))
            for channel in channels.values():
                channel.pump()
        scheduler.advance(max(0.0, end_ms - clock()))

    for frame in range(frames):
        advance_to(frame * FRAME_MS)
        for side, player in (("a", 0), ("b", 1)):
            sessions[side].step(frame, action_for(player, frame))
    recovered = FaultConfig(delay_ms=fault.delay_ms)
    for channel in channels.values():
        channel.config = recovered
    advance_to(frames * FRAME_MS + idle_ms)
    return SimRun(frames, sessions, channels, directions)


def _recorder(direction: Direction, player: int, clock: FakeClock) -> Callable[[int, int], None]:
    def on_input(frame: int, action: int) -> None:
        if frame in direction.delivered_at:
            direction.errors.append(f"frame {frame} delivered twice")
        elif action != action_for(player, frame):
            direction.errors.append(f"frame {frame} has action {action}")
        direction.delivered_at[frame] = clock()

    return on_input


def link(loss: float, burst: int = 1) -> FaultConfig:
    """The simulated link: ``loss`` dropped in bursts of ``burst``, every survivor 20 ms late."""
    return FaultConfig(loss=loss, burst=burst, delay_ms=ONE_WAY_MS)
