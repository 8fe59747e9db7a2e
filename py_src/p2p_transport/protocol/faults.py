"""Fault injection: a seeded wrapper that makes any DataChannel-like object lose, delay, duplicate
and reorder what is sent through it.

It depends only on the :class:`~.sender.DataChannelLike` protocol and an injected clock, so the
same wrapper impairs a fake channel under CPython and a real RTCDataChannel adapter in the
browser. Faults apply to what this side sends; wrap both sides' channels to impair both
directions. Packets that are delayed or reordered wait in a queue that :meth:`FaultyChannel.pump`
flushes when they are due: call it from the game loop or a timer (``next_due_ms`` says when).
Every random choice comes from one ``random.Random(seed)``, so a run is reproducible.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import asdict, dataclass
from typing import Final

from p2p_transport._checks import check_int, check_non_negative
from p2p_transport.errors import UsageError
from p2p_transport.protocol.sender import DataChannelLike
from p2p_transport.timing import Clock

__all__ = ["DEFAULT_REORDER_MS", "FaultConfig", "FaultCounters", "FaultyChannel"]

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
