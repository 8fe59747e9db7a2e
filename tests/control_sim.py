"""Two sessions exchanging reliable control messages over seeded lossy links on a virtual clock.

The engine behind tests/test_control_simulation.py and benchmarks/bench_control.py. Like
tests/link_sim.py, each side steps one input per 60 Hz frame over a
:class:`~p2p_transport.faults.FaultyChannel` that drops packets and delays each survivor by
``ONE_WAY_MS``, and time jumps from event to event. Besides, each side sends ``messages`` control
messages, one every ``interval_ms`` from ``start_ms`` on (a refused send, at a full window, is
retried at the next interval), and the run continues, still lossy, until every message is
acknowledged or ``limit_ms`` has passed. With ``relay_loss`` set, the relay is a second lossy path,
``RELAY_ONE_WAY_MS`` long each way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from p2p_transport import P2PSession, SessionConfig
from p2p_transport.protocol.control import ControlWindowFull
from p2p_transport.protocol.faults import FaultConfig, FaultyChannel
from p2p_transport.session import Callbacks
from p2p_transport.wire.messages import GAME_KIND_MIN
from tests.fakes import FakeClock, FakeScheduler
from tests.link_sim import FRAME_MS, ONE_WAY_MS, Pipe, action_for

#: The relay goes through a server: a longer way round than the direct path.
RELAY_ONE_WAY_MS = 50.0
#: Control messages start after three seconds of play, as an episode's end comes after some play:
#: by then the pings (every 500 ms) have measured the RTT the retransmission timeout starts from.
#: (Before any RTT is measured, a lost message waits RFC 6298's initial 1 s timeout.)
START_MS = 3000.0


class _RelaySocket:
    """A Socket.IO client whose emits go through a faulty channel."""

    connected = True

    def __init__(self, channel: FaultyChannel) -> None:
        self._channel = channel

    def emit(self, event: str, data: bytes) -> None:
        self._channel.send(data)


@dataclass
class ControlDirection:
    """What one side sent and the other side's game received."""

    #: Message index -> virtual time of its first send.
    sent_at: dict[int, float] = field(default_factory=dict)
    #: Message indices in the order the receiving game got them, and when.
    received: list[int] = field(default_factory=list)
    received_at: dict[int, float] = field(default_factory=dict)
    refused: int = 0

    def one_way_ms(self) -> list[float]:
        """Send to the peer's callback, for each received message."""
        return [self.received_at[i] - self.sent_at[i] for i in self.received]


@dataclass
class ControlRun:
    sessions: dict[str, P2PSession]
    #: "a" is what side a sent and b received; "b" the other way.
    directions: dict[str, ControlDirection]
    end_ms: float

    def delivery_ms(self) -> list[float]:
        """Send to ack, both directions: what the session's stats report."""
        out: list[float] = []
        for session in self.sessions.values():
            out += session.parts.control.delivery_times_ms
        return out


def payload(index: int) -> bytes:
    return index.to_bytes(4, "big") + bytes(12)  # 16 bytes: a small episode summary


def simulate_control(
    loss: float,
    *,
    seed: int,
    messages: int = 100,
    interval_ms: float = 50.0,
    start_ms: float = START_MS,
    relay_loss: float | None = None,
    limit_ms: float = 60_000.0,
) -> ControlRun:
    """Run the exchange; with ``relay_loss`` None there is no relay, only the DataChannel."""
    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    directions = {"a": ControlDirection(), "b": ControlDirection()}
    sides = ("a", "b")
    pipes = {side: Pipe() for side in sides}
    channels = [
        FaultyChannel(
            pipes[side], FaultConfig(loss=loss, delay_ms=ONE_WAY_MS), clock, seed=seed * 4 + i
        )
        for i, side in enumerate(sides)
    ]
    relay_pipes = {side: Pipe() for side in sides}
    if relay_loss is not None:
        relay_config = FaultConfig(loss=relay_loss, delay_ms=RELAY_ONE_WAY_MS)
        channels += [
            FaultyChannel(relay_pipes[side], relay_config, clock, seed=seed * 4 + 2 + i)
            for i, side in enumerate(sides)
        ]
    config = SessionConfig(relay_inputs=False, relay_pings=False)
    sessions: dict[str, P2PSession] = {}
    for i, side in enumerate(sides):
        other = "b" if side == "a" else "a"
        sessions[side] = P2PSession(
            i,
            1 - i,
            Callbacks(
                on_input=lambda frame, action: None, on_control=_recorder(directions[other], clock)
            ),
            clock=clock,
            scheduler=scheduler,
            channel=channels[i],
            relay=_RelaySocket(channels[2 + i]) if relay_loss is not None else None,
            config=config,
        )
    for side, other in (("a", "b"), ("b", "a")):
        pipes[side].receive = sessions[other].edge.on_message
        relay_pipes[side].receive = sessions[other].edge.on_relay_message
    for session in sessions.values():
        session.edge.on_open()

    def advance_to(end_ms: float) -> None:
        while True:
            due = [c.next_due_ms for c in channels if c.next_due_ms is not None]
            due += [timer.next_due_ms for timer in scheduler.active.values()]
            next_ms = min((d for d in due if d <= end_ms), default=None)
            if next_ms is None:
                break
            scheduler.advance(max(0.0, next_ms - clock()))
            for channel in channels:
                channel.pump()
        scheduler.advance(max(0.0, end_ms - clock()))

    next_send_ms = start_ms
    frame = 0
    while clock() < limit_ms:
        now = frame * FRAME_MS
        advance_to(now)
        for i, side in enumerate(sides):
            sessions[side].step(frame, action_for(i, frame))
        if now >= next_send_ms:
            next_send_ms += interval_ms
            for side in sides:
                _send_next(sessions[side], directions[side], messages, clock)
        frame += 1
        if all(
            len(d.sent_at) == messages and s.parts.control.in_flight == 0
            for s, d in zip(sessions.values(), directions.values(), strict=True)
        ):
            break
    return ControlRun(sessions, directions, clock())


def _send_next(
    session: P2PSession, direction: ControlDirection, messages: int, clock: FakeClock
) -> None:
    index = len(direction.sent_at)
    if index == messages:
        return
    try:
        session.send_control(GAME_KIND_MIN + index % 128, payload(index))
    except ControlWindowFull:
        direction.refused += 1
        return
    direction.sent_at[index] = clock()


def _recorder(direction: ControlDirection, clock: FakeClock) -> Callable[[int, bytes], None]:
    def on_control(kind: int, data: bytes) -> None:
        index = int.from_bytes(data[:4], "big")
        if kind != GAME_KIND_MIN + index % 128 or data != payload(index):
            raise AssertionError(f"message {index} arrived as kind {kind}, payload {data.hex()}")
        direction.received.append(index)
        direction.received_at.setdefault(index, clock())

    return on_control
