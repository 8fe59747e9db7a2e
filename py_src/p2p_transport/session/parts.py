"""The pieces one session is made of, for its report, a layer built on it, and tests:
:class:`SessionParts` (``P2PSession.parts``)."""

from __future__ import annotations

from dataclasses import dataclass

from p2p_transport.protocol.control import ReliableControlChannel
from p2p_transport.protocol.desync import DesyncChecker
from p2p_transport.protocol.health import ConnectionHealthMonitor
from p2p_transport.protocol.rtt import RTTTracker
from p2p_transport.protocol.v1_control import VersionOneControl
from p2p_transport.protocol.validation import Validation
from p2p_transport.session.counters import SessionCounters
from p2p_transport.session.delivery import Delivery
from p2p_transport.session.inputs import InputPath
from p2p_transport.session.intake import Intake
from p2p_transport.session.paths import Paths
from p2p_transport.session.pinger import Pinger
from p2p_transport.session.telemetry import TelemetryRecorder
from p2p_transport.session.timers import SessionTimers
from p2p_transport.session.watchdog import Watchdog
from p2p_transport.timing import Clock

__all__ = ["SessionParts"]


@dataclass(frozen=True, slots=True)
class SessionParts:
    """Which pieces make up one session; each is sans-IO and documented in its own module.

    The set is fixed (a frozen view); the pieces themselves are the session's live objects, so
    reading them is reading the session. A game needs none of them: what it calls is on
    ``P2PSession`` itself.
    """

    #: The session's clock (milliseconds).
    clock: Clock
    #: The DataChannel and the relay, and what crossed each.
    paths: Paths
    #: The DataChannel's RTT (from pings) and the relay's.
    rtt: RTTTracker
    relay_rtt: RTTTracker
    #: The DataChannel's health status: latency, silence, the peer's acknowledgement stalls.
    health: ConnectionHealthMonitor
    #: The game's inputs both ways: senders, negotiation, router, receiver.
    inputs: InputPath
    #: Pings, pongs and the ping channel.
    pinger: Pinger
    #: Keepalives, the peer's silence, this side's stalls.
    watchdog: Watchdog
    #: Control messages to a peer of this package, state hashes, a version-1 peer's layouts.
    control: ReliableControlChannel
    desync: DesyncChecker
    v1_control: VersionOneControl
    #: The deployed peers' validation of each new DataChannel.
    validation: Validation
    #: The packets coming in: counting, decoding, dispatch.
    intake: Intake
    #: The ping, resend, watchdog and validation timers.
    timers: SessionTimers
    #: Where what the session hears goes: the game's callbacks, or the layer on the session.
    delivery: Delivery
    #: The bounded time series ``telemetry()`` is made of.
    telemetry: TelemetryRecorder
    #: The session's own counters (the rest are its pieces').
    counters: SessionCounters
