"""A real environment under rollback: cogrid's Overcooked CrampedRoom (scripted cooks on both
sides) over the simulated link of tests/rollback_sim.py, each side's CPU time charged to its own
game loop (x2.5: a stand-in for Pyodide, which runs this code a few times slower).

    .venv/bin/python -m benchmarks.bench_envs [--frames N] [--json PATH]

Per configuration (30 and 60 Hz; 50 and 100 ms one way; 20% loss; CPU charged x1 and x2.5),
both sides together: charged CPU per tick (mean, p99, max, ms), ticks that started more than
half a frame late, stall frames (nothing simulated: the prediction window was full), rollbacks
and their largest depth, and the input delay each side used at the end. The layer chooses the
delay in 2..8 when it can (``delay_range``); an older layer plays a fixed delay of 2. The games
start 2 s after the sessions open, as after a page's pairing.
An episode of CrampedRoom ends at its 1000th step (cogrid's ``max_steps``). First, what the
adapter costs per call (CPU ms of this thread): a new frame (``advance``, observations
included), a re-simulated one (``resimulate``, none), ``save_state`` and ``load_state`` through
cogrid's ``get_state``/``set_state``, and ``copy.deepcopy`` of the whole env (what an env without
them costs, twice per rollback). Figures only; nothing passes or fails. The goal on this
machine: at 60 Hz, 100 ms, x2.5, no stall frame and at most 1% of ticks late.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2p_transport.rollback import RollbackSession
from tests.cogrid_play import CogridGame, scripted_action
from tests.rollback_sim import simulate_games

RATES = (30.0, 60.0)
ONE_WAY_MS = (50.0, 100.0)
CHARGES = (1.0, 2.5)
LOSS = 0.2
DELAY_RANGE = (2, 8)
#: The games start 2 s after the sessions open, as a page's do after pairing and the
#: DataChannel's validation: the RTT is measured by then (pings every 500 ms).
START_MS = 2000.0


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def _per_call_ms(call: Callable[[int], object], calls: int) -> float:
    started = time.thread_time()
    for step in range(calls):
        call(step)
    return (time.thread_time() - started) / calls * 1000.0


def adapter_costs(calls: int = 300) -> dict[str, float]:
    game = CogridGame()
    start = game.save_state()

    def inputs(step: int) -> tuple[int, int]:
        return (scripted_action(0, step), scripted_action(1, step))

    costs = {"advance": _per_call_ms(lambda step: game.advance(inputs(step)), calls)}
    game.load_state(start)
    resimulate = getattr(game, "resimulate", game.advance)
    costs["resimulate"] = _per_call_ms(lambda step: resimulate(inputs(step)), calls)
    costs["save_state"] = _per_call_ms(lambda step: game.save_state(), calls)
    costs["load_state"] = _per_call_ms(lambda step: game.load_state(start), calls)
    costs["deepcopy_env"] = _per_call_ms(lambda step: copy.deepcopy(game.env), calls // 10)
    return {name: round(ms, 3) for name, ms in costs.items()}


def run(fps: float, one_way_ms: float, charge: float, frames: int) -> dict[str, Any]:
    options: dict[str, Any] = {"input_delay": 2}
    if "delay_range" in inspect.signature(RollbackSession).parameters:
        options["delay_range"] = DELAY_RANGE
    loops = simulate_games(
        CogridGame,
        scripted_action,
        frames=frames,
        loss=LOSS,
        one_way_ms=one_way_ms,
        seed=1,
        fps=fps,
        charge=charge,
        start_ms=START_MS,
        **options,
    )
    cpu = [ms for loop in loops.values() for ms in loop.cpu_ms]
    stats = [loop.rollback.stats() for loop in loops.values()]
    ticks = sum(loop.ticks for loop in loops.values())
    return {
        "fps": fps,
        "one_way_ms": one_way_ms,
        "charge": charge,
        "ticks": ticks,
        "cpu_mean_ms": round(sum(cpu) / len(cpu), 2),
        "cpu_p99_ms": round(_percentile(cpu, 0.99), 2),
        "cpu_max_ms": round(max(cpu), 2),
        "late": sum(loop.late for loop in loops.values()),
        "stalled": sum(s["stall_frames"] for s in stats),
        "rollbacks": sum(s["rollbacks"] for s in stats),
        "max_depth": max(s["max_rollback_depth"] for s in stats),
        "input_delay": [s["input_delay"] for s in stats],
        "desyncs": sum(s["desyncs"] for s in stats),
        "finished": all(loop.rollback.episode_over for loop in loops.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1800)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    costs = adapter_costs()
    print("CPU ms per call: " + ", ".join(f"{name} {ms}" for name, ms in costs.items()))
    rows: list[dict[str, Any]] = []
    header = (
        f"{'Hz':>4} {'1-way':>6} {'CPUx':>5} {'ticks':>6} {'mean':>6} {'p99':>6} {'max':>6} "
        f"{'late':>5} {'stall':>6} {'rollb':>6} {'depth':>5} {'delay':>6} {'desync':>6}"
    )
    print(header)
    for fps in RATES:
        for one_way in ONE_WAY_MS:
            for charge in CHARGES:
                row = run(fps, one_way, charge, args.frames)
                rows.append(row)
                print(
                    f"{fps:>4.0f} {one_way:>6.0f} {charge:>5.1f} {row['ticks']:>6} "
                    f"{row['cpu_mean_ms']:>6.2f} {row['cpu_p99_ms']:>6.2f} "
                    f"{row['cpu_max_ms']:>6.2f} "
                    f"{row['late']:>5} {row['stalled']:>6} {row['rollbacks']:>6} "
                    f"{row['max_depth']:>5} {'/'.join(map(str, row['input_delay'])):>6} "
                    f"{row['desyncs']:>6}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps({"adapter_ms": costs, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
