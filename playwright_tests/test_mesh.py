"""Rooms of more than two players in real tabs: a full mesh of DataChannels (one per pair of
players, through the loopback coturn) set up over the reference server, driven through the
JavaScript API alone (``p2pShim.connect({players})``)."""

from __future__ import annotations

import uuid
from typing import Any, Final

import pytest
from conftest import BOOT_TIMEOUT_MS
from playwright.sync_api import BrowserContext, Page
from test_boot import served_wheel_urls
from test_js_api import open_js_game
from test_rollback import DATACHANNEL_ONLY, records
from test_transport import OPEN_TIMEOUT_MS, assert_no_page_errors, open_tabs

from p2p_demo.harness import TurnServer, wait_ready
from p2p_demo.pong import PongGame
from p2p_server.server import ServerThread
from p2p_transport.rollback import replay
from p2p_transport.rollback.game import idle_action
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


def test_four_tabs_play_team_pong_under_rollback_with_one_lossy_link(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    """The demo's team Pong in 4 tabs over the mesh, DataChannels alone; the link between
    players 1 and 2 loses 30% of its packets each way and delays the rest: predictions of each
    other miss and those two roll back, and still every tab ends on the same inputs and
    checksum, which the record replays to."""
    frames = 600
    tabs = open_tabs(
        PLAYERS,
        context,
        server,
        turn,
        console_messages,
        game="pong",
        players=PLAYERS,
        frames=frames,
        fault_link=[1, 2],
        loss=0.3,
        delay_ms=30,
        fault_seed=7,
        **DATACHANNEL_ONLY,
    )
    for tab in tabs:
        tab.wait_until(
            "r.game !== null && r.game.finished",
            OPEN_TIMEOUT_MS + frames * FRAME_MS + SLACK_MS,
        )
    games = [tab.report()["game"] for tab in tabs]
    played = [records(tab) for tab in tabs]
    assert all(record == played[0] for record in played)
    (episode,) = played[0]
    assert episode["frames"] == frames
    assert all(len(inputs) == PLAYERS for inputs in episode["inputs"])
    assert {game["final_checksum"] for game in games} == {episode["final_checksum"]}
    assert (
        replay(PongGame(0, players=PLAYERS), episode["inputs"]).hex() == (episode["final_checksum"])
    )
    assert all(game["desyncs"] == 0 for game in games)
    # The lossy link's two ends predicted each other wrongly and rolled back.
    assert games[1]["rollbacks"] > 0 and games[2]["rollbacks"] > 0, games
    for tab in tabs:
        links = tab.report()["stats"]["links"]
        faults = {peer: link.get("fault_dropped", 0) for peer, link in links.items()}
        me = tab.report()["player_index"]
        lossy = {"1": "2", "2": "1"}.get(str(me))
        assert all((count > 0) == (peer == lossy) for peer, count in faults.items()), faults
    assert_no_page_errors(console_messages)


# A spectator page: connect to watch, and check every input the feed brings against the script.
SPECTATOR: Final = """async ({wheelUrls, room, frames, players}) => {
  await p2pShim.boot({pyodideBase: "/pyodide/", wheelUrls});
  const action = (player, frame) => (frame * 7 + player * 3) % 256;
  const watch = window.watch = {received: {}, duplicates: 0, wrong: 0, events: []};
  const conn = await p2pShim.connect({
    room, spectator: true,
    onInput(frame, action_, player) {
      const seen = watch.received[player] = watch.received[player] || new Set();
      if (seen.has(frame)) watch.duplicates += 1;
      seen.add(frame);
      if (action_ !== action(player, frame)) watch.wrong += 1;
    },
    onEvent(name, detail) { watch.events.push([name, detail]); },
  });
  watch.conn = conn;
  watch.playerIndex = conn.playerIndex;
  watch.playerCount = conn.playerCount;
  let refused = null;
  try { conn.step(0, 1); } catch (err) { refused = err.message; }
  watch.stepRefused = refused;
}"""


def test_three_tabs_and_a_spectator_through_the_javascript_api(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    """The spectator joins first and watches a room of 3 through the JS API: every player's
    input arrives once from the server's feed (the players send nothing for it)."""
    players = 3
    room = f"watched-{uuid.uuid4().hex}"
    wheels = [url for url in served_wheel_urls() if "/p2p_transport-" in url]
    watcher = open_js_game(context, server, console_messages)
    watcher.evaluate(
        f"(args) => {{ ({SPECTATOR})(args)"
        ".catch((err) => { window.watchError = String(err); }); }",
        {"wheelUrls": wheels, "room": room, "frames": FRAMES, "players": players},
    )
    pages = [open_js_game(context, server, console_messages) for _ in range(players)]
    args = {
        "wheelUrls": wheels,
        "room": room,
        "iceServers": turn.ice_servers,
        "frames": FRAMES,
        "players": players,
    }
    for page in pages:
        page.evaluate(START, args)
    for page in pages:
        page.wait_for_function(
            "() => window.meshGameError || (window.meshGame && window.meshGame.done)",
            timeout=OPEN_TIMEOUT_MS + FRAMES * FRAME_MS + SLACK_MS,
        )
        assert page.evaluate("() => window.meshGameError || null") is None
    watcher.wait_for_function(
        """([n, frames]) => window.watchError || (window.watch && [...Array(n).keys()]
            .every((p) => (window.watch.received[p] || new Set()).size === frames))""",
        arg=[players, FRAMES],
        timeout=SLACK_MS,
    )
    watch: dict[str, Any] = watcher.evaluate(
        """() => ({
            error: window.watchError || null, me: window.watch.playerIndex,
            count: window.watch.playerCount, duplicates: window.watch.duplicates,
            wrong: window.watch.wrong, stepRefused: window.watch.stepRefused,
            events: window.watch.events.map(([n]) => n),
            malformed: window.watch.conn.stats().feed_malformed,
        })"""
    )
    assert watch["error"] is None
    assert watch["me"] is None and watch["count"] == players
    assert watch["duplicates"] == 0 and watch["wrong"] == 0 and watch["malformed"] == 0
    assert "a spectator sends no input" in watch["stepRefused"]
    assert watch["events"][:1] == ["joined"] and "room_ready" in watch["events"]
    assert_no_page_errors(console_messages)


LEAVE_AT_JS: Final = """(frame) => {
  const check = setInterval(() => {
    const game = JSON.parse(p2pDemo.report_json()).game;
    if (game !== null && game.frames_advanced >= frame) {
      clearInterval(check);
      p2pDemo.close();
      window.leftAtFrame = game.frames_advanced;
    }
  }, 16);
}"""


@pytest.mark.parametrize("how", ["close", "reload"])
def test_a_player_who_closes_its_tab_mid_game_idles_from_a_frame_the_others_agree_on(
    context: BrowserContext,
    server: ServerThread,
    turn: TurnServer,
    console_messages: list[str],
    how: str,
) -> None:
    """Player 3 of 4 closes its tab around frame 300 of 900: the server tells the others, each
    ends its link to player 3, they agree on player 3's last real frame and play its seat idle
    from there, and all three end on the same record, which says so. A tab that reloads
    instead joins the room again (the server fills the seat and tells everyone the room is
    ready): rooms of more than two do not resume, so the game under way goes on without it,
    undisturbed."""
    frames, leave_at = 900, 300
    tabs = open_tabs(
        PLAYERS,
        context,
        server,
        turn,
        console_messages,
        game="pong",
        players=PLAYERS,
        frames=frames,
        autostart=False,
    )
    leaver, staying = tabs[3], tabs[:3]
    # The tab stops itself (its game loop and its connections) once its game reaches the frame,
    # checked beside its game loop on its own timers: a test's polling, or a page's close, can
    # lag by seconds on a loaded machine while the game plays on.
    leaver.page.evaluate(LEAVE_AT_JS, leave_at)
    # The games start once every tab is ready and the check is in place (with autostart a
    # loaded machine may play them to their end before the test gets here).
    for tab in tabs:
        tab.wait_until("r.game !== null", OPEN_TIMEOUT_MS)
    for tab in tabs:
        tab.page.evaluate("() => p2pDemo.start_game()")
    leaver.page.wait_for_function(
        "() => window.leftAtFrame !== undefined",
        timeout=OPEN_TIMEOUT_MS + leave_at * FRAME_MS + SLACK_MS,
    )
    left_at = leaver.page.evaluate("() => window.leftAtFrame")
    if how == "close":
        leaver.page.close()
    else:
        leaver.page.reload()
        wait_ready(leaver.page, BOOT_TIMEOUT_MS)
    assert leave_at <= left_at < frames - 60, left_at
    for tab in staying:
        tab.wait_until(
            "r.game !== null && r.game.finished",
            (frames - leave_at) * FRAME_MS + SLACK_MS,
        )
    played = [records(tab) for tab in staying]
    assert all(record == played[0] for record in played)
    (episode,) = played[0]
    assert episode["frames"] == frames
    last = episode["left"]["3"]
    assert leave_at - 60 <= last < frames
    idle = idle_action(PongGame(0, players=PLAYERS))
    assert all(row[3] == idle for row in episode["inputs"][last + 1 :])
    assert (
        replay(PongGame(0, players=PLAYERS), episode["inputs"]).hex() == (episode["final_checksum"])
    )
    for tab in staying:
        report = tab.report()
        assert report["game"]["desyncs"] == 0
        names = [e["event"] for e in report["event_log"]]
        assert "peer_left" in names
        # A page back in the seat has a link again, which the game under way does not use.
        assert ("3" in report["stats"]["links"]) == (how == "reload")
