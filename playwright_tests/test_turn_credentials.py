"""TURN credentials that expire: the server mints them per player (coturn's TURN REST API), the
page uses them, and a real coturn started with ``use-auth-secret`` accepts them and refuses forged
or expired ones."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext
from test_failures import demo_tab, turn_refused_pair, wait_for_event
from test_ice import SELECTED_LOCAL_CANDIDATE_JS

from p2p_demo.harness import TurnServer
from p2p_server.server import ServerOptions, ServerThread
from p2p_server.turn import TurnCredentials

SECRET = "turn-rest-secret-of-the-tests-0123456789"
FRAMES = 120


@pytest.fixture(scope="module")
def rest_turn() -> Iterator[TurnServer]:
    with TurnServer(auth_secret=SECRET) as server:
        yield server


def credentials(turn: TurnServer, secret: str = SECRET, ttl_s: int = 3600) -> TurnCredentials:
    return TurnCredentials(secret.encode(), (f"turn:127.0.0.1:{turn.port}",), ttl_s)


def test_the_pair_connects_relay_only_with_the_credentials_the_server_minted(
    context: BrowserContext, rest_turn: TurnServer
) -> None:
    room = f"minted-{uuid.uuid4().hex}"
    with ServerThread(options=ServerOptions(turn=credentials(rest_turn))) as server:
        # The pages know no TURN server of their own: what they use comes with "paired".
        tabs = [
            demo_tab(context, server, room=room, relay_only=True, frames=FRAMES, ice_servers=[])
            for _ in range(2)
        ]
        for index, tab in enumerate(tabs):
            tab.wait_open()
            paired = wait_for_event(tab, "paired")
            (entry,) = paired["ice_servers"]
            assert entry["urls"] == [f"turn:127.0.0.1:{rest_turn.port}"]
            expiry, subject = entry["username"].split(":")
            assert subject == f"{room}.p{index}"
            assert 3500 < int(expiry) - time.time() <= 3600
        for tab in tabs:
            tab.wait_game_done(FRAMES)
            assert tab.report()["game"]["delivered_exactly_once"]
            assert tab.page.evaluate(SELECTED_LOCAL_CANDIDATE_JS) == {
                "type": "relay",
                "address": "127.0.0.1",
            }


@pytest.mark.parametrize("kind", ["forged", "expired"])
def test_coturn_refuses_forged_and_expired_credentials(
    context: BrowserContext, rest_turn: TurnServer, kind: str
) -> None:
    room = f"{kind}-{uuid.uuid4().hex}"
    if kind == "forged":
        entries: list[dict[str, Any]] = credentials(rest_turn, secret="x" * 40).mint("p")
    else:
        # Minted correctly, but two hours ago with a one-hour lifetime.
        entries = credentials(rest_turn).mint("p", now=time.time() - 7200)
    with ServerThread() as server:
        turn_refused_pair(context, server, room, entries, frames=600)
    assert re.match(r"\d+:p$", entries[0]["username"])
