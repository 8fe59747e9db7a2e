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


def in_background(game: str) -> str:
    """A script that starts ``game`` without waiting for it (the first tab's connect()
    resolves only once the second tab has joined); a failure lands in ``window.jsGameError``."""
    return (
        f"(args) => {{ ({game})(args).catch((err) => {{ window.jsGameError = String(err); }}); }}"
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
        page.evaluate(in_background(JS_GAME), args)
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
              await attempt({onInput, resume: {save() {}}}),
              await attempt({onInput, players: 4, resume: {save() {}, load() {}}}),
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
    assert errors[6] == "p2pShim.connect(): resume must be {save() -> string, load(text, detail)}"
    assert errors[7] == "ValueError: resume is for rooms of two players (not a spectator)"


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


RESUME_FRAMES: Final = 900
RELOAD_AT_FRAME: Final = 300
# Each player's inputs go out this many frames ahead of the frame they are simulated in.
RESUME_DELAY: Final = 3

# A lockstep game of two in JavaScript with the handoff: a frame is simulated once both players'
# inputs for it are here, each input stepped RESUME_DELAY frames ahead; the game (its frame, its
# running hash and every input it holds) is what save() returns and load() puts back. Every
# input is checked against the script, and one that arrives twice is counted.
LOCKSTEP_GAME: Final = """async ({wheelUrls, room, iceServers, frames, delay}) => {
  await p2pShim.boot({pyodideBase: "/pyodide/", wheelUrls});
  const action = (player, frame) => (frame * 7 + player * 3) % 256;
  const g = window.jsGame = {
    frame: 0, next: 0, hash: 0, inputs: [{}, {}], duplicates: 0, wrong: 0, events: [],
    stalledTicks: 0, loaded: null,
  };
  const conn = await p2pShim.connect({
    room, iceServers,
    onInput(frame, action_, player) {
      if (frame in g.inputs[player] || frame < g.frame) g.duplicates += 1;
      g.inputs[player][frame] = action_;
      if (action_ !== action(player, frame)) g.wrong += 1;
    },
    onEvent(name, detail) { g.events.push([name, detail, performance.now()]); },
    resume: {
      save: () => JSON.stringify({frame: g.frame, hash: g.hash, inputs: g.inputs}),
      load(text, detail) {
        Object.assign(g, JSON.parse(text));
        g.loaded = detail;
        g.loadedAt = performance.now();
      },
    },
  });
  const me = g.playerIndex = conn.playerIndex;
  g.conn = conn;
  if (conn.resumed) g.next = Math.max(g.frame, conn.resumed.lastInput + 1);
  const timer = setInterval(() => {
    for (; g.next < Math.min(g.frame + delay, frames); g.next += 1) {
      g.inputs[me][g.next] = action(me, g.next);
      conn.step(g.next, g.inputs[me][g.next]);
    }
    const f = g.frame;
    if (f >= frames) return clearInterval(timer);
    if (!(f in g.inputs[0] && f in g.inputs[1])) return void (g.stalledTicks += 1);
    g.hash = (Math.imul(g.hash, 31) + g.inputs[0][f] * 256 + g.inputs[1][f]) >>> 0;
    g.frame += 1;
  }, 1000 / 60);
}"""


def lockstep_hash(frames: int) -> int:
    """LOCKSTEP_GAME's hash after ``frames`` frames, worked out here."""
    digest = 0
    for frame in range(frames):
        actions = [(frame * 7 + player * 3) % 256 for player in (0, 1)]
        digest = (digest * 31 + actions[0] * 256 + actions[1]) % 2**32
    return digest


def test_a_reloaded_tab_takes_its_javascript_game_back_and_every_input_arrives_once(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    wheels = [url for url in served_wheel_urls() if "/p2p_transport-" in url]
    args = {
        "wheelUrls": wheels,
        "room": f"js-resume-{uuid.uuid4().hex}",
        "iceServers": turn.ice_servers,
        "frames": RESUME_FRAMES,
        "delay": RESUME_DELAY,
    }
    start = in_background(LOCKSTEP_GAME)
    pages = [open_js_game(context, server, console_messages) for _ in range(2)]
    for page in pages:
        page.evaluate(start, args)
    for page in pages:
        page.wait_for_function(
            "() => window.jsGameError || (window.jsGame && window.jsGame.conn)",
            timeout=OPEN_TIMEOUT_MS + SLACK_MS,
        )
        assert page.evaluate("() => window.jsGameError || null") is None
    leaving = pages[1]
    leaving.wait_for_function(
        f"() => window.jsGame.frame >= {RELOAD_AT_FRAME}",
        timeout=RELOAD_AT_FRAME * FRAME_MS + SLACK_MS,
    )
    left_at_frame = leaving.evaluate("() => window.jsGame.frame")
    leaving.reload()
    wait_for_shim(leaving)
    leaving.evaluate(start, args)
    for page in pages:
        page.wait_for_function(
            f"() => window.jsGameError || (window.jsGame?.frame ?? 0) >= {RESUME_FRAMES}",
            timeout=RESUME_FRAMES * FRAME_MS + 2 * SLACK_MS,
        )
        assert page.evaluate("() => window.jsGameError || null") is None
    games = [
        page.evaluate(
            """() => {
                const g = window.jsGame;
                return {
                  player: g.playerIndex, hash: g.hash, duplicates: g.duplicates, wrong: g.wrong,
                  stalledTicks: g.stalledTicks, loaded: g.loaded, resumed: g.conn.resumed,
                  events: g.events.map(([name, detail, at]) => [name, detail, at]),
                  backMs: g.loadedAt ?? null,  // from the reloaded page's navigation
                  stats: g.conn.stats().resume,
                };
            }"""
        )
        for page in pages
    ]
    stayed, came_back = games
    print(
        f"js resume: left at frame {left_at_frame}; game loaded {came_back['backMs']:.0f} ms after "
        f"the reloaded page's navigation; the other stalled {stayed['stalledTicks']} ticks; "
        f"hashes {stayed['hash']} {came_back['hash']}"
    )
    assert stayed["hash"] == came_back["hash"] == lockstep_hash(RESUME_FRAMES)
    for game in games:
        assert game["duplicates"] == 0 and game["wrong"] == 0
    assert came_back["resumed"] == came_back["loaded"]
    assert came_back["loaded"]["lastInput"] >= left_at_frame - 1
    assert came_back["loaded"]["peerLastInput"] >= left_at_frame - 1
    stayed_events = [name for name, _, _ in stayed["events"]]
    assert stayed_events.count("paired") == 2
    assert stayed_events.index("peer_left") < stayed_events.index("peer_resumed")
    assert "resumed" in [name for name, _, _ in came_back["events"]]
    assert stayed["stats"]["handed_over"] == 1
    assert came_back["stats"]["resumed"] is True
    assert_no_page_errors(console_messages)
