"""The package's one error family: every exception p2p_transport raises on purpose says whose
doing it was (as h11's ``LocalProtocolError`` and ``RemoteProtocolError`` do).

- :class:`UsageError`: the caller's mistake (a wrong argument or option, a call at the wrong
  time, a game that is not deterministic). A correct program never meets one: fix the call.
- :class:`RemoteError`: what a peer, the signaling server or the network did (bytes that are
  not a message, acknowledgements that do not come, a peer that speaks only version 1, a
  server that refuses). A correct program meets these at run time and handles them.

The classes that name one condition live beside the code that raises it (``DecodeError`` in the
codec, ``ControlWindowFull`` in the control channel...). Each keeps the built-in class it was
before the family existed, so an ``except ValueError`` or ``except RuntimeError`` written then
catches what it caught. This module imports nothing of the package: every layer can import it.
"""

from __future__ import annotations

__all__ = [
    "InvalidStateError",
    "P2PTransportError",
    "RemoteError",
    "ServerRefusedError",
    "UsageError",
]


class P2PTransportError(Exception):
    """Every exception p2p_transport raises on purpose: a :class:`UsageError` or a
    :class:`RemoteError`, never this class itself."""


class UsageError(P2PTransportError, ValueError):
    """The caller's mistake: an argument or option out of its range or of the wrong type, or a
    call the object cannot take now (:class:`InvalidStateError`).

    A ``ValueError``, as every such check was before the family existed, so ``except
    ValueError`` around a call still catches it. The message names the argument and what is
    allowed; nothing was sent and nothing changed.
    """


class InvalidStateError(UsageError, RuntimeError):
    """A call the object cannot take in its present state: before pairing, after ``close()``,
    an episode started before the last one is over. Also a ``RuntimeError``, as these were."""


class RemoteError(P2PTransportError):
    """What a peer, the signaling server or the network did, not the caller.

    Where such a thing arrives on its own (a peer's malformed packet, a control message a
    version-1 peer cannot take while the session falls back to it) it is counted in
    ``stats()`` and never raised into the game loop; it is raised only to a call whose answer
    depends on the other side (``send_control`` when the peer acknowledges nothing, a telemetry
    record the server would not keep, :func:`~p2p_transport.wire.codec.decode` of bytes).
    """


class ServerRefusedError(RemoteError, RuntimeError):
    """The signaling server refused what it was asked (a telemetry record, when it was started
    without a place to keep one); the message carries its reason. Also a ``RuntimeError``, as
    it was."""
