"""The JavaScript API (``p2pShim.connect``) for a page whose game loop is JavaScript: two tabs
that boot the transport alone and use nothing but the API, over a real DataChannel."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from conftest import capture_console
from playwright.sync_api import BrowserContext, Page
from test_boot import served_wheel_urls, wait_for_shim
from test_transport import OPEN_TIMEOUT_MS, assert_no_page_errors

from p2p_demo.harness import TurnServer
from p2p_demo.plot_telemetry import time_offsets
from p2p_server.server import ServerOptions, ServerThread
from p2p_transport.timing import FRAME_MS

FRAMES: Final = 600
# Beyond the frames at 60 Hz: boot, pairing and a busy 2-core machine.
SLACK_MS: Final = 30_000

# The page's whole game: boot the transport alone, connect, and step a scripted action per frame
# from setInterval; every peer input is checked against the same script when it arrives.
JS_GAME: Final = """async ({wheelUrls, room, iceServers, frames}) => {
  await p2pShim.boot({pyodideBase: "/pyodide/", wheelUrls});
  const action = (player, frame) => (frame * 7 + player * 3) % 256;
  const game = window.jsGame = {received: new Map(), duplicates: 0, wrong: 0, events: [], sent: 0};
  const conn = await p2pShim.connect({
    room, iceServers,
    onInput(frame, action_) {
      if (game.received.has(frame)) game.duplicates += 1;
      game.received.set(frame, action_);
      if (action_ !== action(1 - conn.playerIndex, frame)) game.wrong += 1;
    },
    onEvent(name, detail) { game.events.push([name, detail]); },
  });
  game.conn = conn;
  game.playerIndex = conn.playerIndex;
  const timer = setInterval(() => {
    if (game.sent >= frames) return clearInterval(timer);
    conn.step(game.sent, action(conn.playerIndex, game.sent));
    game.sent += 1;
  }, 1000 / 60);
  return conn.playerIndex;
}"""


# Starts JS_GAME without waiting for it: the first tab's connect() resolves only once the
# second tab has joined.
START_IN_BACKGROUND: Final = (
    f"(args) => {{ ({JS_GAME})(args).catch((err) => {{ window.jsGameError = String(err); }}); }}"
)


def open_js_game(context: BrowserContext, server: ServerThread, console: list[str]) -> Page:
    page = context.new_page()
    capture_console(page, console, prefix=f"tab{len(context.pages)} ")
    # The demo page's HTML without its boot: it only provides the scripts' tags.
    page.goto(f"{server.url}/?autoboot=0")
    wait_for_shim(page)
    return page


def start_pair(
    context: BrowserContext,
    server: ServerThread,
    turn: TurnServer,
    console: list[str],
    room_prefix: str,
    frames: int,
) -> tuple[list[Page], str]:
    """Two tabs running JS_GAME in a fresh room, on the transport's wheel alone (no micropip,
    no demo), started in both before either is awaited: they pair each other. Returns the
    pages and the room."""
    wheels = [url for url in served_wheel_urls() if "/p2p_transport-" in url]
    room = f"{room_prefix}-{uuid.uuid4().hex}"
    pages = [open_js_game(context, server, console) for _ in range(2)]
    args = {"wheelUrls": wheels, "room": room, "iceServers": turn.ice_servers, "frames": frames}
    for page in pages:
        page.evaluate(START_IN_BACKGROUND, args)
    return pages, room


def test_a_javascript_game_loop_uses_only_the_api(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    pages, _ = start_pair(context, server, turn, console_messages, "js", FRAMES)
    players = []
    for page in pages:
        page.wait_for_function(
            "() => window.jsGameError || (window.jsGame && window.jsGame.playerIndex != null)",
            timeout=OPEN_TIMEOUT_MS + SLACK_MS,
        )
        assert page.evaluate("() => window.jsGameError || null") is None
        players.append(page.evaluate("() => window.jsGame.playerIndex"))
    assert sorted(players) == [0, 1]
    for page in pages:
        page.wait_for_function(
            f"() => window.jsGame.received.size === {FRAMES}",
            timeout=OPEN_TIMEOUT_MS + FRAMES * FRAME_MS + SLACK_MS,
        )
    for page in pages:
        game: dict[str, Any] = page.evaluate(
            """() => {
                const g = window.jsGame, stats = g.conn.stats(), telemetry = g.conn.telemetry();
                const plain = (v) => Object.getPrototypeOf(v) === Object.prototype;
                return {
                  duplicates: g.duplicates, wrong: g.wrong,
                  plainStats: plain(stats), plainTelemetry: plain(telemetry),
                  statsRoundTrip: JSON.stringify(JSON.parse(JSON.stringify(stats))) ===
                    JSON.stringify(stats),
                  inputsReceived: stats.inputs_received,
                  telemetryPlayer: telemetry.player_index,
                  events: g.events.map(([name]) => name),
                  pairedDetailIsPlain: plain(g.events.find(([n]) => n === "paired")[1]),
                };
            }"""
        )
        assert game["duplicates"] == 0 and game["wrong"] == 0
        assert game["plainStats"] and game["plainTelemetry"] and game["statsRoundTrip"]
        assert game["inputsReceived"] == FRAMES
        assert game["telemetryPlayer"] in (0, 1)
        assert {"joined", "paired", "connected"} <= set(game["events"])
        assert game["pairedDetailIsPlain"]
    for page in pages:
        after_close = page.evaluate(
            """() => {
                const conn = window.jsGame.conn;
                conn.close();
                conn.close();  // twice is fine
                let error = null;
                try { conn.step(0, 0); } catch (err) { error = err.message; }
                const api = p2pShim.pyodide.pyimport("p2p_transport.browser.js_api");
                const result = {
                  error,
                  open: api.open_connections(),
                  proxies: api.live_proxies(),
                  intervals: p2pShim.activeIntervals(),
                };
                api.destroy();
                return result;
            }"""
        )
        assert after_close == {
            "error": "this connection is closed",
            "open": 0,
            "proxies": 0,
            "intervals": 0,
        }
    assert_no_page_errors(console_messages)


def test_connect_names_a_wrong_option(
    context: BrowserContext, server: ServerThread, console_messages: list[str]
) -> None:
    page = open_js_game(context, server, console_messages)
    wheels = [url for url in served_wheel_urls() if "/p2p_transport-" in url]
    errors = page.evaluate(
        """async (wheelUrls) => {
            await p2pShim.boot({pyodideBase: "/pyodide/", wheelUrls});
            const onInput = () => {};
            const attempt = (options) =>
              p2pShim.connect(options).then(() => null, (err) => err.message);
            return [
              await attempt({onInput, romo: "typo"}),
              await attempt({onInput, routeMode: "pigeon"}),
              await attempt({onInput, relayOnly: "yes"}),
              await attempt({onInput, iceServers: [{username: "u"}]}),
              await attempt({room: "r"}),
              await attempt({onInput, room: ""}),
            ];
        }""",
        wheels,
    )
    assert errors[0].startswith("ValueError: unknown option 'romo': connect() takes serverUrl")
    assert errors[1] == (
        "ValueError: routeMode must be one of parallel, p2p-first, p2p, relay, got 'pigeon'"
    )
    assert errors[2] == 'ValueError: relayOnly must be a boolean, got "yes"'
    assert errors[3].startswith("ValueError: iceServers: ")
    assert "urls" in errors[3]
    assert errors[4] == "p2pShim.connect(): onInput(frame, action, player) is required"
    assert errors[5] == "ValueError: room must be a non-empty string, got ''"


def test_both_players_keep_their_telemetry_and_a_closed_tab_loses_nothing(
    context: BrowserContext, turn: TurnServer, console_messages: list[str], tmp_path: Path
) -> None:
    frames = 120
    with ServerThread(options=ServerOptions(data_dir=tmp_path)) as keeping:
        pages, room = start_pair(context, keeping, turn, console_messages, "keep", frames)
        for page in pages:
            page.wait_for_function(
                f"() => window.jsGame && window.jsGame.received.size === {frames}",
                timeout=OPEN_TIMEOUT_MS + frames * FRAME_MS + SLACK_MS,
            )
        answers = {}
        for page in pages:
            player = page.evaluate("() => window.jsGame.playerIndex")
            answers[player] = page.evaluate(
                "(p) => window.jsGame.conn.saveTelemetry({participant: p, score: [3, 1]})",
                f"participant-{player}",
            )
            # Told it is kept: the tab goes at once, and the record must be whole on disk.
            page.close()
    kept = {}
    for player, answer in answers.items():
        assert answer["file"] == f"{quote(room, safe='')}/player-{player}.json"
        path = tmp_path / answer["file"]
        assert path.stat().st_size == answer["bytes"]
        kept[player] = json.loads(path.read_text())
        record = kept[player]["record"]
        assert record["extra"] == {"participant": f"participant-{player}", "score": [3, 1]}
        assert record["player_index"] == player
        assert record["telemetry"]["player_index"] == player
        # The page's time origin in Unix ms anchors every time in the record.
        assert abs(record["time_origin_unix_ms"] - time.time() * 1000) < 600_000
        assert record["telemetry"]["time_origin_unix_ms"] == record["time_origin_unix_ms"]
    records = [kept[player]["record"]["telemetry"] for player in (0, 1)]
    offsets, label = time_offsets(records)
    assert label.startswith("wall time")
    # Both tabs opened within the test's own few seconds of each other.
    assert abs(offsets[0] - offsets[1]) < 60_000
    assert_no_page_errors(console_messages)


def test_saving_without_a_data_dir_says_why(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    page = start_pair(context, server, turn, console_messages, "nokeep", 1)[0][0]
    page.wait_for_function("() => window.jsGame && window.jsGame.conn", timeout=60_000)
    error = page.evaluate(
        "() => window.jsGame.conn.saveTelemetry({}).then(() => null, (err) => err.message)"
    )
    assert error == (
        "RuntimeError: the server did not keep it: "
        "this server keeps no telemetry (start it with --data-dir DIR)"
    )
