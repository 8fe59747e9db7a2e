"""Fixed redundancy 3, fixed redundancy 10 and acknowledged redundancy, side by side, over the same
seeded lossy links.

    .venv/bin/python -m benchmarks.bench_loss [--frames 10000] [--seed 1] [--json PATH]

(run from the project root: the simulation engine, tests/link_sim.py, lives with the tests.)

Two sessions step one input per 60 Hz frame each way over DataChannels 20 ms long each way
(a 40 ms round trip), P2P only. The links drop packets independently at 0/10/20/30%, or in bursts
of 5 consecutive packets at the same long-run rates. After the last frame the link recovers and the
game pauses for 2 s. For each scheme and link, over both directions:

- lost: inputs the peer's game never received (of 2 x frames);
- extra delay: how many frames later than on a lossless link each received input arrived (mean,
  99th percentile by nearest rank, maximum);
- bytes/packet: the mean size of the input packets sent (version-1 packets, and for the acked
  scheme its 0x20 packets, including the few sent while the sessions negotiate).

The simulation is deterministic: the same arguments print the same table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from p2p_transport import SessionConfig
from p2p_transport.protocol.rtt import nearest_rank
from tests.link_sim import ONE_WAY_MS, link, simulate

SCHEMES = {
    "fixed 3": SessionConfig(redundancy=3, acked_inputs=False, relay_inputs=False),
    "fixed 10": SessionConfig(redundancy=10, acked_inputs=False, relay_inputs=False),
    "acked": SessionConfig(redundancy=3, relay_inputs=False),
}
LINKS = [(loss, 1) for loss in (0.0, 0.1, 0.2, 0.3)] + [(loss, 5) for loss in (0.1, 0.2, 0.3)]


def measure(scheme: str, loss: float, burst: int, frames: int, seed: int) -> dict[str, Any]:
    run = simulate(SCHEMES[scheme], link(loss, burst), frames=frames, seed=seed)
    delays: list[float] = []
    sizes: list[int] = []
    lost = 0
    for direction in run.directions.values():
        if direction.errors:
            raise AssertionError(f"{scheme} at {loss:.0%}: {direction.errors[:3]}")
        lost += frames - len(direction.delivered_at)
        delays += [direction.extra_delay_frames(frame) for frame in direction.delivered_at]
        sizes += [packet.size for packet in direction.sent]
    return {
        "scheme": scheme,
        "loss": loss,
        "burst": burst,
        "inputs": 2 * frames,
        "lost": lost,
        "delay_mean_frames": sum(delays) / len(delays),
        "delay_p99_frames": nearest_rank(delays, 0.99),
        "delay_max_frames": max(delays),
        "bytes_per_packet": sum(sizes) / len(sizes),
        "input_packets": len(sizes),
    }


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'link':<16} {'scheme':<9} {'lost':>12} {'delay mean':>11} {'p99':>5} {'max':>5}"
        f" {'bytes/packet':>13}"
    )
    lines = [header, "-" * len(header)]
    previous_link = None
    for row in rows:
        name = f"{row['loss']:.0%} " + ("independent" if row["burst"] == 1 else "bursts of 5")
        if previous_link is not None and name != previous_link:
            lines.append("")
        previous_link = name
        lines.append(
            f"{name:<16} {row['scheme']:<9} {row['lost']:>5}/{row['inputs']:<6}"
            f" {row['delay_mean_frames']:>11.3f} {row['delay_p99_frames']:>5.0f}"
            f" {row['delay_max_frames']:>5.0f} {row['bytes_per_packet']:>13.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=10_000, help="frames each way (10000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first link (1)")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    rows = [
        measure(scheme, loss, burst, args.frames, args.seed + index)
        for index, (loss, burst) in enumerate(LINKS)
        for scheme in SCHEMES
    ]
    print(
        f"{args.frames} frames each way at 60 Hz, {ONE_WAY_MS:.0f} ms one way, P2P only, "
        f"seed {args.seed}; delays in frames beyond a lossless link\n"
    )
    print(table(rows))
    if args.json is not None:
        report = {
            "frames": args.frames,
            "seed": args.seed,
            "one_way_ms": ONE_WAY_MS,
            "python": platform.python_version(),
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
