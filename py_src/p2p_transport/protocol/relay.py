"""The Socket.IO server relay, seen by the rest of the transport as one more channel."""

from __future__ import annotations

from typing import Final, Protocol

from p2p_transport.wire.signaling import RELAY_EVENT

__all__ = ["RelayChannel", "SocketIOLike"]


class SocketIOLike(Protocol):
    """The part of a socket.io-client ``Socket`` the transport uses."""

    @property
    def connected(self) -> bool: ...

    def emit(self, event: str, data: bytes) -> object: ...


class RelayChannel:
    """Presents a Socket.IO client as a DataChannel-like object.

    The sender's open/congestion checks and counters then serve both paths with one piece of code.
    Socket.IO buffers emits while disconnected and replays them later; reporting the relay as
    closed instead makes the session count those packets as skipped, as it does for a closed
    DataChannel, rather than deliver them seconds late.

    Every packet goes out as :data:`~p2p_transport.wire.signaling.RELAY_EVENT`; the browser
    edge's socket (``DialectRelay``) translates it into its server's dialect, or sends the packet
    on the server's lean relay socket.
    """

    bufferedAmount: Final = 0

    def __init__(self, socket: SocketIOLike) -> None:
        self.socket = socket

    @property
    def readyState(self) -> str:
        return "open" if self.socket.connected else "closed"

    def send(self, data: bytes) -> None:
        self.socket.emit(RELAY_EVENT, data)
