"""How many pairs one server process relays at 60 Hz, and what a hostile client does to the rest.

    .venv/bin/python -m benchmarks.bench_server [--pairs 10 25 50] [--seconds 10] [--processes 1]

Starts ``python -m p2p_server`` pinned to core 0 (with ``--processes N``, N of them behind the
project's nginx, see ``scripts/cluster.sh``) and drives it from this process pinned to core 1, on
loopback only. Each simulated player speaks Engine.IO/Socket.IO over a raw WebSocket, as a browser
with the default settings does: join, then a 24-byte binary ``relay`` packet every 1/60 s (the
send time inside), plus a relay ping every 500 ms (the session pings both paths). Every player
checks what it receives; a packet not received 2 s after the sending stopped is a drop.

Printed per load: pairs, relayed messages/s, one-way p50/p99/max (ms), drops, server CPU (% of
one core) and RSS. With ``--hostile``, also other pairs' p99 while one client floods, and the
server's RSS while one client reads nothing. Nothing here passes or fails; the load is bounded in
count and time and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.load_clients import Player, play
from p2p_server.cluster import Cluster
from p2p_transport.protocol.rtt import nearest_rank

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE, CLIENT_CORE = 0, 1


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


@dataclass
class Server:
    url: str
    pids: list[int]


async def run_load(server: Server, pairs: int, seconds: float, tag: str) -> dict[str, Any]:
    players = [Player(f"{tag}-{i // 2}") for i in range(2 * pairs)]
    start = asyncio.Event()
    stop_at = [float("inf")]
    tasks = [
        asyncio.create_task(play(server.url, p, start, stop_at, i / len(players)))
        for i, p in enumerate(players)
    ]
    await asyncio.wait_for(asyncio.gather(*(p.paired.wait() for p in players)), 60)
    cpu0 = sum(_cpu_seconds(pid) for pid in server.pids)
    own0 = time.process_time()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    start.set()
    await asyncio.sleep(seconds)
    cpu = sum(_cpu_seconds(pid) for pid in server.pids) - cpu0
    rss = sum(_rss_mb(pid) for pid in server.pids)
    own = time.process_time() - own0
    await asyncio.gather(*tasks)
    latencies = sorted(x for p in players for x in p.latencies_ms)
    sent = sum(p.sent for p in players)
    received = sum(p.received for p in players)
    failed = [p.failed for p in players if p.failed]
    return {
        "pairs": pairs,
        "msg_per_s": round(received / seconds),
        "p50_ms": round(nearest_rank(latencies, 0.5), 2) if latencies else None,
        "p99_ms": round(nearest_rank(latencies, 0.99), 2) if latencies else None,
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "drops": sent - received,
        "cpu_pct": round(100 * cpu / seconds),
        "rss_mb": round(rss, 1),
        "load_cpu_pct": round(100 * own / seconds),
        "failed_clients": len(failed),
        "first_failure": failed[0] if failed else None,
    }


def start_server(extra: Sequence[str] = ()) -> tuple[Server, subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            str(SERVER_CORE),
            sys.executable,
            "-m",
            "p2p_server",
            "--port",
            "0",
            "--log-level",
            "warning",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.split(" on ", 1)[1].strip().rstrip("/")
    return Server(url, [proc.pid]), proc


def _print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['processes']:9d}  {row['pairs']:5d}  {row['msg_per_s']:5d}  {row['p50_ms']:6}"
        f"  {row['p99_ms']:6}  {row['max_ms']:6}  {row['drops']:5d}  {row['cpu_pct']:5d}"
        f"  {row['rss_mb']:6}  {row['load_cpu_pct']:10d}  {row['failed_clients']}"
        f" {row['first_failure'] or ''}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1],
        help="1: one process, direct; N>1: N processes behind nginx (all on the server core)",
    )
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {CLIENT_CORE})
    print(
        "processes  pairs  msg/s  p50 ms  p99 ms  max ms  drops  cpu %  rss MB  load cpu %  failed"
    )
    for processes in args.processes:
        if processes == 1:
            server, proc = start_server()
            stop = proc.terminate
        else:
            cluster = Cluster(processes, cpu=SERVER_CORE).start()
            assert cluster._nginx_proc is not None
            server = Server(
                cluster.url, [p.pid for p in cluster.servers] + [cluster._nginx_proc.pid]
            )
            stop = cluster.stop
        try:
            for n, pairs in enumerate(args.pairs):
                row = asyncio.run(run_load(server, pairs, args.seconds, f"p{processes}-{n}"))
                _print_row({"processes": processes, **row})
        finally:
            stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
