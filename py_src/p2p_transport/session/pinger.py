"""Pings and round-trip times on both paths, and the ping channel that a stalled main thread
cannot fool.

On the game channel and the relay, a ping is answered with a version-1 pong and timed from its
sending to the handling of its pong. On the ping channel (:class:`PingChannelLike`, a
DataChannel a worker holds), the holder stamps arrivals and departures, pings are answered with
a held pong that says how long the responder held the ping, and a round trip runs from the ping's
departure to the pong's arrival less that hold: neither side's busy main thread counts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from p2p_transport.protocol.routing import Link
from p2p_transport.protocol.rtt import RTTTracker
from p2p_transport.protocol.sender import DataChannelLike
from p2p_transport.session.paths import Paths
from p2p_transport.session.telemetry import TelemetryRecorder
from p2p_transport.timing import Clock
from p2p_transport.wire.codec import (
    HELD_PONG_HOLD_OFFSET,
    MAX_HOLD_MS,
    encode_held_pong,
    encode_ping,
    encode_pong,
)
from p2p_transport.wire.messages import HeldPong, Message, Ping, Pong

__all__ = [
    "CLOCK_RESOLUTION_MS",
    "DEFAULT_PING_INTERVAL_MS",
    "LATE_HANDLING_MS",
    "MAX_OUTSTANDING_PINGS",
    "PING_CHANNEL_PROBES",
    "PingChannelLike",
    "Pinger",
    "PingerCounters",
    "RTTCallback",
]

#: The seed design pings every 500 ms: two RTT samples a second keep the 10-sample window at the
#: last 5 s, and cost 18 bytes each way, nothing beside 60 input packets a second.
DEFAULT_PING_INTERVAL_MS: Final = 500.0
#: Pings remembered until their pong comes back: 32 is 16 s of pings, longer than any pong that
#: still says something about the link. A pong matching none of them is counted and ignored.
MAX_OUTSTANDING_PINGS: Final = 32
#: ``performance.now()`` resolves 0.1 ms in Chromium without cross-origin isolation.
CLOCK_RESOLUTION_MS: Final = 0.1
#: Pings sent on the ping channel before it counts as unanswered: a peer without one (a deployed
#: JavaScript peer) never answers there, and three pings (1.5 s) is long enough to tell.
PING_CHANNEL_PROBES: Final = 3
#: A pong handled this long after it arrived was handled late by this side (a stalled main
#: thread): its sample is still right, measured from the arrival, but is counted. 20 ms is more
#: than a frame of ordinary event-loop delay at 60 Hz.
LATE_HANDLING_MS: Final = 20.0

#: Called with each round-trip sample and the path it was measured on.
RTTCallback = Callable[[float, Link], None]


class PingChannelLike(DataChannelLike, Protocol):
    """The ping channel (:meth:`~p2p_transport.session.P2PSession.attach_ping_channel`): a
    DataChannel whose holder can take a time at the very moment a packet leaves. In the browser a
    worker holds it, so neither a busy main thread nor the hop to the worker counts as network
    delay."""

    def send_ping(self, data: bytes, timestamp_ms: float) -> None:
        """Send a ping, then report when it left: ``P2PSession.on_ping_left`` with
        ``timestamp_ms`` (the ping's own, to find it by) and the moment it left."""
        ...

    def send_held_pong(self, data: bytes, hold_offset: int, arrival_ms: float) -> None:
        """Send a held pong whose hold field (a big-endian u32 of microseconds at byte
        ``hold_offset``) is rewritten, as it leaves, to the time since the ping's ``arrival_ms``."""
        ...


@dataclass(slots=True)
class PingerCounters:
    #: Pongs answering no ping this side has outstanding (a duplicate, or a peer making them up).
    unmatched_pongs: int = 0
    #: Pongs handled after a local stall that began after their ping went out: their round trip
    #: is mostly this side's stall, so they are not RTT samples (the health verdict never sees
    #: them).
    rtt_samples_after_local_stall: int = 0
    #: Pongs carrying the responder's hold time that this side sent and received.
    held_pongs_sent: int = 0
    held_pongs_received: int = 0
    #: Pongs this side handled :data:`LATE_HANDLING_MS` or more after they arrived.
    rtt_samples_handled_late: int = 0
    #: Messages on the ping channel that are neither pings nor pongs (dropped).
    ping_channel_unexpected: int = 0
    #: Pings the game channel carried too while the ping channel was being probed.
    pings_while_probing: int = 0


class Pinger:
    """Sends pings, answers the peer's, and turns pongs into RTT samples.

    ``rtt``, ``relay_rtt`` and ``naive_rtt`` are the trackers it feeds (the DataChannel's
    corrected RTT, the relay's, and the ping channel's naive one); ``last_stall_end`` tells when
    this side last stalled (the watchdog's); ``on_sample(rtt_ms, path)`` hears each sample.
    """

    def __init__(
        self,
        clock: Clock,
        paths: Paths,
        trackers: dict[Link, RTTTracker],
        naive_rtt: RTTTracker,
        telemetry: TelemetryRecorder,
        last_stall_end: Callable[[], float | None],
        on_sample: RTTCallback,
    ) -> None:
        self._clock = clock
        self._paths = paths
        self._trackers = trackers
        self.naive_rtt = naive_rtt
        self._telemetry = telemetry
        self._last_stall_end = last_stall_end
        self._on_sample = on_sample
        self.counters = PingerCounters()
        self._ping_channel: PingChannelLike | None = None
        self._ping_channel_proven = False
        self._ping_channel_probes = 0
        # Pings awaiting their pong, by (path, sent on the ping channel, timestamp), each with
        # the moment it left when its channel reports one.
        self._outstanding: OrderedDict[tuple[Link, bool, float], float | None] = OrderedDict()

    # --- the ping channel ---------------------------------------------------------------------

    def attach_ping_channel(self, channel: PingChannelLike | None) -> None:
        self._ping_channel = channel
        self._ping_channel_proven = False
        self._ping_channel_probes = 0

    @property
    def ping_channel_state(self) -> str:
        """``none``, ``closed``, ``in use`` (the peer answered there), ``probing``, or
        ``unanswered`` (the pings went to the game channel instead)."""
        channel = self._ping_channel
        if channel is None:
            return "none"
        if channel.readyState in ("closing", "closed"):
            return "closed"
        if self._ping_channel_proven:
            return "in use"
        return "probing" if self._ping_channel_probes < PING_CHANNEL_PROBES else "unanswered"

    def _ping_channel_to_use(self) -> PingChannelLike | None:
        """The ping channel, if it is open and either answered or still being probed."""
        channel = self._ping_channel
        if (
            channel is not None
            and channel.readyState == "open"
            and (self._ping_channel_proven or self._ping_channel_probes < PING_CHANNEL_PROBES)
        ):
            return channel
        return None

    # --- pinging ------------------------------------------------------------------------------

    def ping(self, path: Link) -> None:
        now = self._clock()
        channel = self._ping_channel_to_use() if path is Link.P2P else None
        if channel is None:
            self._send_ping(path, now, None)
            return
        self._send_ping(path, now, channel)
        if not self._ping_channel_proven:
            self._ping_channel_probes += 1
            # RTT from the first ping: until the peer answers on the ping channel (a deployed
            # peer never does), the game channel carries each ping too.
            self.counters.pings_while_probing += self._send_ping(path, now, None)

    def _send_ping(self, path: Link, now: float, ping_channel: PingChannelLike | None) -> bool:
        if ping_channel is None:
            sent = self._paths.send_small(path, encode_ping(now))
        else:
            sent = self._paths.send_small(
                path, encode_ping(now), ping_channel, lambda data: ping_channel.send_ping(data, now)
            )
        if sent:
            self._paths.stats[path].pings_sent += 1
            self._outstanding[(path, ping_channel is not None, now)] = None
            while len(self._outstanding) > MAX_OUTSTANDING_PINGS:
                self._outstanding.popitem(last=False)
        return sent

    def on_ping_left(self, timestamp_ms: float, left_ms: float) -> None:
        key = (Link.P2P, True, timestamp_ms)
        if key in self._outstanding:
            self._outstanding[key] = left_ms

    # --- answering and timing -----------------------------------------------------------------

    def on_ping(self, ping: Ping, path: Link) -> None:
        # Answered here, inside the message handler, so the pong's delay is the network's and
        # not the game loop's.
        self._paths.stats[path].pings_received += 1
        self._paths.send_small(path, encode_pong(ping.timestamp_ms))

    def on_pong(self, pong: Pong, path: Link) -> None:
        self._take_pong(pong.timestamp_ms, path, False, None, None)

    def on_ping_channel_message(self, message: Message, arrival_ms: float) -> None:
        """A message that arrived on the ping channel at ``arrival_ms``."""
        # Not counted as the DataChannel heard: the ping channel can be alive while the game
        # channel is dead one way, and that is what the silence checks must see.
        if isinstance(message, Ping):
            self._paths.stats[Link.P2P].pings_received += 1
            self._answer_on_ping_channel(message.timestamp_ms, arrival_ms)
        elif isinstance(message, HeldPong | Pong):
            self._ping_channel_proven = True
            hold_ms = message.hold_ms if isinstance(message, HeldPong) else None
            self.counters.held_pongs_received += isinstance(message, HeldPong)
            self._take_pong(message.timestamp_ms, Link.P2P, True, arrival_ms, hold_ms)
        else:
            self.counters.ping_channel_unexpected += 1

    def _answer_on_ping_channel(self, timestamp_ms: float, arrival_ms: float) -> None:
        channel = self._ping_channel
        if channel is None:  # let go of (close(), or detached) while the ping was on its way
            return
        # The hold so far, which the channel brings up to date as the pong leaves.
        hold_ms = min(max(0.0, self._clock() - arrival_ms), MAX_HOLD_MS)
        sent = self._paths.send_small(
            Link.P2P,
            encode_held_pong(timestamp_ms, hold_ms),
            channel,
            lambda data: channel.send_held_pong(data, HELD_PONG_HOLD_OFFSET, arrival_ms),
        )
        self.counters.held_pongs_sent += sent

    def _take_pong(
        self,
        timestamp_ms: float,
        path: Link,
        on_ping_channel: bool,
        arrival_ms: float | None,
        hold_ms: float | None,
    ) -> None:
        """A pong for the ping sent at ``timestamp_ms`` (on the ping channel or not);
        ``arrival_ms`` is when it arrived, if known (the ping channel), and ``hold_ms`` how long
        the peer held the ping, if it says."""
        key = (path, on_ping_channel, timestamp_ms)
        if key not in self._outstanding:
            self.counters.unmatched_pongs += 1
            return
        left_ms = self._outstanding.pop(key)
        self._paths.stats[path].pongs_received += 1
        now = self._clock()
        naive_ms = max(now - timestamp_ms, CLOCK_RESOLUTION_MS)
        handled_late = False
        if arrival_ms is None:
            stall_end = self._last_stall_end()
            if stall_end is not None and stall_end > timestamp_ms:
                # This side stalled while the ping was out (the ping timer ran when it was sent,
                # so the stall began after): the round trip measures the stall, not the link.
                self.counters.rtt_samples_after_local_stall += 1
                return
            arrival_ms = now
        else:
            self.naive_rtt.add_sample(naive_ms)
            handled_late = now - arrival_ms >= LATE_HANDLING_MS
            self.counters.rtt_samples_handled_late += handled_late
        # A matched pong is a real answer even when a coarse clock reads its round trip as 0.
        start_ms = timestamp_ms if left_ms is None else left_ms
        rtt_ms = max(arrival_ms - start_ms - (hold_ms or 0.0), CLOCK_RESOLUTION_MS)
        self._trackers[path].add_sample(rtt_ms)
        self._telemetry.record_rtt(now, path.value, rtt_ms, naive_ms, hold_ms, handled_late)
        self._on_sample(rtt_ms, path)

    def close(self) -> None:
        self._ping_channel = None
        self._outstanding.clear()
