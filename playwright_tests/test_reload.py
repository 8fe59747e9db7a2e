"""A tab reloaded mid-game, in the browser: its new page takes the game back and both finish it.

What is real: two tabs of the demo's Pong on the rollback layer over a real DataChannel through
the loopback coturn and the reference server (an open room, and a room with tokens); a real
``page.reload()`` of one tab at frame 300 of 900 (its Pyodide booted again, its socket closed by
the browser, the server's ``peer_left`` to the other tab); the page's own ``sessionStorage`` mark
that makes the new page ask for the game under way; the player who stayed idling the absent
seat and answering with the game's state and inputs (``p2p_transport.rollback.resume``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, Final

import pytest
from conftest import BOOT_TIMEOUT_MS, PROJECT_ROOT, capture_console
from playwright.sync_api import BrowserContext
from test_rollback import records, rollback_telemetry
from test_transport import OPEN_TIMEOUT_MS, Tab, assert_no_page_errors, open_tabs

from p2p_demo.harness import TurnServer, open_tab, wait_ready
from p2p_demo.pong import PongGame
from p2p_server.rooms import ServerOptions
from p2p_server.server import ServerThread
from p2p_server.tokens import mint_token
from p2p_transport.rollback.replay import replay
from p2p_transport.timing import FRAME_MS

FRAMES: Final = 900
RELOAD_AT_FRAME: Final = 300
TOKEN_SECRET: Final = b"r" * 32
# Beyond the frames at 60 Hz: two boots and a reload's boot, on a busy 2-core machine.
SLACK_MS: Final = 90_000


def open_players(
    context: BrowserContext, url: str, turn: TurnServer, console: list[str], tokens: bool
) -> list[Tab]:
    """Two demo tabs of Pong in a fresh room (with a token each if ``tokens``), by index."""
    room = f"reload-{uuid.uuid4().hex}"
    options: dict[str, Any] = {
        "game": "pong",
        "frames": FRAMES,
        "room": room,
        "ice_servers": turn.ice_servers,
    }
    pages = []
    for player in range(2):
        own = dict(options)
        if tokens:
            own["token"] = mint_token(TOKEN_SECRET, room, player)
        page = open_tab(context, url, own)
        capture_console(page, console, prefix=f"tab{player} ")
        pages.append(page)
    for page in pages:
        wait_ready(page, BOOT_TIMEOUT_MS)
    tabs = [Tab(page) for page in pages]
    for tab in tabs:
        tab.page.wait_for_function("() => window.p2pDemo !== undefined")
        tab.wait_until("r.player_index !== null", OPEN_TIMEOUT_MS)
    tabs.sort(key=lambda tab: tab.report()["player_index"])
    return tabs


@pytest.fixture(scope="module")
def token_server() -> Iterator[ServerThread]:
    """The reference server checking room tokens."""
    options = ServerOptions(token_secret=TOKEN_SECRET)
    with ServerThread(host="127.0.0.1", port=0, assets_root=PROJECT_ROOT, options=options) as srv:
        yield srv


@pytest.mark.parametrize("tokens", [False, True], ids=["open room", "tokens"])
def test_a_tab_reloaded_at_frame_300_takes_its_game_back_and_both_end_on_one_record(
    context: BrowserContext,
    server: ServerThread,
    token_server: ServerThread,
    turn: TurnServer,
    console_messages: list[str],
    tokens: bool,
) -> None:
    url = token_server.url if tokens else server.url
    stayed, reloaded = open_players(context, url, turn, console_messages, tokens)
    reloaded.wait_until(
        f"r.game !== null && r.game.frames_advanced >= {RELOAD_AT_FRAME}",
        OPEN_TIMEOUT_MS + RELOAD_AT_FRAME * FRAME_MS + SLACK_MS,
    )
    reloaded_at = time.monotonic()
    reloaded.page.reload(wait_until="commit")
    wait_ready(reloaded.page, BOOT_TIMEOUT_MS)
    reloaded.page.wait_for_function("() => window.p2pDemo !== undefined")
    reloaded.wait_until("r.game !== null && r.game.resumed !== null", OPEN_TIMEOUT_MS + SLACK_MS)
    back_s = time.monotonic() - reloaded_at
    for tab in (stayed, reloaded):
        tab.wait_until("r.game !== null && r.game.finished", FRAMES * FRAME_MS + SLACK_MS)

    played = [records(tab) for tab in (stayed, reloaded)]
    assert played[0] == played[1]
    (episode,) = played[0]
    # All 900 frames, unless an idle paddle conceded Pong's 5 points sooner.
    assert RELOAD_AT_FRAME < episode["frames"] <= FRAMES
    assert len(episode["inputs"]) == episode["frames"]
    # The record replays under CPython to the checksum both tabs ended on.
    assert replay(PongGame(0), episode["inputs"]).hex() == episode["final_checksum"]
    reports = [tab.report()["game"] for tab in (stayed, reloaded)]
    assert {report["final_checksum"] for report in reports} == {episode["final_checksum"]}
    assert all(report["desyncs"] == 0 for report in reports)

    (absence,) = reports[0]["absences"]
    assert absence["ended"] == "resumed" and absence["player"] == 1
    resumed = reports[1]["resumed"]
    assert resumed["resumed"] is True and resumed["episode"] == 0
    assert resumed["frame"] > RELOAD_AT_FRAME
    # The seat idled from where its old page's inputs stopped to where the new page's count.
    (stretch,) = episode["idled"]["1"]
    first, end = stretch
    assert RELOAD_AT_FRAME <= first <= absence["frame"] < resumed["frame"] <= end
    events = stayed.event_names()
    assert events.index("peer_absent") < events.index("peer_resumed")
    stalled = rollback_telemetry(stayed)["stall_frames"]
    print(
        f"reload ({'tokens' if tokens else 'open room'}): the new page back in the game "
        f"{resumed['answered_ms']:.0f} ms after its load began ({back_s:.1f} s after the "
        f"reload); the seat idled frames {first}-{end} ({end - first}), the other stalled "
        f"{stalled} frames in all; checksums {[r['final_checksum'] for r in reports]}"
    )
    assert_no_page_errors(console_messages)


CUT_FRAMES: Final = 1800
CUT_AT_FRAME: Final = 300
CUT_S: Final = 15.0
JUDGED_AFTER_S: Final = 4.0


def test_both_paths_cut_for_15_s_the_lower_index_plays_on_and_both_end_on_one_record(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    """Every packet either tab receives, on every path, dropped for 15 s (the session's link
    emulation, switched mid-game: a headless page's network cannot be cut alone): the lower
    index idles the other's seat and plays on; once packets flow again the other takes its game
    back and both finish on one record."""
    tabs = open_tabs(
        2, context, server, turn, console_messages, game="pong", frames=CUT_FRAMES, link="loss 0%"
    )
    lower, higher = tabs
    higher.wait_until(
        f"r.game !== null && r.game.frames_advanced >= {CUT_AT_FRAME}",
        OPEN_TIMEOUT_MS + CUT_AT_FRAME * FRAME_MS + SLACK_MS,
    )
    for tab in tabs:
        tab.page.evaluate("() => p2pDemo.set_link('loss 100%')")
    cut_at = lower.now_ms()
    # Past the long drop's 3 s (and the last frames of the prediction window) ...
    time.sleep(JUDGED_AFTER_S)
    before: dict[str, Any] = lower.report()["game"]
    time.sleep(CUT_S - JUDGED_AFTER_S)
    during: dict[str, Any] = lower.report()["game"]
    for tab in tabs:
        tab.page.evaluate("() => p2pDemo.set_link('loss 0%')")
    restored_at = lower.now_ms()
    for tab in tabs:
        tab.wait_until("r.game !== null && r.game.finished", CUT_FRAMES * FRAME_MS + SLACK_MS)

    played = [records(tab) for tab in tabs]
    assert played[0] == played[1]
    (episode,) = played[0]
    # Pong ends at 5 points: an idle paddle concedes them fast, so the episode may end sooner.
    assert CUT_AT_FRAME < episode["frames"] <= CUT_FRAMES
    assert replay(PongGame(0), episode["inputs"]).hex() == episode["final_checksum"]
    reports = [tab.report()["game"] for tab in tabs]
    assert {report["final_checksum"] for report in reports} == {episode["final_checksum"]}
    assert all(report["desyncs"] == 0 for report in reports)
    (absence,) = reports[0]["absences"]
    assert absence["ended"] == "resumed"
    # Idle from about where the cut began, for about as long as it lasted (or to the end).
    (stretch,) = episode["idled"]["1"]
    first, end = stretch
    assert first >= CUT_AT_FRAME, stretch
    assert end - first >= min(0.8 * CUT_S * 60, episode["frames"] - first), stretch
    resumed = reports[1]["resumed"]
    assert resumed["resumed"] is True and resumed["asked_ms"] is None
    # ... the lower index played on: at most 5% of the frames it ticked were stalls.
    stalled = during["stall_frames"] - before["stall_frames"]
    ticked = during["frames_advanced"] - before["frames_advanced"] + stalled
    print(
        f"cut of {CUT_S:.0f} s: the lower index ticked {ticked} frames from {JUDGED_AFTER_S} s "
        f"into it to its end, {stalled} stalled; the seat idled frames {first}-{end} "
        f"({end - first}); the other back in the game "
        f"{resumed['answered_ms'] - restored_at:.0f} ms after the paths were restored "
        f"(cut at {cut_at:.0f} ms); checksums {[r['final_checksum'] for r in reports]}"
    )
    assert ticked > 0 and stalled <= 0.05 * ticked, (ticked, stalled)
    assert_no_page_errors(console_messages)
