"""Simulated players for load tests and benchmarks: Engine.IO/Socket.IO over a raw WebSocket, as a
browser with the default settings speaks it, cheap enough that one core drives dozens of pairs.

Each player joins its room (the room in the URL's query, as the page puts it, so a load balancer
can hash it), sends a 24-byte binary ``relay`` packet (a sequence number and the send time) at
``rate_hz`` plus four a second for its pings and pongs, and checks what it receives from its
peer. Like the page, it relays on the lean
relay socket when ``paired`` gives it a ticket (``lean=False``: Socket.IO events only). If the
server goes away it reconnects and joins again asking for its slot, as the page does. Each pair
can connect from a loopback address of its own (:func:`pair_address`), as participants at home
do, so the server's limits per address see many clients, not one. Loopback only; every loop ends
by itself.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import websockets

from p2p_transport.wire.signaling import relay_socket_url

#: The packet a player relays: a sequence number and the send time, padded to a 24-byte input
#: packet.
PACKET: Final = struct.Struct("!Iq12x")
BINARY_HEADER: Final = '451-["relay",{"_placeholder":true,"num":0}]'
#: Every this many frames a player sends a second packet (its relay ping or pong): 4 a second at
#: 60 Hz, as a page with the default 500 ms ping interval sends.
EXTRA_EVERY_FRAMES: Final = 15
#: How long after its last send a player keeps reading, for packets still on their way.
DRAIN_S: Final = 2.0
#: A reconnecting player waits this long between attempts (socket.io-client starts at 1 s).
RECONNECT_DELAY_S: Final = 0.5
CONNECT_TIMEOUT_S: Final = 10.0


def pair_address(pair: int) -> str:
    """A loopback address for the ``pair``-th pair's players (127.1.0.1, 127.1.0.2, ...): on
    Linux all of 127.0.0.0/8 is loopback."""
    return f"127.1.{pair // 250}.{1 + pair % 250}"


@dataclass
class Player:
    room: str
    #: The loopback address it connects from (``None``: the system's choice, 127.0.0.1).
    address: str | None = None
    sent: int = 0
    received: int = 0
    #: Packets received in sequence-number order gaps: a gap is a packet lost on the way.
    latencies_ms: list[float] = field(default_factory=list)
    paired: asyncio.Event = field(default_factory=asyncio.Event)
    player_index: int | None = None
    #: Times the connection to the server was lost and made again.
    reconnects: int = 0
    #: Packets sent while the connection was down (sent into a closed socket, so never relayed).
    sent_while_down: int = 0
    #: ``received`` when the last reconnection completed.
    received_at_reconnect: int = 0
    failed: str | None = None


def _event(name: str, payload: Any) -> str:
    return "42" + json.dumps([name, payload])


async def open_socket_io(
    url: str,
    join: dict[str, Any] | None = None,
    sock: Any = None,
    compression: str | None = "deflate",
    local_address: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """A WebSocket to the Socket.IO server at ``url`` (``http://host:port``), through the
    Engine.IO and Socket.IO handshakes, with ``join`` sent if given (its room also goes in the URL,
    as the page puts it). ``sock``: a socket already connected to the server; ``compression``:
    what the client offers (a browser offers permessage-deflate); ``local_address``: the loopback
    address it connects from (e.g. 127.0.0.2, a client of its own to the server's door);
    ``headers``: extra HTTP headers of the handshake."""
    extra: dict[str, Any] = {}
    if local_address is not None:
        extra["local_addr"] = (local_address, 0)
    if headers:
        extra["additional_headers"] = headers
    room = join.get("room", "") if join is not None else ""
    ws_url = url.replace("http://", "ws://") + f"/socket.io/?{urlencode({'room': room})}"
    ws = await websockets.connect(
        ws_url + "&EIO=4&transport=websocket",
        sock=sock,
        max_queue=None,
        compression=compression,
        open_timeout=CONNECT_TIMEOUT_S,
        **extra,
    )
    await ws.recv()  # Engine.IO open
    await ws.send("40")
    await ws.recv()  # Socket.IO connect
    if join is not None:
        await ws.send(_event("join", join))
    return ws


async def unjoined_socket_io(
    url: str, local_address: str | None = None, headers: dict[str, str] | None = None
) -> Any:
    """A Socket.IO client at ``url`` through both handshakes, not joined, from
    ``local_address``; or a string saying why the server refused it (``HTTP <status>`` at the
    WebSocket handshake, ``Socket.IO <answer>`` for a connect error)."""
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    extra: dict[str, Any] = {}
    if local_address is not None:
        extra["local_addr"] = (local_address, 0)
    if headers is not None:
        extra["additional_headers"] = headers
    try:
        ws = await websockets.connect(
            ws_url, compression=None, max_queue=None, open_timeout=CONNECT_TIMEOUT_S, **extra
        )
        await asyncio.wait_for(ws.recv(), CONNECT_TIMEOUT_S)  # Engine.IO open
        await ws.send("40")
        answer = await asyncio.wait_for(ws.recv(), CONNECT_TIMEOUT_S)
    except websockets.InvalidStatus as error:
        return f"HTTP {error.response.status_code}"
    if not answer.startswith("40"):
        ws.transport.abort()
        return f"Socket.IO {answer}"
    return ws


async def next_event(ws: Any, name: str, deadline: float) -> Any:
    """The payload of the next ``name`` event on a raw Socket.IO client (a binary one's bytes),
    answering pings, by ``deadline`` (``time.monotonic()``); an ``error`` event raises
    ``RuntimeError``."""
    binary = False
    while True:
        message = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        if isinstance(message, bytes):
            if binary:
                return message
        elif message == "2":
            await ws.send("3")
        elif message.startswith(f'451-["{name}"'):
            binary = True
        elif message.startswith("42"):
            event, *args = json.loads(message[2:])
            if event == name:
                return args[0] if args else None
            if event == "error":
                raise RuntimeError(f"error: {args[0]}")


class _Connection:
    """One player's connection; ``run`` keeps it up until ``stop_at``."""

    def __init__(self, url: str, player: Player, measure: bool, lean: bool) -> None:
        self.url = url
        self.player = player
        self.measure = measure
        self.lean = lean
        self.ws: Any = None
        # The lean relay socket, once paired (None: packets go as Socket.IO events).
        self.relay_ws: Any = None
        self.up = asyncio.Event()
        self._lean_reader: asyncio.Task[None] | None = None

    def _received(self, packet: bytes) -> None:
        player = self.player
        player.received += 1
        if self.measure:
            _, sent_ns = PACKET.unpack(packet)
            player.latencies_ms.append((time.perf_counter_ns() - sent_ns) / 1e6)

    async def _open_lean(self, ticket: str) -> None:
        url = relay_socket_url(self.url, ticket, self.player.room)
        extra = {"local_addr": (self.player.address, 0)} if self.player.address else {}
        self.relay_ws = await websockets.connect(url, max_queue=None, compression=None, **extra)
        self._lean_reader = asyncio.create_task(self._read_lean(self.relay_ws))

    async def _read_lean(self, ws: Any) -> None:
        try:
            async for message in ws:
                self._received(message)
        except websockets.ConnectionClosed:
            pass

    async def send(self, packet: bytes) -> None:
        if self.relay_ws is not None:
            await self.relay_ws.send(packet)
        else:
            await self.ws.send(BINARY_HEADER)
            await self.ws.send(packet)

    async def close(self) -> None:
        for ws in (self.relay_ws, self.ws):
            if ws is not None:
                await ws.close()

    async def connect(self) -> None:
        player = self.player
        join: dict[str, Any] = {"room": player.room}
        if player.player_index is not None:
            join["player"] = player.player_index
        self.ws = await asyncio.wait_for(
            open_socket_io(self.url, join, local_address=player.address), CONNECT_TIMEOUT_S
        )
        self.relay_ws = None
        self.up.set()

    async def read(self) -> None:
        """Read until the connection closes."""
        player, ws = self.player, self.ws
        expect_binary = False
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    if expect_binary:
                        expect_binary = False
                        self._received(message)
                    continue
                if message == "2":
                    await ws.send("3")
                elif message.startswith("451-"):
                    expect_binary = True
                elif message.startswith("42"):
                    name, *args = json.loads(message[2:])
                    if name == "joined":
                        player.player_index = args[0]["player_index"]
                    elif name == "paired":
                        ticket = args[0].get("relay_ticket")
                        if self.lean and ticket is not None:
                            await self._open_lean(ticket)
                        player.paired.set()
                    elif name == "error":
                        player.failed = message
                        player.paired.set()
        except websockets.ConnectionClosed:
            pass
        self.up.clear()
        if self.relay_ws is not None:
            await self.relay_ws.close()
            self.relay_ws = None


async def play(
    url: str,
    player: Player,
    start: asyncio.Event,
    stop_at: list[float],
    phase: float = 0.0,
    rate_hz: float = 60.0,
    measure: bool = True,
    lean: bool = True,
) -> None:
    """One player: connect and join, send from ``start`` until ``stop_at[0]`` (reconnecting if the
    server goes away), then read for DRAIN_S."""
    connection = _Connection(url, player, measure, lean)
    try:
        await connection.connect()
        reader = asyncio.create_task(connection.read())
        await player.paired.wait()
        await start.wait()
        # Browsers' frames are not in step with each other: spread the players over a frame.
        await asyncio.sleep(phase / rate_hz)
        next_at = time.perf_counter()
        frame = 0
        while time.perf_counter() < stop_at[0]:
            if not connection.up.is_set():
                player.reconnects += 1
                reader = await _reconnect(connection, reader, stop_at)
            # The frame's input, and at 60 Hz four times a second one more packet: the page's
            # ping and its pong for the peer's ping (one each per 500 ms on the relay path).
            for _ in range(2 if frame % EXTRA_EVERY_FRAMES == 0 else 1):
                try:
                    await connection.send(PACKET.pack(player.sent, time.perf_counter_ns()))
                except (websockets.ConnectionClosed, AttributeError):
                    player.sent_while_down += 1
                player.sent += 1
            frame += 1
            next_at += 1 / rate_hz
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.sleep(DRAIN_S)
        reader.cancel()
        await connection.close()
    except Exception as exc:
        player.failed = f"{type(exc).__name__}: {exc}"
        player.paired.set()


async def _reconnect(
    connection: _Connection, reader: asyncio.Task[None], stop_at: list[float]
) -> asyncio.Task[None]:
    await reader
    while time.perf_counter() < stop_at[0]:
        await asyncio.sleep(RECONNECT_DELAY_S)
        try:
            await connection.connect()
        except (TimeoutError, OSError, websockets.InvalidHandshake):
            continue
        return asyncio.create_task(connection.read())
    return asyncio.create_task(asyncio.sleep(0))
