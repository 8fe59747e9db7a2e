"""A tab hidden mid-game, in the browser: its seat idles and the other plays on.

What is real: two tabs of the demo's Pong on the rollback layer over a real DataChannel, the
page's own ``visibilitychange`` handler (``PageVisibility``) telling the rollback layer, its
idle inputs sent ahead from the tab's throttled timers and its message handlers, and its
catch-up when it comes back. What is emulated, since a headless page is never hidden or
throttled (see test_background.py): the page's ``visibilityState`` (overridden, and the event
dispatched) and Chromium's background timers (every interval of the transport's and the game
loop's made to fire at most once a second: ``p2pShim.throttleTimers``).
"""

from __future__ import annotations

import time
from typing import Any, Final

from playwright.sync_api import BrowserContext
from test_rollback import records, rollback_telemetry
from test_transport import OPEN_TIMEOUT_MS, assert_no_page_errors, open_pair

from p2p_demo.harness import TurnServer
from p2p_server.server import ServerThread
from p2p_transport.timing import FRAME_MS

FRAMES: Final = 1500
HIDE_AT_FRAME: Final = 240
HIDDEN_S: Final = 10.0
#: Chromium wakes a hidden tab's timers about once a second.
THROTTLED_MS: Final = 1000
# Beyond the frames at 60 Hz: boots, the hidden tab's catch-up, a busy 2-core machine.
SLACK_MS: Final = 60_000

SET_HIDDEN_JS: Final = """([hidden, throttleMs]) => {
  const state = hidden ? "hidden" : "visible";
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
  Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
  p2pShim.throttleTimers(hidden ? throttleMs : 0);
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_a_hidden_tab_idles_its_seat_and_the_other_plays_on(
    context: BrowserContext, server: ServerThread, turn: TurnServer, console_messages: list[str]
) -> None:
    awake, hidden = open_pair(context, server, turn, console_messages, game="pong", frames=FRAMES)
    hidden.wait_until(
        f"r.game !== null && r.game.frames_advanced >= {HIDE_AT_FRAME}",
        OPEN_TIMEOUT_MS + HIDE_AT_FRAME * FRAME_MS + SLACK_MS,
    )
    before: dict[str, Any] = awake.report()["game"]
    hidden.page.evaluate(SET_HIDDEN_JS, [True, THROTTLED_MS])
    time.sleep(HIDDEN_S)
    during: dict[str, Any] = awake.report()["game"]
    hidden.page.evaluate(SET_HIDDEN_JS, [False, THROTTLED_MS])
    for tab in (awake, hidden):
        tab.wait_until("r.game !== null && r.game.finished", FRAMES * FRAME_MS + SLACK_MS)

    # The awake tab played on: at most 5% of the frames it ticked while the other was hidden
    # were stalls (the grace before the seat idles, a little more on a loaded machine).
    ticked = (during["frames_advanced"] - before["frames_advanced"]) + (
        during["stall_frames"] - before["stall_frames"]
    )
    stalled = during["stall_frames"] - before["stall_frames"]
    print(f"awake tab while the other was hidden: {ticked} ticks, {stalled} stalled")
    assert ticked > 0 and stalled <= 0.05 * ticked, (ticked, stalled)

    played = [records(tab) for tab in (awake, hidden)]
    assert played[0] == played[1]
    (episode,) = played[0]
    # Pong ends at 5 points: an idle paddle concedes them, so the episode may end sooner (how
    # many it concedes depends on when the hide begins).
    assert HIDE_AT_FRAME < episode["frames"] <= FRAMES
    (stretch,) = episode["idled"]["1"]
    first, end = stretch
    # Idle from shortly after it was hidden, for about the time it was hidden.
    assert first >= HIDE_AT_FRAME, stretch
    assert end - first >= min(0.8 * HIDDEN_S * 60, episode["frames"] - first), stretch
    seen = [rollback_telemetry(tab) for tab in (awake, hidden)]
    if end < episode["frames"]:
        assert seen[1]["frames_idled"] == end - first
    else:  # idle actions it sent past the episode's end count too
        assert seen[1]["frames_idled"] >= end - first
    assert seen[1]["hidden_ms"] >= HIDDEN_S * 1000 * 0.9
    checksums = [tab.report()["game"]["final_checksum"] for tab in (awake, hidden)]
    print(f"hidden seat idled frames {first}-{end} ({end - first}); checksums {checksums}")
    assert {record["final_checksum"] for record in played[0]} == set(checksums)
    assert all(tab.report()["game"]["desyncs"] == 0 for tab in (awake, hidden))
    assert_no_page_errors(console_messages)
