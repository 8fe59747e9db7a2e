"""Three server processes behind nginx (p2p_server.cluster): rooms spread over all of them, every
pair relays with no drops, and when one process dies its players reconnect, get their slots back
and relay again while the other pairs notice nothing. Real nginx, real processes, loopback only;
the load is 60 pairs at 10 Hz for a few seconds (what a loaded 2-core machine drives reliably
beside three servers and nginx; the 60 Hz capacity is benchmarks/bench_server.py's to print)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from benchmarks.load_clients import Player, pair_address, play
from p2p_server.cluster import Cluster

pytestmark = pytest.mark.timeout(180)

PAIRS = 60
RATE_HZ = 10.0
BEFORE_KILL_S = 4.0
AFTER_KILL_S = 8.0


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as response:
        result: dict[str, Any] = json.load(response)
    return result


async def run(cluster: Cluster) -> tuple[list[Player], list[int], dict[str, int]]:
    players = [Player(f"room-{i // 2}", pair_address(i // 2)) for i in range(2 * PAIRS)]
    start = asyncio.Event()
    stop_at = [float("inf")]
    tasks = [
        asyncio.create_task(play(cluster.url, p, start, stop_at, i / len(players), RATE_HZ, False))
        for i, p in enumerate(players)
    ]
    await asyncio.wait_for(asyncio.gather(*(p.paired.wait() for p in players)), 60)
    start.set()
    await asyncio.sleep(BEFORE_KILL_S)
    rooms = [
        (await asyncio.to_thread(stats, cluster.server_url(i)))["rooms_open"]
        for i in range(cluster.count)
    ]
    indices = {p.room + f"/{n}": p.player_index or 0 for n, p in enumerate(players)}
    await asyncio.to_thread(cluster.kill, 0)
    stop_at[0] = time.perf_counter() + AFTER_KILL_S
    await asyncio.gather(*tasks)
    return players, rooms, indices


def test_rooms_spread_over_three_processes_and_survive_losing_one() -> None:
    # The load in a thread of its own: a session's Playwright keeps an event loop running in
    # this one.
    with Cluster(processes=3) as cluster, ThreadPoolExecutor(1) as thread:
        players, rooms, indices = thread.submit(asyncio.run, run(cluster)).result()
    assert [p.failed for p in players if p.failed] == []
    assert sum(rooms) == PAIRS
    assert all(count > 0 for count in rooms), rooms  # every process had rooms

    moved = [p for p in players if p.reconnects]
    stayed = [p for p in players if not p.reconnects]
    # Exactly the killed process's players reconnected, each once.
    assert len(moved) == 2 * rooms[0]
    assert all(p.reconnects == 1 for p in moved)
    # They got their slots back and relayed again on the new process.
    for n, p in enumerate(players):
        assert p.player_index == indices[p.room + f"/{n}"]
    assert all(p.received > p.received_at_reconnect for p in moved)
    # The other pairs lost nothing.
    by_room: dict[str, list[Player]] = {}
    for p in stayed:
        by_room.setdefault(p.room, []).append(p)
    assert len(by_room) == PAIRS - rooms[0]
    for a, b in by_room.values():
        assert (a.sent, b.sent) == (b.received, a.received), a.room
