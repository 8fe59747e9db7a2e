"""Reference signaling/relay server for p2p_transport (CPython only, never imported in the browser).

One process fills rooms of 2 to 8 browsers (and spectators), relays their signaling and input
packets (:mod:`p2p_server.rooms`), and serves the page's assets from loopback
(:mod:`p2p_server.static_files`) so a browser test never needs the internet. Run it with
``python -m p2p_server``; tests start it in a thread with :class:`ServerThread`.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import socketio
import uvicorn

import p2p_transport
from p2p_server.limits import ClientLimits
from p2p_server.relay_socket import CLOSE_POLICY, RelaySocket
from p2p_server.rooms import MAX_TRANSPORT_PACKET_BYTES, RelayServer
from p2p_server.settings import ServerOptions
from p2p_server.static_files import AsgiApp, Receive, Scope, Send, StaticApp
from p2p_server.tokens import read_secret
from p2p_server.turn import DEFAULT_TURN_TTL_S, TurnCredentials
from p2p_transport.wire.signaling import MAX_SPECTATORS, RELAY_SOCKET_PATH

__all__ = [
    "MAX_TRANSPORT_PACKET_BYTES",
    "P2PApp",
    "ServerOptions",
    "ServerThread",
    "create_app",
    "main",
    "run_server",
]

logger = logging.getLogger("p2p_server.server")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
# Uvicorn waits this long for open connections (e.g. a test's browser tab) before closing them at
# shutdown, so stopping a ServerThread cannot hang a test run.
GRACEFUL_SHUTDOWN_SECONDS: Final = 3
# How long ServerThread waits for uvicorn to start listening before giving up.
STARTUP_TIMEOUT_SECONDS: Final = 15.0
STARTUP_POLL_SECONDS: Final = 0.005


class _MalformedTrafficFilter(logging.Filter):
    """python-engineio logs a traceback for each Engine.IO packet it cannot read, whatever the
    log level: this turns them into a count and one line per interval."""

    def __init__(self, relay: RelayServer) -> None:
        super().__init__()
        self._relay = relay

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None:
            return True
        error = record.exc_info[1]
        self._relay.stats.malformed += 1
        record.msg = f"{record.getMessage()}: {type(error).__name__}: {error} (further ones muted)"
        record.args = ()
        record.exc_info = record.exc_text = None
        return self._relay.log_throttle.allow("engineio")


class _GuardedWebSocket:
    """One Socket.IO WebSocket's ASGI ``receive``/``send``, which the server can cut: learns the
    Engine.IO session id from the open packet it sends, and once cut, answers ``receive`` with
    a disconnect so that python-engineio stops reading the connection."""

    __slots__ = ("_receive", "_send", "cut", "eio_sid", "registry")

    def __init__(
        self, receive: Receive, send: Send, registry: dict[str, _GuardedWebSocket]
    ) -> None:
        self._receive, self._send = receive, send
        self.registry = registry
        self.eio_sid: str | None = None
        self.cut = False

    async def receive(self) -> dict[str, Any]:
        if self.cut:
            return {"type": "websocket.disconnect", "code": CLOSE_POLICY}
        return await self._receive()

    async def send(self, message: dict[str, Any]) -> None:
        if self.eio_sid is None:
            text = message.get("text")
            # Engine.IO's open packet: "0" and a JSON object with the session id.
            if isinstance(text, str) and text.startswith("0{"):
                self.eio_sid = str(json.loads(text[1:]).get("sid"))
                self.registry[self.eio_sid] = self
        await self._send(message)


class P2PApp:
    """The ASGI app: Socket.IO at ``/socket.io/``, every other path from :class:`StaticApp`.

    ``.relay`` and ``.stats`` give tests direct access to the server state.
    """

    def __init__(
        self,
        static_dir: Path,
        node_modules: Path,
        wheels_dir: Path,
        options: ServerOptions | None = None,
    ) -> None:
        self.options = options if options is not None else ServerOptions()
        self.relay = RelayServer(self.options)
        self.stats = self.relay.stats
        self.static = StaticApp(
            static_dir, node_modules, wheels_dir, self.stats, self.options.allowed_origins
        )
        self._asgi: AsgiApp = socketio.ASGIApp(
            self.relay.sio,
            other_asgi_app=self.static,
            socketio_path="socket.io",
            on_startup=self.relay.start,
            # Stop engineio's background tasks (ping timers) cleanly when uvicorn shuts down.
            on_shutdown=self.relay.shutdown,
        )
        self.relay_socket = RelaySocket(self.relay)
        self._websockets: dict[str, _GuardedWebSocket] = {}
        self.relay.stop_reading = self._stop_reading
        engineio_log = logging.getLogger("engineio.server")
        for old in [f for f in engineio_log.filters if isinstance(f, _MalformedTrafficFilter)]:
            engineio_log.removeFilter(old)
        engineio_log.addFilter(_MalformedTrafficFilter(self.relay))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self._asgi(scope, receive, send)
            return
        if scope["path"] == RELAY_SOCKET_PATH:
            await self.relay_socket(scope, receive, send)
            return
        guarded = _GuardedWebSocket(receive, send, self._websockets)
        try:
            await self._asgi(scope, guarded.receive, guarded.send)
        except Exception as error:
            # python-engineio raises out of its WebSocket handler on a packet it cannot decode;
            # the connection is closed by uvicorn when this returns.
            self.stats.malformed += 1
            client = scope.get("client")
            if self.relay.log_throttle.allow(client):
                logger.warning(
                    "malformed WebSocket traffic from %s: %s: %s",
                    client,
                    type(error).__name__,
                    error,
                )
        finally:
            if guarded.eio_sid is not None:
                self._websockets.pop(guarded.eio_sid, None)

    def _stop_reading(self, eio_sid: str) -> None:
        guarded = self._websockets.get(eio_sid)
        if guarded is not None:
            guarded.cut = True


def default_dirs(assets_root: Path | None = None) -> tuple[Path, Path, Path]:
    """(static, node_modules, wheels) below the project root, which defaults to the working dir."""
    root = assets_root if assets_root is not None else Path.cwd()
    return root / "static", root / "node_modules", root / "build" / "wheels"


def create_app(
    static_dir: Path,
    node_modules: Path,
    wheels_dir: Path,
    options: ServerOptions | None = None,
) -> P2PApp:
    """Build the server's ASGI app over the given asset directories (see :class:`ServerOptions`
    for what else it can do)."""
    return P2PApp(static_dir, node_modules, wheels_dir, options)


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


def _uvicorn_config(app: P2PApp, log_level: str) -> uvicorn.Config:
    trusted = list(app.options.trusted_proxies)
    return uvicorn.Config(
        app,
        log_level=log_level,
        # The client's address, which the door's limits count, is the TCP peer's, or the one in
        # X-Forwarded-For when the peer is a proxy the operator trusts; uvicorn's own default
        # would believe the header from any local process.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
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


def _app_for(
    static_dir: Path | None,
    node_modules: Path | None,
    wheels_dir: Path | None,
    assets_root: Path | None,
    options: ServerOptions | None,
) -> P2PApp:
    d_static, d_node, d_wheels = default_dirs(assets_root)
    return create_app(
        static_dir or d_static, node_modules or d_node, wheels_dir or d_wheels, options
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
        options: ServerOptions | None = None,
    ) -> None:
        self.host = host
        self.app = _app_for(static_dir, node_modules, wheels_dir, assets_root, options)
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
    options: ServerOptions | None = None,
) -> None:
    """Serve in the foreground until interrupted. Prints the URL (useful with ``port=0``)."""
    app = _app_for(static_dir, node_modules, wheels_dir, assets_root, options)
    sock = _bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    # stdout, flushed: a launcher that passed port 0 reads the real port from this line.
    print(f"p2p_server listening on http://{shown}:{sock.getsockname()[1]}/", flush=True)
    try:
        uvicorn.Server(_uvicorn_config(app, log_level)).run(sockets=[sock])
    finally:
        sock.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m p2p_server",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="default: %(default)s (loopback)")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {p2p_transport.__version__}"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="default: %(default)s; 0 picks a free port"
    )
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
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="default: %(default)s",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the telemetry records pages send here, one file per room and player "
        "(default: keep none)",
    )
    parser.add_argument(
        "--record-dir",
        type=Path,
        default=None,
        help="record every input the relay carries here, one file per room, which "
        "p2p_transport.rollback.read_input_record reads for replay (default: record none)",
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
    parser.add_argument(
        "--token-secret-file",
        type=Path,
        default=None,
        help="a join needs a token signed with the secret in this file, naming the room and "
        "the player slot (mint them with python -m p2p_server.tokens; default: rooms are open)",
    )
    parser.add_argument(
        "--turn-secret-file",
        type=Path,
        default=None,
        help="coturn's static-auth-secret (use-auth-secret): mint TURN credentials per player "
        "and send them with 'paired' (needs --turn-urls)",
    )
    parser.add_argument(
        "--turn-urls",
        action="append",
        default=[],
        metavar="URL",
        help="the TURN server's URLs, e.g. turn:turn.example.org:3478?transport=udp "
        "(comma-separated or repeated; default: none, pages get no TURN server from here)",
    )
    parser.add_argument(
        "--turn-ttl",
        type=int,
        default=DEFAULT_TURN_TTL_S,
        help="seconds the minted TURN credentials stay valid (default: %(default)s)",
    )
    parser.add_argument(
        "--max-spectators",
        type=int,
        default=MAX_SPECTATORS,
        help="spectators one room takes (0: none; default: %(default)s)",
    )
    defaults = ClientLimits()
    parser.add_argument(
        "--max-connections",
        type=_positive(int),
        default=defaults.max_connections,
        help="open connections this process accepts; when full, a newcomer takes the place of a "
        "socket that has not joined (default: %(default)s)",
    )
    parser.add_argument(
        "--max-per-address",
        type=_positive(int),
        default=defaults.max_per_address,
        help="connections one client address may hold open (default: %(default)s: 250 pairs "
        "behind one university NAT, half of a process)",
    )
    parser.add_argument(
        "--connects-per-address",
        type=_positive(float),
        default=defaults.connects_per_address_per_s,
        metavar="PER_S",
        help="new connections per second one address may open (default: %(default)s)",
    )
    parser.add_argument(
        "--connect-burst-per-address",
        type=_positive(int),
        default=defaults.connect_burst_per_address,
        help="new connections one address may open at once (default: %(default)s: a lecture "
        "hall opening the page together)",
    )
    parser.add_argument(
        "--max-unjoined-per-address",
        type=_positive(int),
        default=defaults.max_unjoined_per_address,
        help="connections from one address that have not joined a room yet (default: %(default)s)",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a reverse proxy (IP address or network) whose X-Forwarded-For names the client, "
        "e.g. 127.0.0.1 for the cluster's nginx (repeat for more; default: none, the header is "
        "ignored)",
    )
    return parser


def _positive(kind: type[int] | type[float]) -> Any:
    """An argparse type: a positive number of ``kind``, with a message naming the value."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0 or value != value:  # also NaN
            what = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"must be a positive {what}, got {text!r}")
        return value

    return parse


def _options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ServerOptions:
    """The command line's options, each checked with a message that names it."""
    for origin in args.allowed_origin:
        # An origin is a scheme and a host (and port), nothing after: "https://x.org/" never
        # matches the Origin header a browser sends.
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            parser.error(
                f"--allowed-origin {origin!r} is not an origin like https://study.example.org"
            )
    try:
        token_secret = read_secret(args.token_secret_file) if args.token_secret_file else None
        turn = None
        if args.turn_secret_file is not None or args.turn_urls:
            if args.turn_secret_file is None or not args.turn_urls:
                parser.error("--turn-secret-file and --turn-urls go together")
            turn = TurnCredentials.parse_urls(
                args.turn_secret_file.read_bytes().strip(), args.turn_urls, args.turn_ttl
            )
        if args.max_unjoined_per_address > args.max_per_address:
            parser.error(
                f"--max-unjoined-per-address ({args.max_unjoined_per_address}) cannot be more "
                f"than --max-per-address ({args.max_per_address})"
            )
        if args.record_dir is not None:
            try:
                args.record_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                parser.error(f"--record-dir {args.record_dir}: {error.strerror}")
        limits = ClientLimits(
            max_connections=args.max_connections,
            max_per_address=args.max_per_address,
            connects_per_address_per_s=args.connects_per_address,
            connect_burst_per_address=args.connect_burst_per_address,
            max_unjoined_per_address=args.max_unjoined_per_address,
        )
        return ServerOptions(
            data_dir=args.data_dir,
            record_dir=args.record_dir,
            allowed_origins=args.allowed_origin,
            token_secret=token_secret,
            turn=turn,
            limits=limits,
            trusted_proxies=args.trusted_proxy,
            max_spectators=args.max_spectators,
        )
    except (OSError, ValueError) as error:
        parser.error(str(error).replace("trusted proxy", "--trusted-proxy"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    options = _options(parser, args)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    d_static, d_node, d_wheels = default_dirs(args.assets_root)
    for label, path in (
        ("static", args.static or d_static),
        ("node_modules", args.node_modules or d_node),
        ("wheels", args.wheels or d_wheels),
    ):
        if not path.is_dir():
            logger.warning("%s directory %s does not exist (run scripts/setup.sh)", label, path)
    if options.data_dir is None:
        logger.info("no --data-dir: pages' telemetry records are refused, not kept")
    else:
        logger.info("telemetry records are kept under %s", options.data_dir.resolve())
    if options.record_dir is not None:
        logger.info("the rooms' inputs are recorded under %s", options.record_dir.resolve())
    if options.token_secret is None:
        logger.warning(
            "rooms are open: anyone who knows a room's name can join it "
            "(--token-secret-file makes joins need a token)"
        )
    if options.turn is not None:
        logger.info("minting TURN credentials for %s", ", ".join(options.turn.urls))
    try:
        run_server(
            args.host,
            args.port,
            static_dir=args.static,
            node_modules=args.node_modules,
            wheels_dir=args.wheels,
            assets_root=args.assets_root,
            log_level=args.log_level,
            options=options,
        )
    except KeyboardInterrupt:
        # uvicorn has shut down gracefully by now; Ctrl-C is how an operator stops it.
        print("p2p_server stopped", flush=True)
    return 0
