"""The rollback layer in the browser: the demo's Pong in two tabs of headless Chromium, each
simulating the game in Python under Pyodide and exchanging inputs over a real DataChannel.

The link is made bad on purpose (seeded loss and delay on each tab's outgoing DataChannel, the
relay left out), so predictions miss and the games roll back; they must still agree on every
confirmed frame.
"""

from __future__ import annotations

import json
from typing import Any, Final

from playwright.sync_api import BrowserContext
from test_transport import OPEN_TIMEOUT_MS, Tab, assert_no_page_errors, open_pair

from p2p_demo.harness import TurnServer
from p2p_demo.pong import PongGame
from p2p_server.server import ServerThread
from p2p_transport.rollback import replay
from p2p_transport.timing import FRAME_MS

# Beyond the frames at 60 Hz: stalls, the episode's end handshake, a busy 2-core machine.
MATCH_SLACK_MS: Final = 30_000
# The relay would carry every input the DataChannel loses: leave it out to make loss bite.
DATACHANNEL_ONLY: Final = {"route": "p2p", "relay_inputs": False}


def play(
    context: BrowserContext,
    server: ServerThread,
    turn: TurnServer,
    console: list[str],
    frames: int,
    **options: Any,
) -> tuple[Tab, Tab]:
    tabs = open_pair(context, server, turn, console, game="pong", frames=frames, **options)
    late_ms = float(options.get("late_ms", 0))
    for tab in tabs:
        tab.wait_until(
            "r.game !== null && r.game.finished",
            OPEN_TIMEOUT_MS + frames * FRAME_MS + late_ms + MATCH_SLACK_MS,
        )
    return tabs


def records(tab: Tab) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(tab.page.evaluate("() => p2pDemo.records_json()"))
    return records


def rollback_telemetry(tab: Tab) -> dict[str, Any]:
    telemetry: dict[str, Any] = json.loads(
        tab.page.evaluate("() => p2pDemo.rollback_telemetry_json()")
    )
    return telemetry


def test_pong_agrees_over_a_lossy_slow_datachannel(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    frames = 600
    tabs = play(
        context,
        server,
        turn,
        console_messages,
        frames,
        loss=0.3,
        delay_ms=60.0,
        fault_seed=4,
        **DATACHANNEL_ONLY,
    )
    games = [tab.report()["game"] for tab in tabs]
    for game in games:
        assert game["frames"] == frames
        assert game["desyncs"] == 0
        # 60 ms each way is more than the 2 frames of input delay hide, and 30% is lost.
        assert game["rollbacks"] > 0
    assert games[0]["final_checksum"] == games[1]["final_checksum"]
    [record] = records(tabs[0])
    assert records(tabs[1]) == [record]
    # The record alone rebuilds the game: CPython reaches the checksum both tabs ended on.
    assert replay(PongGame(0), record["inputs"]).hex() == record["final_checksum"]
    hashes = rollback_telemetry(tabs[0])["hashes_compared"]
    assert hashes > 0
    assert_no_page_errors(console_messages)


def test_a_game_that_diverges_is_reported_at_its_frame(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    # Player 1's copy of the game shifts the ball at frame 123: the state after frame 123
    # differs, and frames are compared every 10, so both tabs name frame 130.
    tabs = play(context, server, turn, console_messages, 300, perturb_player=1, perturb_at=123)
    for tab in tabs:
        game = tab.report()["game"]
        assert game["desyncs"] >= 1
        assert game["first_desync_frame"] == 130
    assert_no_page_errors(console_messages)


def test_a_tab_that_starts_late_is_caught_up_with(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    frames = 900
    early, late = play(context, server, turn, console_messages, frames, late_player=1, late_ms=1000)
    series = {
        name: rollback_telemetry(tab)["frames_ahead_series"]
        for name, tab in (("early", early), ("late", late))
    }
    # The early tab found itself the whole prediction window ahead when the other started...
    assert max(ahead for _, ahead in series["early"]) >= 4
    # ...and over the match's last five seconds both stay within about a frame of each other:
    # the median lead, since one busy frame on a loaded machine moves a sample for a moment.
    for name, samples in series.items():
        end_ms = samples[-1][0]
        settled = sorted(abs(ahead) for at_ms, ahead in samples if at_ms >= end_ms - 5_000)
        assert settled, name
        assert settled[len(settled) // 2] <= 1.5, (name, settled)
    for tab in (early, late):
        assert tab.report()["game"]["desyncs"] == 0
    assert records(early) == records(late)
    assert_no_page_errors(console_messages)
