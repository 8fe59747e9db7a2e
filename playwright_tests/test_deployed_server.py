"""Two Python tabs pair through a server speaking the deployed interactive_gym / mug server's
events (``deployed_server.py``, written from the notes) with ``DeployedDialect``: their signals
cross addressed by participant id, the DataChannel opens, and once it is closed their inputs go
on crossing, exactly once, over that server's JSON relay of single inputs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Final

import pytest
from conftest import BOOT_TIMEOUT_MS, capture_console
from deployed_server import JOIN_EVENT, DeployedShapesServer
from playwright.sync_api import BrowserContext
from test_transport import OPEN_TIMEOUT_MS, Tab, assert_no_page_errors

from p2p_demo.harness import TurnServer, open_tab, wait_ready
from p2p_server.server import ServerThread

FRAMES: Final = 600
CLOSE_AT_FRAME: Final = 200


@pytest.fixture(scope="module")
def deployed_server() -> Iterator[DeployedShapesServer]:
    with DeployedShapesServer() as server:
        yield server


def test_two_tabs_pair_and_relay_through_the_deployed_servers_events(
    context: BrowserContext,
    server: ServerThread,
    turn: TurnServer,
    deployed_server: DeployedShapesServer,
    console_messages: list[str],
) -> None:
    game_id = f"game-{uuid.uuid4().hex}"
    tabs = []
    # Participant ids that sort the other way round from the order the tabs join in.
    for player_id in ("zoe", "adam"):
        page = open_tab(
            context,
            server.url,  # the page and its assets from the reference server...
            {
                "game": "scripted",
                "server_url": deployed_server.url,  # ...the signaling from the deployed shapes
                "deployed": {
                    "game_id": game_id,
                    "player_id": player_id,
                    "join": [JOIN_EVENT, {"game_id": game_id, "player_id": player_id}],
                },
                "ice_servers": turn.ice_servers,
                "frames": FRAMES,
                "reconnect_attempts": 0,
            },
        )
        capture_console(page, console_messages, prefix=f"{player_id} ")
        tabs.append(Tab(page))
    for tab in tabs:
        wait_ready(tab.page, BOOT_TIMEOUT_MS)
        tab.page.wait_for_function("() => window.p2pDemo !== undefined")
    zoe, adam = tabs
    for tab in tabs:
        tab.wait_open()
    # Sorted ids: adam is player 0 (and offered), zoe player 1.
    assert (adam.report()["player_index"], zoe.report()["player_index"]) == (0, 1)
    assert deployed_server.counts["signals"] > 0
    assert deployed_server.counts["signals_dropped"] == 0

    adam.wait_until(
        f"r.game !== null && r.game.frames_stepped >= {CLOSE_AT_FRAME}", OPEN_TIMEOUT_MS
    )
    adam.page.evaluate("() => p2pDemo.transport.close_channel()")
    for tab in tabs:
        tab.wait_game_done(FRAMES)

    for tab in tabs:
        report = tab.report()
        stats = report["stats"]
        assert report["game"]["delivered_exactly_once"], report["game"]
        assert "closed" in [e["event"] for e in report["event_log"]]
        # After the close only the JSON relay carried the inputs, one per event.
        assert stats["relay_inputs_delivered"] >= FRAMES - CLOSE_AT_FRAME - 30, stats
        assert stats["p2p_inputs_delivered"] > 0, stats
        assert stats["relay_decode_errors"] == 0
    assert deployed_server.counts["actions"] >= 2 * FRAMES
    assert_no_page_errors(console_messages)
