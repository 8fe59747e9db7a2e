"""p2p_transport: peer-to-peer input transport for browser games that run Python under Pyodide.

What a game calls is here. In the browser::

    from p2p_transport import BrowserTransport, Callbacks, TransportOptions

    transport = BrowserTransport(TransportOptions(room="session-42"), Callbacks(on_input=...))
    transport.connect()
    transport.step(frame, action)          # every frame

Anywhere else (CPython, tests), :class:`P2PSession` with your own clock, scheduler and channels.

The layers, each a subpackage: :mod:`.wire` (the binary format and the signaling contract),
:mod:`.protocol` (sans-IO pieces: senders, receiver, control, RTT, health, routing,
reconnection, the peer-connection machine), :mod:`.session` (the session a game holds) and
:mod:`.browser` (the only code that touches ``js``). Building blocks are imported from their own
modules. Every exception the package raises on purpose is one of :mod:`.errors`' family, exported
here: a :class:`UsageError` (the caller's mistake) or a :class:`RemoteError` (a peer's or the
network's doing).
"""

from typing import TYPE_CHECKING, Any

from p2p_transport.browser import shim_path
from p2p_transport.browser.options import IceServer, TransportOptions
from p2p_transport.errors import (
    InvalidStateError,
    P2PTransportError,
    RemoteError,
    ServerRefusedError,
    UsageError,
)
from p2p_transport.protocol.control import ControlChannelClosed, ControlWindowFull
from p2p_transport.protocol.desync import Desync
from p2p_transport.protocol.faults import FaultConfig
from p2p_transport.protocol.health import HealthStatus, HealthThresholds
from p2p_transport.protocol.reconnect import ReconnectConfig
from p2p_transport.protocol.routing import Link, RouteChange, RouteMode, RoutingThresholds
from p2p_transport.protocol.sender import P2PInputSender
from p2p_transport.protocol.v1_control import VersionOneError
from p2p_transport.rollback.errors import DesyncError, NotAGameError
from p2p_transport.session import (
    Callbacks,
    P2PSession,
    PingChannelLike,
    SessionConfig,
    SessionEvent,
    SessionState,
)
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.codec import DecodeError

if TYPE_CHECKING:
    from p2p_transport.browser.transport import BrowserTransport

__version__ = "0.1.0"

__all__ = [
    "BrowserTransport",
    "Callbacks",
    "Clock",
    "ControlChannelClosed",
    "ControlWindowFull",
    "DecodeError",
    "Desync",
    "DesyncError",
    "FaultConfig",
    "HealthStatus",
    "HealthThresholds",
    "IceServer",
    "InvalidStateError",
    "Link",
    "NotAGameError",
    "P2PInputSender",
    "P2PSession",
    "P2PTransportError",
    "PingChannelLike",
    "ReconnectConfig",
    "RemoteError",
    "RouteChange",
    "RouteMode",
    "RoutingThresholds",
    "Scheduler",
    "ServerRefusedError",
    "SessionConfig",
    "SessionEvent",
    "SessionState",
    "TransportOptions",
    "UsageError",
    "VersionOneError",
    "__version__",
    "shim_path",
]


def __getattr__(name: str) -> Any:
    # BrowserTransport imports ``js``, which exists only in the browser: importing it on first
    # use lets the rest of the package import anywhere.
    if name == "BrowserTransport":
        from p2p_transport.browser.transport import BrowserTransport

        return BrowserTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
