"""A game page hosted elsewhere: another origin on loopback, with none of the reference server's
headers, loads the shim, Pyodide and the wheel from the reference server and connects to it."""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import pytest
from playwright.sync_api import BrowserContext, expect
from test_boot import served_wheel_urls

from p2p_server.server import ServerOptions, ServerThread

EVENT_TIMEOUT_MS: Final = 30_000

GAME_HTML: Final = """<!doctype html>
<html><head><meta charset="utf-8"><title>a study's own page</title></head><body>
<script src="{server}/socket.io-client/socket.io.min.js"></script>
<script src="{server}/pyodide/pyodide.js"></script>
<script src="{server}/static/p2p_shim.js"></script>
</body></html>
"""

BOOT_AND_CONNECT: Final = """async ({server, wheels, room}) => {
  window.events = [];
  try {
    const wheelUrls = wheels.map((w) => server + w);
    await p2pShim.boot({pyodideBase: server + "/pyodide/", wheelUrls});
  } catch (err) {
    window.bootError = String(err && err.message || err);
    return;
  }
  p2pShim.connect({
    serverUrl: server, room,
    onInput() {},
    onEvent(name, detail) { window.events.push([name, detail]); },
  }).catch(() => {});
}"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def study_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain static web server (no COOP/COEP) on its own loopback port: another origin."""
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", tmp_path
    finally:
        httpd.shutdown()
        httpd.server_close()


def open_study_page(context: BrowserContext, site: tuple[str, Path], server: ServerThread) -> Any:
    origin, root = site
    (root / "game.html").write_text(GAME_HTML.format(server=server.url))
    page = context.new_page()
    page.goto(f"{origin}/game.html")
    page.wait_for_function("() => window.p2pShim !== undefined")
    wheels = [url for url in served_wheel_urls() if "/p2p_transport-" in url]
    room = f"elsewhere-{uuid.uuid4().hex}"
    page.evaluate(BOOT_AND_CONNECT, {"server": server.url, "wheels": wheels, "room": room})
    return page


def event_names(page: Any) -> list[str]:
    names: list[str] = page.evaluate("() => window.events.map(([name]) => name)")
    return names


def test_an_allowed_origin_boots_connects_and_is_warned_about_isolation(
    context: BrowserContext, study_site: tuple[str, Path]
) -> None:
    with ServerThread(options=ServerOptions(allowed_origins=[study_site[0]])) as server:
        page = open_study_page(context, study_site, server)
        page.wait_for_function(
            "() => window.events.some(([name]) => name === 'joined')", timeout=EVENT_TIMEOUT_MS
        )
        assert page.evaluate("() => window.crossOriginIsolated") is False
        [warning] = page.evaluate("() => p2pShim.warnings")
        assert warning.startswith("this page is not cross-origin isolated")
        box = page.locator("#p2p-warning")
        expect(box).to_be_visible()
        expect(box).to_contain_text("Cross-Origin-Embedder-Policy: require-corp")
        assert "server_unreachable" not in event_names(page)


def test_an_origin_the_server_does_not_allow_is_refused_visibly(
    context: BrowserContext, study_site: tuple[str, Path]
) -> None:
    # Pyodide's files come by fetch(), which the server answers for allowed origins only.
    with ServerThread(
        options=ServerOptions(allowed_origins=["https://somewhere.else.example"])
    ) as server:
        page = open_study_page(context, study_site, server)
        page.wait_for_function("() => window.bootError !== undefined", timeout=EVENT_TIMEOUT_MS)
        error = page.evaluate("() => window.bootError")
        assert page.evaluate("() => p2pShim.error") == error
        expect(page.locator("#p2p-error")).to_be_visible()
        expect(page.locator("#p2p-error")).to_contain_text("failed to start")
        assert event_names(page) == []
