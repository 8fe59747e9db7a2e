"""Test doubles for the sans-IO core: a clock, a scheduler, a DataChannel, a Socket.IO client, and
a lossy link that joins two sessions through them.

Everything is deterministic: time moves only when a test moves it, timers fire only when time
passes them, and the link's losses come from a seeded ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from p2p_transport import P2PSession
from p2p_transport.wire.codec import INPUT_RECORD_TYPE
from p2p_transport.wire.signaling import RELAY_EVENT


class FakeClock:
    """Milliseconds that move only when told to. Call it to read it, like any ``Clock``."""

    def __init__(self, now_ms: float = 0.0) -> None:
        self.now_ms = float(now_ms)

    def __call__(self) -> float:
        return self.now_ms

    def set(self, now_ms: float) -> None:
        self.now_ms = float(now_ms)

    def advance(self, ms: float) -> None:
        if ms < 0:
            raise ValueError("a clock does not go backwards")
        self.now_ms += ms


@dataclass
class _Timer:
    callback: Callable[[], None]
    interval_ms: float
    next_due_ms: float


class FakeScheduler:
    """``set_interval``/``clear_interval`` over a :class:`FakeClock`.

    ``active`` maps each live handle to its timer; ``started`` and ``cleared`` record every call,
    so a test can tell a timer that was never started from one started and stopped.
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.active: dict[int, _Timer] = {}
        self.started: list[int] = []
        self.cleared: list[int] = []
        self._next_handle = 1

    def set_interval(self, callback: Callable[[], None], interval_ms: float) -> int:
        if not interval_ms > 0:
            raise ValueError(f"interval must be positive, got {interval_ms}")
        handle = self._next_handle
        self._next_handle += 1
        self.active[handle] = _Timer(callback, interval_ms, self.clock() + interval_ms)
        self.started.append(handle)
        return handle

    def clear_interval(self, handle: object) -> None:
        # Like the browser's clearInterval, clearing an unknown handle is a no-op (but recorded).
        self.cleared.append(handle)  # type: ignore[arg-type]
        self.active.pop(handle, None)  # type: ignore[call-overload]

    def fire_all(self) -> None:
        """Call every active timer's callback once, without moving time."""
        for handle in list(self.active):
            timer = self.active.get(handle)
            if timer is not None:
                timer.callback()

    def advance(self, ms: float) -> int:
        """Move the clock forward by ``ms``, firing each timer every time it comes due, in time
        order. Returns how many callbacks ran."""
        end = self.clock() + ms
        fired = 0
        while True:
            due = [(t.next_due_ms, h) for h, t in self.active.items() if t.next_due_ms <= end]
            if not due:
                break
            due_ms, handle = min(due)
            timer = self.active[handle]
            self.clock.set(max(self.clock(), due_ms))
            timer.next_due_ms += timer.interval_ms
            timer.callback()
            fired += 1
        self.clock.set(end)
        return fired


class FakeChannel:
    """The RTCDataChannel surface the transport uses: ``readyState``, ``bufferedAmount``,
    ``send``. Sent packets are recorded in ``sent``; ``on_send`` (if set) also gets each one."""

    def __init__(self, readyState: str = "open", bufferedAmount: int = 0) -> None:
        self.readyState = readyState
        self.bufferedAmount = bufferedAmount
        self.sent: list[bytes] = []
        #: Raised by ``send`` instead of sending, when set.
        self.send_error: BaseException | None = None
        self.on_send: Callable[[bytes], None] | None = None

    def send(self, data: bytes) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(bytes(data))
        if self.on_send is not None:
            self.on_send(bytes(data))


class FakePingChannel(FakeChannel):
    """The ping channel's surface (``PingChannelLike``): sends like ``FakeChannel`` and records
    what each timed send asked for; the test reports departures itself, as the worker would."""

    def __init__(self) -> None:
        super().__init__()
        #: ``(ping, timestamp_ms)`` for each ``send_ping``.
        self.pings: list[tuple[bytes, float]] = []
        #: ``(pong, hold_offset, arrival_ms)`` for each ``send_held_pong``.
        self.held_pongs: list[tuple[bytes, int, float]] = []

    def send_ping(self, data: bytes, timestamp_ms: float) -> None:
        self.send(data)
        self.pings.append((bytes(data), timestamp_ms))

    def send_held_pong(self, data: bytes, hold_offset: int, arrival_ms: float) -> None:
        self.send(data)
        self.held_pongs.append((bytes(data), hold_offset, arrival_ms))


class FakeSocket:
    """A socket.io-client ``Socket``: a ``connected`` flag and ``emit`` recording (event, data)."""

    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.emitted: list[tuple[str, bytes]] = []
        self.on_emit: Callable[[str, bytes], None] | None = None

    def emit(self, event: str, data: bytes) -> None:
        self.emitted.append((event, bytes(data)))
        if self.on_emit is not None:
            self.on_emit(event, bytes(data))


@dataclass
class LinkDirection:
    """What one direction of one path saw: every packet, and which were dropped."""

    sent: int = 0
    dropped: int = 0
    #: For each packet in send order, whether it was delivered (False: dropped).
    outcomes: list[bool] = field(default_factory=list)


class FakeLink:
    """Joins two endpoints (``a`` and ``b``) with a DataChannel pair and a relay socket pair.

    Each path drops each packet independently with its own probability, decided at send time from
    one ``random.Random(seed)``. Surviving packets are queued and delivered by :meth:`deliver`
    (DataChannel: at the next call; relay: ``relay_delay`` calls later), in send order within a
    path, so a test controls when the peer sees them. Wire the sessions with :meth:`connect`.
    """

    def __init__(
        self,
        *,
        p2p_loss: float = 0.0,
        relay_loss: float = 0.0,
        relay_delay: int = 0,
        seed: int = 0,
    ) -> None:
        self.p2p_loss = p2p_loss
        self.relay_loss = relay_loss
        self.relay_delay = relay_delay
        self.rng = random.Random(seed)
        self.channel_a, self.channel_b = FakeChannel(), FakeChannel()
        self.socket_a, self.socket_b = FakeSocket(), FakeSocket()
        self.stats: dict[tuple[str, str], LinkDirection] = {
            (path, side): LinkDirection() for path in ("p2p", "relay") for side in ("a", "b")
        }
        self._tick = 0
        # (due tick, sequence, receiver callback, data)
        self._queue: list[tuple[int, int, Callable[[bytes], None], bytes]] = []
        self._seq = 0
        self._sessions: dict[str, Any] = {}
        self.channel_a.on_send = lambda data: self._send("p2p", "a", data)
        self.channel_b.on_send = lambda data: self._send("p2p", "b", data)
        self.socket_a.on_emit = lambda event, data: self._emit("a", event, data)
        self.socket_b.on_emit = lambda event, data: self._emit("b", event, data)

    def connect(self, session_a: P2PSession, session_b: P2PSession) -> None:
        self._sessions = {"a": session_a, "b": session_b}

    def _emit(self, side: str, event: str, data: bytes) -> None:
        if event != RELAY_EVENT:
            raise AssertionError(f"unexpected Socket.IO event {event!r}")
        if data[:1] == bytes((INPUT_RECORD_TYPE,)):
            return  # for the server, which forwards it to no one
        self._send("relay", side, data)

    def _send(self, path: str, side: str, data: bytes) -> None:
        direction = self.stats[(path, side)]
        direction.sent += 1
        loss = self.p2p_loss if path == "p2p" else self.relay_loss
        if loss > 0 and self.rng.random() < loss:
            direction.dropped += 1
            direction.outcomes.append(False)
            return
        direction.outcomes.append(True)
        peer = self._sessions["b" if side == "a" else "a"]
        receive = peer.edge.on_message if path == "p2p" else peer.edge.on_relay_message
        delay = 0 if path == "p2p" else self.relay_delay
        self._queue.append((self._tick + delay, self._seq, receive, data))
        self._seq += 1

    def deliver(self) -> int:
        """Deliver every queued packet that is due; return how many. Packets sent while
        delivering (pongs answering pings) wait for the next call."""
        due = sorted(item for item in self._queue if item[0] <= self._tick)
        self._queue = [item for item in self._queue if item[0] > self._tick]
        self._tick += 1
        for _, _, receive, data in due:
            receive(data)
        return len(due)

    def drain(self) -> None:
        """Deliver everything still queued, however far in the future it is due."""
        while self._queue:
            self.deliver()
