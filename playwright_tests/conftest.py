"""Shared fixtures for the browser tests (Playwright's sync API, Debian's /usr/bin/chromium).

Fixtures: ``server`` (session: the reference server on 127.0.0.1, ephemeral port), ``browser``
(session: headless Chromium), ``loopback_guard`` (function: fails the test if a page requested
anything but loopback), ``context`` and ``page`` (function: guarded), and the helpers
``open_page``/``wait_for_boot`` for pages that boot Pyodide through static/p2p_shim.js.
"""

from __future__ import annotations

from collections.abc import Iterator
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

from p2p_transport.server import ServerThread

PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent
CHROMIUM: Final = Path("/usr/bin/chromium")
# Flags verified to work as root on these machines; the last four stop Chromium's own background
# traffic (updates, sync, field trials), which must not leave loopback.
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Real host ICE candidates instead of mDNS .local names, so WebRTC on loopback is deterministic.
EXTRA_DISABLED_FEATURES: Final = ("WebRtcHideLocalIpsWithMdns",)
# Makes Chromium answer Browser.getBrowserCommandLine, which is how the flags are checked below.
ENABLE_AUTOMATION: Final = "--enable-automation"
DISABLE_FEATURES: Final = "--disable-features="
# One Pyodide boot takes 2-3 s alone and 4-5 s with two tabs on 2 cores; 60 s only bounds a hang.
BOOT_TIMEOUT_MS: Final = 60_000

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
    WebRTC (ICE/STUN/TURN) traffic is invisible to Playwright and is not covered.
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


# --- server and browser --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server() -> Iterator[ServerThread]:
    needed = [
        PROJECT_ROOT / "node_modules" / "pyodide" / "pyodide.js",
        PROJECT_ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js",
        PROJECT_ROOT / "static" / "p2p_shim.js",
    ]
    missing = [str(p) for p in needed if not p.is_file()]
    wheels = PROJECT_ROOT / "build" / "wheels"
    for pattern in ("micropip-*.whl", "p2p_transport-*.whl"):
        if not any(wheels.glob(pattern)):
            missing.append(str(wheels / pattern))
    if missing:
        pytest.fail(f"missing {missing}: run `bash scripts/setup.sh` first", pytrace=False)
    with ServerThread(host="127.0.0.1", port=0, assets_root=PROJECT_ROOT) as srv:
        yield srv


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


def _command_line(browser: Browser) -> list[str]:
    session = browser.new_browser_cdp_session()
    try:
        arguments: list[str] = session.send("Browser.getBrowserCommandLine")["arguments"]
    finally:
        session.detach()
    return arguments


def _launch(pw: Playwright, args: list[str], ignore_default_args: list[str]) -> Browser:
    return pw.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=args,
        ignore_default_args=ignore_default_args,
    )


def launch_chromium(
    pw: Playwright,
    extra_args: tuple[str, ...] = (),
    disabled_features: tuple[str, ...] = EXTRA_DISABLED_FEATURES,
) -> Browser:
    """Launch headless Chromium with our flags and ``disabled_features`` merged into Playwright's.

    Chromium honours only the last ``--disable-features`` switch and Playwright passes its own
    list, so a second switch would silently re-enable Playwright's features or drop ours. The
    exact default switch is read from a first launch, then replaced by one merged switch.
    """
    args = [*CHROMIUM_ARGS, *extra_args, ENABLE_AUTOMATION]
    probe = _launch(pw, args, [])
    try:
        defaults = [a for a in _command_line(probe) if a.startswith(DISABLE_FEATURES)]
    finally:
        probe.close()
    if len(defaults) > 1:
        raise RuntimeError(f"several {DISABLE_FEATURES} switches already: {defaults}")
    default_features = defaults[0][len(DISABLE_FEATURES) :].split(",") if defaults else []
    merged = [f for f in default_features if f] + [
        f for f in disabled_features if f not in default_features
    ]
    browser = _launch(pw, [*args, DISABLE_FEATURES + ",".join(merged)], defaults)

    final = [a for a in _command_line(browser) if a.startswith(DISABLE_FEATURES)]
    if len(final) != 1 or not set(disabled_features) <= set(final[0].split("=", 1)[1].split(",")):
        browser.close()
        raise RuntimeError(f"could not merge {disabled_features} into {DISABLE_FEATURES}: {final}")
    return browser


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = launch_chromium(playwright)
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser: Browser, loopback_guard: LoopbackGuard) -> Iterator[BrowserContext]:
    ctx = browser.new_context()
    loopback_guard.watch(ctx)
    yield ctx
    ctx.close()


@pytest.fixture
def console_messages() -> list[str]:
    """Console output and uncaught errors of ``page``; printed (shown by pytest on failure)."""
    return []


@pytest.fixture
def page(context: BrowserContext, console_messages: list[str]) -> Iterator[Page]:
    pg = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        console_messages.append(f"[{message.type}] {message.text}")

    pg.on("console", on_console)
    pg.on("pageerror", lambda error: console_messages.append(f"[pageerror] {error}"))
    yield pg
    if console_messages:
        print("browser console:\n  " + "\n  ".join(console_messages))


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
        BOOT_TIMINGS.append(dict(state["timings"]))
    return state


def wait_for_shim(page: Page, timeout_ms: float = BOOT_TIMEOUT_MS) -> None:
    """Wait until static/p2p_shim.js has run (for pages opened with ?autoboot=0)."""
    page.wait_for_function("() => window.p2pShim !== undefined", timeout=timeout_ms)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not BOOT_TIMINGS:
        return
    terminalreporter.section("Pyodide boot timings (ms after navigation)")
    for t in BOOT_TIMINGS:
        terminalreporter.write_line(
            f"pyodide {t['pyodideLoadedMs']:.0f}  "
            f"micropip +{t['micropipMs'] - t['pyodideLoadedMs']:.0f}  "
            f"wheels +{t['wheelsMs'] - t['micropipMs']:.0f}  "
            f"ready {t['readyMs']:.0f}"
        )
