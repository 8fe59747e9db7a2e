"""What the code carrying a session's I/O calls (:class:`SessionEdge`, ``P2PSession.edge``): the
channels' events, which channels to use, and starting the watchdog; and the session's
:class:`SessionState` that those events move.

In the browser :class:`~p2p_transport.browser.transport.BrowserTransport` calls these; in tests,
fake channels do. Every entry point counts bad input and never raises, so nothing a peer sends can
stop the game loop.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from p2p_transport.protocol.faults import PacketIntake
from p2p_transport.protocol.health import ConnectionHealthMonitor
from p2p_transport.protocol.routing import Link
from p2p_transport.protocol.sender import DataChannelLike
from p2p_transport.protocol.validation import Validation
from p2p_transport.session.counters import SessionCounters
from p2p_transport.session.paths import Paths
from p2p_transport.session.pinger import PingChannelLike, Pinger
from p2p_transport.session.timers import SessionTimers
from p2p_transport.session.watchdog import Watchdog
from p2p_transport.wire.codec import Buffer

__all__ = ["SessionEdge", "SessionState"]

# Named for every packet: a member named through its enum class costs about 75 ns in CPython 3.11.
_P2P: Final = Link.P2P
_RELAY: Final = Link.RELAY


class SessionState(StrEnum):
    #: No DataChannel event yet.
    NEW = "new"
    #: The DataChannel is open.
    OPEN = "open"
    #: The DataChannel closed; a reconnection may open another (the relay, if any, carries on).
    CLOSED = "closed"
    #: The peer connection failed; a reconnection may open another.
    FAILED = "failed"
    #: ``P2PSession.close()`` was called: final, whatever channel events come after.
    SHUT_DOWN = "shut_down"


class SessionEdge:
    """The entry points of whatever carries one session's I/O.

    ``on_message`` and ``on_relay_message`` take each packet of the two paths;
    ``on_open``, ``on_close`` and ``on_failed`` the DataChannel's events; ``attach_channel`` and
    ``attach_ping_channel`` say which channels to use; ``start_watchdog`` starts keepalives and
    silence checks once the peer is paired.
    """

    def __init__(
        self,
        intake: PacketIntake,
        timers: SessionTimers,
        counters: SessionCounters,
        paths: Paths,
        health: ConnectionHealthMonitor,
        watchdog: Watchdog,
        pinger: Pinger,
        validation: Validation,
    ) -> None:
        self._receive = intake.receive
        self._receive_on_ping_channel = intake.receive_on_ping_channel
        self._timers = timers
        self._counters = counters
        self._paths = paths
        self._health = health
        self._watchdog = watchdog
        self._pinger = pinger
        self._validation = validation
        self._channel_state = SessionState.NEW

    @property
    def state(self) -> SessionState:
        """Where the session is: the DataChannel's last event, or ``SHUT_DOWN`` after close()."""
        return SessionState.SHUT_DOWN if self._timers.closed else self._channel_state

    @property
    def channel(self) -> DataChannelLike | None:
        """The DataChannel in use, if any."""
        return self._paths.p2p

    def attach_channel(self, channel: DataChannelLike | None) -> None:
        """Use ``channel`` for the peer-to-peer path (a new connection after a failure)."""
        self._paths.p2p = channel

    def attach_ping_channel(self, channel: PingChannelLike | None) -> None:
        """Measure RTT on ``channel``, whose messages come with their arrival time.

        In the browser it is a second DataChannel held by a worker, which notes when each message
        arrived and when each ping and pong left, even while the page's main thread is busy.
        Pings there are answered with a pong that carries the hold time (arrival to departure),
        and a round trip runs from the ping's departure to the pong's arrival, so neither side's
        stalls count as network delay. It is used once the peer has answered on it; a peer
        without one gets the pings on the DataChannel as before.
        """
        self._pinger.attach_ping_channel(channel)

    def start_watchdog(self) -> None:
        """Start the watchdog timer: every ``keepalive_interval_ms`` it sends a keepalive over the
        DataChannel if nothing else went out on it since the last check, and reports the peer's
        silence through ``on_event``. Runs until ``close()``; calling it again does nothing."""
        self._timers.start_watchdog()

    def on_open(self) -> None:
        """The DataChannel opened: start measuring it. Ignored once the session is shut down."""
        if self._timers.closed:
            return
        self._channel_state = SessionState.OPEN
        # The channel opening is the peer answering: it counts as hearing from it.
        self._watchdog.heard_again()
        self._health.reset()
        self._validation.opened()
        self._timers.start_channel_timers()

    def on_close(self) -> None:
        """The DataChannel closed; the relay, if any, keeps carrying inputs."""
        self._timers.stop_channel_timers()
        if self._channel_state is not SessionState.FAILED:
            self._channel_state = SessionState.CLOSED

    def on_failed(self) -> None:
        """The peer connection failed (ICE failure, or the channel reported an error)."""
        self._timers.stop_channel_timers()
        self._channel_state = SessionState.FAILED

    def on_message(self, data: Buffer) -> None:
        """A packet arrived on the DataChannel (dropped, and counted, after ``close()``)."""
        if self._timers.closed:
            self._counters.packets_after_close += 1
        else:
            self._receive(data, _P2P)

    def on_relay_message(self, data: Buffer) -> None:
        """A packet arrived through the Socket.IO relay (dropped after ``close()``)."""
        if self._timers.closed:
            self._counters.packets_after_close += 1
        else:
            self._receive(data, _RELAY)

    def on_text_message(self, text: str) -> None:
        """A text (not binary) message arrived on the DataChannel: deployed peers send one JSON
        greeting after validating. Counted and otherwise ignored; the protocol is binary."""
        self._watchdog.note_awake()
        self._counters.text_messages += 1

    def on_ping_channel_message(self, data: Buffer, arrival_ms: float) -> None:
        """A packet arrived on the ping channel at ``arrival_ms`` (the session's clock)."""
        self._receive_on_ping_channel(data, arrival_ms)

    def on_ping_left(self, timestamp_ms: float, left_ms: float) -> None:
        """The ping channel's report that the ping stamped ``timestamp_ms`` left at ``left_ms``
        (the session's clock): its round trip is timed from then."""
        self._pinger.on_ping_left(timestamp_ms, left_ms)
