"""The README's interactive demo, run as the README runs it (``python -m p2p_demo`` inside the
loopback namespace), with two tabs that open its URL and nothing else: they get a DataChannel
(the launcher's own coturn on 127.0.0.1 is their STUN server), and the page never shows an
undefined figure, a NaN, or a connecting peer as one who left."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BOOT_TIMEOUT_MS, PROJECT_ROOT, launched
from playwright.sync_api import BrowserContext, Page

#: The emulated one-way delay of the link test.
LINK_DELAY_MS = 30.0
#: Two Pyodide boots and 2 s of Pong take about 15 s; a loaded machine gets more.
DEMO_TIMEOUT_S = 180
#: Strings a page must never show in its status or its stats table.
BROKEN_TEXT = ("undefined", "NaN", "[object")


@pytest.fixture
def demo_url() -> Iterator[str]:
    with launched([sys.executable, "-m", "p2p_demo", "--port", "0"]) as url:
        yield url


def page_text(page: Page) -> str:
    return str(page.evaluate("() => document.body.innerText"))


def assert_readable(page: Page) -> None:
    text = page_text(page)
    for broken in BROKEN_TEXT:
        assert broken not in text, f"the page shows {broken!r}:\n{text}"


def test_interactive_demo_gets_a_data_channel(context: BrowserContext, demo_url: str) -> None:
    first = context.new_page()
    first.goto(demo_url + "/")
    # Alone in the room, with the stats table drawn from an empty stats(): nothing undefined.
    first.wait_for_function(
        "() => window.p2pLastReport && document.querySelectorAll('#p2p-stats tr').length > 3",
        timeout=BOOT_TIMEOUT_MS,
    )
    assert_readable(first)
    second = context.new_page()
    second.goto(demo_url + "/")
    statuses: list[str] = []
    for page in (first, second):
        page.wait_for_function(
            "() => window.p2pLastReport && window.p2pLastReport.event_log"
            ".some((e) => e.event === 'connected')",
            timeout=BOOT_TIMEOUT_MS,
        )
    # Some pings and inputs on both paths, then every figure is a figure.
    first.wait_for_function(
        "() => window.p2pLastReport.stats.rtt_samples >= 3", timeout=BOOT_TIMEOUT_MS
    )
    for page in (first, second):
        assert_readable(page)
        report = json.loads(page.evaluate("() => JSON.stringify(window.p2pLastReport)"))
        events = [entry["event"] for entry in report["event_log"]]
        assert "ice_failed" not in events and "disconnected" not in events, events
        assert report["stats"]["p2p_packets_sent"] > 0
        statuses.append(page.inner_text("#p2p-status"))
    assert all("left" not in status for status in statuses), statuses


def test_the_demos_link_emulation_is_seen_on_every_path(tmp_path: Path) -> None:
    """``python -m p2p_demo --headless --link 'delay 30ms'``, as the README runs it: without
    netem in the kernel each tab emulates the link on all it receives, and both paths' RTT is
    the emulated round trip."""
    out = tmp_path / "demo.json"
    link = f"delay {LINK_DELAY_MS:g}ms"
    command = ["-m", "p2p_demo", "--headless", "--frames", "120", "--link", link]
    done = subprocess.run(
        [sys.executable, *command, "--json", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["options"]["link_by"] in ("netem", "the transport's own emulation, every path")
    for player in report["players"]:
        for path in ("", "relay_"):
            # Each direction crosses the link once: no round trip is shorter than twice the
            # delay, and the shortest is about that (the ping timer's granularity adds a little;
            # a loaded machine delays most samples, not the best one, and a link emulated twice
            # would be twice as long).
            fastest, typical = player[f"{path}rtt_min_ms"], player[f"{path}rtt_p50_ms"]
            assert 2 * LINK_DELAY_MS <= fastest <= 2 * LINK_DELAY_MS + 25, (path, player)
            assert typical >= fastest, (path, player)
    assert "relay RTT p50 (ms)" in done.stdout
