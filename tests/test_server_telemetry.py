"""The server keeps the telemetry records pages send: in parts, durably, one file per room and
player, and says why when it does not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from p2p_server.server import ServerOptions, ServerThread
from p2p_server.telemetry_store import STALE_SAVE_S, TelemetryError, TelemetryStore
from p2p_transport.wire.signaling import (
    MAX_TELEMETRY_CHARS,
    SAVE_TELEMETRY_EVENT,
    TELEMETRY_PART_CHARS,
    TELEMETRY_SAVED_EVENT,
    telemetry_parts,
)
from tests.test_server import Peer, pair, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def keeping(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(options=ServerOptions(data_dir=tmp_path / "data")) as server:
        yield server


def connect_to(server: ServerThread, peers: list[Peer]) -> Callable[[str], Peer]:
    def make(name: str) -> Peer:
        peer = Peer(server.url, name)
        peers.append(peer)
        return peer

    return make


def save(peer: Peer, save_id: str, record: object) -> dict[str, object]:
    for part in telemetry_parts(save_id, json.dumps(record)):
        peer.emit(SAVE_TELEMETRY_EVENT, part)
    answer: dict[str, object] = peer.expect(TELEMETRY_SAVED_EVENT)
    return answer


def test_a_record_in_parts_is_kept_whole_per_room_and_player(
    keeping: ServerThread, peers: list[Peer], tmp_path: Path
) -> None:
    a, b = pair(connect_to(keeping, peers), "study/../room 1")
    # Big enough for three parts.
    record = {"telemetry": {"rows": ["x" * 100] * (2 * TELEMETRY_PART_CHARS // 100)}, "n": 1}
    assert len(telemetry_parts("s1", json.dumps(record))) == 3
    answer = save(b, "s1", record)
    path = tmp_path / "data" / "study%2F..%2Froom%201" / "player-1.json"  # never a traversal
    file = "study%2F..%2Froom%201/player-1.json"
    assert answer == {"save_id": "s1", "bytes": path.stat().st_size, "file": file}
    kept = json.loads(path.read_text())
    assert kept["room"] == "study/../room 1"
    assert kept["player_index"] == 1
    assert kept["record"] == record
    assert kept["saved_at_unix_ms"] > 1.7e12
    # A second save replaces the first: one file per room and player.
    save(b, "s2", {"n": 2})
    assert json.loads(path.read_text())["record"] == {"n": 2}
    save(a, "s3", {"n": 3})
    assert json.loads(path.with_name("player-0.json").read_text())["record"] == {"n": 3}
    assert not list(path.parent.glob("*.tmp"))
    assert keeping.stats.telemetry_saved == 3


@pytest.mark.parametrize(
    ("part", "reason"),
    [
        ({"part": 1, "parts": 2, "data": "{}"}, "expected part 0 of 2, got part 1 of 2"),
        ({"part": 0, "parts": 0, "data": "{}"}, "'parts' must be a positive int"),
        ({"part": 0, "parts": 1, "data": 7}, "'data' must be a string"),
        ({"part": 0, "parts": 1, "data": "[1, 2]"}, "the record must be a JSON object"),
        ({"part": 0, "parts": 1, "data": "{nope"}, "the record is not JSON"),
        (
            {"part": 0, "parts": 1, "data": "x" * (TELEMETRY_PART_CHARS + 1)},
            "'data' must be a string of at most",
        ),
    ],
)
def test_a_bad_part_is_answered_with_the_reason(
    keeping: ServerThread, peers: list[Peer], part: dict[str, object], reason: str
) -> None:
    a, _ = pair(connect_to(keeping, peers), "bad-parts")
    a.emit(SAVE_TELEMETRY_EVENT, {"save_id": "x", **part})
    answer = a.expect(TELEMETRY_SAVED_EVENT)
    assert answer["save_id"] == "x"
    assert reason in answer["error"]
    # The connection and the next save are fine.
    assert "error" not in save(a, "y", {"ok": True})


def test_a_record_over_the_limit_is_refused_before_it_is_sent() -> None:
    with pytest.raises(ValueError, match="over the 16777216 a server keeps"):
        telemetry_parts("big", "x" * (MAX_TELEMETRY_CHARS + 1))


def test_before_joining_and_without_a_data_dir_the_reason_is_said(
    keeping: ServerThread, peers: list[Peer]
) -> None:
    loner = connect_to(keeping, peers)("loner")
    loner.emit(SAVE_TELEMETRY_EVENT, {"save_id": "early", "part": 0, "parts": 1, "data": "{}"})
    assert "join a room first" in loner.expect(TELEMETRY_SAVED_EVENT)["error"]
    loner.emit(SAVE_TELEMETRY_EVENT, {"part": 0})  # no save id to answer: a plain error
    assert "'save_id' must be a string" in loner.expect("error")["message"]
    with ServerThread() as keeps_nothing:
        peer = Peer(keeps_nothing.url, "p")
        peers.append(peer)
        peer.join("r")
        answer = save(peer, "s", {"n": 1})
        assert answer == {
            "save_id": "s",
            "error": "this server keeps no telemetry (start it with --data-dir DIR)",
        }


def test_a_client_that_leaves_mid_save_leaves_nothing_behind(
    keeping: ServerThread, peers: list[Peer], tmp_path: Path
) -> None:
    a, _ = pair(connect_to(keeping, peers), "leaver")
    a.emit(SAVE_TELEMETRY_EVENT, {"save_id": "half", "part": 0, "parts": 2, "data": "{"})
    a.close()
    relay = keeping.relay
    assert relay.telemetry is not None
    wait_until(lambda: relay.telemetry.unfinished_saves == 0)  # type: ignore[union-attr]
    assert not (tmp_path / "data" / "leaver").exists()


def test_unfinished_records_are_bounded_for_the_whole_process(
    keeping: ServerThread, peers: list[Peer]
) -> None:
    store = keeping.relay.telemetry
    assert store is not None
    # Room for three parts, all clients together (the default is four records of the largest
    # size).
    store.max_pending_chars = 3 * TELEMETRY_PART_CHARS
    hoarder, other = pair(connect_to(keeping, peers), "hoard")
    part = "x" * TELEMETRY_PART_CHARS
    for n in range(3):
        hoarder.emit(SAVE_TELEMETRY_EVENT, {"save_id": "h", "part": n, "parts": 9, "data": part})
    wait_until(lambda: keeping.stats.snapshot()["telemetry_chars_pending"] == 3 * len(part))
    # The budget is full: another page's part is refused, with the reason, and counted.
    other.emit(SAVE_TELEMETRY_EVENT, {"save_id": "o", "part": 0, "parts": 1, "data": "{}"})
    answer = other.expect(TELEMETRY_SAVED_EVENT)
    assert "too many unfinished records" in answer["error"]
    assert keeping.stats.refusals == {"telemetry_busy": 1}
    # The hoarder leaves: what it held is freed, and the other page saves.
    hoarder.close()
    assert other.expect("peer_left") == {"player_index": 0}
    wait_until(lambda: keeping.stats.snapshot()["telemetry_chars_pending"] == 0)
    assert save(other, "o2", {"ok": True})["bytes"]


def test_one_client_holds_at_most_one_largest_record_unfinished(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    part = "x" * TELEMETRY_PART_CHARS
    per_record = MAX_TELEMETRY_CHARS // TELEMETRY_PART_CHARS
    for n in range(per_record):
        answer = asyncio.run(store.add_part("c", "r", 0, part_of("a", n, per_record + 1, part)))
        assert answer is None
    # A second save of the same client would take it past one largest record.
    with pytest.raises(TelemetryError, match="this client's unfinished records"):
        asyncio.run(store.add_part("c", "r", 0, part_of("b", 0, 2, part)))
    # Another client is not held back by it.
    assert asyncio.run(store.add_part("d", "r", 1, part_of("a", 0, 2, part))) is None


def test_an_abandoned_save_makes_room_for_a_live_one(tmp_path: Path) -> None:
    now = [0.0]
    store = TelemetryStore(
        tmp_path, max_pending_chars=2 * TELEMETRY_PART_CHARS, clock=lambda: now[0]
    )
    part = "x" * TELEMETRY_PART_CHARS
    asyncio.run(store.add_part("hoarder", "r", 0, part_of("h", 0, 9, part)))
    asyncio.run(store.add_part("hoarder", "r", 0, part_of("h", 1, 9, part)))
    # Within STALE_SAVE_S the hoarder's save is live: the budget is full.
    now[0] = STALE_SAVE_S
    with pytest.raises(TelemetryError, match="too many unfinished records") as refused:
        asyncio.run(store.add_part("other", "r", 1, part_of("o", 0, 2, part)))
    assert refused.value.reason == "telemetry_busy"
    # Past it, the abandoned save is dropped for the live one, and counted.
    now[0] = STALE_SAVE_S + 0.5
    assert asyncio.run(store.add_part("other", "r", 1, part_of("o", 0, 2, part))) is None
    assert store.stale_saves_dropped == 1
    assert store.pending_chars == len(part) and store.unfinished_saves == 1
    # The hoarder's next part finds its save gone: it is told, as for any bad part.
    with pytest.raises(TelemetryError, match="expected part 0"):
        asyncio.run(store.add_part("hoarder", "r", 0, part_of("h", 2, 9, part)))


def part_of(save_id: str, part: int, parts: int, data: str) -> dict[str, object]:
    return {"save_id": save_id, "part": part, "parts": parts, "data": data}
