"""Booting Pyodide, micropip and the p2p_transport wheel in headless Chromium, all from loopback."""

from __future__ import annotations

import json
import re
from typing import Final

import pytest
from conftest import (
    BOOT_TIMEOUT_MS,
    PROJECT_ROOT,
    LoopbackGuard,
    open_page,
    wait_for_boot,
    wait_for_shim,
)
from playwright.sync_api import BrowserContext, Page, Route, expect

from p2p_server.server import ServerThread

# TEST-NET-1 (RFC 5737): reserved for documentation, never a real host. The request is aborted by
# the guard, or answered by a local route if the guard failed, so no packet is ever sent to it.
OFF_MACHINE_URL: Final = "http://192.0.2.1/probe"
# A timer period the test can observe several ticks of within a fraction of a second.
TICK_MS: Final = 10
MIN_TICKS: Final = 3
# Long enough for a wrongly surviving 10 ms interval to tick several times.
AFTER_CLEAR_WAIT_MS: Final = 100


#: The status line once booted: the boot's own, then what the connection does (the demo joins
#: the default room, alone there).
AFTER_BOOT_STATUS: Final = re.compile(
    r"^(ready in \d+ ms|joined room default: waiting for the other player"
    r"|waiting for the other player \(\d+ s\))$"
)


def served_wheel_urls() -> list[str]:
    """What a game page installs: micropip, then the transport (never the demo)."""
    wheels = PROJECT_ROOT / "build" / "wheels"
    return [
        f"/wheels/{next(wheels.glob(f'{name}-*.whl')).name}"
        for name in ("micropip", "p2p_transport")
    ]


def run_python(page: Page, code: str) -> object:
    return page.evaluate("code => p2pShim.pyodide.runPython(code)", code)


def test_the_micropip_installer_boots_pyodide_micropip_and_the_package(
    page: Page, server: ServerThread, loopback_guard: LoopbackGuard
) -> None:
    open_page(page, server, "?installer=micropip")
    state = wait_for_boot(page)
    assert state["error"] is None
    assert state["ready"] is True

    assert run_python(page, "import p2p_transport; p2p_transport.__name__") == "p2p_transport"
    installed = json.loads(
        str(
            run_python(
                page,
                "import json, micropip\n"
                "json.dumps({name: pkg.version for name, pkg in micropip.list().items()})",
            )
        )
    )
    assert installed.get("p2p-transport") == "0.1.0"  # micropip lists normalised names
    assert installed.get("p2p-demo") == "0.1.0"  # the demo page installs the demo's wheel too
    assert "micropip" in installed

    expect(page.locator("#p2p-status")).to_have_text(AFTER_BOOT_STATUS)
    expect(page.locator("#p2p-error")).to_be_hidden()

    # Everything Pyodide needed came from the local server (the guard also checks this).
    fetched = {url.removeprefix(server.url) for url in loopback_guard.urls}
    assert {
        "/pyodide/pyodide.asm.wasm",
        "/pyodide/python_stdlib.zip",
        "/socket.io-client/socket.io.min.js",
        "/wheels/index.json",
        *served_wheel_urls(),
    } <= fetched
    assert loopback_guard.violations == []


def test_the_default_installer_unpacks_the_wheels_without_micropip(
    page: Page, server: ServerThread, loopback_guard: LoopbackGuard
) -> None:
    open_page(page, server)
    state = wait_for_boot(page)
    assert state["error"] is None
    assert state["ready"] is True
    found = json.loads(
        str(
            run_python(
                page,
                "import json, sys, importlib.metadata as md, p2p_transport\n"
                "json.dumps({'micropip_loaded': 'micropip' in sys.modules,\n"
                "  'version': md.version('p2p_transport'),\n"
                "  'in_site_packages': 'site-packages' in p2p_transport.__file__})",
            )
        )
    )
    assert found == {"micropip_loaded": False, "version": "0.1.0", "in_site_packages": True}
    assert "micropipMs" not in state["timings"]
    expect(page.locator("#p2p-status")).to_have_text(AFTER_BOOT_STATUS)
    assert loopback_guard.violations == []


def test_the_archive_installer_names_a_requirement_no_wheel_brings(
    page: Page, server: ServerThread
) -> None:
    # The demo's wheel requires the transport's (as its metadata spells it); without it, the
    # boot says so at once.
    open_page(page, server, "?autoboot=0")
    wait_for_shim(page)
    demo = next((PROJECT_ROOT / "build" / "wheels").glob("p2p_demo-*.whl")).name
    rejection = page.evaluate(
        """url => p2pShim
            .boot({pyodideBase: "/pyodide/", wheelUrls: [url], packageName: "p2p_demo"})
            .then(() => null, err => String(err && err.message || err))""",
        f"/wheels/{demo}",
    )
    assert rejection == (
        "the archive installer does not resolve dependencies: p2p_demo needs p2p-transport; "
        'add their wheels to wheelUrls, or boot with installer: "micropip"'
    )
    expect(page.locator("#p2p-error")).to_contain_text("p2p_demo needs p2p-transport")


def test_the_archive_installer_reports_a_missing_wheel(page: Page, server: ServerThread) -> None:
    open_page(page, server, "?autoboot=0")
    wait_for_shim(page)
    bad_url = "/wheels/p2p_transport-0.0.0-py3-none-any.whl"
    rejection = page.evaluate(
        """url => p2pShim.boot({pyodideBase: "/pyodide/", wheelUrls: [url], installer: "archive"})
            .then(() => null, err => String(err && err.message || err))""",
        bad_url,
    )
    assert rejection == f"{bad_url} answered 404"
    expect(page.locator("#p2p-error")).to_contain_text(bad_url)


def test_boot_records_navigation_relative_timings(page: Page, server: ServerThread) -> None:
    open_page(page, server, "?installer=micropip")
    timings = wait_for_boot(page)["timings"]
    order = ["bootStartMs", "pyodideLoadedMs", "micropipMs", "wheelsMs", "readyMs"]
    values = [timings[name] for name in order]
    assert values[0] > 0, timings
    assert values == sorted(values), timings
    assert timings["readyMs"] < BOOT_TIMEOUT_MS, timings


def test_python_can_use_the_shim_interval_helpers(page: Page, server: ServerThread) -> None:
    # Booted without the demo, whose transport runs timers of its own.
    open_page(page, server, "?autoboot=0")
    wait_for_shim(page)
    transport = [url for url in served_wheel_urls() if "/p2p_transport-" in url]
    page.evaluate("(urls) => p2pShim.boot({pyodideBase: '/pyodide/', wheelUrls: urls})", transport)
    assert page.evaluate("() => p2pShim.activeIntervals()") == 0
    run_python(
        page,
        "from js import p2pShim\n"
        "from pyodide.ffi import create_proxy\n"
        "ticks = []\n"
        "tick = create_proxy(lambda: ticks.append(1))\n"
        f"handle = p2pShim.setInterval(tick, {TICK_MS})\n",
    )
    assert page.evaluate("() => p2pShim.activeIntervals()") == 1
    page.wait_for_function(
        f"() => p2pShim.pyodide.runPython('len(ticks)') >= {MIN_TICKS}", timeout=5_000
    )
    count = run_python(page, "p2pShim.clearInterval(handle)\ntick.destroy()\nlen(ticks)")
    assert page.evaluate("() => p2pShim.activeIntervals()") == 0
    page.wait_for_timeout(AFTER_CLEAR_WAIT_MS)
    assert run_python(page, "len(ticks)") == count


@pytest.mark.parametrize("missing", ["micropip", "p2p_transport"])
def test_a_missing_wheel_fails_the_boot_visibly(
    page: Page, server: ServerThread, console_messages: list[str], missing: str
) -> None:
    open_page(page, server, "?autoboot=0")
    wait_for_shim(page)
    bad_url = f"/wheels/{missing}-0.0.0-py3-none-any.whl"
    wheel_urls = [
        bad_url if url.startswith(f"/wheels/{missing}-") else url for url in served_wheel_urls()
    ]
    assert bad_url in wheel_urls

    rejection = page.evaluate(
        """wheelUrls => p2pShim.boot({
            pyodideBase: "/pyodide/",
            wheelUrls,
            installer: "micropip",
            onStatus: text => { document.getElementById("p2p-status").textContent = text; },
        }).then(() => null, err => String(err && err.message || err))""",
        wheel_urls,
    )
    assert rejection is not None, "boot resolved although a wheel was missing"
    assert bad_url in rejection

    state = wait_for_boot(page)
    assert state["ready"] is False
    assert state["error"] == rejection
    error_box = page.locator("#p2p-error")
    expect(error_box).to_be_visible()
    expect(error_box).to_contain_text(bad_url)
    expect(page.locator("#p2p-status")).to_contain_text("error:")
    assert any("p2p_shim boot failed" in line for line in console_messages)


def test_shim_interval_helpers_count_active_intervals(page: Page, server: ServerThread) -> None:
    open_page(page, server, "?autoboot=0")
    wait_for_shim(page)
    result = page.evaluate(
        """async ({tickMs, waitMs}) => {
            const shim = window.p2pShim;
            const counts = [shim.activeIntervals()];
            let ticks = 0;
            const a = shim.setInterval(() => { ticks += 1; }, tickMs);
            const b = shim.setInterval(() => {}, tickMs);
            const c = shim.setInterval(() => {}, tickMs);
            counts.push(shim.activeIntervals());
            await new Promise(resolve => setTimeout(resolve, waitMs));
            shim.clearInterval(b);
            counts.push(shim.activeIntervals());
            shim.clearInterval(b);       // clearing twice is harmless
            shim.clearInterval(123456);  // and so is an id it never issued
            counts.push(shim.activeIntervals());
            shim.clearInterval(a);
            shim.clearInterval(c);
            counts.push(shim.activeIntervals());
            const ticksAtClear = ticks;
            await new Promise(resolve => setTimeout(resolve, waitMs));
            return {counts, ticks: ticksAtClear, ticksAfterClear: ticks - ticksAtClear,
                    distinct: new Set([a, b, c]).size};
        }""",
        {"tickMs": TICK_MS, "waitMs": AFTER_CLEAR_WAIT_MS},
    )
    assert result["counts"] == [0, 3, 2, 2, 0]
    assert result["distinct"] == 3
    assert result["ticks"] >= MIN_TICKS
    assert result["ticksAfterClear"] == 0


def test_loopback_guard_blocks_and_reports_other_hosts(
    context: BrowserContext, server: ServerThread, loopback_guard: LoopbackGuard
) -> None:
    answered: list[str] = []

    def answer_locally(route: Route) -> None:
        # Only reached if the guard failed to block; answering here still keeps it off the wire.
        answered.append(route.request.url)
        route.fulfill(status=200, body="not blocked")

    context.route(OFF_MACHINE_URL, answer_locally)
    page = context.new_page()
    loopback_guard.watch(page)  # page routes run before the context's, so the guard decides
    open_page(page, server, "?autoboot=0")
    wait_for_shim(page)

    outcome = page.evaluate(
        """url => fetch(url, {mode: "no-cors"}).then(() => "fetched", () => "blocked")""",
        OFF_MACHINE_URL,
    )
    assert outcome == "blocked"
    assert answered == []
    assert loopback_guard.violations == [OFF_MACHINE_URL]
    with pytest.raises(AssertionError, match="left loopback"):
        loopback_guard.check()
    loopback_guard.violations.clear()  # expected in this test only
