"""The session's timers, on the scheduler it was given: pings, acked-input resends (and the
confirmed inputs' upload to the server), the watchdog and a new channel's validation.

Each runs a tick of its own; an exception in one is a bug, logged and counted
(``handler_errors``), never raised into the scheduler. After :meth:`SessionTimers.close` none
starts again, so a late open event cannot start a timer nothing would stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from p2p_transport.protocol.acked_sender import RESEND_INTERVAL_MS
from p2p_transport.protocol.health import ConnectionHealthMonitor
from p2p_transport.protocol.routing import Link
from p2p_transport.protocol.validation import Validation
from p2p_transport.session.config import SessionConfig
from p2p_transport.session.counters import SessionCounters
from p2p_transport.session.inputs import InputPath
from p2p_transport.session.paths import Paths
from p2p_transport.session.pinger import Pinger
from p2p_transport.session.telemetry import TelemetryRecorder
from p2p_transport.session.watchdog import Watchdog
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.codec import encode_validation_ping

__all__ = ["VALIDATION_TICK_MS", "SessionTimers"]

logger = logging.getLogger(__name__)

#: The validation timer's period while a new channel is being validated: fine enough that the
#: first ping leaves within a tick of the deployed peers' 100 ms, and stopped once it is done.
VALIDATION_TICK_MS: Final = 50.0


class SessionTimers:
    """Starts and stops one session's four timers and runs their ticks.

    ``observe_health()`` lets telemetry see the health status after time passed;
    ``check_peer_version()`` moves control messages to a version-1 peer's layouts once it is
    known to be one.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        clock: Clock,
        config: SessionConfig,
        counters: SessionCounters,
        paths: Paths,
        health: ConnectionHealthMonitor,
        watchdog: Watchdog,
        pinger: Pinger,
        inputs: InputPath,
        validation: Validation,
        telemetry: TelemetryRecorder,
        observe_health: Callable[[], None],
        check_peer_version: Callable[[], None],
    ) -> None:
        self._scheduler = scheduler
        self._clock = clock
        self._config = config
        self._counters = counters
        self._paths = paths
        self._health = health
        self._watchdog = watchdog
        self._pinger = pinger
        self._inputs = inputs
        self._validation = validation
        self._telemetry = telemetry
        self._observe_health = observe_health
        self._check_peer_version = check_peer_version
        self._closed = False
        # The scheduler's handle of each running timer. Pings run while the DataChannel is open,
        # and, with relay pings, from start_watchdog() (the pairing) to close(): the relay may
        # carry the game alone, and its round trip is then the one that matters;
        # resends of pending acked inputs while the game sends none, from negotiation to close();
        # the watchdog from start_watchdog() to close(); validation pings after a channel opens,
        # until they are answered.
        self._ping: object | None = None
        self._resend: object | None = None
        self._watchdog_timer: object | None = None
        self._validation_timer: object | None = None
        # Between the DataChannel's open and its close: only then is it pinged (a channel the
        # edge holds may read "open" before its open event came).
        self._channel_open = False

    @property
    def closed(self) -> bool:
        """:meth:`close` was called: no timer runs or starts again."""
        return self._closed

    @property
    def ping_running(self) -> bool:
        return self._ping is not None

    @property
    def resend_running(self) -> bool:
        return self._resend is not None

    @property
    def watchdog_running(self) -> bool:
        return self._watchdog_timer is not None

    def start_channel_timers(self) -> None:
        """The DataChannel opened: pings, and this side's validation pings (each at most once)."""
        if self._closed:
            return
        self._channel_open = True
        self._start_pings()
        if self._validation_timer is None:
            self._validation_timer = self._every(
                VALIDATION_TICK_MS, self._validation_tick, "validation timer"
            )

    def stop_channel_timers(self) -> None:
        """The DataChannel closed or failed: the relay's pings, if any, go on."""
        self._channel_open = False
        if not self._config.relay_pings:
            self._stop("_ping")
        self._stop("_validation_timer")

    def _start_pings(self) -> None:
        if self._ping is None:
            self._ping = self._every(self._config.ping_interval_ms, self._ping_tick, "ping timer")

    def start_resend(self) -> None:
        """Acked inputs were negotiated: resend pending ones while the game sends none."""
        if self._resend is None and not self._closed:
            self._resend = self._every(RESEND_INTERVAL_MS, self._resend_tick, "resend timer")

    def start_watchdog(self) -> None:
        if self._closed or self._watchdog_timer is not None:
            return
        self._watchdog.start()
        self._watchdog_timer = self._every(
            self._config.keepalive_interval_ms, self._watchdog_tick, "watchdog"
        )
        if self._config.relay_pings:
            self._start_pings()

    def close(self) -> None:
        self._closed = True
        for name in ("_ping", "_validation_timer", "_resend", "_watchdog_timer"):
            self._stop(name)

    def _every(self, interval_ms: float, tick: Callable[[], None], what: str) -> object:
        def guarded() -> None:
            try:
                tick()
            except Exception:
                self._counters.handler_errors += 1
                logger.exception("%s failed", what)

        return self._scheduler.set_interval(guarded, interval_ms)

    def _stop(self, name: str) -> None:
        """Stop the timer held in attribute ``name``, if it runs."""
        timer = getattr(self, name)
        if timer is not None:
            setattr(self, name, None)
            self._scheduler.clear_interval(timer)

    # --- the ticks ----------------------------------------------------------------------------

    def _ping_tick(self) -> None:
        self._watchdog.note_awake()
        self._telemetry.record_loss(self._clock(), self._health.loss_estimate)
        self._observe_health()
        if self._channel_open and self._paths.is_open(Link.P2P):
            self._pinger.ping(Link.P2P)
        if self._config.relay_pings and self._paths.is_open(Link.RELAY):
            self._pinger.ping(Link.RELAY)
        self._check_peer_version()
        self._inputs.probe_if_idle()

    def _resend_tick(self) -> None:
        self._watchdog.note_awake()
        self._inputs.resend_if_idle()
        # The same tick: the ack moves about once a frame, so 100 ms takes the newly confirmed
        # inputs long before they leave the acked sender's 64.
        self._inputs.upload_confirmed()

    def _watchdog_tick(self) -> None:
        self._watchdog.tick()
        self._observe_health()

    def _validation_tick(self) -> None:
        self._watchdog.note_awake()
        validation = self._validation
        if validation.ping_due() and self._paths.is_open(Link.P2P):
            now = self._clock()
            if self._paths.send_small(Link.P2P, encode_validation_ping(now)):
                validation.ping_sent(now)
        if validation.finished:
            self._stop("_validation_timer")
