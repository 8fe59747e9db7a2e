"""Two Python tabs (the transport's wheel, driven from a JavaScript game loop through
``p2pShim.connect``) play through the deployed interactive_gym / mug server itself: the pinned
PyPI release running ``tests/mug_experiment``, for both id styles. Standalone, the transport does
the lobby on its own socket; attached, the page did it on its socket, as a mug page does, and the
transport joins that socket before the page emits ``join_game``. Each pair starts on
``p2p_validation_complete`` as deployed peers do, the DataChannel is closed at frame 200, and
every input crosses exactly once, those after the close on the server's JSON relay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import pytest
from conftest import capture_console
from playwright.sync_api import BrowserContext, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from test_boot import served_wheel_urls, wait_for_shim
from test_transport import OPEN_TIMEOUT_MS, assert_no_page_errors

from p2p_demo.harness import TURN_PASSWORD, TURN_USER, TurnServer
from p2p_server.server import ServerThread
from p2p_transport.timing import FRAME_MS
from tests.mug_experiment.server import ID_STYLES, MugServer

FRAMES: Final = 600
CLOSE_AT_FRAME: Final = 200
# Beyond the frames at 60 Hz: boot, the lobby, pairing and a busy 2-core machine.
SLACK_MS: Final = 45_000
#: What the server logs at WARNING for every DataChannel loss it is told of (the deployed peers
#: tell it the same): the one warning these runs are meant to cause.
LOSS_WARNING: Final = "P2P connection lost in game"

# The page's game: boot the transport alone, get into the game (standalone: the transport does
# the lobby; attach: the page does it on its own socket, then hands the socket over before it
# emits join_game), start stepping on p2p_validation_complete, and check every peer input.
MUG_GAME: Final = """async ({wheelUrls, mugUrl, mode, frames, closeAt, stun, turnUrls}) => {
  await p2pShim.boot({pyodideBase: "/pyodide/", wheelUrls});
  const action = (player, frame) => (frame * 7 + player * 3) % 256;
  const game = window.mugGame = {
    received: new Map(), duplicates: 0, wrong: 0, events: [], sent: 0,
    joinAt: null, validatedAt: null, playerIndex: null,
  };
  let conn = null, timer = null;
  const start = () => {
    if (timer !== null || conn === null || !game.complete) return;
    timer = setInterval(() => {
      if (game.sent >= frames) return clearInterval(timer);
      if (game.sent === closeAt && conn.playerIndex === 0) conn.closeChannel();
      conn.step(game.sent, action(conn.playerIndex, game.sent));
      game.sent += 1;
    }, 1000 / 60);
  };
  const options = {
    reconnect: false,
    iceServers: [{urls: stun}],
    onInput(frame, action_) {
      if (game.received.has(frame)) game.duplicates += 1;
      game.received.set(frame, action_);
      if (action_ !== action(1 - conn.playerIndex, frame)) game.wrong += 1;
    },
    onEvent(name, detail) {
      const at = performance.now();
      game.events.push([name, at, detail]);
      if (name === "joined") game.joinAt = at;
      if (name === "validated" && game.validatedAt === null) game.validatedAt = at;
      if (name === "p2p_validation_complete") { game.complete = true; start(); }
    },
  };
  let connecting;
  if (mode === "standalone") {
    connecting = p2pShim.connect({...options, serverUrl: mugUrl, dialect: {name: "mug", turnUrls}});
  } else {
    // What a mug page does before its game: its URL, then the lobby on its own socket.
    const subjectId = "page-" + Math.random().toString(36).slice(2);
    // Served, then withheld from this cross-origin-isolated page (another origin's answer).
    await fetch(`${mugUrl}/${subjectId}`, {mode: "no-cors"}).catch(() => {});
    const socket = window.pageSocket = io(mugUrl, {transports: ["websocket"]});
    let sessionId = null;
    socket.on("server_session_id", (d) => { sessionId = d.session_id; });
    await new Promise((resolve) => {
      socket.on("activate_scene", (d) => {
        if (d.scene_type === "GymScene") resolve();
        else socket.emit("advance_scene", {session_id: sessionId});
      });
      socket.emit("register_subject", {subject_id: subjectId});
    });
    connecting = p2pShim.connect({...options, socket, dialect: {name: "mug", subjectId, turnUrls}});
    socket.emit("join_game", {session_id: sessionId});
    game.joinAt = performance.now();
  }
  conn = game.conn = await connecting;
  game.playerIndex = conn.playerIndex;
  start();
}"""

START_IN_BACKGROUND: Final = (
    f"(args) => {{ ({MUG_GAME})(args).catch((err) => {{ window.mugGameError = String(err); }}); }}"
)

# What each tab tells the test once its game is over.
REPORT: Final = """() => {
  const g = window.mugGame, stats = g.conn.stats();
  return {
    player: g.playerIndex, received: g.received.size, duplicates: g.duplicates, wrong: g.wrong,
    events: g.events.map(([name]) => name),
    joinToValidatedMs: g.validatedAt === null ? null : Math.round(g.validatedAt - g.joinAt),
    relay: stats.relay_inputs_delivered, p2p: stats.p2p_inputs_delivered,
    relayDecodeErrors: stats.relay_decode_errors,
  };
}"""


# Where a tab got to, for a game that did not finish.
SO_FAR: Final = """() => window.mugGame && {
  sent: window.mugGame.sent, received: window.mugGame.received.size,
  events: window.mugGame.events.map(([name, at]) => [name, Math.round(at)]),
  stats: window.mugGame.conn && window.mugGame.conn.stats(),
}"""


@pytest.fixture(scope="module", params=sorted(ID_STYLES))
def mug(request: pytest.FixtureRequest) -> Iterator[MugServer]:
    # The loopback coturn's credentials, handed to the players by the server as a deployment
    # does; the pages have only its URLs.
    with MugServer(request.param, (TURN_USER, TURN_PASSWORD)) as server:
        yield server


def open_tab(context: BrowserContext, server: ServerThread, console: list[str]) -> Page:
    page = context.new_page()
    capture_console(page, console, prefix=f"tab{len(context.pages)} ")
    page.goto(f"{server.url}/?autoboot=0")  # the demo page's scripts, without its boot
    wait_for_shim(page)
    return page


@pytest.mark.parametrize("mode", ["standalone", "attach"])
def test_two_tabs_play_through_the_real_mug_server(
    context: BrowserContext,
    server: ServerThread,
    turn: TurnServer,
    mug: MugServer,
    mode: str,
    console_messages: list[str],
) -> None:
    log_start = len(mug.log())
    wheels = [url for url in served_wheel_urls() if "/p2p_transport-" in url]
    args = {
        "wheelUrls": wheels,
        "mugUrl": mug.url,
        "mode": mode,
        "frames": FRAMES,
        "closeAt": CLOSE_AT_FRAME,
        # Chromium gathers no host candidates on loopback: the DataChannel opens through the
        # TURN server, so only with the credentials the mug server sent.
        "stun": f"stun:127.0.0.1:{turn.port}",
        "turnUrls": [f"turn:127.0.0.1:{turn.port}"],
    }
    pages = [open_tab(context, server, console_messages) for _ in range(2)]
    for page in pages:
        page.evaluate(START_IN_BACKGROUND, args)
    for page in pages:
        try:
            page.wait_for_function(
                f"() => window.mugGameError || (window.mugGame && "
                f"window.mugGame.received.size === {FRAMES} && window.mugGame.sent === {FRAMES})",
                timeout=OPEN_TIMEOUT_MS + FRAMES * FRAME_MS + SLACK_MS,
            )
        except PlaywrightTimeoutError:
            seen = [p.evaluate(SO_FAR) for p in pages]
            tail = "\n".join([*mug.log()[log_start:].splitlines()[-40:], *console_messages[-30:]])
            pytest.fail(f"the game did not finish: {seen}\n{tail}")
        assert page.evaluate("() => window.mugGameError || null") is None
    reports: list[dict[str, Any]] = [page.evaluate(REPORT) for page in pages]
    print(f"\nmug {mug.id_style} {mode}: " + json.dumps(reports))
    assert sorted(r["player"] for r in reports) == [0, 1]
    for report in reports:
        assert report["received"] == FRAMES
        assert (report["duplicates"], report["wrong"], report["relayDecodeErrors"]) == (0, 0, 0)
        # After the close only the JSON relay carried the inputs, one per event.
        assert report["relay"] >= FRAMES - CLOSE_AT_FRAME - 30, report
        assert report["p2p"] > 0, report
        events = report["events"]
        expected = ["paired", "validated", "p2p_validation_complete", "closed", "p2p_pause"]
        assert [events.index(e) for e in expected] == sorted(events.index(e) for e in expected)
        assert "start_game" in events
        assert report["joinToValidatedMs"] is not None
    trouble = [line for line in mug.trouble(log_start) if LOSS_WARNING not in line]
    assert trouble == [], "\n".join(trouble)
    assert_no_page_errors(console_messages)
    for page in pages:
        page.evaluate("() => window.mugGame.conn.close()")
        if mode == "attach":
            # The page's socket is the page's: still connected after the transport closed.
            assert page.evaluate("() => window.pageSocket.connected")


def test_connect_names_a_wrong_mug_option_and_a_refusal(
    context: BrowserContext, server: ServerThread, mug: MugServer, console_messages: list[str]
) -> None:
    page = open_tab(context, server, console_messages)
    wheels = [url for url in served_wheel_urls() if "/p2p_transport-" in url]
    errors = page.evaluate(
        """async ({wheelUrls, mugUrl}) => {
            await p2pShim.boot({pyodideBase: "/pyodide/", wheelUrls});
            const onInput = () => {};
            const attempt = (options) =>
              p2pShim.connect({onInput, serverUrl: mugUrl, ...options})
                .then(() => null, (err) => err.message);
            const socket = io(mugUrl, {transports: ["websocket"]});
            const wrong = [
              await attempt({dialect: {name: "mog"}}),
              await attempt({dialect: {name: "mug", subject: "x"}}),
              await attempt({dialect: {name: "mug", turnUrls: "turn:x"}}),
              await attempt({socket}),
            ];
            // The page's socket never went through the lobby: the server knows no participant.
            const refused = attempt({socket, dialect: {name: "mug"}});
            socket.emit("join_game", {session_id: null});
            return [...wrong, await refused, socket.connected];
        }""",
        {"wheelUrls": wheels, "mugUrl": mug.url},
    )
    assert errors[:4] == [
        "ValueError: dialect.name must be one of mug, got 'mog'",
        "ValueError: unknown dialect option 'subject': it takes name, subjectId, turnUrls",
        'ValueError: dialect.turnUrls must be a array, got "turn:x"',
        'ValueError: socket needs a dialect that attaches: dialect: {name: "mug"}',
    ]
    assert "Session not found" in errors[4]  # join_game_error's message
    assert errors[5] is True  # the page's socket, left connected
    assert_no_page_errors(console_messages)
