"""p2p_transport: peer-to-peer input transport for browser games that run Python under Pyodide.

The protocol core (codec, RTT, health, sender, receiver, session) is plain Python with an injected
clock, scheduler and channels; only :mod:`p2p_transport.browser` touches the browser.
"""

from .codec import (
    DecodeError,
    InputPacket,
    Keepalive,
    Message,
    MessageType,
    Ping,
    Pong,
    decode,
    encode_input_packet,
    encode_keepalive,
    encode_ping,
    encode_pong,
)
from .health import ConnectionHealthMonitor, HealthStatus, HealthThresholds
from .receiver import InputReceiver
from .relay import RelayChannel
from .rtt import RTTTracker
from .sender import DataChannelLike, P2PInputSender
from .session import P2PSession, Path, SessionConfig, SessionState
from .timing import Clock, Scheduler

__version__ = "0.1.0"

__all__ = [
    "Clock",
    "ConnectionHealthMonitor",
    "DataChannelLike",
    "DecodeError",
    "HealthStatus",
    "HealthThresholds",
    "InputPacket",
    "InputReceiver",
    "Keepalive",
    "Message",
    "MessageType",
    "P2PInputSender",
    "P2PSession",
    "Path",
    "Ping",
    "Pong",
    "RTTTracker",
    "RelayChannel",
    "Scheduler",
    "SessionConfig",
    "SessionState",
    "__version__",
    "decode",
    "encode_input_packet",
    "encode_keepalive",
    "encode_ping",
    "encode_pong",
]
