"""Fault injection: a seeded wrapper that makes any DataChannel-like object lose, delay, duplicate
and reorder what is sent through it (:class:`FaultyChannel`, one path), and a whole-link
emulation that every path's incoming packets go through (:class:`LinkEmulator`).

It depends only on the :class:`~.sender.DataChannelLike` protocol and an injected clock, so the
same wrapper impairs a fake channel under CPython and a real RTCDataChannel adapter in the
browser. Faults apply to what this side sends; wrap both sides' channels to impair both
directions. Packets that are delayed or reordered wait in a queue that :meth:`FaultyChannel.pump`
flushes when they are due: call it from the game loop or a timer (``next_due_ms`` says when).
Every random choice comes from one ``random.Random(seed)``, so a run is reproducible.

Whole-link emulation stands in for Linux netem (``tc qdisc add dev lo root netem delay 40ms 5ms
loss 5%``), which these machines' kernels lack: a :class:`LinkConfig` in the same words applies
to what one side receives on every path, the game channel, the ping channel (whose arrival
times move with the delay, so the ping channel's RTT sees it) and the relay. Both sides with the
same config impair both directions, as netem on a shared interface does: a round trip gains
twice the delay.
"""

from __future__ import annotations

import heapq
import logging
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final, Protocol

from p2p_transport._checks import check_int, check_non_negative
from p2p_transport.errors import UsageError
from p2p_transport.protocol.routing import Link
from p2p_transport.protocol.sender import DataChannelLike
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.codec import Buffer

__all__ = [
    "DEFAULT_REORDER_MS",
    "LINK_PUMP_INTERVAL_MS",
    "FaultConfig",
    "FaultCounters",
    "FaultyChannel",
    "LinkConfig",
    "LinkCounters",
    "LinkEmulator",
    "PacketIntake",
]

logger = logging.getLogger(__name__)

#: How often held packets are looked at: 2 ms is finer than a browser's timers keep to, and a
#: small part of any delay worth emulating.
LINK_PUMP_INTERVAL_MS: Final = 2.0
#: One netem-style clause: ``delay TIME [JITTER]`` or ``loss PERCENT``.
_LINK_CLAUSE = re.compile(
    r"\s*(?:delay\s+(?P<delay>[\d.]+)ms(?:\s+(?P<jitter>[\d.]+)ms)?|loss\s+(?P<loss>[\d.]+)%)\s*"
)

#: How much later a reordered packet goes out: 50 ms is three frames at 60 Hz, so the next few
#: input packets overtake it, as on a path where one packet took a slower route.
DEFAULT_REORDER_MS: Final = 50.0


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise UsageError(f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """What goes wrong with each packet sent.

    ``loss`` is the long-run fraction of packets dropped, whatever the ``burst``: each loss event
    drops ``burst`` consecutive packets, and events start just often enough for that fraction.
    """

    loss: float = 0.0
    burst: int = 1
    #: Added to every packet that gets through.
    delay_ms: float = 0.0
    #: Probability that a packet that gets through arrives twice.
    duplicate: float = 0.0
    #: Probability that a packet that gets through is held back ``reorder_ms`` more.
    reorder: float = 0.0
    reorder_ms: float = DEFAULT_REORDER_MS

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            _check_probability(name, getattr(self, name))
        check_int("burst", self.burst, minimum=1)
        check_non_negative(self, "delay_ms", "reorder_ms")

    @property
    def holds_packets(self) -> bool:
        """Whether packets can wait in the queue, so something must call
        :meth:`FaultyChannel.pump`."""
        return self.delay_ms > 0 or (self.reorder > 0 and self.reorder_ms > 0)

    @property
    def burst_start_probability(self) -> float:
        """The chance that a packet outside a burst starts one.

        A cycle is a run of good packets, geometric with mean (1 - s) / s, then ``burst`` dropped
        ones, so the dropped fraction is b s / (b s + 1 - s); solved for s that is
        p / (b (1 - p) + p). With b = 1 it is p.
        """
        p, b = self.loss, self.burst
        return p / (b * (1 - p) + p) if p > 0 else 0.0


@dataclass(slots=True)
class FaultCounters:
    #: Packets given to :meth:`FaultyChannel.send`.
    packets: int = 0
    dropped: int = 0
    #: Loss events started (each drops ``burst`` packets, unless the config changes mid-burst).
    bursts: int = 0
    duplicated: int = 0
    reordered: int = 0
    #: Packets handed to the wrapped channel, duplicates included.
    forwarded: int = 0
    #: Queued packets that found the wrapped channel closed, or failing, when they came due.
    lost_in_flight: int = 0


class FaultyChannel:
    """A :class:`~.sender.DataChannelLike` that impairs what is sent through it.

    ``readyState`` and ``bufferedAmount`` are the wrapped channel's. ``config`` may be replaced at
    any time (a link that recovers, or degrades): a burst under way ends, packets already queued
    keep their time, and the random sequence carries on.
    """

    def __init__(
        self, channel: DataChannelLike, config: FaultConfig, clock: Clock, seed: int = 0
    ) -> None:
        self.channel = channel
        self._config = config
        self.counters = FaultCounters()
        self._clock = clock
        self._rng = random.Random(seed)
        self._burst_left = 0
        # (due ms, sequence, data): the sequence keeps packets due at the same time in send order.
        self._queue: list[tuple[float, int, bytes]] = []
        self._sequence = 0

    @property
    def config(self) -> FaultConfig:
        return self._config

    @config.setter
    def config(self, config: FaultConfig) -> None:
        self._config = config
        self._burst_left = 0

    @property
    def readyState(self) -> str:
        return self.channel.readyState

    @property
    def bufferedAmount(self) -> int:
        return self.channel.bufferedAmount

    @property
    def queued(self) -> int:
        """Packets waiting for their time."""
        return len(self._queue)

    @property
    def next_due_ms(self) -> float | None:
        """When the next queued packet is due, or ``None`` if none is queued."""
        return self._queue[0][0] if self._queue else None

    def send(self, data: bytes) -> None:
        config = self._config
        counters = self.counters
        counters.packets += 1
        if self._dropped(config):
            counters.dropped += 1
            return
        copies = 1
        if config.duplicate > 0 and self._rng.random() < config.duplicate:
            counters.duplicated += 1
            copies = 2
        delay = config.delay_ms
        if config.reorder > 0 and self._rng.random() < config.reorder:
            counters.reordered += 1
            delay += config.reorder_ms
        if delay <= 0:
            for _ in range(copies):
                self.channel.send(data)  # a closed channel raises here, as the real one would
                counters.forwarded += 1
            return
        due = self._clock() + delay
        for _ in range(copies):
            heapq.heappush(self._queue, (due, self._sequence, data))
            self._sequence += 1

    def replace_channel(self, channel: DataChannelLike) -> int:
        """Wrap ``channel`` from now on (a new connection after the old one closed).

        Packets still queued were headed for the old connection and are lost in flight, as they
        would be on the real path; returns how many. Counters and the random sequence carry on.
        """
        lost = len(self._queue)
        self._queue.clear()
        self.counters.lost_in_flight += lost
        self.channel = channel
        return lost

    def pump(self) -> int:
        """Hand every queued packet that is due to the wrapped channel; return how many went."""
        now = self._clock()
        sent = 0
        while self._queue and self._queue[0][0] <= now:
            _, _, data = heapq.heappop(self._queue)
            if self.channel.readyState != "open":
                self.counters.lost_in_flight += 1
                continue
            try:
                self.channel.send(data)
            except Exception:
                # The channel closed between the check and the send: the packet is lost in
                # flight, as it would be on the real path.
                self.counters.lost_in_flight += 1
                continue
            self.counters.forwarded += 1
            sent += 1
        return sent

    def stats(self) -> dict[str, int]:
        return asdict(self.counters)

    def _dropped(self, config: FaultConfig) -> bool:
        if self._burst_left > 0:
            self._burst_left -= 1
            return True
        start = config.burst_start_probability
        if start > 0 and self._rng.random() < start:
            self.counters.bursts += 1
            self._burst_left = config.burst - 1
            return True
        return False


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """The whole link's impairment, netem's words: every packet is ``delay_ms`` late, give or
    take up to ``jitter_ms`` (uniformly; packets may then overtake each other, as under netem),
    and ``loss`` of them never arrive."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0

    def __post_init__(self) -> None:
        check_non_negative(self, "delay_ms", "jitter_ms")
        _check_probability("loss", self.loss)
        if self.jitter_ms > self.delay_ms:
            raise UsageError(
                f"jitter_ms ({self.jitter_ms}) must not exceed delay_ms ({self.delay_ms}): a "
                "packet cannot arrive before it was sent"
            )

    @classmethod
    def parse(cls, text: str) -> LinkConfig:
        """From netem's words: ``"delay 40ms 5ms loss 5%"``, ``"delay 60ms"``, ``"loss 2%"``."""
        fields: dict[str, float] = {}
        position = 0
        while position < len(text):
            match = _LINK_CLAUSE.match(text, position)
            if match is None or match.end() == position:
                raise UsageError(
                    f"a link is netem's words, like 'delay 40ms 5ms loss 5%', got {text!r}"
                )
            if match["delay"] is not None:
                fields["delay_ms"] = float(match["delay"])
                fields["jitter_ms"] = float(match["jitter"] or 0.0)
            else:
                fields["loss"] = float(match["loss"]) / 100
            position = match.end()
        if not fields:
            raise UsageError(
                f"a link is netem's words, like 'delay 40ms 5ms loss 5%', got {text!r}"
            )
        return cls(**fields)

    def __str__(self) -> str:
        parts = []
        if self.delay_ms:
            jitter = f" {self.jitter_ms:g}ms" if self.jitter_ms else ""
            parts.append(f"delay {self.delay_ms:g}ms{jitter}")
        if self.loss:
            parts.append(f"loss {self.loss * 100:g}%")
        return " ".join(parts) or "delay 0ms"


@dataclass(slots=True)
class LinkCounters:
    #: Packets that came in on any path.
    packets: int = 0
    dropped: int = 0
    #: Packets handed on to the session (late, or at once without a delay).
    delivered: int = 0
    #: Packets still held when the emulation closed.
    lost_in_flight: int = 0


Deliver = Callable[[float], None]


class PacketIntake(Protocol):
    """Where a session's incoming packets go (its ``Intake``): the game channel's and the
    relay's by path, the ping channel's with their arrival time."""

    def receive(self, data: Buffer, path: Link) -> None: ...

    def receive_on_ping_channel(self, data: Buffer, arrival_ms: float) -> None: ...


class LinkEmulator:
    """Holds each incoming packet of every path for its delay (or drops it) before the session
    takes it. ``receive(arrival_ms, deliver)`` takes one packet: ``deliver(at_ms)`` is called once
    it is due, with the moment it arrives on the emulated link. A timer on ``scheduler`` runs
    only while packets are held."""

    def __init__(self, config: LinkConfig, clock: Clock, scheduler: Scheduler, seed: int) -> None:
        self.config = config
        self.counters = LinkCounters()
        self._clock = clock
        self._scheduler = scheduler
        self._rng = random.Random(seed)
        # (due ms, sequence, deliver): the sequence keeps packets due at once in arrival order.
        self._held: list[tuple[float, int, Deliver]] = []
        self._sequence = 0
        self._timer: object | None = None
        self._closed = False

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def timer_running(self) -> bool:
        return self._timer is not None

    def receive(self, arrival_ms: float, deliver: Deliver) -> None:
        config = self.config
        self.counters.packets += 1
        if self._closed:
            return
        if config.loss > 0 and self._rng.random() < config.loss:
            self.counters.dropped += 1
            return
        delay = config.delay_ms
        if config.jitter_ms > 0:
            delay += self._rng.uniform(-config.jitter_ms, config.jitter_ms)
        if delay <= 0:
            self.counters.delivered += 1
            deliver(arrival_ms)
            return
        heapq.heappush(self._held, (arrival_ms + delay, self._sequence, deliver))
        self._sequence += 1
        if self._timer is None:
            self._timer = self._scheduler.set_interval(self._tick, LINK_PUMP_INTERVAL_MS)

    def pump(self) -> int:
        """Deliver every held packet that is due; return how many."""
        now = self._clock()
        delivered = 0
        while self._held and self._held[0][0] <= now:
            due, _, deliver = heapq.heappop(self._held)
            self.counters.delivered += 1
            delivered += 1
            deliver(due)
        if not self._held:
            self._stop_timer()
        return delivered

    def _tick(self) -> None:
        try:
            self.pump()
        except Exception:
            # A timer callback has no caller to raise to; the session counts its own errors.
            logger.exception("link emulation: delivering a held packet failed")

    def stats(self) -> dict[str, int]:
        return {**asdict(self.counters), "held": len(self._held)}

    def close(self) -> None:
        """Drop what is held and stop the timer; later packets are dropped too. Idempotent."""
        self._closed = True
        self.counters.lost_in_flight += len(self._held)
        self._held.clear()
        self._stop_timer()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            timer, self._timer = self._timer, None
            self._scheduler.clear_interval(timer)

    def intake(self, inner: PacketIntake) -> PacketIntake:
        """``inner`` behind this link: each packet of every path is held for its delay, or
        dropped, first; a ping channel packet's arrival time moves with its delay."""
        return _EmulatedIntake(self, inner)


class _EmulatedIntake:
    def __init__(self, link: LinkEmulator, inner: PacketIntake) -> None:
        self._link = link
        self._inner = inner
        self._clock = link._clock

    def receive(self, data: Buffer, path: Link) -> None:
        packet = bytes(data)  # the caller may reuse its buffer while the packet is held
        self._link.receive(self._clock(), lambda _at: self._inner.receive(packet, path))

    def receive_on_ping_channel(self, data: Buffer, arrival_ms: float) -> None:
        packet = bytes(data)
        self._link.receive(arrival_ms, lambda at: self._inner.receive_on_ping_channel(packet, at))
