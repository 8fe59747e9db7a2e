"""The relay's lean path: a plain WebSocket per player, one binary frame per packet each way.

A Socket.IO binary event is two WebSocket messages (a JSON header naming the attachment, then the
bytes), and python-engineio spends a task and a timeout on every message it reads and writes: at
60 Hz per player that was most of the server's CPU. Here a packet costs one frame in, one frame
out. The page opens ``RELAY_SOCKET_PATH?ticket=T&room=R`` with the ticket ``paired`` gave it; the
same checks and limits apply as on the Socket.IO path (:meth:`RelayServer.relay_from`), and a
packet for a peer without a lean socket goes to it as a Socket.IO event. What waits to be written
to a player is bounded (:attr:`ClientLimits.max_queued`); a player that stops reading loses what
does not fit (counted) and is disconnected after :attr:`ClientLimits.slow_reader_s`.

What a client can make the server hold here: a socket needs a ticket (refused before the WebSocket
is accepted without one, counted ``bad_ticket``), a player has one lean socket at a time (a new
one ends the old), uvicorn reads one frame at a time (at most the 64 KiB frame limit; it stops
reading the TCP connection until the frame is handled), and a frame longer than a relay packet
(:data:`MAX_RELAY_BYTES`) closes the socket (1009, counted ``oversized_frame``): a page never
sends one, and the Socket.IO path is still there for the player.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final
from urllib.parse import parse_qs

from p2p_server.rooms import Client, Outbox, ProtocolError, RelayServer
from p2p_server.static_files import Receive, Scope, Send
from p2p_transport.wire.signaling import MAX_RELAY_BYTES

__all__ = ["CLOSE_POLICY", "RelaySocket"]

logger = logging.getLogger("p2p_server.relay_socket")

#: RFC 6455 close code 1008, policy violation: no valid ticket.
CLOSE_POLICY: Final = 1008
#: RFC 6455 close code 1009, message too big: a frame longer than a relay packet.
CLOSE_TOO_BIG: Final = 1009


class RelaySocket:
    """Serves the lean relay path for a :class:`RelayServer`'s clients."""

    def __init__(self, rooms: RelayServer) -> None:
        self._rooms = rooms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        ticket = query.get("ticket", [""])[0]
        claimed = self._rooms.claim_ticket(ticket) if ticket else None
        if claimed is None:
            self._rooms.stats.refuse("bad_ticket")
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": CLOSE_POLICY})
            return
        sid, client = claimed
        # One lean socket per player: an older one (a page that reconnected it) ends here.
        for task in client.relay_tasks:
            task.cancel()
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        outbox = Outbox()
        writer = asyncio.create_task(self._write(outbox, send))
        current = asyncio.current_task()
        assert current is not None
        client.relay_outbox, client.relay_tasks = outbox, (current, writer)
        self._rooms.stats.relay_sockets_open += 1
        try:
            if await self._read(sid, client, receive):
                await send({"type": "websocket.close", "code": CLOSE_TOO_BIG})
        except asyncio.CancelledError:
            pass  # the client left (or was dropped): the socket closes with it
        finally:
            self._rooms.stats.relay_sockets_open -= 1
            writer.cancel()
            if client.relay_outbox is outbox:
                client.relay_outbox, client.relay_tasks = None, ()
                client.full_since = None

    async def _read(self, sid: str, client: Client, receive: Receive) -> bool:
        """Relay what the socket brings until it closes; ``True`` if it is to be closed for a
        frame longer than a relay packet."""
        rooms = self._rooms
        while not client.dropping:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return False
            data = message.get("bytes")
            if data is not None and len(data) > MAX_RELAY_BYTES:
                rooms.stats.malformed += 1
                rooms.stats.refuse("oversized_frame")
                if rooms.log_throttle.allow(sid):
                    logger.warning(
                        "closing the lean relay socket of %s: a frame of %d bytes", sid, len(data)
                    )
                return True
            if data is None:
                # Text on a binary path: malformed, as junk on the Socket.IO path is.
                rooms.stats.malformed += 1
                if rooms.log_throttle.allow(sid):
                    logger.warning("text on the lean relay socket of %s", sid)
                continue
            try:
                await rooms.relay_from(client, sid, data)
            except ProtocolError as error:
                rooms.stats.errors += 1
                if error.code != "refused":
                    rooms.stats.refuse(error.code)
                if rooms.log_throttle.allow(sid):
                    logger.warning("refused a lean relay packet from %s: %s", sid, error)
        return False

    @staticmethod
    async def _write(outbox: Outbox, send: Send) -> None:
        packets, wakeup = outbox.packets, outbox.wakeup
        while True:
            await wakeup.wait()
            wakeup.clear()
            while packets:
                await send({"type": "websocket.send", "bytes": packets.popleft()})
