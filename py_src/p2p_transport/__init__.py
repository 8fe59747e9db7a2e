"""p2p_transport: peer-to-peer input transport for browser games that run Python under Pyodide.

The wire format (:mod:`.wire`), the protocol pieces (:mod:`.protocol`) and the session
(:mod:`.session`) are plain Python with an injected clock, scheduler and channels; only
:mod:`.browser` touches the browser.
"""

from p2p_transport.protocol.acked_sender import AckedInputSender
from p2p_transport.protocol.control import (
    ControlChannelClosed,
    ControlWindowFull,
    ReliableControlChannel,
)
from p2p_transport.protocol.desync import Desync, DesyncChecker
from p2p_transport.protocol.faults import FaultConfig, FaultyChannel
from p2p_transport.protocol.health import ConnectionHealthMonitor, HealthStatus, HealthThresholds
from p2p_transport.protocol.receiver import InputReceiver
from p2p_transport.protocol.reconnect import ReconnectBackoff, ReconnectConfig
from p2p_transport.protocol.relay import RelayChannel
from p2p_transport.protocol.routing import Route, RouteChange, RouteMode, Router, RoutingThresholds
from p2p_transport.protocol.rtt import RTTTracker
from p2p_transport.protocol.sender import DataChannelLike, P2PInputSender
from p2p_transport.session.session import (
    P2PSession,
    Path,
    PingChannelLike,
    SessionConfig,
    SessionEvent,
    SessionState,
)
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.codec import (
    AckedInputPacket,
    ControlAck,
    ControlKind,
    ControlMessage,
    DecodeError,
    HeldPong,
    InputPacket,
    Keepalive,
    Message,
    MessageType,
    Ping,
    Pong,
    decode,
    encode_acked_input_packet,
    encode_held_pong,
    encode_input_packet,
    encode_keepalive,
    encode_ping,
    encode_pong,
)

__version__ = "0.1.0"

__all__ = [
    "AckedInputPacket",
    "AckedInputSender",
    "Clock",
    "ConnectionHealthMonitor",
    "ControlAck",
    "ControlChannelClosed",
    "ControlKind",
    "ControlMessage",
    "ControlWindowFull",
    "DataChannelLike",
    "DecodeError",
    "Desync",
    "DesyncChecker",
    "FaultConfig",
    "FaultyChannel",
    "HealthStatus",
    "HealthThresholds",
    "HeldPong",
    "InputPacket",
    "InputReceiver",
    "Keepalive",
    "Message",
    "MessageType",
    "P2PInputSender",
    "P2PSession",
    "Path",
    "Ping",
    "PingChannelLike",
    "Pong",
    "RTTTracker",
    "ReconnectBackoff",
    "ReconnectConfig",
    "RelayChannel",
    "ReliableControlChannel",
    "Route",
    "RouteChange",
    "RouteMode",
    "Router",
    "RoutingThresholds",
    "Scheduler",
    "SessionConfig",
    "SessionEvent",
    "SessionState",
    "__version__",
    "decode",
    "encode_acked_input_packet",
    "encode_held_pong",
    "encode_input_packet",
    "encode_keepalive",
    "encode_ping",
    "encode_pong",
]
