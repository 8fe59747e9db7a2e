"""The session's two paths: the DataChannel (replaced as connections come and go) and the relay,
and what crossed each in either direction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from p2p_transport.protocol.relay import RelayChannel, SocketIOLike
from p2p_transport.protocol.routing import Link, Route
from p2p_transport.protocol.sender import DataChannelLike, QueueBound, SenderCounters, try_send

__all__ = ["PathStats", "Paths"]

# Read for every packet: a member named through its enum class costs about 75 ns in CPython 3.11.
_P2P: Final = Link.P2P


@dataclass(slots=True)
class PathStats:
    """What crossed one path, in each direction."""

    sent: SenderCounters = field(default_factory=SenderCounters)
    packets_received: int = 0
    bytes_received: int = 0
    decode_errors: int = 0
    pings_sent: int = 0
    pings_received: int = 0
    pongs_received: int = 0
    #: Peer inputs that reached the game through this path first.
    inputs_delivered: int = 0


class Paths:
    """The channel of each :class:`~p2p_transport.protocol.routing.Link` and its counters.

    ``p2p`` is the DataChannel in use (``None`` between connections); ``relay`` the Socket.IO
    client seen as a channel (``None`` without one, or after :meth:`close`).
    """

    def __init__(self, relay: SocketIOLike | None, buffer_threshold: int) -> None:
        self.p2p: DataChannelLike | None = None
        self.relay: RelayChannel | None = RelayChannel(relay) if relay is not None else None
        self.stats = {Link.P2P: PathStats(), Link.RELAY: PathStats()}
        #: What went out on the ping channel, kept apart from the game channel's sends: the
        #: watchdog sends a keepalive when the game channel itself was idle, whatever the ping
        #: channel carried (the peer's silence checks look at the game channel only).
        self.ping_channel_sent = SenderCounters()
        self._buffer_threshold = buffer_threshold
        # What each path's channel has queued, bounded without a read for every packet.
        self._bounds = {Link.P2P: QueueBound(), Link.RELAY: QueueBound()}

    def channel(self, path: Link) -> DataChannelLike | None:
        return self.p2p if path is _P2P else self.relay

    def is_open(self, path: Link) -> bool:
        channel = self.channel(path)
        return channel is not None and channel.readyState == "open"

    def send_on_route(self, route: Route, packet: bytes) -> bool:
        """Send an input packet on each path of ``route``, except a closed or congested one
        (counted either way); return whether any took it."""
        sent = False
        threshold, bounds, stats = self._buffer_threshold, self._bounds, self.stats
        for path in route.paths:
            channel = self.channel(path)
            if try_send(channel, packet, threshold, stats[path].sent, None, bounds[path]):
                sent = True
        return sent

    def send_small(
        self,
        path: Link,
        packet: bytes,
        channel: DataChannelLike | None = None,
        send: Callable[[bytes], None] | None = None,
    ) -> bool:
        """Pings, pongs, keepalives and control messages go out even when the channel is
        congested: they are a few bytes, and a pong that waits in the queue reports the queueing
        delay the inputs really suffer, where a skipped one would make a congested link look
        silent. ``channel`` and ``send`` stand in for the path's own (the ping channel, whose
        sends are counted in :attr:`ping_channel_sent`)."""
        if channel is None:
            # Counted in the path's bound: a small packet queues like any other.
            return try_send(
                self.channel(path), packet, None, self.stats[path].sent, send, self._bounds[path]
            )
        return try_send(channel, packet, None, self.ping_channel_sent, send)

    def close(self) -> None:
        self.p2p = None
        self.relay = None
