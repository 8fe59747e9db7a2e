"""The rollback layer in figures: what each input delay costs at each round trip, and what the
layer costs per frame under CPython and under Pyodide in Chromium, side by side.

    scripts/netns.sh .venv/bin/python -m benchmarks.bench_rollback [--json PATH]

1. A table a researcher can choose the input delay from: two Pong matches (the demo's game, bots
   on both sides) over the simulated link of tests/rollback_sim.py at round trips of 0, 50, 100
   and 200 ms and input delays of 0, 2 and 4 frames: rollbacks per second, their mean and
   largest depth, frames predicted, stall frames. Virtual time, seeded: the same on any machine.
2. Microseconds per frame per player: two RollbackSessions over bench_frame's two P2PSessions
   (default config, in-memory channels that deliver a frame late), with a game whose own work
   is a few integer operations (its cost is measured apart and printed). Timed first with the
   transport alone (bench_frame's figure), then with the rollback layer on top; the difference
   is the layer's own work. The same source runs under CPython here and under Pyodide
   in a Chromium tab of the demo page, in one run.

Figures only; nothing passes or fails on speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from statistics import mean
from typing import Any

from benchmarks.bench_frame import FRAME_SOURCE
from benchmarks.in_page import run_in_page
from tests.rollback_sim import simulate_matches

ROUND_TRIPS_MS = (0.0, 50.0, 100.0, 200.0)
INPUT_DELAYS = (0, 2, 4)
TABLE_FRAMES = 1800
COST_FRAMES = 3000

# Built on bench_frame's sessions and in-memory channels (the default SessionConfig, both paths);
# runs as it is under CPython (exec) and in the browser (pyodide.runPython); defines cost(frames).
COST_SOURCE = (
    FRAME_SOURCE
    + """
from p2p_transport.rollback import RollbackSession


class TinyGame:
    def __init__(self):
        self.state = 1

    def save_state(self):
        return self.state

    def load_state(self, state):
        self.state = state

    def advance(self, inputs):
        self.state = (self.state * 31 + inputs[0] * 7 + inputs[1]) & 0xFFFFFFFF

    def checksum(self):
        return self.state.to_bytes(4, "big")


def with_rollback(frames):
    # Input delay 0 and packets delivered a frame late: every frame is predicted, and each
    # change of the peer's action (every 8 frames) rolls one frame back.
    channels, sockets = [QueueChannel(), QueueChannel()], [QueueSocket(), QueueSocket()]
    sessions = make_sessions(channels, sockets)
    layers = [RollbackSession(TinyGame(), s, input_delay=0) for s in sessions]
    p2p = [s.edge.on_message for s in sessions]
    relay = [s.edge.on_relay_message for s in sessions]
    start = time.perf_counter()
    for frame in range(frames):
        for player, layer in enumerate(layers):
            layer.advance_frame(action(player, frame))
        deliver([c.queue for c in channels], p2p)
        deliver([s.queue for s in sockets], relay)
    elapsed = (time.perf_counter() - start) / frames / 2 * 1e6
    return elapsed, layers[0].stats()


def game_alone(frames):
    game, inputs = TinyGame(), (1, 2)
    start = time.perf_counter()
    for _ in range(frames):
        game.save_state()
        game.advance(inputs)
    return (time.perf_counter() - start) / frames * 1e6


def cost(frames):
    with_rollback(300)  # warm up
    transport = fake_channels(frames, runs=3)
    total, stats = min((with_rollback(frames) for _ in range(3)), key=lambda run: run[0])
    return {
        "transport_us": transport,
        "with_rollback_us": total,
        "layer_us": total - transport,
        "game_us": game_alone(frames),
        "rollbacks": stats["rollbacks"],
        "frames_resimulated": stats["frames_resimulated"],
        "frames": frames,
    }
"""
)


def delay_table() -> list[dict[str, Any]]:
    rows = []
    for rtt in ROUND_TRIPS_MS:
        for delay in INPUT_DELAYS:
            run = simulate_matches(
                one_way_ms=rtt / 2, episode_frames=TABLE_FRAMES, input_delay=delay, seed=1
            )
            stats = [match.rollback.stats() for match in run.matches.values()]
            seconds = TABLE_FRAMES / 60
            depths = [
                int(depth) * count for s in stats for depth, count in s["rollback_depths"].items()
            ]
            rollbacks = sum(s["rollbacks"] for s in stats)
            rows.append(
                {
                    "rtt_ms": rtt,
                    "input_delay": delay,
                    "rollbacks_per_s": rollbacks / len(stats) / seconds,
                    "mean_depth": sum(depths) / rollbacks if rollbacks else 0.0,
                    "max_depth": max(s["max_rollback_depth"] for s in stats),
                    "predicted_pct": mean(s["frames_predicted"] for s in stats)
                    / TABLE_FRAMES
                    * 100,
                    "stall_frames": mean(s["stall_frames"] for s in stats),
                    "agree": run.matches["a"].records() == run.matches["b"].records(),
                }
            )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'RTT ms':>7} {'delay':>6} {'rollbacks/s':>12} {'mean depth':>11} {'max':>4}"
        f" {'predicted %':>12} {'stall frames':>13} {'agree':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['rtt_ms']:>7.0f} {r['input_delay']:>6} {r['rollbacks_per_s']:>12.1f}"
            f" {r['mean_depth']:>11.2f} {r['max_depth']:>4} {r['predicted_pct']:>12.1f}"
            f" {r['stall_frames']:>13.1f} {r['agree']!s:>6}"
        )
    return "\n".join(lines)


def cost_in_cpython(frames: int) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(COST_SOURCE, namespace)  # the same text the browser runs
    result: dict[str, Any] = namespace["cost"](frames)
    return result


def cost_in_pyodide(frames: int) -> dict[str, Any]:
    code = COST_SOURCE + f"\nimport json\njson.dumps(cost({frames}))"
    result: dict[str, Any] = json.loads(run_in_page(code))
    return result


def format_cost(cpython: dict[str, Any], pyodide: dict[str, Any]) -> str:
    rows = [
        ("transport alone", "transport_us"),
        ("transport + rollback layer", "with_rollback_us"),
        ("the rollback layer's own work", "layer_us"),
        ("the game's save_state + advance", "game_us"),
    ]
    header = f"{'us per frame per player':<34} {'CPython':>9} {'Pyodide':>9} {'ratio':>7}"
    lines = [header, "-" * len(header)]
    for label, key in rows:
        ratio = pyodide[key] / cpython[key] if cpython[key] > 0 else float("nan")
        lines.append(f"{label:<34} {cpython[key]:>9.1f} {pyodide[key]:>9.1f} {ratio:>7.2f}")
    lines.append(
        f"(per run: {cpython['frames']} frames, {cpython['rollbacks']} rollbacks and "
        f"{cpython['frames_resimulated']} frames re-simulated per side)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=Path("reports/bench_rollback.json"))
    parser.add_argument(
        "--no-browser", action="store_true", help="skip the Pyodide half of the cost figures"
    )
    args = parser.parse_args(argv)
    rows = delay_table()
    print(f"Pong over the simulated link, {TABLE_FRAMES} frames, both sides' mean:")
    print(format_table(rows))
    cpython = cost_in_cpython(COST_FRAMES)
    pyodide = None if args.no_browser else cost_in_pyodide(COST_FRAMES)
    print()
    if pyodide is None:
        print(json.dumps(cpython, indent=1))
    else:
        print(format_cost(cpython, pyodide))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "python": sys.version,
                "machine": platform.machine(),
                "delay_table": rows,
                "cost_cpython": cpython,
                "cost_pyodide": pyodide,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
