"""p2p_transport: peer-to-peer input transport for browser games that run Python under Pyodide.

The protocol core (codec, RTT, health, senders, receiver, routing, fault injection, session) is
plain Python with an injected clock, scheduler and channels; only :mod:`p2p_transport.browser`
touches the browser.
"""

from .acked_sender import AckedInputSender
from .codec import (
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
from .control import ControlChannelClosed, ControlWindowFull, ReliableControlChannel
from .desync import Desync, DesyncChecker
from .faults import FaultConfig, FaultyChannel
from .health import ConnectionHealthMonitor, HealthStatus, HealthThresholds
from .receiver import InputReceiver
from .reconnect import ReconnectBackoff, ReconnectConfig
from .relay import RelayChannel
from .routing import Route, RouteChange, RouteMode, Router, RoutingThresholds
from .rtt import RTTTracker
from .sender import DataChannelLike, P2PInputSender
from .session import (
    P2PSession,
    Path,
    PingChannelLike,
    SessionConfig,
    SessionEvent,
    SessionState,
)
from .timing import Clock, Scheduler

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
