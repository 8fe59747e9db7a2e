"""The watchdog: keepalives over an idle DataChannel, the peer's silence, and this side's own
stalls, which must never be blamed on the peer.

Sans-IO: the session runs :meth:`Watchdog.tick` from its timer and calls :meth:`note_awake` at
every entry point; the watchdog reports through the ``report`` function it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from p2p_transport.protocol.health import ConnectionHealthMonitor
from p2p_transport.protocol.routing import Link
from p2p_transport.session.paths import Paths
from p2p_transport.timing import Clock
from p2p_transport.wire.codec import encode_keepalive

__all__ = [
    "DEFAULT_KEEPALIVE_INTERVAL_MS",
    "LOCAL_STALL_MS",
    "SessionEvent",
    "SessionEventCallback",
    "Watchdog",
    "WatchdogCounters",
]

logger = logging.getLogger(__name__)

#: The watchdog's period (:meth:`~p2p_transport.session.edge.SessionEdge.start_watchdog`): a
#: keepalive goes out over the DataChannel when nothing else did for this long, and the peer's
#: silence is checked. GGPO and GGRS send keepalives every 200 ms too; at 60 Hz a running game
#: never needs one, a paused game sends five a second (one byte each), so the peer's silence
#: thresholds measure the link, not the game.
DEFAULT_KEEPALIVE_INTERVAL_MS: Final = 200.0
#: While the watchdog runs, a gap this long in which no entry point of the session ran (no timer,
#: no message, no step) is a local stall: the page was frozen, or its main thread blocked, and
#: whatever the peer sent meanwhile waits in the event queue. The session leaves such a gap out of
#: the peer's silence (it measures silence only over time this side was awake), so neither the
#: watchdog's events nor the health status blame the peer for it, and a pong handled after it is
#: not an RTT sample. Why 1500 ms: the watchdog alone runs every 200 ms, and Chromium throttles a
#: hidden tab's timers to at most one wake-up a second (aligned to whole seconds), so an awake
#: page, however throttled, runs something at least every ~1000 ms; 1500 ms is half as much again
#: for wake-up jitter. A throttled tab whose peer went silent (gaps of 1000 ms) is therefore still
#: judged on the full silence and reports the peer gone after 3 s. A stall shorter than 1500 ms is
#: not excused, but alone it cannot reach the 3000 ms disconnect threshold. Not covered: Chromium's
#: intensive throttling (one wake-up a minute after 5 minutes hidden; pages with an open
#: RTCDataChannel are exempt from it) would make every gap a stall and hide a peer that vanished
#: without a close event or the server's ``peer_left``.
LOCAL_STALL_MS: Final = 1500.0


class SessionEvent(StrEnum):
    """What the session reports to ``on_event``: the watchdog's findings (each once per crossing
    of its threshold), and the peer's focus.

    Thresholds are the health monitor's silence thresholds
    (:class:`~p2p_transport.protocol.health.HealthThresholds`): ``warning_silence_ms`` and
    ``disconnect_silence_ms``.
    """

    #: The DataChannel is open but nothing came over it for the warning threshold.
    P2P_SILENT = "p2p_silent"
    #: ... nor for the disconnect threshold: the channel is open only in name.
    P2P_DEAD = "p2p_dead"
    #: Nothing came on any path for the warning threshold.
    PEER_SILENT = "peer_silent"
    #: Nothing came on any path for the disconnect threshold: the peer is gone (or the network).
    PEER_GONE = "peer_gone"
    #: A packet arrived after ``peer_silent`` or ``peer_gone``.
    PEER_BACK = "peer_back"
    #: Not the watchdog's: a deployed peer said its tab gained or lost the foreground (detail
    #: ``focused``, ``frame``).
    PEER_FOCUS = "peer_focus"


#: Called with a :class:`SessionEvent` and a detail dict (``silence_ms``).
SessionEventCallback = Callable[[SessionEvent, dict[str, Any]], None]


@dataclass(slots=True)
class WatchdogCounters:
    #: Keepalives the watchdog sent over an idle DataChannel.
    keepalives_sent: int = 0
    #: Local stalls (:data:`LOCAL_STALL_MS`): gaps in which this side ran nothing, left out of the
    #: peer's silence; the longest one, and their total.
    local_stalls: int = 0
    local_stall_max_ms: float = 0.0
    local_stalled_ms: float = 0.0


class Watchdog:
    """Keepalives, silence alarms and local stalls for one session.

    ``report`` hears each :class:`SessionEvent` (the session guards the game's callback).
    """

    def __init__(
        self,
        clock: Clock,
        paths: Paths,
        health: ConnectionHealthMonitor,
        report: SessionEventCallback,
    ) -> None:
        self._clock = clock
        self._paths = paths
        self._health = health
        self._report_event = report
        self.counters = WatchdogCounters()
        #: Between :meth:`start` and :meth:`stop`.
        self.running = False
        self._p2p_sent_at_last_check = 0
        self._p2p_alarm: SessionEvent | None = None
        self._peer_alarm: SessionEvent | None = None
        # When watching started, and the last packet that came through the relay: with the
        # health monitor's last DataChannel packet, they say how long the peer has been silent.
        self._watch_since_ms = clock()
        self._relay_heard_ms: float | None = None
        # When an entry point last ran (see note_awake).
        self._awake_at_ms = clock()
        #: When the last local stall ended, if there was one.
        self.last_stall_end_ms: float | None = None

    def start(self) -> None:
        self.running = True
        self._watch_since_ms = self._clock()
        self._awake_at_ms = self._watch_since_ms
        self._p2p_sent_at_last_check = self._paths.stats[Link.P2P].sent.packets_sent

    def stop(self) -> None:
        self.running = False

    def heard_again(self) -> None:
        """The peer answered without a packet (the DataChannel opened): silence starts anew."""
        self._watch_since_ms = self._clock()

    def relay_heard(self, now: float | None = None) -> None:
        """A packet came through the relay (at ``now``, if the caller has read the clock)."""
        self._relay_heard_ms = self._clock() if now is None else now

    @property
    def relay_silence_ms(self) -> float | None:
        """Time since a packet last came through the relay (``None``: none ever did)."""
        heard = self._relay_heard_ms
        return None if heard is None else max(0.0, self._clock() - heard)

    def keep_silence_across_reset(self) -> None:
        """The health monitor is about to forget its last packet (a new episode); the peer's
        silence must not."""
        last = self._health.last_packet_at_ms
        if last is not None and last > self._watch_since_ms:
            self._watch_since_ms = last

    @property
    def peer_silence_ms(self) -> float:
        """Time since a packet last arrived on any path (or since watching started)."""
        last = self._watch_since_ms
        for heard in (self._health.last_packet_at_ms, self._relay_heard_ms):
            if heard is not None and heard > last:
                last = heard
        return max(0.0, self._clock() - last)

    def note_awake(self, now: float | None = None) -> None:
        """An entry point runs (at ``now``, if it has read the clock already): if nothing ran for
        :data:`LOCAL_STALL_MS` while the watchdog was running, count a local stall and leave it
        out of the peer's silence on every path."""
        if not self.running:
            # Without the watchdog nothing has to run while the page is awake, so a gap says
            # nothing about this side.
            return
        if now is None:
            now = self._clock()
        gap = now - self._awake_at_ms
        self._awake_at_ms = now
        if gap <= LOCAL_STALL_MS:
            return
        counters = self.counters
        counters.local_stalls += 1
        counters.local_stalled_ms += gap
        counters.local_stall_max_ms = max(counters.local_stall_max_ms, gap)
        self.last_stall_end_ms = now
        # Every packet was heard before the stall began (hearing one is an entry point), so
        # moving each reference point forward by the gap subtracts exactly the stall.
        self._health.excuse(gap)
        self._watch_since_ms = min(self._watch_since_ms + gap, now)
        if self._relay_heard_ms is not None:
            self._relay_heard_ms = min(self._relay_heard_ms + gap, now)
        logger.info("local stall of %.0f ms left out of the peer's silence", gap)

    def send_keepalive(self) -> bool:
        """Send a keepalive over the DataChannel now; return whether it went."""
        return self._paths.send_small(Link.P2P, encode_keepalive())

    def tick(self) -> None:
        """The timer's work: a keepalive if the DataChannel was idle, then the silence checks."""
        self.note_awake()
        self._keepalive_if_idle()
        self._check_silence()

    def _keepalive_if_idle(self) -> None:
        sent = self._paths.stats[Link.P2P].sent
        if (
            sent.packets_sent == self._p2p_sent_at_last_check
            and self._paths.is_open(Link.P2P)
            and self.send_keepalive()
        ):
            self.counters.keepalives_sent += 1
        self._p2p_sent_at_last_check = sent.packets_sent

    def _check_silence(self) -> None:
        thresholds = self._health.thresholds
        warning, disconnect = thresholds.warning_silence_ms, thresholds.disconnect_silence_ms
        if self._paths.is_open(Link.P2P):
            silence = self._health.silence_ms
            if silence > disconnect:
                self._p2p_alarm = self._raise(self._p2p_alarm, SessionEvent.P2P_DEAD, silence)
            elif silence > warning:
                if self._p2p_alarm is None:
                    self._p2p_alarm = self._raise(None, SessionEvent.P2P_SILENT, silence)
            else:
                self._p2p_alarm = None
        else:
            # A closed channel is reported by its own close event; a new one starts afresh.
            self._p2p_alarm = None
        silence = self.peer_silence_ms
        if silence > disconnect:
            self._peer_alarm = self._raise(self._peer_alarm, SessionEvent.PEER_GONE, silence)
        elif silence > warning:
            if self._peer_alarm is None:
                self._peer_alarm = self._raise(None, SessionEvent.PEER_SILENT, silence)
        elif self._peer_alarm is not None:
            self._peer_alarm = None
            self._report(SessionEvent.PEER_BACK, silence)

    def _raise(
        self, current: SessionEvent | None, event: SessionEvent, silence_ms: float
    ) -> SessionEvent:
        """Report ``event`` unless it is the alarm already raised; return the alarm now up."""
        if current is not event:
            self._report(event, silence_ms)
        return event

    def _report(self, event: SessionEvent, silence_ms: float) -> None:
        self._report_event(event, {"silence_ms": round(silence_ms, 1)})
