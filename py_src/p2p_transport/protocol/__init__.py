"""The protocol pieces, each a sans-IO state machine with an injected clock: senders, the
receiver, acked-input negotiation, control messages, desync checks, RTT, health, routing,
reconnection, the peer-connection state machine, deployed peers' channel validation and episode
messages, fault injection and the relay as a channel.

The session wires them together; a game needs none of them directly (the package root exports the
settings it may pass: health and routing thresholds, reconnection, faults). The subpackage's
``__all__`` names its modules, and each module's own ``__all__`` names what it offers.
"""

from p2p_transport.protocol import (
    acked_sender,
    control,
    desync,
    faults,
    health,
    lifecycle,
    negotiation,
    peer_connection,
    receiver,
    reconnect,
    recorded_inputs,
    relay,
    routing,
    rtt,
    sender,
    v1_control,
    validation,
)

__all__ = [
    "acked_sender",
    "control",
    "desync",
    "faults",
    "health",
    "lifecycle",
    "negotiation",
    "peer_connection",
    "receiver",
    "reconnect",
    "recorded_inputs",
    "relay",
    "routing",
    "rtt",
    "sender",
    "v1_control",
    "validation",
]
