"""What a frame costs each player in rooms of 2, 3, 4 and 8, under CPython and under Pyodide.

    scripts/netns.sh .venv/bin/python -m benchmarks.bench_mesh [--frames 1200] [--json PATH]

Each player of a room of N holds a ``P2PSession`` with every other (default ``SessionConfig``:
the parallel route, acked inputs) and a ``RollbackSession`` over them, playing a small
deterministic N-player game; every channel is an in-memory queue (no FFI, no network), the
relay one queue per link as the mesh addresses it. A frame of a player is its
``advance_frame`` (its input sent to every peer on both paths) and handling every packet its
peers sent it that frame; the figure is the whole room's Python time over frames x N. The same
source runs under CPython here and under Pyodide in a Chromium tab of the demo page. Also
printed: the bytes per second one player sends at 60 Hz (both paths, every link).

Each figure is the best of several runs (the machine is shared); nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any, Final

from benchmarks.in_page import run_in_page

#: The room sizes measured: a pair, the smallest mesh, the issue's 4, and the largest room.
SIZES: Final = (2, 3, 4, 8)

# Runs as it is under CPython (exec) and in the browser (pyodide.runPythonAsync).
MESH_SOURCE = '''
import hashlib
import time

from p2p_transport import P2PSession
from p2p_transport.rollback import RollbackSession

FPS = 60


class NullScheduler:
    def set_interval(self, callback, interval_ms):
        return object()

    def clear_interval(self, handle):
        pass


class Queue:
    """An open DataChannel (send) or a connected relay socket (emit) whose packets wait here."""

    readyState = "open"
    bufferedAmount = 0
    connected = True

    def __init__(self):
        self.packets = []
        self.sent_bytes = 0

    def send(self, data):
        self.packets.append(data)
        self.sent_bytes += len(data)

    def emit(self, event, data):
        self.send(data)


class SumGame:
    """Each player's action adds to its own counter; the state is the counters."""

    def __init__(self, players):
        self.counters = (0,) * players

    def save_state(self):
        return self.counters

    def load_state(self, state):
        self.counters = state

    def advance(self, inputs):
        self.counters = tuple((c * 31 + a) % 1000003 for c, a in zip(self.counters, inputs))

    def checksum(self):
        return hashlib.blake2b(repr(self.counters).encode(), digest_size=8).digest()


def room(players):
    """Every player's rollback session, and every link's two queues (channel, relay) keyed by
    (sender, receiver) with the receiving session's handlers."""
    clock = lambda: time.monotonic() * 1000.0
    sessions = {}
    links = []
    for me in range(players):
        for peer in range(players):
            if peer == me:
                continue
            channel, relay = Queue(), Queue()
            session = P2PSession(me, peer, lambda frame, action: None, clock=clock,
                                 scheduler=NullScheduler(), channel=channel, relay=relay)
            session.edge.on_open()
            session.edge.start_watchdog()
            sessions[(me, peer)] = session
            links.append((me, peer, channel, relay))
    rollbacks = [
        RollbackSession(SumGame(players), {peer: sessions[(me, peer)]
                                           for peer in range(players) if peer != me})
        for me in range(players)
    ]
    routes = [(channel, relay, sessions[(peer, me)].edge) for me, peer, channel, relay in links]
    return rollbacks, routes


def run(players, frames):
    rollbacks, routes = room(players)
    start = time.perf_counter()
    for frame in range(frames):
        for player, rollback in enumerate(rollbacks):
            rollback.advance_frame((frame // 8 + player) % 4)
        for channel, relay, edge in routes:
            packets, channel.packets = channel.packets, []
            for data in packets:
                edge.on_message(data)
            packets, relay.packets = relay.packets, []
            for data in packets:
                edge.on_relay_message(data)
    elapsed = time.perf_counter() - start
    checksums = {r.game.checksum() for r in rollbacks}
    assert len({r.confirmed_frame for r in rollbacks}) == 1 and len(checksums) == 1
    sent = sum(channel.sent_bytes + relay.sent_bytes for channel, relay, _ in routes)
    return {
        "us_per_player_frame": elapsed / frames / players * 1e6,
        "bytes_per_s_per_player": sent / frames / players * FPS,
    }


def measure(frames, sizes, runs=3):
    out = {}
    for players in sizes:
        run(players, 200)  # warm up
        results = [run(players, frames) for _ in range(runs)]
        best = min(results, key=lambda r: r["us_per_player_frame"])
        out[str(players)] = best
    return out
'''


def in_cpython(frames: int) -> dict[str, dict[str, float]]:
    namespace: dict[str, Any] = {}
    exec(MESH_SOURCE, namespace)  # the same text the browser runs
    result: dict[str, dict[str, float]] = namespace["measure"](frames, SIZES)
    return result


def in_pyodide(frames: int) -> dict[str, dict[str, float]]:
    code = MESH_SOURCE + f"\nimport json\njson.dumps(measure({frames}, {SIZES!r}))"
    result: dict[str, dict[str, float]] = json.loads(run_in_page(code))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1200, help="frames per run (1200)")
    parser.add_argument("--json", type=Path, default=Path("reports/bench_mesh.json"))
    parser.add_argument("--no-browser", action="store_true", help="CPython only")
    args = parser.parse_args(argv)
    results = {"CPython " + platform.python_version(): in_cpython(args.frames)}
    if not args.no_browser:
        results["Pyodide in Chromium"] = in_pyodide(args.frames)
    print(f"per player and frame, rollback + transport, fake channels, {args.frames} frames:")
    print(f"{'':24}" + "".join(f"{f'N = {n}':>22}" for n in SIZES))
    for where, figures in results.items():
        two = figures["2"]["us_per_player_frame"]
        costs = [figures[str(n)]["us_per_player_frame"] for n in SIZES]
        cells = "".join(f"{cost:9.1f} us ({cost / two:4.2f}x)" for cost in costs)
        print(f"{where:24}{cells}")
    first = next(iter(results.values()))
    print(
        f"{'bytes/s sent per player':24}"
        + "".join(f"{first[str(n)]['bytes_per_s_per_player']:22.0f}" for n in SIZES)
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"frames": args.frames, **results}, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
