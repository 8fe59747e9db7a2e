"""How a session behaves: :class:`SessionConfig`, every field with a default that suits a 60 Hz
game between two browsers."""

from __future__ import annotations

from dataclasses import dataclass, field

from p2p_transport._checks import check_positive
from p2p_transport.errors import UsageError
from p2p_transport.protocol.faults import LinkConfig
from p2p_transport.protocol.health import HealthThresholds
from p2p_transport.protocol.receiver import DEFAULT_HISTORY_FRAMES
from p2p_transport.protocol.routing import RouteMode, RoutingThresholds
from p2p_transport.protocol.rtt import DEFAULT_RTT_WINDOW
from p2p_transport.protocol.sender import (
    DEFAULT_BUFFER_THRESHOLD,
    DEFAULT_REDUNDANCY,
    DEFAULT_WINDOW,
)
from p2p_transport.session.pinger import DEFAULT_PING_INTERVAL_MS
from p2p_transport.session.watchdog import DEFAULT_KEEPALIVE_INTERVAL_MS

__all__ = ["SessionConfig"]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    redundancy: int = DEFAULT_REDUNDANCY
    window: int = DEFAULT_WINDOW
    buffer_threshold: int = DEFAULT_BUFFER_THRESHOLD
    ping_interval_ms: float = DEFAULT_PING_INTERVAL_MS
    rtt_window: int = DEFAULT_RTT_WINDOW
    history_frames: int = DEFAULT_HISTORY_FRAMES
    health: HealthThresholds = field(default_factory=HealthThresholds)
    #: Send every input over the Socket.IO relay too (the seed's parallel mode); the receiving
    #: side delivers whichever copy comes first and drops the other.
    relay_inputs: bool = True
    #: Ping over the relay as well, so its RTT is known when the game has to fall back to it.
    relay_pings: bool = True
    #: Send inputs as acked packets (0x20) once the peer has shown it understands them: every
    #: input rides in each packet until acknowledged, so no burst shorter than the pending bound
    #: loses one. Until then, and always when False, version-1 packets with fixed ``redundancy``.
    acked_inputs: bool = True
    #: Which path inputs take (:mod:`p2p_transport.protocol.routing`). With ``relay_inputs`` False,
    #: ``parallel`` means the DataChannel only, as it always has.
    route_mode: RouteMode = RouteMode.PARALLEL
    routing: RoutingThresholds = field(default_factory=RoutingThresholds)
    #: The watchdog's period: keepalives when idle, silence checks (see
    #: :data:`~p2p_transport.session.watchdog.DEFAULT_KEEPALIVE_INTERVAL_MS`).
    keepalive_interval_ms: float = DEFAULT_KEEPALIVE_INTERVAL_MS
    #: Send control messages and their acks over the relay as well as the DataChannel (see
    #: ``P2PSession._transmit_control``). False keeps them on the DataChannel: less server
    #: traffic, but they wait while the DataChannel is down.
    control_on_relay: bool = True
    #: Whole-link emulation of what this side receives on every path (delay, jitter, loss; see
    #: :class:`~p2p_transport.protocol.faults.LinkConfig`); ``None``: the link as it is.
    link: LinkConfig | None = None

    def __post_init__(self) -> None:
        check_positive(self, "ping_interval_ms", "keepalive_interval_ms")
        # Accept the mode's string value ("p2p-first"), as a command line or JS caller passes it.
        object.__setattr__(self, "route_mode", RouteMode(self.route_mode))
        if not self.relay_inputs and self.route_mode not in (RouteMode.PARALLEL, RouteMode.P2P):
            raise UsageError(f"route_mode {self.route_mode.value!r} needs relay_inputs")
