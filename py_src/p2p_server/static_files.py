"""The server's HTTP side: the page's assets from loopback, with the media types and headers a
cross-origin isolated page needs, and ``/stats``."""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

from p2p_server.stats import ServerStats
from p2p_transport.browser import SHIM_FILE_NAME, shim_path

__all__ = ["AsgiApp", "Receive", "Scope", "Send", "StaticApp", "content_type_for", "resolve_under"]

logger = logging.getLogger("p2p_server.static_files")

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
