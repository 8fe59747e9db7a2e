"""The server's input record (``--record-dir``) survives the tabs: two tabs of headless Chromium
play the demo's Pong on the rollback layer through a recording server, both are closed abruptly
mid-game, and the room's record, replayed under CPython, reaches the state hash the tabs
themselves computed for a frame both had confirmed just before they died.

Both routes are covered: ``parallel``, where the relay carries every input, and ``p2p``, where it
carries none and each session uploads the inputs its peer acknowledged about once a second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from conftest import PROJECT_ROOT
from playwright.sync_api import BrowserContext
from test_transport import Tab, assert_no_page_errors, open_pair

from p2p_demo.harness import TurnServer
from p2p_demo.pong import PongGame
from p2p_server.server import ServerOptions, ServerThread
from p2p_transport.rollback import read_input_record, replay
from p2p_transport.timing import FRAME_MS

#: The serves' seed: not the default 0, so a replay on the wrong game would show.
SEED: Final = 7
#: Both tabs die once both have simulated this frame (the issue's "kill both tabs at frame 500").
KILL_AT: Final = 500
#: The episode outlasts the kill, so the tabs die mid-game and no episode end is recorded.
FRAMES: Final = 600
#: Beyond the frames at 60 Hz: the game's start and a busy 2-core machine.
PLAY_SLACK_MS: Final = 20_000
#: The server flushes every second; this leaves a loaded machine's late tick room.
FLUSH_DEADLINE_S: Final = 3.0
POLL_S: Final = 0.05

# The rollback layer hands the state hash of every 10th confirmed frame to the desync check,
# which forgets it once the peer's hash of that frame matched; no page call returns it. This
# keeps a copy in the page, as [episode, frame, hash hex], and returns a snapshot function: the
# frame the tab simulates next and the hashes kept so far.
KEEP_HASHES_PY: Final = """
import json

def keep_hashes(tab):
    rollback = tab.match.rollback
    desync = rollback.session.parts.desync
    hand_over = desync.add_local_hash
    kept = []

    def keep_and_hand_over(frame, digest):
        kept.append([desync.episode, frame, bytes(digest).hex()])
        hand_over(frame, digest)

    desync.add_local_hash = keep_and_hand_over
    return lambda: json.dumps({"frame": rollback.current_frame, "hashes": kept})

keep_hashes
"""


@pytest.fixture
def recording_server(tmp_path: Path) -> Iterator[ServerThread]:
    options = ServerOptions(record_dir=tmp_path / "records")
    with ServerThread(host="127.0.0.1", port=0, assets_root=PROJECT_ROOT, options=options) as srv:
        yield srv


def keep_hashes(tab: Tab) -> None:
    tab.page.evaluate(
        "code => { window.keptHashes = p2pShim.pyodide.runPython(code)(p2pDemo); }",
        KEEP_HASHES_PY,
    )


def snapshot(tab: Tab) -> tuple[int, dict[int, str]]:
    """The frame the tab simulates next and its hashes of episode 0's confirmed frames."""
    taken: dict[str, Any] = json.loads(tab.page.evaluate("() => keptHashes()"))
    hashes = {frame: digest for episode, frame, digest in taken["hashes"] if episode == 0}
    return taken["frame"], hashes


def recorded_inputs(server: ServerThread, record_dir: Path) -> list[list[int]]:
    """Episode 0's inputs in the room's only record, once the server let the room go (it saw
    both tabs leave and closed the record) or :data:`FLUSH_DEADLINE_S` passed (what its
    once-a-second flush wrote is there by then)."""
    deadline = time.monotonic() + FLUSH_DEADLINE_S
    while server.stats.rooms_open > 0 and time.monotonic() < deadline:
        time.sleep(POLL_S)
    [path] = record_dir.glob("*/*.jsonl")
    episode = read_input_record(path)["episodes"][0]
    assert (episode["episode"], episode["first_frame"]) == (0, 0)
    assert not episode["ended"]
    inputs: list[list[int]] = episode["inputs"]
    return inputs


@pytest.mark.parametrize(
    ("route", "max_lag"),
    [
        # The relay carries every input: only the last few frames, not confirmed yet, are missing.
        ("parallel", 30),
        # Acknowledged inputs go up about once a second, a second's more frames than confirmed.
        ("p2p", 150),
    ],
)
def test_the_record_of_killed_tabs_replays_to_the_hash_they_confirmed(
    route: str,
    max_lag: int,
    context: BrowserContext,
    recording_server: ServerThread,
    turn: TurnServer,
    tmp_path: Path,
    console_messages: list[str],
) -> None:
    tabs = open_pair(
        context,
        recording_server,
        turn,
        console_messages,
        game="pong",
        frames=FRAMES,
        seed=SEED,
        route=route,
    )
    for tab in tabs:
        keep_hashes(tab)
    for tab in tabs:
        tab.wait_until(f"r.game.frames_advanced >= {KILL_AT}", KILL_AT * FRAME_MS + PLAY_SLACK_MS)
    taken = [snapshot(tab) for tab in tabs]
    context.close()  # no clean close: the pages are gone with whatever they had not sent
    killed_at = time.monotonic()
    kill_frame = min(frame for frame, _ in taken)
    assert kill_frame >= KILL_AT

    inputs = recorded_inputs(recording_server, tmp_path / "records")
    read_after_s = time.monotonic() - killed_at
    both = taken[0][1].keys() & taken[1][1].keys()
    k = max((frame for frame in both if frame < len(inputs)), default=-1)
    assert k >= kill_frame - max_lag, (k, kill_frame, len(inputs))
    assert taken[0][1][k] == taken[1][1][k]
    assert replay(PongGame(SEED), inputs[: k + 1]).hex() == taken[0][1][k]
    # Each route reached the record its own way.
    uploads = recording_server.stats.input_uploads
    assert uploads > 0 if route == "p2p" else uploads == 0
    print(
        f"{route}: killed at frame {kill_frame}, record read {read_after_s:.2f} s later with "
        f"{len(inputs)} frames, K {k}"
    )
    assert_no_page_errors(console_messages)
