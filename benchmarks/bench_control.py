"""Reliable control messages over seeded lossy links: how long each takes to be acknowledged.

    .venv/bin/python -m benchmarks.bench_control [--messages 100] [--seeds 10] [--json PATH]

(run from the project root: the simulation engine, tests/control_sim.py, lives with the tests.)

Two sessions step inputs at 60 Hz over DataChannels 20 ms long each way (a 40 ms round trip) and,
from the third second on (once pings have measured the RTT), each sends a control message every
50 ms. The links drop packets
independently at 0/10/20/30%; "P2P only" has no relay, "P2P + relay" has a relay 50 ms long each
way that drops as many, and control messages go on both. For each link, over both directions and
every seed: the delivery time (first send to ack, in simulated ms, as ``stats()`` reports it) at the
50th and 99th percentile (nearest rank) and at most, the time to the peer's callback
(p50/p99), and resends per message. Every message must arrive exactly once and in order, or the
benchmark fails. The simulation is deterministic: the same arguments print the same table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from p2p_transport.protocol.rtt import nearest_rank
from tests.control_sim import RELAY_ONE_WAY_MS, simulate_control
from tests.link_sim import ONE_WAY_MS

LINKS = [(loss, relay) for relay in (False, True) for loss in (0.0, 0.1, 0.2, 0.3)]


def measure(loss: float, relay: bool, messages: int, seeds: int) -> dict[str, Any]:
    acked: list[float] = []
    one_way: list[float] = []
    resends = 0
    for seed in range(1, seeds + 1):
        run = simulate_control(
            loss, seed=seed, messages=messages, relay_loss=loss if relay else None
        )
        for side, direction in run.directions.items():
            if direction.received != list(range(messages)):
                raise AssertionError(f"{loss:.0%} seed {seed} side {side}: not exactly once")
            one_way += direction.one_way_ms()
        acked += run.delivery_ms()
        resends += sum(s.control.counters.retransmits for s in run.sessions.values())
    return {
        "loss": loss,
        "relay": relay,
        "messages": 2 * messages * seeds,
        "delivery_p50_ms": nearest_rank(acked, 0.5),
        "delivery_p99_ms": nearest_rank(acked, 0.99),
        "delivery_max_ms": max(acked),
        "callback_p50_ms": nearest_rank(one_way, 0.5),
        "callback_p99_ms": nearest_rank(one_way, 0.99),
        "resends_per_message": resends / (2 * messages * seeds),
    }


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'link':<20} {'messages':>8} {'ack p50':>8} {'p99':>6} {'max':>6}"
        f" {'callback p50':>13} {'p99':>6} {'resends/msg':>12}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        name = f"{row['loss']:.0%} " + ("P2P + relay" if row["relay"] else "P2P only")
        lines.append(
            f"{name:<20} {row['messages']:>8} {row['delivery_p50_ms']:>8.0f}"
            f" {row['delivery_p99_ms']:>6.0f} {row['delivery_max_ms']:>6.0f}"
            f" {row['callback_p50_ms']:>13.0f} {row['callback_p99_ms']:>6.0f}"
            f" {row['resends_per_message']:>12.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100, help="messages each way (100)")
    parser.add_argument("--seeds", type=int, default=10, help="runs per link, seeds 1.. (10)")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    rows = [measure(loss, relay, args.messages, args.seeds) for loss, relay in LINKS]
    print(
        f"{args.messages} control messages each way, {args.seeds} seeds; {ONE_WAY_MS:.0f} ms one "
        f"way over P2P, {RELAY_ONE_WAY_MS:.0f} ms over the relay; times in simulated ms\n"
    )
    print(table(rows))
    if args.json is not None:
        report = {
            "messages": args.messages,
            "seeds": args.seeds,
            "python": platform.python_version(),
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
