"""Shared fixtures for the browser tests (Playwright's sync API, Debian's /usr/bin/chromium).

The whole run must happen inside a loopback-only network namespace (``scripts/netns.sh``): the
session starts by checking that, and every browser is launched by ``harness.launch_chromium``.

Fixtures: ``server`` (session: the reference server on 127.0.0.1, ephemeral port), ``turn``
(session: coturn on 127.0.0.1 as STUN/TURN), ``browser`` (session: headless Chromium),
``loopback_guard`` (function: fails the test if a page requested anything but loopback),
``context`` and ``page`` (function: guarded), and the helpers ``open_page``/``wait_for_boot`` for
pages that boot Pyodide through the shim.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Route,
    WebSocket,
    sync_playwright,
)

from p2p_demo.harness import TurnServer, launch_chromium, require_loopback_namespace
from p2p_server.server import ServerThread
from p2p_transport.browser import shim_path

PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent
# One Pyodide boot takes 2-3 s alone and 4-5 s with two tabs on 2 cores; 60 s only bounds a hang.
BOOT_TIMEOUT_MS: Final = 60_000
# Any other single Playwright wait or call: a hung page fails the test instead of blocking the run.
DEFAULT_TIMEOUT_MS: Final = 30_000

LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
# URLs that never touch the network.
LOCAL_SCHEMES: Final = frozenset({"data", "blob", "about"})

# Timings of every successful boot in this run, printed in the terminal summary.
BOOT_TIMINGS: list[dict[str, float]] = []


# --- loopback guard ------------------------------------------------------------------------------


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.hostname is not None and parts.hostname in LOOPBACK_HOSTS


class LoopbackGuard:
    """Records every request and WebSocket URL of the watched contexts/pages.

    Non-loopback HTTP requests are also aborted before they are sent, so a page bug cannot send
    traffic off the machine; ``check()`` (run by the fixture after each test) then fails the test.
    WebRTC (ICE/STUN/TURN) traffic is invisible to Playwright; the loopback-only network
    namespace is what keeps it on 127.0.0.1.
    """

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.violations: list[str] = []

    def watch(self, target: BrowserContext | Page) -> None:
        target.on("request", self._on_request)
        target.route("**/*", self._route)
        if isinstance(target, BrowserContext):
            for page in target.pages:
                page.on("websocket", self._on_websocket)
            target.on("page", lambda page: page.on("websocket", self._on_websocket))
        else:
            target.on("websocket", self._on_websocket)

    def _record(self, url: str) -> None:
        self.urls.append(url)
        if not is_loopback_url(url) and url not in self.violations:
            self.violations.append(url)

    def _on_request(self, request: Request) -> None:
        self._record(request.url)

    def _on_websocket(self, websocket: WebSocket) -> None:
        self._record(websocket.url)

    def _route(self, route: Route) -> None:
        if is_loopback_url(route.request.url):
            route.fallback()
        else:
            route.abort("blockedbyclient")

    def check(self) -> None:
        assert not self.violations, f"requests left loopback: {self.violations}"


@pytest.fixture
def loopback_guard() -> Iterator[LoopbackGuard]:
    guard = LoopbackGuard()
    yield guard
    guard.check()


# --- namespace, servers and browser --------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def loopback_namespace() -> None:
    """Every browser test needs the loopback-only namespace; refuse to run outside it."""
    try:
        require_loopback_namespace()
    except RuntimeError as exc:
        message = str(exc)
    else:
        return
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def server() -> Iterator[ServerThread]:
    needed = [
        PROJECT_ROOT / "node_modules" / "pyodide" / "pyodide.js",
        PROJECT_ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js",
        shim_path(),
    ]
    missing = [str(p) for p in needed if not p.is_file()]
    wheels = PROJECT_ROOT / "build" / "wheels"
    for pattern in ("micropip-*.whl", "p2p_transport-*.whl", "p2p_demo-*.whl"):
        if not any(wheels.glob(pattern)):
            missing.append(str(wheels / pattern))
    if missing:
        pytest.fail(f"missing {missing}: run `bash scripts/setup.sh` first", pytrace=False)
    with ServerThread(host="127.0.0.1", port=0, assets_root=PROJECT_ROOT) as srv:
        yield srv


@pytest.fixture(scope="session")
def turn() -> Iterator[TurnServer]:
    """coturn on 127.0.0.1: in the namespace it is what gives Chromium an ICE candidate at all."""
    with TurnServer() as server:
        yield server


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium: Browser = launch_chromium(playwright)
    yield chromium
    chromium.close()


def new_guarded_context(browser: Browser, guard: LoopbackGuard) -> BrowserContext:
    ctx = browser.new_context()
    ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    guard.watch(ctx)
    return ctx


@pytest.fixture
def context(browser: Browser, loopback_guard: LoopbackGuard) -> Iterator[BrowserContext]:
    ctx = new_guarded_context(browser, loopback_guard)
    yield ctx
    ctx.close()


def capture_console(page: Page, lines: list[str], prefix: str = "") -> None:
    """Append the page's console output and uncaught errors to ``lines``."""

    def on_console(message: ConsoleMessage) -> None:
        lines.append(f"{prefix}[{message.type}] {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: lines.append(f"{prefix}[pageerror] {error}"))


@pytest.fixture
def console_messages() -> Iterator[list[str]]:
    """Console output and uncaught errors of the test's pages; printed (pytest shows it on
    failure)."""
    lines: list[str] = []
    yield lines
    if lines:
        print("browser console:\n  " + "\n  ".join(lines))


@pytest.fixture
def page(context: BrowserContext, console_messages: list[str]) -> Page:
    pg = context.new_page()
    capture_console(pg, console_messages)
    return pg


# --- booting pages -------------------------------------------------------------------------------


def open_page(page: Page, server: ServerThread, query: str = "") -> None:
    """Navigate to the server's index page; returns as soon as the navigation commits."""
    page.goto(f"{server.url}/{query}", wait_until="commit")


def wait_for_boot(page: Page, timeout_ms: float = BOOT_TIMEOUT_MS) -> dict[str, Any]:
    """Wait until p2pShim reports ready or an error; return ``{ready, error, timings}``."""
    page.wait_for_function(
        "() => window.p2pShim && (window.p2pShim.ready || window.p2pShim.error !== null)",
        timeout=timeout_ms,
    )
    state: dict[str, Any] = page.evaluate(
        "() => ({ready: p2pShim.ready, error: p2pShim.error, timings: p2pShim.timings})"
    )
    if state["ready"]:
        record_boot(state["timings"])
    return state


def record_boot(timings: dict[str, Any]) -> None:
    """Keep a booted page's timings for the summary, with the test that booted it."""
    # pytest names the running test "path::name (phase)": the line says whose boot it was.
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0].split("::")[-1]
    BOOT_TIMINGS.append({**timings, "test": test})


def wait_for_shim(page: Page, timeout_ms: float = BOOT_TIMEOUT_MS) -> None:
    """Wait until the shim has run (for pages opened with ?autoboot=0)."""
    page.wait_for_function("() => window.p2pShim !== undefined", timeout=timeout_ms)


#: The launchers (``python -m p2p_demo``) print the real port in this line once they listen.
LISTENING: Final = re.compile(r"listening on (http://\S+?)/?$")
#: A launcher's coturn and server start in about a second and stop as fast; a loaded machine
#: gets more.
LAUNCHER_TIMEOUT_S: Final = 30.0


@contextmanager
def launched(command: Sequence[str]) -> Iterator[str]:
    """Run a launcher ``command`` from the project root, as the README runs it, and yield the
    URL it prints once it listens; at the end, stop it with Ctrl-C, as the README says (the
    launcher then stops its server and its coturn)."""
    process = subprocess.Popen(
        list(command),
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = next(
            (m.group(1) for line in process.stdout if (m := LISTENING.search(line.strip()))),
            None,
        )
        assert url is not None, f"{command[0]} ... never printed its URL"
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=LAUNCHER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not BOOT_TIMINGS:
        return
    terminalreporter.section("Pyodide boot timings (ms after navigation)")
    terminalreporter.write_line(
        f"one line per page booted ({len(BOOT_TIMINGS)}): the test, Pyodide loaded, micropip and "
        "the wheels installed after it, the page ready; a figure, never a pass/fail"
    )
    for t in BOOT_TIMINGS:
        # The archive installer loads no micropip: its wheels step follows Pyodide directly.
        micropip_done = t.get("micropipMs", t["pyodideLoadedMs"])
        terminalreporter.write_line(
            f"{t['test'][:48]:48}  pyodide {t['pyodideLoadedMs']:.0f}  "
            f"micropip +{micropip_done - t['pyodideLoadedMs']:.0f}  "
            f"wheels +{t['wheelsMs'] - micropip_done:.0f}  "
            f"ready {t['readyMs']:.0f}"
        )
