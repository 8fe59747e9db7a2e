"""Each failure as a user causes it: the event the transport reports, and the words the demo page
shows for it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from typing import Any, Final

import pytest
from playwright.sync_api import BrowserContext, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from test_transport import OPEN_TIMEOUT_MS, Tab

from p2p_demo.harness import QUIET_TAB, TURN_USER, TurnServer, open_tab, wait_ready
from p2p_server.cluster import Cluster
from p2p_server.server import ServerThread
from p2p_server.settings import ServerOptions

# The lifecycle's first waiting_for_peer comes after 3 s; ice_failed after the test's timeout.
EVENT_TIMEOUT_MS: Final = 30_000
ICE_TIMEOUT_MS: Final = 3_000.0


def demo_tab(context: BrowserContext, server: ServerThread, **options: Any) -> Tab:
    page = open_tab(context, server.url, {"game": "scripted", "frames": 60, **options})
    wait_ready(page)
    page.wait_for_function("() => window.p2pDemo !== undefined", timeout=OPEN_TIMEOUT_MS)
    return Tab(page)


def wait_for_event(tab: Tab, name: str) -> dict[str, Any]:
    try:
        tab.wait_until(f"r.event_log.some((e) => e.event === {name!r})", EVENT_TIMEOUT_MS)
    except PlaywrightTimeoutError:
        events = [(round(e["at_ms"]), e["event"]) for e in tab.report()["event_log"]]
        pytest.fail(f"no {name!r} event within {EVENT_TIMEOUT_MS} ms; the events: {events}")
    log = tab.report()["event_log"]
    entry: dict[str, Any] = next(e for e in log if e["event"] == name)
    return entry


def turn_refused_pair(
    context: BrowserContext,
    server: ServerThread,
    room: str,
    ice_servers: list[dict[str, Any]],
    frames: int,
) -> list[tuple[Tab, dict[str, Any]]]:
    """Two relay-only tabs whose TURN server refuses ``ice_servers``: each tab with its
    ``ice_failed`` event, checked to say that TURN allocated nothing and answered 401."""
    tabs = [
        demo_tab(
            context,
            server,
            room=room,
            ice_servers=ice_servers,
            relay_only=True,
            ice_timeout_ms=ICE_TIMEOUT_MS,
            frames=frames,
        )
        for _ in range(2)
    ]
    refused = []
    for tab in tabs:
        event = wait_for_event(tab, "ice_failed")
        assert "relay" not in event["gathered"]  # TURN allocated nothing
        codes = {error["error_code"] for error in event["candidate_errors"]}
        assert 401 in codes, event
        refused.append((tab, event))
    return refused


def status_text(page: Page) -> str:
    text: str = page.locator("#p2p-status").inner_text()
    return text


def server_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
    return stats


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_server_that_is_not_running(context: BrowserContext, server: ServerThread) -> None:
    # The page comes from the running server; the signaling server it is told to use is not there.
    tab = demo_tab(
        context,
        server,
        server_url=f"http://127.0.0.1:{closed_port()}",
        connect_timeout_ms=CONNECT_TIMEOUT_MS,
    )
    event = wait_for_event(tab, "server_unreachable")
    assert event["attempt"] == 1 and event["reason"]
    tab.page.wait_for_function(
        "() => document.getElementById('p2p-status').textContent.startsWith('cannot reach')"
    )
    assert status_text(tab.page).startswith("cannot reach the")
    failed = wait_for_event(tab, "connect_failed")
    assert failed["attempts"] >= 1 and failed["reason"]
    tab.page.wait_for_function(
        "() => document.getElementById('p2p-status').textContent.includes('is it running')"
    )
    assert status_text(tab.page) == failed["message"]


#: A page's connect() against a server that is not there: a bound short enough for a test.
CONNECT_TIMEOUT_MS: Final = 2_000
#: How much later than its bound connect() may settle on a loaded machine (the lifecycle looks at
#: the time four times a second; two Pyodide tabs may be busy).
SETTLE_SLACK_MS: Final = 3_000
TOKEN_SECRET: Final = b"x" * 32

CONNECT_JS = """async (options) => {
  const started = performance.now();
  try {
    const conn = await p2pShim.connect({ onInput() {}, ...options });
    conn.close();
    return { resolved: true, ms: performance.now() - started };
  } catch (err) {
    return { message: String(err.message), ms: performance.now() - started };
  }
}"""


def test_connect_settles_with_a_sentence_for_each_failure(
    context: BrowserContext, server: ServerThread
) -> None:
    page = open_tab(context, server.url, QUIET_TAB)
    wait_ready(page)
    # The server is not running: connect() rejects with the reason within its bound.
    down = page.evaluate(
        CONNECT_JS,
        {
            "serverUrl": f"http://127.0.0.1:{closed_port()}",
            "room": "nobody-home",
            "connectTimeoutMs": CONNECT_TIMEOUT_MS,
        },
    )
    assert down["message"].startswith("cannot reach the signaling server: no answer in 2 s ("), down
    assert CONNECT_TIMEOUT_MS <= down["ms"] <= CONNECT_TIMEOUT_MS + SETTLE_SLACK_MS, down
    # relayOnly with ICE servers none of which is TURN: refused at once, where the options are
    # checked. (With none at all, the pairing decides: the server may mint TURN credentials.)
    stun_only = [{"urls": "stun:127.0.0.1:3478"}]
    relay = page.evaluate(CONNECT_JS, {"relayOnly": True, "iceServers": stun_only})
    assert relay["message"].startswith("ValueError: relay_only (relayOnly) needs a TURN server")
    assert relay["ms"] < 1000, relay
    # A forged token: the message names the token, and the server's words follow.
    origin = {"allowed_origins": [server.url], "token_secret": TOKEN_SECRET}
    with ServerThread(options=ServerOptions(**origin)) as guarded:
        forged = page.evaluate(
            CONNECT_JS, {"serverUrl": guarded.url, "room": "study", "token": "not.a.token"}
        )
    assert forged["message"].startswith("the server refused this page's room token"), forged
    assert "(the server said: " in forged["message"] and "{" not in forged["message"]


def test_two_tabs_in_different_rooms_wait_for_their_peers(
    context: BrowserContext, server: ServerThread
) -> None:
    tabs = [demo_tab(context, server, room=f"alone-{uuid.uuid4().hex}") for _ in range(2)]
    for tab in tabs:
        event = wait_for_event(tab, "waiting_for_peer")
        assert event["waited_ms"] >= 3000
        tab.page.wait_for_function(
            "() => document.getElementById('p2p-status').textContent.startsWith('waiting')"
        )
        assert status_text(tab.page).startswith("waiting for the other player (")
        assert "paired" not in tab.event_names()


def test_a_third_tab_is_told_the_room_is_full(
    context: BrowserContext, server: ServerThread, turn: TurnServer
) -> None:
    room = f"full-{uuid.uuid4().hex}"
    for _ in range(2):
        demo_tab(context, server, room=room, ice_servers=turn.ice_servers)
    third = demo_tab(context, server, room=room, ice_servers=turn.ice_servers)
    event = wait_for_event(third, "room_full")
    assert event["room"] == room
    assert "is full" in event["message"]
    third.page.wait_for_function(
        "() => document.getElementById('p2p-status').textContent.includes('is full')"
    )
    assert status_text(third.page) == f"room {room} is full: two players are in it already"


def test_relay_only_with_a_wrong_turn_password_names_the_turn_error(
    context: BrowserContext, server: ServerThread, turn: TurnServer
) -> None:
    room = f"badturn-{uuid.uuid4().hex}"
    wrong = [
        {**entry, "credential": "not-the-password"} if "username" in entry else entry
        for entry in turn.ice_servers
    ]
    assert any(entry.get("username") == TURN_USER for entry in wrong)
    # The game starts over the relay and runs on while the status is read.
    for tab, event in turn_refused_pair(context, server, room, wrong, frames=1200):
        assert event["relay_only"] is True
        assert "p2p_unavailable" in tab.event_names()
        tab.page.wait_for_function(
            "() => document.getElementById('p2p-status').textContent.includes('401')"
        )
        text = status_text(tab.page)
        assert text.startswith("no P2P connection: turn:127.0.0.1:")
        assert text.endswith("the relay alone carries the game (ice failed)")


def playing_pair(
    context: BrowserContext, url: str, room: str, frames: int, turn: TurnServer
) -> list[Tab]:
    """Two demo tabs on the server at ``url``, their DataChannel open and 120 frames played."""
    tabs = []
    for _ in range(2):
        page = open_tab(
            context,
            url,
            {"game": "scripted", "frames": frames, "room": room, "ice_servers": turn.ice_servers},
        )
        wait_ready(page)
        page.wait_for_function("() => window.p2pDemo !== undefined", timeout=OPEN_TIMEOUT_MS)
        tabs.append(Tab(page))
    for tab in tabs:
        tab.wait_open()
        tab.wait_until("r.game !== null && r.game.frames_stepped >= 120", EVENT_TIMEOUT_MS)
    return tabs


class ServerProcess:
    """``python -m p2p_server`` in a process of its own, so a test can kill it as a crash would:
    the kernel closes its connections at once."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "p2p_server", "--port", "0", "--log-level", "warning"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("p2p_server listening on "), line
        self.url = line.split(" on ", 1)[1].strip().rstrip("/")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def test_the_server_stopped_mid_game_is_reported_and_the_game_goes_on_over_p2p(
    context: BrowserContext, turn: TurnServer
) -> None:
    frames = 600
    room = f"midgame-{uuid.uuid4().hex}"
    server = ServerProcess()
    try:
        tabs = playing_pair(context, server.url, room, frames, turn)
    finally:
        server.kill()
    for tab in tabs:
        event = wait_for_event(tab, "server_unreachable")
        assert event["reason"].startswith("connection lost: ")
        tab.wait_game_done(frames)
        game = tab.report()["game"]
        assert game["delivered_exactly_once"], game
        assert tab.stats()["p2p_inputs_delivered"] > 0


def test_a_cluster_process_killed_mid_game_its_pair_rejoins_another_and_resumes(
    context: BrowserContext, turn: TurnServer
) -> None:
    frames = 900
    room = f"cluster-{uuid.uuid4().hex}"
    with Cluster(processes=2) as cluster:
        tabs = playing_pair(context, cluster.url, room, frames, turn)
        rooms = [server_stats(cluster.server_url(i))["rooms_open"] for i in range(2)]
        host = rooms.index(1)
        assert rooms[1 - host] == 0
        cluster.kill(host)
        for tab in tabs:
            assert wait_for_event(tab, "server_unreachable")["reason"].startswith(
                "connection lost: "
            )
            rejoined = wait_for_event(tab, "rejoined")
            assert "paired" not in tab.event_names()[tab.event_names().index("rejoined") :]
            relayed_at_rejoin = tab.stats()["relay_packets_received"]
            tab.wait_until(
                f"r.stats.relay_packets_received > {relayed_at_rejoin}", EVENT_TIMEOUT_MS
            )
            assert rejoined["peer_index"] == 1 - rejoined["player_index"]
        survivor = server_stats(cluster.server_url(1 - host))
        assert survivor["rooms_open"] == 1
        assert survivor["relay_messages"] > 0
        for tab in tabs:
            tab.wait_game_done(frames)
            game = tab.report()["game"]
            assert game["delivered_exactly_once"], game


def test_a_game_the_relay_alone_carries_is_measured_on_the_relay(
    context: BrowserContext, server: ServerThread
) -> None:
    # No ICE server in the loopback namespace: no candidate, no DataChannel, the relay alone.
    room = f"relay-alone-{uuid.uuid4().hex}"
    tabs = [
        demo_tab(context, server, room=room, ice_timeout_ms=ICE_TIMEOUT_MS, frames=120)
        for _ in range(2)
    ]
    for tab in tabs:
        wait_for_event(tab, "p2p_unavailable")
        tab.wait_game_done(120)
        tab.wait_until("r.stats.relay_rtt_samples >= 3", EVENT_TIMEOUT_MS)
        stats = tab.stats()
        assert stats["p2p_pings_sent"] == 0 and stats["relay_pings_sent"] >= 3
        assert stats["relay_rtt_p50_ms"] > 0
        assert (stats["health_path"], stats["health_status"]) == ("relay", "good")
        record = json.loads(tab.page.evaluate("() => p2pDemo.telemetry_json()"))
        _, path, _, status = record["game_health_transitions"]["rows"][-1]
        assert (path, status) == ("relay", "good")
