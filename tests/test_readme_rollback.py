"""The README's "Build a two-player game" runs as written: its code blocks, in order, in one
namespace, then its ``Match`` driven by two sessions over a simulated 40 ms link."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_transport import P2PSession
from p2p_transport.protocol.faults import FaultConfig
from tests.fakes import FakeClock, FakeScheduler
from tests.rollback_sim import linked_sessions

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Build a two-player game"
#: Blocks that only make sense in the browser say so on their first line.
IN_THE_PAGE = "# in the page"


def section_code() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    blocks = re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)
    return [block for block in blocks if not block.startswith(IN_THE_PAGE)]


@dataclass
class StubTransport:
    """What the README's Match uses of a BrowserTransport."""

    session: P2PSession
    clock: FakeClock
    scheduler: FakeScheduler


def test_the_examples_run_as_written(capsys: Any) -> None:
    namespace: dict[str, Any] = {"__name__": "readme"}
    blocks = section_code()
    assert len(blocks) == 3  # the game, SyncTest, the frame loop
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert "deterministic over 200 frames, 788 re-simulated" in capsys.readouterr().out

    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    sessions, channels = linked_sessions(clock, scheduler, FaultConfig(delay_ms=20.0), seed=0)
    matches = [
        namespace["Match"](namespace["TugOfWar"](), StubTransport(sessions[p], clock, scheduler))
        for p in (0, 1)
    ]
    for match in matches:
        match.on_event("paired", {})
    for step in range(600):  # 10 s of virtual time, 4 ms at a time
        # Player 0 pulls all the time, player 1 two frames in three: the rope moves to player
        # 0's side and an episode ends every 60 frames or so.
        matches[0].action = 1
        matches[1].action = int(step % 3 != 0)
        scheduler.advance(1000 / 60)
        for channel in channels:
            channel.pump()
    records = [match.rollback.episodes for match in matches]
    assert len(records[0]) >= 5
    assert records[0][:5] == records[1][:5]
    for match in matches:
        assert match.rollback.stats()["desyncs"] == 0
