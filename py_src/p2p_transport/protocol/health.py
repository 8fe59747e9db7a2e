"""Connection health: is the peer-to-peer link good, degraded, or gone?"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from p2p_transport._checks import check_positive
from p2p_transport.errors import UsageError
from p2p_transport.protocol.rtt import RTTTracker
from p2p_transport.timing import Clock

__all__ = ["ConnectionHealthMonitor", "HealthStatus", "HealthThresholds", "carrying_health"]

#: How many recent input packets the loss estimate looks at: 120 is 2 s at 60 Hz, enough samples
#: that one lost packet moves the estimate by under 1%, recent enough to follow a change.
LOSS_WINDOW_PACKETS: Final = 120


class HealthStatus(StrEnum):
    GOOD = "good"
    WARNING = "warning"
    CRITICAL = "critical"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """When the link counts as degraded or gone.

    The latency limits are the seed design's: one-way latency above 100 ms is already felt in a
    60 Hz game (6 frames of rollback), above 200 ms it is hard to play.

    Silence: while the session's watchdog runs, the DataChannel brings a keepalive at least every
    200 ms (and a ping every 500 ms, and 60 input packets a second during play), and the relay a
    ping every 500 ms. GGPO tells the game after 750 ms of silence and disconnects after 5000 ms;
    GGRS uses 500 ms and 2000 ms; both send keepalives every 200 ms over UDP, where silence is the
    only sign of a lost peer. The defaults here, 1000 ms and 3000 ms, differ because:

    - A warning here has a cost GGPO's notice does not: ``p2p-first`` routing moves the inputs to
      the relay on it. On an idle link at 30% loss (about seven packets a second), 500 ms of
      silence is three or four losses in a row (p ~ 1.5e-2 per half second): a warning about
      twice a minute. 1000 ms is seven in a row (p ~ 2e-4 per second): about once an hour.
    - A closed tab does not need the silence threshold: the server's ``peer_left`` and the
      DataChannel's close event report it within a second. The disconnect threshold only catches
      a peer that vanished without either, with silence on both paths (the relay too). 3 s
      rather than GGRS's 2 s rides through a tab whose timers the browser throttled to one a
      second and through a relay hiccup while the server reconnects its WebSocket; rather than
      GGPO's 5 s because GGPO's peer has no second path, so its silence is more often a passing
      outage worth waiting for, while here the relay's silence too is a strong sign.
    """

    warning_one_way_ms: float = 100.0
    critical_one_way_ms: float = 200.0
    warning_silence_ms: float = 1000.0
    disconnect_silence_ms: float = 3000.0

    def __post_init__(self) -> None:
        check_positive(
            self,
            "warning_one_way_ms",
            "critical_one_way_ms",
            "warning_silence_ms",
            "disconnect_silence_ms",
        )
        if self.critical_one_way_ms < self.warning_one_way_ms:
            raise UsageError("critical_one_way_ms must not be below warning_one_way_ms")
        if self.disconnect_silence_ms < self.warning_silence_ms:
            raise UsageError("disconnect_silence_ms must not be below warning_silence_ms")


class ConnectionHealthMonitor:
    """Watches the packets of one path (the DataChannel) and rates the link.

    Loss is estimated from the input packets' current frames: the peer sends one packet per frame,
    so the share of frames in the recent range that never brought a packet is the packet loss.
    Gaps (inputs that redundancy failed to bring) are the receiver's to count; they are reported
    here by :meth:`record_gaps` so the rating sees them.
    """

    def __init__(
        self,
        clock: Clock,
        rtt: RTTTracker | None = None,
        thresholds: HealthThresholds | None = None,
    ) -> None:
        self._clock = clock
        self._rtt = rtt
        self.thresholds = thresholds or HealthThresholds()
        self.packets_received = 0
        self.gaps = 0
        self._recent_frames: deque[int] = deque(maxlen=LOSS_WINDOW_PACKETS)
        self._recent_set: set[int] = set()
        self._since_ms = clock()
        self.last_packet_at_ms: float | None = None
        #: The peer has left this side's inputs unacknowledged past the acked sender's pending
        #: bound (the session keeps this up to date): it rates the link a warning at least.
        self.peer_stalled = False

    def reset(self) -> None:
        """Start watching afresh (the channel (re)opened); totals are kept."""
        self._recent_frames.clear()
        self._recent_set.clear()
        self._since_ms = self._clock()
        self.last_packet_at_ms = None

    def record_packet(self, input_frame: int | None = None, now: float | None = None) -> None:
        """A packet of any kind arrived (at ``now``, if the caller has read the clock);
        ``input_frame`` is an input packet's current frame."""
        self.packets_received += 1
        self.last_packet_at_ms = self._clock() if now is None else now
        if input_frame is not None and input_frame not in self._recent_set:
            if len(self._recent_frames) == self._recent_frames.maxlen:
                self._recent_set.discard(self._recent_frames[0])
            self._recent_frames.append(input_frame)
            self._recent_set.add(input_frame)

    def excuse(self, stalled_ms: float) -> None:
        """The local side ran nothing for ``stalled_ms`` just now (a frozen or blocked page, see
        :data:`~.session.LOCAL_STALL_MS`): leave that time out of :attr:`silence_ms`. Every packet
        came before the stall, so moving the reference point forward by it subtracts it exactly."""
        if stalled_ms <= 0:
            return
        now = self._clock()
        if self.last_packet_at_ms is not None:
            self.last_packet_at_ms = min(self.last_packet_at_ms + stalled_ms, now)
        self._since_ms = min(self._since_ms + stalled_ms, now)

    def record_gaps(self, count: int) -> None:
        self.gaps += count

    @property
    def silence_ms(self) -> float:
        """Time since the last packet, or since watching began if none came."""
        last = self.last_packet_at_ms if self.last_packet_at_ms is not None else self._since_ms
        return max(0.0, self._clock() - last)

    @property
    def loss_estimate(self) -> float | None:
        """Fraction of recent frames whose input packet never arrived on this path."""
        if len(self._recent_set) < 2:
            return None
        span = max(self._recent_set) - min(self._recent_set) + 1
        return 1.0 - len(self._recent_set) / span

    @property
    def status(self) -> HealthStatus:
        t = self.thresholds
        silence = self.silence_ms
        if silence > t.disconnect_silence_ms:
            return HealthStatus.DISCONNECTED
        one_way = self._rtt.one_way_ms if self._rtt is not None else None
        if one_way is not None and one_way > t.critical_one_way_ms:
            return HealthStatus.CRITICAL
        if (
            silence > t.warning_silence_ms
            or (one_way is not None and one_way > t.warning_one_way_ms)
            or self.peer_stalled
        ):
            return HealthStatus.WARNING
        return HealthStatus.GOOD

    def snapshot(self) -> dict[str, float | int | str | None]:
        return {
            "health_status": self.status.value,
            "health_packets_received": self.packets_received,
            "health_gaps": self.gaps,
            "health_loss_estimate": self.loss_estimate,
            "health_silence_ms": self.silence_ms,
        }


def carrying_health(
    p2p: HealthStatus,
    p2p_open: bool,
    relay_silence_ms: float | None,
    relay_one_way_ms: float | None,
    thresholds: HealthThresholds,
) -> tuple[str | None, HealthStatus]:
    """The health of the path that carries the game, and which path that is: the DataChannel
    while it is open and not gone silent, else the relay while packets come through it (judged
    by the same thresholds on its own silence and latency), else none: disconnected. A game
    carried by the relay alone is never "disconnected"."""
    if p2p_open and p2p is not HealthStatus.DISCONNECTED:
        return "p2p", p2p
    t = thresholds
    if relay_silence_ms is None or relay_silence_ms > t.disconnect_silence_ms:
        return None, HealthStatus.DISCONNECTED
    if relay_one_way_ms is not None and relay_one_way_ms > t.critical_one_way_ms:
        return "relay", HealthStatus.CRITICAL
    if relay_silence_ms > t.warning_silence_ms or (
        relay_one_way_ms is not None and relay_one_way_ms > t.warning_one_way_ms
    ):
        return "relay", HealthStatus.WARNING
    return "relay", HealthStatus.GOOD
