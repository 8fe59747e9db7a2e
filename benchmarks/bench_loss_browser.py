"""Fixed redundancy 3, fixed redundancy 10 and acknowledged redundancy, side by side in Chromium.

Run inside the loopback-only namespace:

    scripts/netns.sh .venv/bin/python benchmarks/bench_loss_browser.py [--frames 600] [--json PATH]

Each row is one headless demo run (two tabs, Python transport in Pyodide, a real DataChannel)
with the relay disabled (route ``p2p``) and seeded loss injected on each tab's outgoing
DataChannel, so every input either survives the loss on the DataChannel or is lost. The browser
counterpart of ``benchmarks/bench_loss.py``; it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from p2p_demo.launcher import run_headless

SCHEMES: Final = {
    "fixed 3": {"acked_inputs": False, "redundancy": 3},
    "fixed 10": {"acked_inputs": False, "redundancy": 10},
    "acked": {"acked_inputs": True, "redundancy": 3},
}
#: (loss, burst): independent loss, then the same long-run loss in bursts of 5 packets.
LINKS: Final = [(0.0, 1), (0.1, 1), (0.2, 1), (0.3, 1), (0.1, 5), (0.2, 5), (0.3, 5)]


def measure(scheme: str, loss: float, burst: int, frames: int, seed: int) -> dict[str, Any]:
    options = {
        "game": "scripted",
        **SCHEMES[scheme],
        "route": "p2p",
        "relay_inputs": False,
        "loss": loss,
        "burst": burst,
        "fault_seed": seed,
    }
    report = run_headless(frames, options)
    players = report["players"]
    return {
        "scheme": scheme,
        "loss": loss,
        "burst": burst,
        "inputs": 2 * frames,
        "lost": sum(p["lost"] for p in players),
        "extra_delay_frames_mean": max(p["extra_delay_frames_mean"] or 0.0 for p in players),
        "extra_delay_frames_p99": max(p["extra_delay_frames_p99"] or 0.0 for p in players),
        "bytes_per_packet": sum(p["p2p_bytes_per_packet"] for p in players) / len(players),
        "dropped_by_fault": sum(p.get("fault_dropped") or 0 for p in players),
    }


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'link':<16} {'scheme':<9} {'lost':>10} {'delay mean':>11} {'p99':>6}"
        f" {'bytes/packet':>13} {'dropped':>8}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        link = f"{row['loss']:.0%} " + ("independent" if row["burst"] == 1 else "bursts of 5")
        lines.append(
            f"{link:<16} {row['scheme']:<9} {row['lost']:>4}/{row['inputs']:<5}"
            f" {row['extra_delay_frames_mean']:>11.3f} {row['extra_delay_frames_p99']:>6.2f}"
            f" {row['bytes_per_packet']:>13.1f} {row['dropped_by_fault']:>8}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=600, help="frames each way (600)")
    parser.add_argument("--seed", type=int, default=1, help="fault seed of the first link (1)")
    parser.add_argument("--json", type=Path, default=Path("reports/bench_loss_browser.json"))
    args = parser.parse_args(argv)
    rows = []
    for index, (loss, burst) in enumerate(LINKS):
        for scheme in SCHEMES:
            rows.append(measure(scheme, loss, burst, args.frames, args.seed + index))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(
        f"\n{args.frames} frames each way; extra delay in frames (1/60 s) beyond the fastest input;"
        " bytes/packet over all DataChannel packets (pings and keepalives included);"
        " dropped = DataChannel packets the injected loss removed\n"
    )
    print(table(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
