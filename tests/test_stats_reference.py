"""docs/stats_reference.md names exactly the keys ``stats()`` and ``telemetry()`` return.

Each ``## `` section of the reference documents one method; its keys are every backticked name
in the first column of that section's table rows. The session's and the rollback layer's keys
come from calling them; ``BrowserTransport.stats()`` imports ``js``, so its keys are read from
its source: the string subscripts it assigns to ``out``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from p2p_transport import P2PSession
from p2p_transport.browser.options import TransportOptions
from p2p_transport.protocol.faults import FaultConfig
from p2p_transport.protocol.handoff import GameHandoff, HandoffHooks
from p2p_transport.rollback import RollbackSession
from tests.fakes import FakeChannel, FakeClock, FakeScheduler, FakeSocket
from tests.test_pairing import Tab
from tests.test_rollback import HistoryGame

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "stats_reference.md"
BROWSER_TRANSPORT = ROOT / "py_src" / "p2p_transport" / "browser" / "transport.py"


def documented_keys() -> dict[str, set[str]]:
    """Section title (the ``## `` heading) -> the keys in its tables' first column."""
    sections: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), set())
        elif line.startswith("| `") and current is not None:
            first_cell = line.split("|")[1]
            current.update(re.findall(r"`([^`]+)`", first_cell))
    return sections


def session() -> P2PSession:
    clock = FakeClock(1000.0)
    return P2PSession(
        0,
        1,
        lambda frame, action: None,
        clock=clock,
        scheduler=FakeScheduler(clock),
        channel=FakeChannel(),
        relay=FakeSocket(),
    )


def browser_stats_keys() -> set[str]:
    """The keys ``BrowserTransport.stats`` assigns as ``out["key"] = ...``."""
    tree = ast.parse(BROWSER_TRANSPORT.read_text())
    (method,) = (
        node
        for cls in tree.body
        if isinstance(cls, ast.ClassDef) and cls.name == "BrowserTransport"
        for node in cls.body
        if isinstance(node, ast.FunctionDef) and node.name == "stats"
    )
    keys = set()
    for node in ast.walk(method):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "out"
                    and isinstance(target.slice, ast.Constant)
                    and isinstance(target.slice.value, str)
                ):
                    keys.add(target.slice.value)
    return keys


def test_the_reference_has_its_six_sections() -> None:
    assert set(documented_keys()) == {
        "P2PSession.stats()",
        "BrowserTransport.stats()",
        "GameHandoff.stats()",
        "Pairing.stats()",
        "RollbackSession.stats()",
        "P2PSession.telemetry()",
    }


def test_session_stats_keys_match_the_reference() -> None:
    assert set(session().stats()) == documented_keys()["P2PSession.stats()"]


def test_session_telemetry_keys_match_the_reference() -> None:
    assert set(session().telemetry()) == documented_keys()["P2PSession.telemetry()"]


def test_rollback_stats_keys_match_the_reference() -> None:
    rollback = RollbackSession(HistoryGame(), session())
    assert set(rollback.stats()) == documented_keys()["RollbackSession.stats()"]


def test_handoff_stats_keys_match_the_reference() -> None:
    handoff = GameHandoff(HandoffHooks(str, print), returning=False, emit=print)
    assert set(handoff.stats()) == documented_keys()["GameHandoff.stats()"]


def test_browser_transport_stats_keys_match_the_reference() -> None:
    keys = browser_stats_keys()
    assert keys, "found no out[...] assignments in BrowserTransport.stats"
    assert keys == documented_keys()["BrowserTransport.stats()"]


@pytest.mark.parametrize(
    "section",
    ["P2PSession.stats()", "Pairing.stats()", "RollbackSession.stats()", "GameHandoff.stats()"],
)
def test_no_key_is_listed_twice_in_a_section(section: str) -> None:
    names: list[str] = []
    in_section = False
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("## "):
            in_section = line[3:].strip() == section
        elif in_section and line.startswith("| `"):
            names += re.findall(r"`([^`]+)`", line.split("|")[1])
    assert len(names) == len(set(names))


def test_pairing_stats_keys_match_the_reference() -> None:
    faulty = Tab(TransportOptions(room="reference", faults=FaultConfig(loss=0.1)))
    faulty.paired()
    faulty.open_channel()
    # Without faults the pairing has no fault_* counters; with them, once a channel is attached.
    assert set(faulty.pairing.stats()) == documented_keys()["Pairing.stats()"]
    fault_counters = {k for k in documented_keys()["Pairing.stats()"] if k.startswith("fault_")}
    assert set(Tab().pairing.stats()) == (
        documented_keys()["Pairing.stats()"] - fault_counters | {"fault_pump_running"}
    )
