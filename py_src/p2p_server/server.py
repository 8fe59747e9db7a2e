"""Reference signaling/relay server for p2p_transport (CPython only, never imported in the browser).

It does three jobs for a two-player room:

* pairs two Socket.IO clients and tells each its player index (``join`` -> ``joined``/``paired``);
* relays WebRTC signaling (``webrtc_signal``) so the peers can open a DataChannel;
* relays binary input packets (``relay``) for peers whose DataChannel cannot open (fallback path).

It also serves the static files the demo page needs (Pyodide, the Socket.IO client bundle, the
project's wheels) from loopback, so a browser test never needs the internet.

Run it with ``python -m p2p_server``; tests start it in a thread with
:class:`ServerThread`.
The event names, payload shapes and limits are the contract in :mod:`p2p_transport.wire.signaling`,
shared with the browser edge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import mimetypes
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import socketio
import uvicorn

from p2p_server.telemetry_store import TelemetryError, TelemetryStore, check_save_id
from p2p_transport.browser import SHIM_FILE_NAME, shim_path
from p2p_transport.wire.signaling import (
    DEFAULT_ROOM,
    ERROR_EVENT,
    JOIN_EVENT,
    JOINED_EVENT,
    MAX_RELAY_BYTES,
    MAX_ROOM_NAME_CHARS,
    PAIRED_EVENT,
    PEER_LEFT_EVENT,
    PLAYERS_PER_ROOM,
    RELAY_EVENT,
    SAVE_TELEMETRY_EVENT,
    SIGNAL_EVENT,
    SIGNAL_TYPES,
    TELEMETRY_SAVED_EVENT,
)

__all__ = [
    "P2PApp",
    "RelayServer",
    "ServerStats",
    "ServerThread",
    "create_app",
    "main",
    "run_server",
]

logger = logging.getLogger("p2p_server.server")

# Engine.IO closes the connection on any single packet above this size. SDP offers/answers are a
# few KiB; 64 KiB is generous for signaling while keeping one client from making the server buffer
# megabytes (python-engineio's default is 1 MB).
MAX_TRANSPORT_PACKET_BYTES: Final = 64 * 1024

# --- HTTP constants ------------------------------------------------------------------------------

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
# Media types the browser insists on: WebAssembly.instantiateStreaming needs application/wasm and
# the module import of pyodide.asm.mjs needs a JavaScript type. Python's mimetypes table varies by
# platform (and lacks .wasm/.mjs on some), so the ones that matter are fixed here.
CONTENT_TYPES: Final[dict[str, str]] = {
    ".wasm": "application/wasm",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".txt": "text/plain; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",
}
FALLBACK_CONTENT_TYPE: Final = "application/octet-stream"
# The transport's JavaScript half, served from the installed p2p_transport package rather than a
# copy in the page's directory, so page and Python always come from the same release.
SHIM_URL: Final = f"/static/{SHIM_FILE_NAME}"
# The p2p_transport wheel is rebuilt from the working tree between runs under the same name, so
# nothing may be cached; this also keeps test runs independent of each other.
NO_STORE_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    # Cross-origin isolation: without it Chromium coarsens performance.now() to 100 us, which is a
    # quarter of a loopback round trip; isolated pages get 5 us. Every asset is same-origin.
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
)
# Uvicorn waits this long for open connections (e.g. a test's browser tab) before closing them at
# shutdown, so stopping a ServerThread cannot hang a test run.
GRACEFUL_SHUTDOWN_SECONDS: Final = 3
# How long ServerThread waits for uvicorn to start listening before giving up.
STARTUP_TIMEOUT_SECONDS: Final = 15.0
STARTUP_POLL_SECONDS: Final = 0.005


# ================================================================================================
# Socket.IO: pairing, signaling and relay
# ================================================================================================


@dataclass
class ServerStats:
    """Counters for tests and the ``/stats`` route. Mutated only on the server's event loop."""

    connections: int = 0
    joins: int = 0
    signals_relayed: int = 0
    relay_messages: int = 0
    # Signals plus relay messages forwarded to a peer.
    events_relayed: int = 0
    # Payload bytes of forwarded ``relay`` messages (signaling is not counted: it is JSON).
    bytes_relayed: int = 0
    # Events refused with an ``error`` reply (malformed, oversized, before join, room full...).
    errors: int = 0
    # Well-formed signals/relays that arrived while the sender had no peer (the peer had just left,
    # or had not joined yet): a normal race, so dropped without an error reply.
    dropped_no_peer: int = 0
    rooms_open: int = 0
    # Telemetry records written to the data directory (see telemetry_store), and their bytes.
    telemetry_saved: int = 0
    telemetry_bytes: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Membership:
    room: str
    player_index: int


@dataclass
class _Room:
    # player index -> Socket.IO sid
    members: dict[int, str] = field(default_factory=dict)

    def lowest_free_index(self) -> int | None:
        for index in range(PLAYERS_PER_ROOM):
            if index not in self.members:
                return index
        return None


def _origin_allowed(allowed: frozenset[str], origin: str | None, environ: dict[str, Any]) -> bool:
    """Whether a Socket.IO client from ``origin`` may connect: no Origin (not a browser), this
    server's own origin (its pages), or one the operator allowed."""
    if origin is None or origin in allowed:
        return True
    scheme = environ.get("wsgi.url_scheme", "http")
    return origin == f"{scheme}://{environ.get('HTTP_HOST', '')}"


class ProtocolError(Exception):
    """A client event that breaks the contract; its message is sent back as an ``error`` event,
    with a ``code`` a page can act on: ``room_full``, or ``refused`` for everything else."""

    def __init__(self, message: str, code: str = "refused") -> None:
        super().__init__(message)
        self.code = code


class RelayServer:
    """The Socket.IO side: room membership, pairing, and relaying between the two members.

    Rooms are tracked here rather than with Socket.IO's own rooms so that "the other member" is an
    explicit lookup and a relay can never reach anyone but the sender's peer.
    """

    def __init__(self, data_dir: Path | None = None, allowed_origins: Sequence[str] = ()) -> None:
        self.stats = ServerStats()
        #: Where pages' telemetry records are kept; ``None``: the server keeps none.
        self.telemetry = TelemetryStore(data_dir) if data_dir is not None else None
        self._rooms: dict[str, _Room] = {}
        self._members: dict[str, _Membership] = {}
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            # Handle each client's events inline, in arrival order: join must be processed before
            # the signals and relays that follow it, and every handler here is quick (an emit only
            # queues a packet), so per-event tasks would buy nothing but reordering.
            async_handlers=False,
            max_http_buffer_size=MAX_TRANSPORT_PACKET_BYTES,
            # The server's own pages always; other origins only when the operator lists them.
            cors_allowed_origins=partial(_origin_allowed, frozenset(allowed_origins)),
            namespaces=["/"],
            logger=False,
            engineio_logger=False,
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on(JOIN_EVENT, self._guarded(JOIN_EVENT, self._on_join))
        self.sio.on(SIGNAL_EVENT, self._guarded(SIGNAL_EVENT, self._on_signal))
        self.sio.on(RELAY_EVENT, self._guarded(RELAY_EVENT, self._on_relay))
        self.sio.on(
            SAVE_TELEMETRY_EVENT, self._guarded(SAVE_TELEMETRY_EVENT, self._on_save_telemetry)
        )
        self.sio.on("*", self._on_unknown_event)

    # --- bookkeeping -----------------------------------------------------------------------------

    def _peer_of(self, sid: str) -> str | None:
        membership = self._members.get(sid)
        if membership is None:
            raise ProtocolError("join a room first")
        room = self._rooms[membership.room]
        for index, member_sid in room.members.items():
            if index != membership.player_index:
                return member_sid
        return None

    async def _reject(self, sid: str, event: str, message: str, code: str = "refused") -> None:
        self.stats.errors += 1
        logger.warning("refused %r from %s: %s", event, sid, message)
        await self.sio.emit(ERROR_EVENT, {"message": f"{event}: {message}", "code": code}, to=sid)

    def _guarded(
        self, event: str, handler: Callable[[str, Any], Awaitable[None]]
    ) -> Callable[..., Awaitable[None]]:
        """Wrap a handler so that a bad event is answered, logged and dropped, never fatal.

        Handlers take exactly one payload argument; any other count is itself malformed.
        """

        async def guarded(sid: str, *args: Any) -> None:
            try:
                if len(args) != 1:
                    raise ProtocolError(f"expected exactly one argument, got {len(args)}")
                await handler(sid, args[0])
            except ProtocolError as exc:
                await self._reject(sid, event, str(exc), exc.code)
            except Exception:
                # A bug here must not take the server down for the other clients.
                logger.exception("internal error handling %r from %s", event, sid)
                await self._reject(sid, event, "internal server error")

        return guarded

    # --- handlers ---------------------------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.stats.connections += 1
        logger.info("connect %s", sid)

    async def _on_disconnect(self, sid: str, *reason: Any) -> None:
        logger.info("disconnect %s %s", sid, reason[0] if reason else "")
        if self.telemetry is not None:
            self.telemetry.forget(sid)
        membership = self._members.pop(sid, None)
        if membership is None:
            return
        room = self._rooms[membership.room]
        del room.members[membership.player_index]
        if not room.members:
            del self._rooms[membership.room]
            self.stats.rooms_open = len(self._rooms)
            return
        # A copy: the emit awaits, and the other member may disconnect meanwhile.
        for remaining_sid in list(room.members.values()):
            await self.sio.emit(
                PEER_LEFT_EVENT, {"player_index": membership.player_index}, to=remaining_sid
            )

    async def _on_join(self, sid: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ProtocolError("payload must be an object like {'room': 'name'}")
        room_name = data.get("room", DEFAULT_ROOM)
        if not isinstance(room_name, str) or not room_name:
            raise ProtocolError("'room' must be a non-empty string")
        if len(room_name) > MAX_ROOM_NAME_CHARS:
            raise ProtocolError(f"'room' longer than {MAX_ROOM_NAME_CHARS} characters")
        if sid in self._members:
            raise ProtocolError(f"already in room {self._members[sid].room!r}")
        room = self._rooms.get(room_name) or _Room()
        index = room.lowest_free_index()
        if index is None:
            raise ProtocolError(f"room {room_name!r} is full", code="room_full")

        # State changes happen before any await so that the next event from this client (and from
        # other clients) already sees the membership.
        room.members[index] = sid
        self._rooms[room_name] = room
        self._members[sid] = _Membership(room_name, index)
        self.stats.joins += 1
        self.stats.rooms_open = len(self._rooms)
        members = dict(room.members)
        logger.info("%s joined room %r as player %d", sid, room_name, index)

        await self.sio.emit(JOINED_EVENT, {"room": room_name, "player_index": index}, to=sid)
        if len(members) == PLAYERS_PER_ROOM:
            for member_index, member_sid in members.items():
                peer_index = next(i for i in members if i != member_index)
                await self.sio.emit(
                    PAIRED_EVENT,
                    {"room": room_name, "player_index": member_index, "peer_index": peer_index},
                    to=member_sid,
                )

    async def _on_signal(self, sid: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ProtocolError("payload must be an object with a 'type'")
        signal_type = data.get("type")
        if signal_type not in SIGNAL_TYPES:
            raise ProtocolError(
                f"'type' must be one of {sorted(SIGNAL_TYPES)}, got {signal_type!r}"
            )
        peer = self._peer_of(sid)
        if peer is None:
            self.stats.dropped_no_peer += 1
            logger.info("dropped %s signal from %s: no peer", signal_type, sid)
            return
        self.stats.signals_relayed += 1
        self.stats.events_relayed += 1
        await self.sio.emit(SIGNAL_EVENT, data, to=peer)

    async def _on_relay(self, sid: str, data: Any) -> None:
        if not isinstance(data, bytes):
            raise ProtocolError(f"payload must be binary, got {type(data).__name__}")
        if not data:
            raise ProtocolError("payload is empty")
        if len(data) > MAX_RELAY_BYTES:
            raise ProtocolError(f"payload of {len(data)} bytes exceeds {MAX_RELAY_BYTES}")
        peer = self._peer_of(sid)
        if peer is None:
            # No error reply: at 60 packets/s a peer that just left would otherwise flood the
            # survivor with errors; it has already been told with peer_left.
            self.stats.dropped_no_peer += 1
            return
        self.stats.relay_messages += 1
        self.stats.events_relayed += 1
        self.stats.bytes_relayed += len(data)
        await self.sio.emit(RELAY_EVENT, data, to=peer)

    async def _on_save_telemetry(self, sid: str, data: Any) -> None:
        """A part of a page's telemetry record; the answer names the save either way."""
        try:
            save_id = check_save_id(data)
        except TelemetryError as error:
            raise ProtocolError(str(error)) from None
        membership = self._members.get(sid)
        try:
            if membership is None:
                raise TelemetryError("join a room first: records are kept per room and player")
            if self.telemetry is None:
                raise TelemetryError(
                    "this server keeps no telemetry (start it with --data-dir DIR)"
                )
            answer = await self.telemetry.add_part(
                sid, membership.room, membership.player_index, data
            )
        except TelemetryError as error:
            self.stats.errors += 1
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


# ================================================================================================
# HTTP: a small static file handler with correct media types
# ================================================================================================

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def content_type_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or FALLBACK_CONTENT_TYPE


def resolve_under(root: Path, relative: str) -> Path | None:
    """Map a URL path below a mount point to a file inside ``root``, or None if it must be refused.

    Refuses empty, ``.`` and ``..`` segments, backslashes and NULs outright rather than normalising
    them, then checks that the resolved path (symlinks followed) is still inside ``root``.
    """
    parts = relative.split("/")
    if not parts or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
        return None
    root_resolved = root.resolve()
    candidate = root_resolved.joinpath(*parts).resolve()
    if not candidate.is_relative_to(root_resolved) or not candidate.is_file():
        return None
    return candidate


class StaticApp:
    """ASGI app for every non-Socket.IO HTTP route.

    ``/`` -> index.html, ``/static/p2p_shim.js`` -> the installed transport's shim,
    ``/static/`` -> static dir, ``/pyodide/`` -> node_modules/pyodide,
    ``/socket.io-client/`` -> node_modules/socket.io-client/dist, ``/wheels/`` -> wheels dir
    (plus a generated ``/wheels/index.json``), ``/stats`` -> the relay counters as JSON.
    """

    def __init__(
        self,
        static_dir: Path,
        node_modules: Path,
        wheels_dir: Path,
        stats: ServerStats,
        allowed_origins: Sequence[str] = (),
    ) -> None:
        #: Pages on these origins may load what this server serves (CORS).
        self.allowed_origins = frozenset(allowed_origins)
        self.static_dir = static_dir
        self.wheels_dir = wheels_dir
        self.stats = stats
        self.mounts: dict[str, Path] = {
            "/static/": static_dir,
            "/pyodide/": node_modules / "pyodide",
            "/socket.io-client/": node_modules / "socket.io-client" / "dist",
            "/wheels/": wheels_dir,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            # e.g. a WebSocket to a path other than /socket.io/
            await send({"type": "websocket.close", "code": 1008})
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await self._respond(send, 405, b"method not allowed\n", "text/plain", head=False)
            return
        head = method == "HEAD"
        path: str = scope["path"]
        cors = self._cors_headers(scope)

        if path == "/stats":
            body = json.dumps(self.stats.snapshot()).encode()
            await self._respond(send, 200, body, "application/json", head)
            return
        if path == "/wheels/index.json":
            await self._respond(send, 200, self._wheel_index(), "application/json", head, cors)
            return
        if path == "/favicon.ico":
            # The browser asks for it on every page; an empty answer keeps a 404 out of the console.
            await self._respond(send, 204, b"", "image/x-icon", head)
            return

        target: Path | None = None
        if path == "/":
            target = resolve_under(self.static_dir, "index.html")
        elif path == SHIM_URL:
            target = shim_path()
        else:
            for prefix, root in self.mounts.items():
                if path.startswith(prefix):
                    target = resolve_under(root, path[len(prefix) :])
                    break
        if target is None:
            logger.info("404 %s", path)
            await self._respond(send, 404, b"not found\n", "text/plain", head, cors)
            return
        # Off the event loop: pyodide.asm.wasm is several MB and Socket.IO traffic shares the loop.
        body = await asyncio.to_thread(target.read_bytes)
        await self._respond(send, 200, body, content_type_for(target), head, cors)

    def _cors_headers(self, scope: Scope) -> tuple[tuple[bytes, bytes], ...]:
        """For a request from an allowed origin: let that page read the response, and let a
        cross-origin isolated page (COEP require-corp) embed it."""
        origin = dict(scope["headers"]).get(b"origin", b"").decode("latin-1")
        if origin not in self.allowed_origins:
            return ()
        return (
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"cross-origin-resource-policy", b"cross-origin"),
            (b"vary", b"origin"),
        )

    def _wheel_index(self) -> bytes:
        """List the served wheels so the page need not hard-code version numbers."""
        wheels = (
            sorted(p.name for p in self.wheels_dir.glob("*.whl"))
            if self.wheels_dir.is_dir()
            else []
        )
        return json.dumps({"wheels": wheels}).encode()

    @staticmethod
    async def _respond(
        send: Send,
        status: int,
        body: bytes,
        content_type: str,
        head: bool,
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *NO_STORE_HEADERS,
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def default_dirs(assets_root: Path | None = None) -> tuple[Path, Path, Path]:
    """(static, node_modules, wheels) below the project root, which defaults to the working dir."""
    root = assets_root if assets_root is not None else Path.cwd()
    return root / "static", root / "node_modules", root / "build" / "wheels"


class P2PApp:
    """The ASGI app: Socket.IO at ``/socket.io/``, every other path from :class:`StaticApp`.

    ``.relay`` and ``.stats`` give tests direct access to the server state.
    """

    def __init__(
        self,
        static_dir: Path,
        node_modules: Path,
        wheels_dir: Path,
        data_dir: Path | None = None,
        allowed_origins: Sequence[str] = (),
    ) -> None:
        self.relay = RelayServer(data_dir, allowed_origins)
        self.stats = self.relay.stats
        self.static = StaticApp(static_dir, node_modules, wheels_dir, self.stats, allowed_origins)
        self._asgi: AsgiApp = socketio.ASGIApp(
            self.relay.sio,
            other_asgi_app=self.static,
            socketio_path="socket.io",
            # Stop engineio's background tasks (ping timers) cleanly when uvicorn shuts down.
            on_shutdown=self.relay.sio.shutdown,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)


def create_app(
    static_dir: Path,
    node_modules: Path,
    wheels_dir: Path,
    data_dir: Path | None = None,
    allowed_origins: Sequence[str] = (),
) -> P2PApp:
    """Build the server's ASGI app over the given asset directories; with ``data_dir``, it keeps
    the telemetry records pages send (``save_telemetry``) there; pages on ``allowed_origins``
    (e.g. ``https://study.example.org``) may use it from their own origin."""
    return P2PApp(static_dir, node_modules, wheels_dir, data_dir, allowed_origins)


# ================================================================================================
# Running it
# ================================================================================================


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves so that port 0 yields a known port before start-up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be named: asyncio sets TCP_NODELAY on accepted connections only when the socket
    # says IPPROTO_TCP, and without it Nagle's algorithm meets delayed ACKs and every relayed
    # packet waits about 40 ms (measured: 88 ms relay round trips instead of 3 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Any, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        # Without a WebSocket implementation Socket.IO silently falls back to long-polling.
        ws="websockets-sansio",
        ws_max_size=MAX_TRANSPORT_PACKET_BYTES,
        # Relay packets are a few dozen bytes: compressing them costs the server CPU on every
        # message (measured in benchmarks/bench_server.py) and saves nothing on the wire.
        ws_per_message_deflate=False,
        lifespan="on",
        # libuv's event loop in C: less CPU per relayed message than asyncio's own (measured by
        # benchmarks/bench_server.py).
        loop="uvloop",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        access_log=False,
    )


class ServerThread:
    """Run the server in a background thread, e.g. ``with ServerThread() as srv: srv.url``.

    Defaults to 127.0.0.1 on an ephemeral port; ``.port`` and ``.url`` are valid once started.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        static_dir: Path | None = None,
        node_modules: Path | None = None,
        wheels_dir: Path | None = None,
        assets_root: Path | None = None,
        log_level: str = "warning",
        data_dir: Path | None = None,
        allowed_origins: Sequence[str] = (),
    ) -> None:
        d_static, d_node, d_wheels = default_dirs(assets_root)
        self.host = host
        self.app = create_app(
            static_dir or d_static,
            node_modules or d_node,
            wheels_dir or d_wheels,
            data_dir,
            allowed_origins,
        )
        self.relay = self.app.relay
        self.stats = self.app.stats
        self._sock = _bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_uvicorn_config(self.app, log_level))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="p2p-server",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        # uvicorn sets .started once it is listening; a failed start-up ends the thread instead.
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                self._sock.close()
                raise RuntimeError("server thread exited during start-up (see log)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server did not start within {STARTUP_TIMEOUT_SECONDS} s")
            time.sleep(STARTUP_POLL_SECONDS)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=GRACEFUL_SHUTDOWN_SECONDS + 5)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_server(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    static_dir: Path | None = None,
    node_modules: Path | None = None,
    wheels_dir: Path | None = None,
    assets_root: Path | None = None,
    log_level: str = "info",
    data_dir: Path | None = None,
    allowed_origins: Sequence[str] = (),
) -> None:
    """Serve in the foreground until interrupted. Prints the URL (useful with ``port=0``)."""
    d_static, d_node, d_wheels = default_dirs(assets_root)
    app = create_app(
        static_dir or d_static,
        node_modules or d_node,
        wheels_dir or d_wheels,
        data_dir,
        allowed_origins,
    )
    sock = _bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    # stdout, flushed: a launcher that passed port 0 reads the real port from this line.
    print(f"p2p_server listening on http://{shown}:{sock.getsockname()[1]}/", flush=True)
    try:
        uvicorn.Server(_uvicorn_config(app, log_level)).run(sockets=[sock])
    finally:
        sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m p2p_server",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="default: %(default)s (loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument(
        "--assets-root",
        type=Path,
        default=None,
        help="project root holding static/, node_modules/ and build/wheels/ (default: cwd)",
    )
    parser.add_argument("--static", type=Path, default=None, help="default: <root>/static")
    parser.add_argument(
        "--node-modules", type=Path, default=None, help="default: <root>/node_modules"
    )
    parser.add_argument("--wheels", type=Path, default=None, help="default: <root>/build/wheels")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the telemetry records pages send here, one file per room and player "
        "(default: keep none)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let a game page on ORIGIN (e.g. https://study.example.org) use this server: "
        "Socket.IO and the shim, Pyodide and wheels (repeat for more; default: this "
        "server's own pages only)",
    )
    args = parser.parse_args(argv)
    for origin in args.allowed_origin:
        # An origin is a scheme and a host (and port), nothing after: "https://x.org/" never
        # matches the Origin header a browser sends.
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            parser.error(
                f"--allowed-origin {origin!r} is not an origin like https://study.example.org"
            )

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    d_static, d_node, d_wheels = default_dirs(args.assets_root)
    for label, path in (
        ("static", args.static or d_static),
        ("node_modules", args.node_modules or d_node),
        ("wheels", args.wheels or d_wheels),
    ):
        if not path.is_dir():
            logger.warning("%s directory %s does not exist (run scripts/setup.sh)", label, path)
    if args.data_dir is None:
        logger.info("no --data-dir: pages' telemetry records are refused, not kept")
    else:
        logger.info("telemetry records are kept under %s", args.data_dir.resolve())
    try:
        run_server(
            args.host,
            args.port,
            static_dir=args.static,
            node_modules=args.node_modules,
            wheels_dir=args.wheels,
            assets_root=args.assets_root,
            log_level=args.log_level,
            data_dir=args.data_dir,
            allowed_origins=args.allowed_origin,
        )
    except KeyboardInterrupt:
        # uvicorn has shut down gracefully by now; Ctrl-C is how an operator stops it.
        print("p2p_server stopped", flush=True)
    return 0
