"""The transport end to end: two tabs of one headless Chromium, each running the demo page's
``DemoTab`` (Python in Pyodide), paired by the reference server, connected by a real WebRTC
DataChannel over coturn on 127.0.0.1, with the Socket.IO relay carrying inputs in parallel.

Every test pairs its own two tabs in a room of its own. The 600-frame run is shared by the tests
that only read its results (``played``); the tests that change a connection open their own pair.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
from conftest import (
    BOOT_TIMEOUT_MS,
    LoopbackGuard,
    capture_console,
    new_guarded_context,
    record_boot,
)
from playwright.sync_api import Browser, BrowserContext, Page

from p2p_demo.harness import TurnServer, open_tab, wait_ready
from p2p_server.server import ServerThread
from p2p_transport.timing import FRAME_MS

FRAMES: Final = 600
SHORT_FRAMES: Final = 120
PING_INTERVAL_MS: Final = 500.0
# Offer, answer and ICE over loopback take tens of ms; 20 s only bounds a hang.
OPEN_TIMEOUT_MS: Final = 20_000
# Beyond the frames themselves at 60 Hz: the last inputs need a moment, a busy 2-core box more.
GAME_SLACK_MS: Final = 20_000
# How often wait_for_function re-evaluates a report (each one is a JSON dump in Python, ~1 ms).
POLL_MS: Final = 25
# Generous for loopback, where the median round trip is about 1-3 ms.
MAX_PLAUSIBLE_RTT_MS: Final = 50.0
# Three ping intervals: a ping timer that survived the close would tick in this time.
AFTER_CLOSE_WAIT_MS: Final = 3 * PING_INTERVAL_MS
# "Within a couple of seconds": the surviving tab must notice a closed tab in this time.
CLOSE_DETECTION_LIMIT_MS: Final = 2_000.0
# The bound for the game's "disconnected" event after the peer's tab closes.
DISCONNECT_EVENT_LIMIT_MS: Final = 1_000.0

# What the tests send into the DataChannel: a type byte no message has, an input packet that
# announces two inputs but carries one (both counted as decode errors), and a string instead of
# binary data (counted as a text message). Returns [garbage packets, text messages].
GARBAGE_JS: Final = """player => {
    const raw = p2pDemo.transport.data_channel;
    raw.send(new Uint8Array([0xff, 1, 2]));
    raw.send(new Uint8Array([0x01, 0, player, 0, 0, 0, 5, 2, 0, 0, 0, 0, 5, 7]));
    raw.send("not a packet");
    return [2, 1];
}"""


@dataclass
class Tab:
    """One demo tab and the calls the tests make into its ``p2pDemo`` (a ``DemoTab``)."""

    page: Page

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.page.evaluate("() => p2pDemo.report_json()"))
        return report

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.report()["stats"]
        return stats

    def event_names(self) -> list[str]:
        return [entry["event"] for entry in self.report()["event_log"]]

    def now_ms(self) -> float:
        now: float = self.page.evaluate("() => performance.now()")
        return now

    def active_intervals(self) -> int:
        count: int = self.page.evaluate("() => p2pShim.activeIntervals()")
        return count

    def wait_until(self, condition: str, timeout_ms: float) -> None:
        """Wait until ``condition``, a JS expression over the report ``r``, holds."""
        self.page.wait_for_function(
            f"() => {{ const r = JSON.parse(p2pDemo.report_json()); return {condition}; }}",
            polling=POLL_MS,
            timeout=timeout_ms,
        )

    def wait_open(self) -> None:
        self.wait_until("r.channel_open_ms !== null", OPEN_TIMEOUT_MS)

    def wait_game_done(self, frames: int) -> None:
        self.wait_until("r.game !== null && r.game.done", frames * FRAME_MS + GAME_SLACK_MS)

    def wait_closed(self, timeout_ms: float, state: str = "closed") -> None:
        """Until the session's state is ``state`` ("closed": the channel closed; "shut_down":
        the session was closed for good) and its ping timer stopped."""
        self.wait_until(f'r.stats.state === "{state}" && !r.stats.ping_timer_running', timeout_ms)


def assert_no_page_errors(console: list[str]) -> None:
    """No uncaught exception in either tab (a Python error in an event handler lands here)."""
    errors = [line for line in console if "[pageerror]" in line]
    assert errors == [], "\n".join(errors)


def open_pair(
    context: BrowserContext,
    server: ServerThread,
    turn: TurnServer,
    console: list[str],
    **options: Any,
) -> tuple[Tab, Tab]:
    """Two booted demo tabs paired in a fresh room, ordered by player index."""
    first, second = open_tabs(2, context, server, turn, console, **options)
    return first, second


def open_tabs(
    count: int,
    context: BrowserContext,
    server: ServerThread,
    turn: TurnServer,
    console: list[str],
    **options: Any,
) -> list[Tab]:
    """``count`` booted demo tabs in a fresh room, each with its player index, in its order."""
    tab_options = {
        # The transport's own tests: a scripted game checks every input as it arrives.
        "game": "scripted",
        "room": f"test-{uuid.uuid4().hex}",
        "ice_servers": turn.ice_servers,
        "ping_interval_ms": PING_INTERVAL_MS,
        **options,
    }
    pages = [open_tab(context, server.url, tab_options) for _ in range(count)]
    for index, page in enumerate(pages):
        capture_console(page, console, prefix=f"tab{index} ")
    for page in pages:
        wait_ready(page, BOOT_TIMEOUT_MS)
        page.wait_for_function(
            "() => window.p2pDemo !== undefined || window.p2pDemoError !== undefined"
        )
        error = page.evaluate("() => window.p2pDemoError || null")
        assert error is None, f"the demo did not start: {error}"
        record_boot(dict(page.evaluate("() => p2pShim.timings")))
    tabs = [Tab(page) for page in pages]
    for tab in tabs:
        tab.wait_until("r.player_index !== null", OPEN_TIMEOUT_MS)
    tabs.sort(key=lambda tab: tab.report()["player_index"])
    return tabs


# --- one 600-frame game with both paths, shared by the tests that only read its results ---------


@dataclass
class Played:
    tabs: tuple[Tab, Tab]
    reports: list[dict[str, Any]]
    #: Each tab's performance.now() when its report was taken.
    taken_at_ms: list[float]
    console: list[str]
    guard: LoopbackGuard


@pytest.fixture(scope="module")
def played(browser: Browser, server: ServerThread, turn: TurnServer) -> Iterator[Played]:
    guard = LoopbackGuard()
    console: list[str] = []
    context = new_guarded_context(browser, guard)
    try:
        # No reconnection: test_pings_stop_after_the_channel_closes closes the channel for good
        # (test_lossy.py covers the reconnection).
        tabs = open_pair(
            context,
            server,
            turn,
            console,
            frames=FRAMES,
            relay_inputs=True,
            reconnect_attempts=0,
        )
        for tab in tabs:
            tab.wait_game_done(FRAMES)
        taken_at = [tab.now_ms() for tab in tabs]
        reports = [tab.report() for tab in tabs]
        yield Played(tabs, reports, taken_at, console, guard)
    finally:
        if console:
            print("browser console:\n  " + "\n  ".join(console))
        context.close()
    guard.check()


def test_the_data_channel_opens_in_both_tabs(played: Played) -> None:
    for report in played.reports:
        assert report["channel_open_ms"] is not None
        assert report["paired_ms"] is not None
        assert report["channel_open_ms"] >= report["paired_ms"]
        names = [entry["event"] for entry in report["event_log"]]
        assert names[:3] == ["joined", "paired", "open"], names
        assert names.count("open") == 1
        assert report["stats"]["state"] == "open"
    assert {report["player_index"] for report in played.reports} == {0, 1}


def test_600_frames_arrive_exactly_once_both_ways_over_both_paths(
    played: Played, server: ServerThread
) -> None:
    # The relay path is the server's lean relay socket, one frame per packet each way.
    assert server.stats.relay_socket_messages >= 2 * FRAMES
    for report in played.reports:
        assert report["stats"]["relay_socket"] == "open"
        game, stats = report["game"], report["stats"]
        assert game["delivered_exactly_once"], game
        assert game["frames_received"] == FRAMES
        assert game["frames_sent_on_some_path"] == FRAMES
        assert stats["inputs_sent"] == FRAMES
        assert stats["inputs_received"] == FRAMES
        # Both paths carried every input; the receiver delivered one copy of each frame and
        # dropped the others (redundant copies and the other path's copy).
        for path in ("p2p", "relay"):
            assert stats[f"{path}_packets_sent"] >= FRAMES, stats
            assert stats[f"{path}_skipped_closed"] == 0, stats
            assert stats[f"{path}_packets_received"] >= FRAMES, stats
        assert stats["p2p_inputs_delivered"] + stats["relay_inputs_delivered"] == FRAMES
        assert stats["p2p_inputs_delivered"] > 0
        assert stats["duplicates"] > 0
        assert stats["conflicts"] == 0
        assert stats["wrong_player"] == 0
        assert stats["handler_errors"] == 0
        assert stats["p2p_decode_errors"] == stats["relay_decode_errors"] == 0


def test_each_side_validates_the_channel_as_deployed_peers_do(played: Played) -> None:
    """The 0x10 / 0x11 exchange deployed peers require before they play: both sides sent a
    validation ping, got its pong and saw the other's ping, within a second of the channel
    opening (the deployed peers allow 15 s)."""
    for report in played.reports:
        stats = report["stats"]
        assert stats["validated"], stats
        assert stats["validation_pings_sent"] >= 1
        assert stats["validation_pongs_received"] >= 1
        assert stats["validation_peer_pings"] >= 1
        assert stats["validated_after_ms"] < 1_000, stats


def test_pings_start_at_open_and_measure_a_plausible_rtt(played: Played) -> None:
    for report, now_ms in zip(played.reports, played.taken_at_ms, strict=True):
        stats = report["stats"]
        assert stats["ping_timer_running"] is True
        # The timer started when the channel opened and ticked every interval since.
        expected = (now_ms - report["channel_open_ms"]) / PING_INTERVAL_MS
        # (Each ping the timer sent while the ping channel was being probed went twice.)
        timer_pings = stats["p2p_pings_sent"] - stats["pings_while_probing"]
        assert expected - 2 <= timer_pings <= expected + 1, (expected, stats)
        assert stats["p2p_pongs_received"] >= stats["p2p_pings_sent"] - 1
        assert stats["rtt_samples"] > 0
        assert 0 < stats["rtt_p50_ms"] < MAX_PLAUSIBLE_RTT_MS, stats
        assert stats["rtt_p50_ms"] <= stats["rtt_p95_ms"] < MAX_PLAUSIBLE_RTT_MS * 2
        # The relay is pinged too, and its RTT measured separately.
        assert stats["relay_rtt_samples"] > 0
        print(
            f"player {report['player_index']}: RTT p50 {stats['rtt_p50_ms']:.2f} ms, "
            f"p95 {stats['rtt_p95_ms']:.2f} ms over {stats['p2p_pongs_received']} pongs; "
            f"relay p50 {stats['relay_rtt_p50_ms']:.2f} ms"
        )


def test_no_request_of_the_game_left_loopback(played: Played) -> None:
    assert_no_page_errors(played.console)
    assert played.guard.violations == []
    # The guard saw the pages' traffic, including the Socket.IO WebSocket.
    assert any(url.startswith("ws://127.0.0.1:") for url in played.guard.urls)


def test_p2p_pings_stop_after_the_channel_closes_and_the_relays_go_on(played: Played) -> None:
    """The one test that changes the shared pair; the others read reports taken before."""
    first, second = played.tabs
    first.page.evaluate("() => p2pDemo.transport.close_channel()")
    for tab in played.tabs:
        tab.wait_until('r.stats.state === "closed"', 5_000)
    counts = [tab.stats() for tab in played.tabs]
    first.page.wait_for_timeout(AFTER_CLOSE_WAIT_MS)
    for tab, before in zip(played.tabs, counts, strict=True):
        after = tab.stats()
        assert after["p2p_pings_sent"] == before["p2p_pings_sent"]
        # The relay carries the game now: its round trip is still measured.
        assert after["relay_pings_sent"] > before["relay_pings_sent"]
        assert after["ping_timer_running"] is True
    for tab in (first, second):
        names = tab.event_names()
        assert "closed" in names
        assert "degraded" in names
        assert "reconnecting" not in names
        # The game finished. The peer is still there over the relay, so the session's
        # watchdog, the relay's pings and the resend timer for acked inputs (if negotiated) may
        # legitimately run; nothing else may.
        stats = tab.stats()
        assert stats["watchdog_running"] is True
        resend_timer = bool(stats["resend_timer_running"])
        assert tab.active_intervals() == 2 + int(resend_timer)
        print(f"after the channel closed: watchdog, relay pings, resend ({resend_timer}) running")
    assert_no_page_errors(played.console)


# --- tests with a pair of their own ------------------------------------------------------------


def test_reset_episode_starts_over_on_the_same_connection(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    tabs = open_pair(context, server, turn, console_messages, frames=SHORT_FRAMES)
    for tab in tabs:
        tab.wait_game_done(SHORT_FRAMES)
        tab.page.evaluate("() => { window.firstPc = p2pDemo.transport.peer_connection; }")
    events_before = [tab.event_names() for tab in tabs]

    # Both sides reset before either starts, as a game does between episodes: a frame 0 of the
    # new episode must not meet a receiver that still remembers frame 0 of the old one.
    for tab in tabs:
        tab.page.evaluate("() => p2pDemo.reset_episode()")
    for tab in tabs:
        game = tab.report()["game"]
        assert game["frames_received"] == 0
        assert game["frames_stepped"] == 0
        assert not game["done"]
    for tab in tabs:
        tab.page.evaluate("() => p2pDemo.start_game()")
    for tab in tabs:
        tab.wait_game_done(SHORT_FRAMES)

    for tab, before in zip(tabs, events_before, strict=True):
        report = tab.report()
        assert report["game"]["delivered_exactly_once"], report["game"]
        assert report["game"]["frames_received"] == SHORT_FRAMES
        # Counters span episodes: exactly one more episode's worth arrived.
        assert report["stats"]["inputs_received"] == 2 * SHORT_FRAMES
        assert report["stats"]["inputs_sent"] == 2 * SHORT_FRAMES
        # No reconnection: same peer connection, channel still open, no new paired/open.
        assert tab.event_names() == before
        assert report["stats"]["state"] == "open"
        assert report["stats"]["ping_timer_running"] is True
        assert tab.page.evaluate("() => p2pDemo.transport.peer_connection === window.firstPc")
        assert tab.page.evaluate("() => p2pDemo.transport.data_channel.readyState") == "open"
    assert_no_page_errors(console_messages)


def test_garbage_in_the_channel_is_counted_and_the_game_goes_on(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    frames = 4 * SHORT_FRAMES
    tabs = open_pair(context, server, turn, console_messages, frames=frames)
    for tab in tabs:
        tab.wait_until("r.game !== null && r.game.frames_received >= 30", OPEN_TIMEOUT_MS)
    sent = [
        tab.page.evaluate(GARBAGE_JS, tab.report()["player_index"]) for tab in tabs
    ]  # each tab sends garbage to the other
    received_at_injection = [tab.report()["game"]["frames_received"] for tab in tabs]
    for tab in tabs:
        tab.wait_game_done(frames)

    for tab, (garbage_from_peer, text_from_peer) in zip(tabs, reversed(sent), strict=True):
        report = tab.report()
        stats = report["stats"]
        assert stats["p2p_decode_errors"] == garbage_from_peer, stats
        assert stats["text_messages"] == text_from_peer, stats
        assert stats["relay_decode_errors"] == 0
        assert stats["handler_errors"] == 0
        assert report["game"]["delivered_exactly_once"], report["game"]
        assert report["game"]["frames_received"] == frames
        assert stats["state"] == "open"
    # The garbage arrived while the game was running, not after it.
    assert all(count < frames for count in received_at_injection), received_at_injection
    assert_no_page_errors(console_messages)


def test_closing_a_tab_is_noticed_by_the_other(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    survivor, leaver = open_pair(context, server, turn, console_messages, frames=60)
    for tab in (survivor, leaver):
        tab.wait_game_done(60)
    assert survivor.stats()["ping_timer_running"] is True

    closed_at_ms = survivor.now_ms()
    started = time.monotonic()
    leaver.page.close()
    # The server's word that the peer left closes the session for good.
    survivor.wait_closed(CLOSE_DETECTION_LIMIT_MS + 3_000, state="shut_down")
    # The channel's close may come before the server's word that the peer left; only the latter
    # ends the session (until then a reconnection may be scheduled).
    survivor.wait_until(
        "r.event_log.some((entry) => entry.event === 'peer_left')", CLOSE_DETECTION_LIMIT_MS + 3_000
    )
    waited_ms = (time.monotonic() - started) * 1000

    report = survivor.report()
    noticed = [
        (e["at_ms"], e["event"])
        for e in report["event_log"]
        if e["event"] in ("closed", "peer_left")
    ]
    assert noticed, report["event_log"]
    detection_ms = noticed[0][0] - closed_at_ms
    print(
        f"tab close noticed by the other tab after {detection_ms:.0f} ms "
        f"({noticed[0][1]}; events {[name for _, name in noticed]}); "
        f"state shut_down and ping timer stopped {waited_ms:.0f} ms after page.close() was called"
    )
    assert 0 <= detection_ms < CLOSE_DETECTION_LIMIT_MS
    assert report["stats"]["state"] == "shut_down"
    assert report["stats"]["ping_timer_running"] is False
    assert report["stats"]["watchdog_running"] is False
    assert report["stats"]["reconnect_timer_running"] is False
    disconnected = [e["at_ms"] for e in report["event_log"] if e["event"] == "disconnected"]
    assert disconnected, report["event_log"]
    print(f"the game heard 'disconnected' {disconnected[0] - closed_at_ms:.0f} ms after the close")
    assert disconnected[0] - closed_at_ms < DISCONNECT_EVENT_LIMIT_MS
    # The peer connection's handlers are freed; the socket's stay, for the next peer. Of the
    # timers, only the lifecycle's runs: the survivor is alone again and waits for a peer.
    assert report["stats"]["live_pc_proxies"] == 0
    assert report["stats"]["lifecycle_timer_running"] is True
    assert survivor.active_intervals() == 1
    assert_no_page_errors(console_messages)


def test_close_destroys_every_proxy_and_timer(
    context: BrowserContext,
    server: ServerThread,
    turn: TurnServer,
    loopback_guard: LoopbackGuard,
    console_messages: list[str],
) -> None:
    tabs = open_pair(context, server, turn, console_messages, frames=60)
    for tab in tabs:
        tab.wait_game_done(60)
    for tab in tabs:
        before = tab.stats()
        assert before["live_proxies"] > 0
        tab.page.evaluate("() => p2pDemo.close()")
        # Counted now, after close, by the transport's own registries.
        after = tab.page.evaluate("() => JSON.parse(p2pDemo.report_json()).stats")
        assert after["live_proxies"] == 0, after
        assert after["proxies_created"] >= before["proxies_created"]
        assert after["ping_timer_running"] is False
        assert tab.active_intervals() == 0
    # Nothing called a destroyed proxy afterwards (a late event or timer would raise here).
    tabs[0].page.wait_for_timeout(AFTER_CLOSE_WAIT_MS)
    errors = [line for line in console_messages if "[pageerror]" in line or "[error]" in line]
    assert errors == []
    assert loopback_guard.violations == []
