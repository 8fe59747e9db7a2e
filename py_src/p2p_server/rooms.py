"""Pairing, signaling and relaying: the Socket.IO side of the reference server.

It does four jobs for a room of 2 to 8 players (two unless its joiners say otherwise):

* fills the room and tells each client its player index (``join`` -> ``joined``, then
  ``paired`` in a two-player room, ``waiting_for_peer`` and ``room_ready`` in a larger one);
* relays WebRTC signaling (``webrtc_signal``) so the peers can open their DataChannels;
* relays binary input packets (``relay``) between them (the fallback, or parallel, path); an
  input record (0x30), the confirmed inputs of a room routed P2P, goes into the room's record
  and to no player;
* sends the room's spectators every player's inputs and episode ends, from what the players
  relay and upload (:mod:`p2p_server.spectator_feed`).

Why the relay fans out (one packet from a player, a copy to every other player) as well as
carrying addressed packets in rooms of more than two: a player's input is the same for every
peer, so sent once to the room it costs the server one packet read and N - 1 written, against
N - 1 of each when addressed to each peer. Measured with ``benchmarks/bench_rooms.py`` (10 rooms
of 4 at 60 Hz on the lean path, server on one core): 54 us of server CPU per player-frame with
fan-out, 70 us addressed, 48 us for a player of a pair (writing a packet costs the server more
than reading one, so fan-out saves less than half). And at 8 players addressed inputs alone
(7 x 64 a second) would be past a client's relay limit, which counts each packet a client sends
once, however many it reaches. What belongs to one link (pings, acknowledgements) goes
addressed. Spectators get no player's packet as it is: the feed reads every one (fan-out or
addressed, and the uploads of a room routed P2P) and sends them each input once, so the players
send nothing more for them, whatever their route.

Every client is held to :class:`~p2p_server.limits.ClientLimits`, so that one client cannot slow
the others down, and with a token secret a room's slots belong to the holders of its tokens
(:mod:`p2p_server.tokens`). The event names, payload shapes and limits are the contract in
:mod:`p2p_transport.wire.signaling`, shared with the browser edge.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import socketio

from p2p_server.door import REFUSAL_MESSAGES, Door
from p2p_server.input_recorder import InputRecorder
from p2p_server.limits import ClientLimits, LogThrottle, TokenBucket
from p2p_server.packets import AttachmentError, BoundedPacket
from p2p_server.settings import ServerOptions
from p2p_server.spectator_feed import SpectatorFeed
from p2p_server.stats import ServerStats
from p2p_server.telemetry_store import TelemetryError, TelemetryStore, check_save_id
from p2p_server.tokens import RoomClaim, TokenError, verify_token
from p2p_transport.wire.codec import INPUT_RECORD_TYPE
from p2p_transport.wire.signaling import (
    DEFAULT_ROOM,
    ERROR_EVENT,
    JOIN_EVENT,
    JOINED_EVENT,
    MAX_CLIENT_ID_CHARS,
    MAX_PLAYERS,
    MAX_RELAY_BYTES,
    MAX_ROOM_NAME_CHARS,
    MIN_PLAYERS,
    PAIRED_EVENT,
    PEER_LEFT_EVENT,
    PLAYERS_PER_ROOM,
    RELAY_EVENT,
    RELAY_TO_ALL,
    ROOM_READY_EVENT,
    SAVE_TELEMETRY_EVENT,
    SIGNAL_EVENT,
    SIGNAL_FROM,
    SIGNAL_TO,
    SIGNAL_TYPES,
    TELEMETRY_SAVED_EVENT,
    WAITING_EVENT,
)

__all__ = ["Client", "Outbox", "ProtocolError", "RelayServer"]

logger = logging.getLogger("p2p_server.rooms")

# Engine.IO closes the connection on any single packet above this size. SDP offers/answers are a
# few KiB; 64 KiB is generous for signaling while keeping one client from making the server buffer
# megabytes (python-engineio's default is 1 MB).
MAX_TRANSPORT_PACKET_BYTES = 64 * 1024
# Engine.IO pings every client this often and drops it when the answer is this late: a player
# whose connection vanished without a close frees its slot within 20 s (python-engineio's
# defaults, 25 + 20 s, plus the WebSocket's own ping, kept it 40 s). A page answers from its
# socket's message handler, which background tabs do not throttle.
PING_INTERVAL_S = 10
PING_TIMEOUT_S = 10
NAMESPACE = "/"


@dataclass
class _Room:
    #: Its number of players, fixed by its first joiner that named one (``None`` only while
    #: spectators that named none are alone in it).
    players: int | None = None
    # player index -> Socket.IO sid
    members: dict[int, str] = field(default_factory=dict)
    #: Its spectators' Socket.IO sids.
    spectators: set[str] = field(default_factory=set)

    @property
    def mesh(self) -> bool:
        """A room of more than two players: its events and relay envelope are the mesh's."""
        return self.players is not None and self.players > PLAYERS_PER_ROOM

    @property
    def missing(self) -> int | None:
        return None if self.players is None else self.players - len(self.members)

    def lowest_free_index(self) -> int | None:
        for index in range(self.players or PLAYERS_PER_ROOM):
            if index not in self.members:
                return index
        return None

    def others(self, index: int) -> list[str]:
        """The sids of every player but ``index``."""
        return [sid for i, sid in self.members.items() if i != index]


@dataclass
class Outbox:
    """What waits to be written to a client's lean relay socket, and what wakes its writer."""

    packets: deque[bytes] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Client:
    """One connected socket: where it is, what it may still send, how it has behaved."""

    relay: TokenBucket
    relay_bytes: TokenBucket
    signals: TokenBucket
    room: str | None = None
    player_index: int = -1
    #: It watches its room: no slot, no input.
    spectator: bool = False
    #: The page's own id for itself (``join {client}``), told to its peer.
    client_id: str | None = None
    #: Events dropped for being over its limits.
    throttled: int = 0
    malformed: int = 0
    #: When what waits to be written to it (by either path) filled up (``None``: it has room).
    full_since: float | None = None
    #: Engine.IO's session id: its outgoing queue, its WebSocket.
    eio_sid: str | None = None
    #: Set once it is being disconnected by the server: nothing more is done for it.
    dropping: bool = False
    #: Its key to the relay's lean path (one socket per ``paired``).
    relay_ticket: str | None = None
    #: While its lean relay socket is open: what waits to be written to it, and the socket's
    #: tasks (to end them when the client goes).
    relay_outbox: Outbox | None = None
    relay_tasks: tuple[asyncio.Task[Any], ...] = ()


def _origin_allowed(allowed: frozenset[str], origin: str | None, environ: dict[str, Any]) -> bool:
    """Whether a Socket.IO client from ``origin`` may connect: no Origin (not a browser), this
    server's own origin (its pages), or one the operator allowed."""
    if origin is None or origin in allowed:
        return True
    scheme = environ.get("wsgi.url_scheme", "http")
    return origin == f"{scheme}://{environ.get('HTTP_HOST', '')}"


def _turn_subject(room: str, index: int) -> str:
    """A name for coturn's logs: the room's safe characters and the slot (coturn splits the
    username at ':')."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', room)}.p{index}"


class ProtocolError(Exception):
    """A client event that breaks the contract; its message is sent back as an ``error`` event,
    with a ``code`` a page can act on: ``room_full``, ``unauthorized`` (a join without a valid
    token), ``room_size`` (a join for another number of players than the room's),
    ``spectators_full``, ``spectator_input`` (a spectator's relay packet), or ``refused`` for
    everything else."""

    def __init__(self, message: str, code: str = "refused") -> None:
        super().__init__(message)
        self.code = code


class _SocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, with its message decoding guarded: a message it cannot parse
    goes to ``on_malformed`` (counted, logged once in a while, no traceback) instead of a logged
    exception per message. Its Engine.IO connections pass ``on_open`` first (the door: a string
    refuses one, with that message) and end with ``on_close``."""

    on_malformed: Callable[[str, Exception], Awaitable[None]]
    on_open: Callable[[str, dict[str, Any]], str | None]
    on_close: Callable[[str], None]

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except Exception as error:
            await self.on_malformed(eio_sid, error)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        # python-engineio answers a connect handler's string with HTTP 401 and that message,
        # and forgets the session (a WebSocket handshake is refused with 403).
        refusal = self.on_open(eio_sid, environ)
        if refusal is not None:
            return refusal
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self.on_close(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)


class RelayServer:
    """The Socket.IO side: room membership, pairing, and relaying between the two members.

    Rooms are tracked here rather than with Socket.IO's own rooms so that "the other member" is an
    explicit lookup and a relay can never reach anyone but the sender's peer.
    """

    def __init__(self, options: ServerOptions | None = None) -> None:
        self.options = options = options if options is not None else ServerOptions()
        self.limits: ClientLimits = options.limits
        self.stats = ServerStats(gauges=self._gauges)
        #: Limits per client address, checked for every new connection.
        self.door = Door(self.limits)
        # Engine.IO session id -> the timer that closes it if it has not joined by then.
        self._join_timers: dict[str, asyncio.TimerHandle] = {}
        #: Where pages' telemetry records are kept; ``None``: the server keeps none.
        self.telemetry = TelemetryStore(options.data_dir) if options.data_dir is not None else None
        self._rooms: dict[str, _Room] = {}
        self._clients: dict[str, Client] = {}
        # Lean relay socket tickets -> Socket.IO sid.
        self._tickets: dict[str, str] = {}
        #: One allowance per client (or address) and interval for every log line about what a
        #: client did wrong, whichever part of the server writes it.
        self.log_throttle = LogThrottle(self.limits.log_interval_s)
        # Disconnections the server started, kept until they finish.
        self._tasks: set[asyncio.Task[None]] = set()
        #: The rooms' input records; ``None``: the server records nothing.
        self.records = (
            InputRecorder(
                options.record_dir, self.stats, self.log_throttle, options.record_max_bytes
            )
            if options.record_dir is not None
            else None
        )
        #: Every room's inputs, kept for its spectators and sent to them.
        self.feed = SpectatorFeed(
            self._send_to_spectator,
            self._queued_for,
            # Half the queue: what is live (and the room's events) has the rest.
            self.limits.max_queued // 2,
            self.stats,
            self.log_throttle,
        )
        self._sampler: asyncio.Task[None] | None = None
        #: Stops reading a client's WebSocket, by its Engine.IO session id (the ASGI app sets
        #: it, see P2PApp).
        self.stop_reading: Callable[[str], None] = lambda eio_sid: None
        self.sio = _SocketServer(
            async_mode="asgi",
            # Handle each client's events inline, in arrival order: join must be processed before
            # the signals and relays that follow it, and every handler here is quick (an emit only
            # queues a packet), so per-event tasks would buy nothing but reordering.
            async_handlers=False,
            # Binary events with more attachments than the relay uses are refused at their
            # header (see packets).
            serializer=BoundedPacket,
            max_http_buffer_size=MAX_TRANSPORT_PACKET_BYTES,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PING_TIMEOUT_S,
            # The server's own pages always; other origins only when the operator lists them.
            cors_allowed_origins=partial(_origin_allowed, frozenset(options.allowed_origins)),
            namespaces=[NAMESPACE],
            logger=False,
            engineio_logger=False,
        )
        self.sio.on_malformed = self._on_malformed
        self.sio.on_open = self._on_open
        self.sio.on_close = self._on_close
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on(JOIN_EVENT, self._guarded(JOIN_EVENT, self._on_join))
        self.sio.on(SIGNAL_EVENT, self._guarded(SIGNAL_EVENT, self._on_signal))
        self.sio.on(RELAY_EVENT, self._guarded(RELAY_EVENT, self._on_relay))
        self.sio.on(
            SAVE_TELEMETRY_EVENT, self._guarded(SAVE_TELEMETRY_EVENT, self._on_save_telemetry)
        )
        self.sio.on("*", self._on_unknown_event)

    # --- running ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """On the server's event loop at start-up: sample the counters for ``/stats`` rates."""
        self._sampler = asyncio.create_task(self._sample_stats())

    async def shutdown(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        self.feed.stop()
        await self.sio.shutdown()
        if self.records is not None:
            self.records.close_all()

    def _gauges(self) -> dict[str, int]:
        pending = getattr(self.sio, "_binary_packet", {}).values()
        return {
            "sessions_open": self.door.open,
            "unjoined": self.door.unjoined,
            "addresses": self.door.addresses,
            "binary_header_chars_pending": sum(p.header_chars for p in pending),
            "telemetry_chars_pending": (
                self.telemetry.pending_chars if self.telemetry is not None else 0
            ),
            "telemetry_stale_saves_dropped": (
                self.telemetry.stale_saves_dropped if self.telemetry is not None else 0
            ),
            "spectator_feed_kept": self.feed.kept,
        }

    async def _sample_stats(self) -> None:
        while True:
            self.stats.sample()
            if self.records is not None:
                self.records.flush()
            await asyncio.sleep(1)

    # --- bookkeeping -----------------------------------------------------------------------------

    def _client(self, sid: str) -> Client:
        client = self._clients.get(sid)
        if client is None:
            # An event raced with the client's disconnection.
            raise ProtocolError("not connected")
        return client

    async def _reject(self, sid: str, event: str, message: str, code: str = "refused") -> None:
        self.stats.errors += 1
        if code != "refused":
            self.stats.refuse(code)
        if self.log_throttle.allow(sid):
            logger.warning("refused %r from %s: %s", event, sid, message)
        await self.sio.emit(ERROR_EVENT, {"message": f"{event}: {message}", "code": code}, to=sid)

    def _guarded(
        self, event: str, handler: Callable[[Client, str, Any], Awaitable[None]]
    ) -> Callable[..., Awaitable[None]]:
        """Wrap a handler so that a bad event is answered, logged and dropped, never fatal.

        Handlers take exactly one payload argument; any other count is itself malformed.
        """

        async def guarded(sid: str, *args: Any) -> None:
            try:
                client = self._client(sid)
                if client.dropping:
                    return
                if len(args) != 1:
                    raise ProtocolError(f"expected exactly one argument, got {len(args)}")
                await handler(client, sid, args[0])
            except ProtocolError as exc:
                await self._reject(sid, event, str(exc), exc.code)
            except Exception:
                # A bug here must not take the server down for the other clients.
                logger.exception("internal error handling %r from %s", event, sid)
                await self._reject(sid, event, "internal server error")

        return guarded

    def _drop(self, sid: str, code: str, message: str, reason: str | None = None) -> bool:
        """Disconnect a client the server gives up on, telling it why first (``code``), counted
        in ``/stats`` refusals under ``reason`` (default: the code); ``False`` if it is gone or
        going already (the caller then counts nothing)."""
        client = self._clients.get(sid)
        if client is None or client.dropping:
            return False
        client.dropping = True
        self.stats.refuse(reason or code)
        if self.log_throttle.allow(code):
            logger.warning("disconnecting %s (%s): %s (further ones muted)", sid, code, message)

        eio_sid = client.eio_sid

        async def drop() -> None:
            await self.sio.emit(ERROR_EVENT, {"message": message, "code": code}, to=sid)
            await self.sio.disconnect(sid)
            # Socket.IO's disconnect leaves the Engine.IO connection open (until its ping
            # times out), and a flooder's backlog would still be parsed message by message.
            if eio_sid is not None:
                self._end_connection(eio_sid)

        # Not awaited here: the caller may be this client's own event handler.
        task = asyncio.ensure_future(drop())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _close_session(
        self, eio_sid: str, code: str, message: str, reason: str | None = None
    ) -> bool:
        """Close an Engine.IO connection: as :meth:`_drop` if it connected to Socket.IO, else at
        once (there is nobody to tell); counted under ``reason`` (default: ``code``)."""
        sid = self.sio.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        if sid is not None and sid in self._clients:
            return self._drop(sid, code, message, reason)
        if eio_sid not in self.sio.eio.sockets:
            return False
        self.stats.refuse(reason or code)
        self._end_connection(eio_sid)
        return True

    def _end_connection(self, eio_sid: str) -> None:
        """Close a client's Engine.IO connection now, after what is queued for it (the error
        that says why): Engine.IO's writer ends at the ``None`` it ends on itself and closes the
        WebSocket, and nothing more it sends is read. A long-polling session has no writer of its
        own: it is closed and forgotten at once, so that its next POST is refused."""
        socket = self.sio.eio.sockets.get(eio_sid)
        if socket is not None and not socket.upgraded:
            task = asyncio.ensure_future(self.sio.eio.disconnect(eio_sid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if socket is not None:
            socket.queue.put_nowait(None)
        self.stop_reading(eio_sid)

    def _over_limit(self, client: Client, sid: str) -> None:
        """An event dropped for its sender's limits; past a burst's worth, the sender goes."""
        self.stats.throttled += 1
        client.throttled += 1
        if client.throttled > self.limits.max_flood_drops and self._drop(
            sid, "rate_limited", "over the server's rate limits for too long"
        ):
            self.stats.disconnected_flooding += 1

    def _queued(self, peer: Client) -> int:
        """How many packets wait to be written to ``peer``: its lean relay socket's outbox, else
        its Engine.IO queue."""
        if peer.relay_outbox is not None:
            return len(peer.relay_outbox.packets)
        socket = self.sio.eio.sockets.get(peer.eio_sid)
        return socket.queue.qsize() if socket is not None else 0

    def _queued_for(self, sid: str) -> int | None:
        """:meth:`_queued` of the client ``sid``; ``None`` if it is gone or going."""
        client = self._clients.get(sid)
        return None if client is None or client.dropping else self._queued(client)

    def _backlogged(self, peer: Client, peer_sid: str, now: float) -> bool:
        """Whether what waits to be written to ``peer`` is full (:meth:`_queued`), so that a
        relay to it is dropped; a client that stays full for ``slow_reader_s`` is
        disconnected."""
        if self._queued(peer) < self.limits.max_queued:
            peer.full_since = None
            return False
        if peer.full_since is None:
            peer.full_since = now
        elif now - peer.full_since > self.limits.slow_reader_s and self._drop(
            peer_sid, "slow_reader", "not reading what the server sends"
        ):
            self.stats.disconnected_slow_reader += 1
        return True

    # --- handlers ---------------------------------------------------------------------------------

    def _on_open(self, eio_sid: str, environ: dict[str, Any]) -> str | None:
        """A new Engine.IO connection at the door: ``None`` lets it in, a message refuses it."""
        client = environ.get("asgi.scope", {}).get("client")
        host = str(client[0]) if client else "unknown"
        if (
            "HTTP_X_FORWARDED_FOR" in environ
            and not self.options.trusted_proxies
            and self.log_throttle.allow(("forwarded", None))
        ):
            # Behind a proxy the door counts every participant as the proxy's one address.
            logger.warning(
                "a connection from %s carries X-Forwarded-For, which is ignored: if a proxy "
                "forwards to this server, start it with --trusted-proxy so the door counts "
                "each participant by its own address",
                host,
            )
        refusal, evicted = self.door.admit(eio_sid, host, time.monotonic())
        if refusal is not None:
            self.stats.connections_refused += 1
            self.stats.refuse(refusal)
            if self.log_throttle.allow(("door", host)):
                logger.warning(
                    "refused a connection from %s: %s (further ones muted)", host, refusal
                )
            return REFUSAL_MESSAGES[refusal]
        if evicted is not None:
            self._cancel_join_timer(evicted)
            self._close_session(
                evicted,
                "evicted",
                "the server is full: a socket that has not joined makes room",
                reason="evicted_unjoined",
            )
        self._join_timers[eio_sid] = asyncio.get_running_loop().call_later(
            self.limits.join_timeout_s, self._join_timed_out, eio_sid
        )
        return None

    def _on_close(self, eio_sid: str) -> None:
        self.door.left(eio_sid)
        self._cancel_join_timer(eio_sid)

    def _cancel_join_timer(self, eio_sid: str) -> None:
        timer = self._join_timers.pop(eio_sid, None)
        if timer is not None:
            timer.cancel()

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        limits = self.limits
        now = time.monotonic()
        burst = limits.burst_s
        self._clients[sid] = Client(
            eio_sid=self.sio.manager.eio_sid_from_sid(sid, NAMESPACE),
            relay=TokenBucket(limits.relay_per_s, limits.relay_per_s * burst, now),
            relay_bytes=TokenBucket(
                limits.relay_bytes_per_s, limits.relay_bytes_per_s * burst, now
            ),
            signals=TokenBucket(limits.signals_per_s, limits.signals_per_s * burst, now),
        )
        self.stats.connections += 1
        self.stats.connected += 1
        logger.info("connect %s", sid)

    def _join_timed_out(self, eio_sid: str) -> None:
        self._join_timers.pop(eio_sid, None)
        if self.door.is_unjoined(eio_sid) and self._close_session(
            eio_sid, "join_timeout", f"no join within {self.limits.join_timeout_s:g} s"
        ):
            self.stats.join_timeouts += 1

    async def _on_malformed(self, eio_sid: str, error: Exception) -> None:
        self.stats.malformed += 1
        sid = self.sio.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        key = sid or eio_sid
        if self.log_throttle.allow(key):
            logger.warning("malformed message from %s: %s: %s", key, type(error).__name__, error)
        if isinstance(error, AttachmentError):
            # What it announced would have been held in memory: it goes at once.
            if self._close_session(eio_sid, "malformed", str(error), reason=error.reason):
                self.stats.disconnected_malformed += 1
            return
        client = self._clients.get(sid) if sid is not None else None
        if client is None:
            # Not even connected to the namespace: nothing to tell it.
            self._end_connection(eio_sid)
            return
        client.malformed += 1
        if client.malformed > self.limits.max_malformed and self._drop(
            sid, "malformed", "too many malformed messages"
        ):
            self.stats.disconnected_malformed += 1

    async def _on_disconnect(self, sid: str, *reason: Any) -> None:
        logger.info("disconnect %s %s", sid, reason[0] if reason else "")
        if self.telemetry is not None:
            self.telemetry.forget(sid)
        client = self._clients.pop(sid, None)
        if client is None:
            return
        self.stats.connected -= 1
        if client.relay_ticket is not None:
            self._tickets.pop(client.relay_ticket, None)
        for task in client.relay_tasks:
            task.cancel()
        if client.room is None:
            return
        room = self._rooms.get(client.room)
        if room is None:
            return
        if client.spectator:
            room.spectators.discard(sid)
            self.stats.spectators -= 1
            self.feed.unwatch(client.room, sid)
            self._forget_if_empty(client.room, room)
            return
        if room.members.get(client.player_index) != sid:
            # Its slot was taken back by its token holder: the room has moved on.
            return
        del room.members[client.player_index]
        if not room.members:
            self.feed.close(client.room)
            if self.records is not None:
                self.records.close(client.room)
        if self._forget_if_empty(client.room, room):
            return
        # Copies: the emits await, and the others may disconnect meanwhile.
        audience = [*room.members.values(), *room.spectators]
        for remaining_sid in audience:
            await self.sio.emit(
                PEER_LEFT_EVENT, {"player_index": client.player_index}, to=remaining_sid
            )
        if room.mesh:
            await self._tell_waiting(client.room, room)

    def _forget_if_empty(self, room_name: str, room: _Room) -> bool:
        """Drop ``room`` if nobody is in it any more; whether it was."""
        if room.members or room.spectators:
            return False
        del self._rooms[room_name]
        self.stats.rooms_open = len(self._rooms)
        return True

    def _claim(self, room_name: str, token: Any) -> RoomClaim:
        """What the join's token lets its bearer do in ``room_name``; refused if nothing."""
        assert self.options.token_secret is not None
        try:
            claim = verify_token(self.options.token_secret, token)
        except TokenError as error:
            self.stats.token_refusals += 1
            raise ProtocolError(str(error), code="unauthorized") from None
        if claim.room != room_name:
            self.stats.token_refusals += 1
            raise ProtocolError(
                f"the token is for room {claim.room!r}, not {room_name!r}", code="unauthorized"
            )
        return claim

    @staticmethod
    def _players_asked(asked: Any, spectator: bool) -> int | None:
        """The number of players a join without a token asks for (``None``: a spectator's that
        names none)."""
        if asked is None:
            return None if spectator else PLAYERS_PER_ROOM
        if (
            isinstance(asked, bool)
            or not isinstance(asked, int)
            or not MIN_PLAYERS <= asked <= MAX_PLAYERS
        ):
            raise ProtocolError(f"'players' must be a whole number {MIN_PLAYERS}..{MAX_PLAYERS}")
        return asked

    def _slot_for(
        self, sid: str, room_name: str, room: _Room, claim: RoomClaim | None, wanted: Any
    ) -> int:
        """The player slot this join takes in ``room`` (its number of players already checked):
        the token's, when the server checks tokens (a stale connection holding it is dropped),
        else the one it asks for again (it had it before this server restarted) if free, else
        the lowest free one."""
        if claim is None:
            if (
                isinstance(wanted, int)
                and not isinstance(wanted, bool)
                and 0 <= wanted < (room.players or PLAYERS_PER_ROOM)
                and wanted not in room.members
            ):
                return wanted
            index = room.lowest_free_index()
            if index is None:
                raise ProtocolError(f"room {room_name!r} is full", code="room_full")
            return index
        assert claim.player is not None
        holder = room.members.get(claim.player)
        if holder is not None and holder != sid:
            # Only the token's holder can be here with it: the old connection is a stale one
            # (a reload, or a connection that vanished without a close).
            self.stats.slots_reclaimed += 1
            stale = self._clients.get(holder)
            if stale is not None:
                stale.room = None
            self._drop(holder, "replaced", "this player joined again on another connection")
        return claim.player

    async def _on_join(self, client: Client, sid: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ProtocolError("payload must be an object like {'room': 'name'}")
        room_name = data.get("room", DEFAULT_ROOM)
        if not isinstance(room_name, str) or not room_name:
            raise ProtocolError("'room' must be a non-empty string")
        if len(room_name) > MAX_ROOM_NAME_CHARS:
            raise ProtocolError(f"'room' longer than {MAX_ROOM_NAME_CHARS} characters")
        client_id = data.get("client")
        if client_id is not None and (
            not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID_CHARS
        ):
            raise ProtocolError(f"'client' must be a string of 1-{MAX_CLIENT_ID_CHARS} characters")
        if client.room is not None:
            raise ProtocolError(f"already in room {client.room!r}")
        spectator = data.get("spectator", False)
        if not isinstance(spectator, bool):
            raise ProtocolError("'spectator' must be true or false")
        room = self._rooms.get(room_name) or _Room()
        claim = None
        if self.options.token_secret is None:
            players = self._players_asked(data.get("players"), spectator)
        else:
            # With tokens the token's claim decides, the join's own 'players' is not read.
            claim = self._claim(room_name, data.get("token"))
            if spectator != claim.spectator:
                self.stats.token_refusals += 1
                raise ProtocolError(
                    "a spectator's token only watches (join with spectator: true)"
                    if claim.spectator
                    else "a player's token does not watch: a spectator needs a spectator token",
                    code="unauthorized",
                )
            players = None if spectator else claim.players
        if players is not None and room.players is not None and players != room.players:
            raise ProtocolError(
                f"room {room_name!r} is a {room.players}-player room, this join is for "
                f"{players} players",
                code="room_size",
            )
        if spectator and len(room.spectators) >= self.options.max_spectators:
            raise ProtocolError(
                f"room {room_name!r} has its {self.options.max_spectators} spectators",
                code="spectators_full",
            )
        index = -1 if spectator else self._slot_for(sid, room_name, room, claim, data.get("player"))

        # State changes happen before any await so that the next event from this client (and from
        # other clients) already sees the membership.
        if room.players is None:
            room.players = players
        if spectator:
            room.spectators.add(sid)
            self.stats.spectators += 1
            self.stats.spectator_joins += 1
        else:
            room.members[index] = sid
            if room.mesh and room.players is not None:
                # One link per peer, each with its own packets and signals, as a pair's one.
                for bucket in (client.relay, client.relay_bytes, client.signals):
                    bucket.scale(room.players - 1)
        self._rooms[room_name] = room
        client.room, client.player_index, client.client_id = room_name, index, client_id
        client.spectator = spectator
        if client.eio_sid is not None:
            self.door.joined(client.eio_sid)
            self._cancel_join_timer(client.eio_sid)
        self.stats.joins += 1
        self.stats.rooms_open = len(self._rooms)
        logger.info(
            "%s joined room %r as %s",
            sid,
            room_name,
            "a spectator" if spectator else f"player {index}",
        )

        joined: dict[str, Any] = {"room": room_name}
        if spectator:
            joined.update(spectator=True, players=room.players, missing=room.missing)
        else:
            joined["player_index"] = index
            if room.mesh:
                joined.update(players=room.players, missing=room.missing)
        # Whether this join filled the room, decided now: after the await below, a later join
        # may have filled it, and that join tells the room.
        full = room.missing == 0
        await self.sio.emit(JOINED_EVENT, joined, to=sid)
        if spectator:
            if full:
                ready = self._room_ready(room_name, room, sid)
                await self.sio.emit(ROOM_READY_EVENT, ready, to=sid)
            if sid in room.spectators:  # not gone during the emits
                # After its join's events: the room's inputs so far, then the new ones.
                self.feed.watch(room_name, sid)
            return
        if not full:
            if room.mesh:
                await self._tell_waiting(room_name, room)
            return
        if room.mesh:
            for member_sid in [*room.members.values(), *room.spectators]:
                if member_sid in self._clients:  # not gone during an earlier emit
                    ready = self._room_ready(room_name, room, member_sid)
                    await self.sio.emit(ROOM_READY_EVENT, ready, to=member_sid)
        else:
            await self._pair(room_name, room)

    async def _pair(self, room_name: str, room: _Room) -> None:
        """A two-player room is full: ``paired`` to both (as it always was), ``room_ready`` to
        its spectators."""
        members = dict(room.members)
        if len(members) != PLAYERS_PER_ROOM:
            return  # one left during the joiner's own emit: peer_left said so
        spectators = list(room.spectators)
        for member_index, member_sid in members.items():
            peer_index = next(i for i in members if i != member_index)
            peer = self._clients.get(members[peer_index])
            paired: dict[str, Any] = {
                "room": room_name,
                "player_index": member_index,
                "peer_index": peer_index,
            }
            if peer is not None and peer.client_id is not None:
                paired["peer_client"] = peer.client_id
            if self.options.turn is not None:
                paired["ice_servers"] = self.options.turn.mint(
                    _turn_subject(room_name, member_index)
                )
            paired["relay_ticket"] = self.ticket_for(member_sid)
            await self.sio.emit(PAIRED_EVENT, paired, to=member_sid)
        for spectator_sid in spectators:
            ready = self._room_ready(room_name, room, spectator_sid)
            await self.sio.emit(ROOM_READY_EVENT, ready, to=spectator_sid)

    def _room_ready(self, room_name: str, room: _Room, sid: str) -> dict[str, Any]:
        """``room_ready`` for the player or spectator ``sid`` of a full room (see signaling)."""
        client = self._clients[sid]
        index = None if client.spectator else client.player_index
        peers = []
        for peer_index in sorted(room.members):
            if peer_index == index:
                continue
            peer = self._clients.get(room.members[peer_index])
            entry: dict[str, Any] = {"player_index": peer_index}
            if peer is not None and peer.client_id is not None:
                entry["client"] = peer.client_id
            peers.append(entry)
        ready: dict[str, Any] = {"room": room_name}
        if index is None:
            ready["spectator"] = True
        else:
            ready["player_index"] = index
        ready.update(players=room.players, peers=peers)
        if index is not None and self.options.turn is not None:
            ready["ice_servers"] = self.options.turn.mint(_turn_subject(room_name, index))
        ready["relay_ticket"] = self.ticket_for(sid)
        return ready

    async def _tell_waiting(self, room_name: str, room: _Room) -> None:
        """``waiting_for_peer`` to everyone in a room of more than two that is not full (a
        room that filled meanwhile has been told so by the join that filled it)."""
        if room.missing == 0:
            return
        waiting = {
            "room": room_name,
            "players": room.players,
            "present": sorted(room.members),
            "missing": room.missing,
        }
        for sid in [*room.members.values(), *room.spectators]:
            await self.sio.emit(WAITING_EVENT, waiting, to=sid)

    def _room_of(self, client: Client) -> _Room:
        if client.room is None:
            raise ProtocolError("join a room first")
        return self._rooms[client.room]

    def _addressee(self, room: _Room, client: Client, to: int) -> int:
        """The player index ``to`` names, checked: another slot of the room."""
        players = room.players or PLAYERS_PER_ROOM
        if not 0 <= to < players or to == client.player_index:
            raise ProtocolError(
                f"a room of {players} players has no other player {to!r} to send to"
            )
        return to

    async def _on_signal(self, client: Client, sid: str, data: Any) -> None:
        if not client.signals.take(time.monotonic()):
            self._over_limit(client, sid)
            return
        if not isinstance(data, dict):
            raise ProtocolError("payload must be an object with a 'type'")
        signal_type = data.get("type")
        if signal_type not in SIGNAL_TYPES:
            raise ProtocolError(
                f"'type' must be one of {sorted(SIGNAL_TYPES)}, got {signal_type!r}"
            )
        room = self._room_of(client)
        if client.spectator:
            raise ProtocolError("a spectator opens no DataChannel: it sends no signals")
        to = data.get(SIGNAL_TO)
        if to is None:
            if room.mesh:
                raise ProtocolError(
                    f"in a room of {room.players} players a signal names the player it is for "
                    f"with {SIGNAL_TO!r}"
                )
            others = room.others(client.player_index)
            peer = others[0] if others else None
        else:
            if isinstance(to, bool) or not isinstance(to, int):
                raise ProtocolError(f"{SIGNAL_TO!r} must be a player index, got {to!r}")
            peer = room.members.get(self._addressee(room, client, to))
            data = {**data, SIGNAL_FROM: client.player_index}
        if peer is None:
            self.stats.dropped_no_peer += 1
            logger.info("dropped %s signal from %s: no peer", signal_type, sid)
            return
        self.stats.signals_relayed += 1
        self.stats.events_relayed += 1
        await self.sio.emit(SIGNAL_EVENT, data, to=peer)

    async def _on_relay(self, client: Client, sid: str, data: Any) -> None:
        if not isinstance(data, bytes):
            raise ProtocolError(f"payload must be binary, got {type(data).__name__}")
        await self.relay_from(client, sid, data)

    async def relay_from(self, client: Client, sid: str, data: bytes) -> None:
        """A packet from ``client`` (by either path) for its room: checked, limited (once,
        however many it reaches), forwarded to the peer (a two-player room) or the players it
        names (a larger room, see :data:`RELAY_TO_ALL`), on each one's lean path when it has one
        open, else as a Socket.IO event; its inputs go to the record and the spectator feed."""
        if not data:
            raise ProtocolError("payload is empty")
        if len(data) > MAX_RELAY_BYTES:
            raise ProtocolError(f"payload of {len(data)} bytes exceeds {MAX_RELAY_BYTES}")
        if client.dropping:
            return
        now = time.monotonic()
        if not (client.relay.take(now) and client.relay_bytes.take(now, len(data))):
            self._over_limit(client, sid)
            return
        room = self._room_of(client)
        if client.spectator:
            raise ProtocolError("a spectator sends no input", code="spectator_input")
        index = client.player_index
        if room.mesh:
            to, packet = data[0], data[1:]
            if not packet:
                raise ProtocolError("payload is only an envelope")
            out = bytes((index,)) + packet
            if to == RELAY_TO_ALL:
                targets = room.others(index)
            else:
                target = room.members.get(self._addressee(room, client, to))
                targets = [target] if target is not None else []
        else:
            packet = out = data
            targets = room.others(index)
        if packet[0] == INPUT_RECORD_TYPE:
            await self._take_upload(client, room, packet)
            return
        if self.records is not None and client.room is not None and room.players is not None:
            # Before the peers' checks: an input is its sender's whether they take it or not.
            self.records.relayed(client.room, room.players, index, packet)
        if not targets:
            # No error reply: at 60 packets/s a peer that just left would otherwise flood the
            # survivor with errors; it has already been told with peer_left.
            self.stats.dropped_no_peer += 1
        stats = self.stats
        for target_sid in targets:
            if await self._send_relay(target_sid, out, now):
                stats.relay_messages += 1
                stats.events_relayed += 1
                stats.bytes_relayed += len(out)
        if client.room is not None and room.players is not None:
            await self.feed.relayed(client.room, room.players, index, packet)

    async def _take_upload(self, client: Client, room: _Room, packet: bytes) -> None:
        """An input record: the server's own, kept in the room's record and fed to its
        spectators, sent to no player (a peer, deployed JavaScript ones included, never sees
        one)."""
        if client.room is None or room.players is None:
            return
        if self.records is None:
            self.stats.refuse("record_off")
        else:
            self.records.uploaded(client.room, room.players, client.player_index, packet)
        await self.feed.uploaded(client.room, room.players, client.player_index, packet)

    async def _send_to_spectator(self, sid: str, packet: bytes) -> bool:
        """A packet of the spectator feed, written to the spectator ``sid`` (as a relay packet);
        ``False`` if it was not (``sid`` gone, or not reading)."""
        sent = await self._send_relay(sid, packet, time.monotonic())
        if sent:
            self.stats.spectator_messages += 1
        return sent

    async def _send_relay(self, sid: str, data: bytes, now: float) -> bool:
        """Forward ``data`` to ``sid``, on its lean relay socket if it has one open, else as a
        Socket.IO event; ``False`` if it was dropped (``sid`` gone, or not reading)."""
        peer = self._clients.get(sid)
        if peer is None:
            self.stats.dropped_no_peer += 1
            return False
        if self._backlogged(peer, sid, now):
            self.stats.dropped_slow_reader += 1
            return False
        outbox = peer.relay_outbox
        if outbox is not None:
            self.stats.relay_socket_messages += 1
            outbox.packets.append(data)
            outbox.wakeup.set()
            return True
        await self.sio.emit(RELAY_EVENT, data, to=sid)
        return True

    def ticket_for(self, sid: str) -> str:
        """A fresh key to the lean relay path for ``sid`` (the previous one no longer works)."""
        client = self._clients[sid]
        if client.relay_ticket is not None:
            self._tickets.pop(client.relay_ticket, None)
        ticket = client.relay_ticket = secrets.token_urlsafe(18)
        self._tickets[ticket] = sid
        return ticket

    def claim_ticket(self, ticket: str) -> tuple[str, Client] | None:
        """The client a ticket belongs to, once: a ticket opens one socket."""
        sid = self._tickets.pop(ticket, None)
        client = self._clients.get(sid) if sid is not None else None
        if sid is None or client is None or client.dropping:
            return None
        client.relay_ticket = None
        return sid, client

    async def _on_save_telemetry(self, client: Client, sid: str, data: Any) -> None:
        """A part of a page's telemetry record; the answer names the save either way."""
        try:
            save_id = check_save_id(data)
        except TelemetryError as error:
            raise ProtocolError(str(error)) from None
        try:
            if client.room is None:
                raise TelemetryError("join a room first: records are kept per room and player")
            if client.spectator:
                raise TelemetryError("a spectator has no record here: they are kept per player")
            if self.telemetry is None:
                raise TelemetryError(
                    "this server keeps no telemetry (start it with --data-dir DIR)"
                )
            answer = await self.telemetry.add_part(sid, client.room, client.player_index, data)
        except TelemetryError as error:
            self.stats.errors += 1
            if error.reason is not None:
                self.stats.refuse(error.reason)
            if self.log_throttle.allow(("telemetry", sid)):
                logger.warning("telemetry from %s refused: %s", sid, error)
            await self.sio.emit(
                TELEMETRY_SAVED_EVENT, {"save_id": save_id, "error": str(error)}, to=sid
            )
            return
        if answer is not None:
            self.stats.telemetry_saved += 1
            self.stats.telemetry_bytes += answer["bytes"]
            await self.sio.emit(TELEMETRY_SAVED_EVENT, answer, to=sid)

    async def _on_unknown_event(self, event: str, sid: str, *args: Any) -> None:
        await self._reject(sid, str(event), "unknown event")
