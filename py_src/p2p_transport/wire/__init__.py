"""The wire layer: what crosses between the peers, byte for byte, and the signaling contract.

:mod:`~p2p_transport.wire.messages` names the messages as Python values,
:mod:`~p2p_transport.wire.codec` encodes and decodes their binary form,
:mod:`~p2p_transport.wire.control_payloads` lays out what the transport's own control messages
carry, :mod:`~p2p_transport.wire.signaling` names the Socket.IO events and limits that the
browser edge and the reference server share, and :mod:`~p2p_transport.wire.dialects` translates
them for each signaling server.

These are building blocks for interop and servers, not what a game calls: the subpackage's
``__all__`` names its public modules, and each module's own ``__all__`` names what it offers.
"""

from p2p_transport.wire import codec, control_payloads, dialects, messages, signaling

__all__ = ["codec", "control_payloads", "dialects", "messages", "signaling"]
