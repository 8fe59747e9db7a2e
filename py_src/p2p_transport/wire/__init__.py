"""The wire layer: what crosses between the peers, byte for byte, and the signaling contract.

:mod:`~p2p_transport.wire.codec` encodes and decodes the binary packets;
:mod:`~p2p_transport.wire.signaling` names the Socket.IO events and limits that the browser edge
and the reference server share.
"""
