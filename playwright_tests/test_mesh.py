"""Rooms of more than two players in real tabs: a full mesh of DataChannels (one per pair of
players, through the loopback coturn) set up over the reference server, driven through the
JavaScript API alone (``p2pShim.connect({players})``)."""

from __future__ import annotations

import uuid
from typing import Any, Final

from playwright.sync_api import BrowserContext, Page
from test_boot import served_wheel_urls
from test_js_api import open_js_game
from test_transport import OPEN_TIMEOUT_MS

from p2p_demo.harness import TurnServer
from p2p_server.server import ServerThread
from p2p_transport.timing import FRAME_MS

PLAYERS: Final = 4
FRAMES: Final = 300
# Beyond the frames at 60 Hz: four Pyodides booting, the mesh's six connections, a busy machine.
SLACK_MS: Final = 60_000

# Each tab: connect to a room of `players`, then step a scripted action per frame from
# setInterval; every input that arrives is checked against the script of the player it names.
MESH_GAME: Final = """async ({wheelUrls, room, iceServers, frames, players}) => {
  await p2pShim.boot({pyodideBase: "/pyodide/", wheelUrls});
  const action = (player, frame) => (frame * 7 + player * 3) % 256;
  const game = window.meshGame = {
    received: {}, duplicates: 0, wrong: 0, events: [], sent: 0, done: false,
  };
  const conn = await p2pShim.connect({
    room, iceServers, players,
    onInput(frame, action_, player) {
      const seen = game.received[player] = game.received[player] || new Set();
      if (seen.has(frame)) game.duplicates += 1;
      seen.add(frame);
      if (action_ !== action(player, frame)) game.wrong += 1;
    },
    onEvent(name, detail) { game.events.push([name, detail]); },
  });
  game.conn = conn;
  game.playerIndex = conn.playerIndex;
  game.playerCount = conn.playerCount;
  const timer = setInterval(() => {
    if (game.sent >= frames) { game.done = true; return clearInterval(timer); }
    conn.step(game.sent, action(conn.playerIndex, game.sent));
    game.sent += 1;
  }, 1000 / 60);
}"""

START: Final = (
    f"(args) => {{ ({MESH_GAME})(args)"
    ".catch((err) => { window.meshGameError = String(err); }); }"
)


def start_mesh(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console: list[str]
) -> list[Page]:
    room = f"mesh-{uuid.uuid4().hex}"
    pages = [open_js_game(context, server, console) for _ in range(PLAYERS)]
    args = {
        "wheelUrls": [url for url in served_wheel_urls() if "/p2p_transport-" in url],
        "room": room,
        "iceServers": turn.ice_servers,
        "frames": FRAMES,
        "players": PLAYERS,
    }
    for page in pages:
        page.evaluate(START, args)
    return pages


def test_four_tabs_exchange_every_input_over_a_mesh_through_the_javascript_api(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    pages = start_mesh(context, server, turn, console_messages)
    for page in pages:
        page.wait_for_function(
            "() => window.meshGameError || (window.meshGame && window.meshGame.done)",
            timeout=OPEN_TIMEOUT_MS + FRAMES * FRAME_MS + SLACK_MS,
        )
        assert page.evaluate("() => window.meshGameError || null") is None
    players = sorted(page.evaluate("() => window.meshGame.playerIndex") for page in pages)
    assert players == list(range(PLAYERS))
    for page in pages:
        page.wait_for_function(
            """([n, frames]) => [...Array(n).keys()]
                .filter((p) => p !== window.meshGame.playerIndex)
                .every((p) => (window.meshGame.received[p] || new Set()).size === frames)""",
            arg=[PLAYERS, FRAMES],
            timeout=SLACK_MS,
        )
        game: dict[str, Any] = page.evaluate(
            """() => {
                const g = window.meshGame, stats = g.conn.stats();
                const links = Object.fromEntries(Object.entries(stats.links).map(
                  ([peer, s]) => [peer, {state: s.state, p2p: s.p2p_inputs_delivered}]));
                return {
                  me: g.playerIndex, count: g.playerCount, duplicates: g.duplicates,
                  wrong: g.wrong, links, unrouted: stats.unrouted,
                  connected: g.events.filter(([n]) => n === "connected").map(([, d]) => d.peer),
                  ready: g.events.filter(([n]) => n === "room_ready").length,
                };
            }"""
        )
        me = game["me"]
        assert game["count"] == PLAYERS
        assert game["duplicates"] == 0 and game["wrong"] == 0, game
        assert game["ready"] == 1
        peers = [p for p in range(PLAYERS) if p != me]
        # A DataChannel to every peer opened, and carried inputs.
        assert sorted(game["connected"]) == peers, game
        assert sorted(int(p) for p in game["links"]) == peers
        for link in game["links"].values():
            assert link["state"] == "open", game
            assert link["p2p"] > 0, game
        assert game["unrouted"] == {}, game
