"""What one client may cost the server, so that no client can slow down the others.

A browser with the default settings relays about 64 messages/s (an input packet per 60 Hz frame,
plus a ping and a pong every 500 ms) of a few dozen bytes each, and signals a few dozen times while
it connects. The limits below leave several times that, then throttle: an event over its limit is
dropped and counted, and a client that keeps going past its limit is disconnected. A client that
reads too slowly loses the packets its queue has no room for (counted), and is disconnected once
that has lasted a while: the relay is for real-time play, and an old packet is worth nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

__all__ = ["ClientLimits", "LogThrottle", "TokenBucket"]

#: Relay messages per second: four times what a 60 Hz player sends with its pings.
DEFAULT_RELAY_PER_S: Final = 256.0
#: Relay payload bytes per second: the message rate at the largest input packets' size (with all
#: 12 redundant inputs, about 64 bytes), times four.
DEFAULT_RELAY_BYTES_PER_S: Final = 64 * 1024.0
#: Signals per second, averaged: an ICE restart sends an offer, an answer and a few candidates.
DEFAULT_SIGNALS_PER_S: Final = 20.0
#: A bucket holds this many seconds of its rate, so a burst (the candidates gathered at once, the
#: packets a stalled tab sends when it wakes up) passes.
DEFAULT_BURST_S: Final = 2.0
#: A client dropped this many seconds' worth of its relay rate for being over its limits is
#: flooding, not bursting: it is disconnected.
DEFAULT_FLOOD_S: Final = 2.0
#: A socket that has not joined a room this long after connecting is closed (a page joins as
#: soon as it connects).
DEFAULT_JOIN_TIMEOUT_S: Final = 15.0
#: Open connections (Socket.IO sessions) one process accepts. A pair needs two. When it is full, a
#: newcomer takes the place of a socket that has not joined (the oldest one of the address holding
#: the most), and is refused only when every socket has joined: joined players are never the ones
#: refused for room that idle sockets hold.
DEFAULT_MAX_CONNECTIONS: Final = 1000
# --- the door: limits per client address (see p2p_server.door) ----------------------------------
# A study's participants often share one address: a university's NAT, a lab, a lecture hall whose
# students all open the page when told to. The defaults let 250 pairs play from one address and
# 200 participants arrive within the same second, while one address can neither fill a process
# nor keep others out with sockets that never join.
#: Connections one address may hold open: 500, i.e. 250 pairs behind one NAT, half a process at
#: the default --max-connections, so one address (even a whole campus) leaves the other half free.
DEFAULT_MAX_PER_ADDRESS: Final = 500
#: New connections per second one address may open, on average...
DEFAULT_CONNECTS_PER_ADDRESS_PER_S: Final = 20.0
#: ... and at once: a lecture hall of 200 opening the page together gets in without waiting.
DEFAULT_CONNECT_BURST_PER_ADDRESS: Final = 200
#: Sockets from one address that have connected but not joined a room yet. A page joins one
#: round trip after it connects, so even 200 participants arriving within a second overlap by a
#: few dozen at most; 64 leaves that margin, and is all of one address's idle sockets a process
#: ever holds (each for at most the join timeout).
DEFAULT_MAX_UNJOINED_PER_ADDRESS: Final = 64
#: Engine.IO packets waiting to be written to one client; past it the relay drops what it would
#: queue. A relayed binary packet is two of them, so at 64 messages/s this is two seconds.
DEFAULT_MAX_QUEUED: Final = 256
#: A client whose queue has stayed full this long is not reading: it is disconnected.
DEFAULT_SLOW_READER_S: Final = 5.0
#: Malformed messages a client may send before it is disconnected; a correct client sends none.
DEFAULT_MAX_MALFORMED: Final = 20
#: Each client's (and the process's) malformed traffic is logged at most once per this interval.
DEFAULT_LOG_INTERVAL_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """Per-client limits of one server process (the defaults are sized above)."""

    relay_per_s: float = DEFAULT_RELAY_PER_S
    relay_bytes_per_s: float = DEFAULT_RELAY_BYTES_PER_S
    signals_per_s: float = DEFAULT_SIGNALS_PER_S
    burst_s: float = DEFAULT_BURST_S
    flood_s: float = DEFAULT_FLOOD_S
    join_timeout_s: float = DEFAULT_JOIN_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_per_address: int = DEFAULT_MAX_PER_ADDRESS
    connects_per_address_per_s: float = DEFAULT_CONNECTS_PER_ADDRESS_PER_S
    connect_burst_per_address: int = DEFAULT_CONNECT_BURST_PER_ADDRESS
    max_unjoined_per_address: int = DEFAULT_MAX_UNJOINED_PER_ADDRESS
    max_queued: int = DEFAULT_MAX_QUEUED
    slow_reader_s: float = DEFAULT_SLOW_READER_S
    max_malformed: int = DEFAULT_MAX_MALFORMED
    log_interval_s: float = DEFAULT_LOG_INTERVAL_S

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"ClientLimits.{name} must be a positive number, got {value!r}")
            if isinstance(self.__dataclass_fields__[name].default, int) and not isinstance(
                value, int
            ):
                raise ValueError(f"ClientLimits.{name} must be a whole number, got {value!r}")
        if self.max_unjoined_per_address > self.max_per_address:
            raise ValueError(
                f"max_unjoined_per_address ({self.max_unjoined_per_address}) cannot be more than "
                f"max_per_address ({self.max_per_address})"
            )

    @property
    def max_flood_drops(self) -> int:
        """Relay messages dropped for a client's limits before it is disconnected."""
        return round(self.relay_per_s * self.flood_s)


class TokenBucket:
    """A rate limit: ``take`` spends from a bucket that refills at ``rate`` per second up to
    ``capacity``. A few float operations per call; the clock is passed in."""

    __slots__ = ("_level", "_updated", "capacity", "rate")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self._level = capacity
        self._updated = now

    def scale(self, factor: float) -> None:
        """Refill ``factor`` times as fast and hold ``factor`` times as much."""
        self.rate *= factor
        self.capacity *= factor
        self._level *= factor

    def take(self, now: float, amount: float = 1.0) -> bool:
        """Spend ``amount`` if the bucket holds it; ``False`` (nothing spent) if it does not."""
        level = min(self.capacity, self._level + (now - self._updated) * self.rate)
        self._updated = now
        if level < amount:
            self._level = level
            return False
        self._level = level - amount
        return True

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled to its capacity by ``now``."""
        return self._level + (now - self._updated) * self.rate >= self.capacity


class LogThrottle:
    """Lets a log line about ``key`` (a client) through at most once per ``interval_s``, so a
    client that sends junk in a loop cannot fill the disk."""

    __slots__ = ("_last", "interval_s")

    #: Keys remembered before the old ones are forgotten (one per misbehaving client).
    MAX_KEYS: Final = 10_000

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[object, float] = {}

    def allow(self, key: object, now: float | None = None) -> bool:
        if now is None:
            now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        if len(self._last) >= self.MAX_KEYS:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval_s}
        self._last[key] = now
        return True
