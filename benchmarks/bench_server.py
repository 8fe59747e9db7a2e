"""How many pairs one server process relays at 60 Hz, and what a hostile client does to the rest.

    .venv/bin/python -m benchmarks.bench_server [--pairs 10 25 50] [--seconds 10] [--processes 1]
    .venv/bin/python -m benchmarks.bench_server --hostile [--server-src OLD/py_src]

Starts ``python -m p2p_server`` pinned to core 0 (with ``--processes N``, N of them behind nginx,
see ``p2p_server.cluster``, all on core 0) and drives it from this process pinned to core 1, on
loopback only. Each simulated player (``load_clients``) speaks what a page with the default
settings sends: join, then a 24-byte binary packet every 1/60 s on the relay (the route is
``parallel``; the lean relay socket when the server offers one), plus four more a second for its
relay pings and pongs. Every player checks what it receives; a packet not received 2 s after the
sending stopped is a drop.

Printed per load: pairs, relayed messages/s, one-way p50/p99/max (ms), drops, server CPU (% of
one core), RSS and the load generator's own CPU. ``--hostile`` instead runs 5 calm pairs alone and
beside each hostile client (a flood, a reader that reads nothing, idle sockets, junk, an
attachment bomb, a crowd at the door) and prints the calm pairs' latency and what happened to the
hostile client (for the crowd: how many got in, and whether a pair from another address could
still connect, join and relay; the newcomers use 127.0.0.2, so run it where all of 127/8 is
loopback, e.g. under scripts/netns.sh). Nothing here passes or fails;
every load is bounded in count and time and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import websockets

from benchmarks.load_clients import (
    BINARY_HEADER,
    PACKET,
    Player,
    next_event,
    open_socket_io,
    pair_address,
    play,
    unjoined_socket_io,
)
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


async def run_load(
    server: Server,
    pairs: int,
    seconds: float,
    tag: str,
    during: Callable[[float], Awaitable[str]] | None = None,
) -> dict[str, Any]:
    """``pairs`` pairs relaying at 60 Hz for ``seconds``; ``during(seconds)`` (a hostile client)
    runs alongside, and what it returns is reported as ``hostile``."""
    players = [Player(f"{tag}-{i // 2}", pair_address(i // 2)) for i in range(2 * pairs)]
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
    hostile = asyncio.create_task(during(seconds)) if during is not None else None
    await asyncio.sleep(seconds)
    cpu = sum(_cpu_seconds(pid) for pid in server.pids) - cpu0
    rss = sum(_rss_mb(pid) for pid in server.pids)
    own = time.process_time() - own0
    await asyncio.gather(*tasks)
    outcome = await hostile if hostile is not None else ""
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
        "hostile": outcome,
    }


def start_server(
    extra: Sequence[str] = (), server_src: Path | None = None, log: Any = None
) -> tuple[Server, subprocess.Popen[str]]:
    """``python -m p2p_server`` on the server core; ``server_src``: another checkout's py_src/
    (an earlier version, for before/after figures); ``log``: where its stderr goes."""
    env = {**os.environ, "PYTHONPATH": str(server_src)} if server_src is not None else None
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
        stderr=log,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.split(" on ", 1)[1].strip().rstrip("/")
    return Server(url, [proc.pid]), proc


# --- hostile clients (each bounded in count and time) -----------------------------------------

#: The flooder's cap: as fast as it can, but never more than this many packets.
FLOOD_MAX_PACKETS = 200_000
#: The slow reader's peer sends packets of this size...
SLOW_READER_PACKET = b"\x04" + bytes(4095)
#: ... 16 times a second: 64 KiB/s, the default byte limit.
SLOW_READER_RATE_HZ = 16
IDLE_SOCKETS = 200
IDLE_WAIT_S = 17.0
JUNK_MESSAGES = 2000
#: The attachment bomb: a binary event announcing 999,999,999 attachments (the most
#: python-socketio's parser reads), then frames each under the server's 64 KiB frame limit.
BOMB_HEADER = '45999999999-["relay",{"_placeholder":true,"num":0}]'
BOMB_FRAMES = 300
BOMB_FRAME_BYTES = 60_000
#: The crowd at the door: this many sockets from one address that never join, then a pair from
#: another address that must get in.
CROWD_SOCKETS = 1000
CROWD_ADDRESS, NEWCOMER_ADDRESS = "127.0.0.1", "127.0.0.2"
#: The crowd connects this many at a time.
CROWD_BATCH = 50
#: How long the newcomers get to connect, join, pair and relay one packet.
NEWCOMER_DEADLINE_S = 10.0


async def _socket_io(url: str, room: str | None, recv_buffer: int | None = None) -> Any:
    """A raw Socket.IO client joined to ``room`` (None: never joins), with a small receive window
    if ``recv_buffer`` is given."""
    sock = None
    if recv_buffer is not None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
        sock.setblocking(False)
        host, port = url.removeprefix("http://").split(":")
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    join = {"room": room} if room is not None else None
    return await open_socket_io(url, join, sock=sock, compression=None)


async def flood(url: str, seconds: float) -> str:
    """One client relaying as fast as it can, on the Socket.IO path (every server has it)."""
    sender = await _socket_io(url, "flood")
    partner = await _socket_io(url, "flood")
    sent, started = 0, time.perf_counter()
    deadline = started + seconds
    try:
        while sent < FLOOD_MAX_PACKETS and time.perf_counter() < deadline:
            await sender.send(BINARY_HEADER)
            await sender.send(PACKET.pack(sent, 0))
            sent += 1
        # What it sent may still be in buffers: wait for the server's verdict until the end.
        await asyncio.wait_for(sender.wait_closed(), max(0.0, deadline - time.perf_counter()))
    except (websockets.ConnectionClosed, TimeoutError):
        pass
    if sender.state is websockets.State.CLOSED:
        outcome = f"flooder disconnected {time.perf_counter() - started:.1f} s after it began"
    else:
        outcome = f"flooder sent {sent} packets and is still connected"
    await sender.close()
    await partner.close()
    return outcome


async def slow_reader(url: str, seconds: float, pid: int) -> str:
    """A pair where one side reads nothing and the other sends 64 KiB/s."""
    sender = await _socket_io(url, "slow")
    reader = await _socket_io(url, "slow", recv_buffer=4096)
    rss0, sent, deadline = _rss_mb(pid), 0, time.perf_counter() + seconds
    outcome = "reader still connected"
    try:
        while time.perf_counter() < deadline:
            await sender.send(BINARY_HEADER)
            await sender.send(SLOW_READER_PACKET)
            sent += 1
            await asyncio.sleep(1 / SLOW_READER_RATE_HZ)
            if reader.state is websockets.State.CLOSED:
                outcome = "reader disconnected by the server"
    except websockets.ConnectionClosed:
        outcome = "sender disconnected"
    rss = _rss_mb(pid)
    await sender.close()
    reader.transport.abort()
    return f"{outcome}; server RSS {rss0:.1f} -> {rss:.1f} MB over {seconds:g} s"


async def _admitted(url: str, local_address: str | None = None) -> Any:
    """A Socket.IO client that has not joined, from ``local_address``; a string saying why if
    the server refuses it, or the connection fails (counted as a refusal here)."""
    try:
        return await unjoined_socket_io(url, local_address)
    except (websockets.InvalidHandshake, websockets.ConnectionClosed, OSError) as error:
        return type(error).__name__


async def idle_sockets(url: str, seconds: float, pid: int) -> str:
    rss0 = _rss_mb(pid)
    tried = [await _admitted(url) for _ in range(IDLE_SOCKETS)]
    sockets = [ws for ws in tried if not isinstance(ws, str)]
    rss1 = _rss_mb(pid)
    # Past the join timeout (15 s by default), whatever ``seconds`` is.
    seconds = max(seconds, IDLE_WAIT_S)
    await asyncio.sleep(seconds)
    open_after = sum(ws.state is websockets.State.OPEN for ws in sockets)
    for ws in sockets:
        ws.transport.abort()
    each = (rss1 - rss0) * 1024 / len(sockets) if sockets else 0.0
    return (
        f"{IDLE_SOCKETS} sockets that never join, {len(sockets)} admitted: {each:.0f} KiB "
        f"each, {open_after} still open after {seconds:g} s"
    )


async def attachment_bomb(url: str, seconds: float, pid: int) -> str:
    """A socket that never joins announces 10^9 attachments and streams 60,000-byte frames."""
    rss0 = _rss_mb(pid)
    client = await _socket_io(url, None)
    frame = bytes(BOMB_FRAME_BYTES)
    sent = 0
    try:
        await client.send(BOMB_HEADER)
        for _ in range(BOMB_FRAMES):
            await client.send(frame)
            sent += 1
    except websockets.ConnectionClosed:
        pass
    # Let the server read what is still in flight (or close the connection).
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(client.wait_closed(), 2.0)
    rss = _rss_mb(pid)
    state = "dropped" if client.state is websockets.State.CLOSED else "still connected"
    client.transport.abort()
    await asyncio.sleep(seconds)
    return (
        f"{sent} of {BOMB_FRAMES} frames sent ({sent * BOMB_FRAME_BYTES / 1e6:.1f} MB), "
        f"{state}; server RSS {rss0:.1f} -> {rss:.1f} MB"
    )


async def newcomers(url: str, local_address: str, room: str) -> str:
    """Two clients from ``local_address`` connect, join ``room``, pair and relay one packet."""
    started = time.perf_counter()
    deadline = time.monotonic() + NEWCOMER_DEADLINE_S
    pair: list[Any] = []
    try:
        for _ in range(2):
            ws = await _admitted(url, local_address)
            if isinstance(ws, str):
                return f"pair from {local_address} refused ({ws})"
            pair.append(ws)
        for ws in pair:
            await ws.send('42["join",' + json.dumps({"room": room}) + "]")
        for ws in pair:
            await next_event(ws, "paired", deadline)
        await pair[0].send(BINARY_HEADER)
        await pair[0].send(PACKET.pack(1, 0))
        await next_event(pair[1], "relay", deadline)
    except (TimeoutError, RuntimeError, websockets.ConnectionClosed) as error:
        return f"pair from {local_address} failed ({type(error).__name__}: {error})"
    finally:
        for ws in pair:
            ws.transport.abort()
    took = time.perf_counter() - started
    return f"pair from {local_address} relayed {took:.2f} s after connecting"


async def crowd_at_the_door(url: str, seconds: float) -> str:
    """1000 sockets from one address that never join, then a pair from another address."""
    sockets: list[Any] = []
    for start in range(0, CROWD_SOCKETS, CROWD_BATCH):
        batch = min(CROWD_BATCH, CROWD_SOCKETS - start)
        tried = await asyncio.gather(*(_admitted(url, CROWD_ADDRESS) for _ in range(batch)))
        sockets += tried
    admitted = [ws for ws in sockets if not isinstance(ws, str)]
    refusals: dict[str, int] = {}
    for ws in sockets:
        if isinstance(ws, str):
            refusals[ws] = refusals.get(ws, 0) + 1
    outcome = await newcomers(url, NEWCOMER_ADDRESS, "door-newcomers")
    for ws in admitted:
        ws.transport.abort()
    await asyncio.sleep(seconds)
    refused = ", ".join(f"{n} {why}" for why, n in sorted(refusals.items()))
    return (
        f"{len(admitted)} of {CROWD_SOCKETS} from {CROWD_ADDRESS} admitted"
        f"{f' (refused: {refused})' if refused else ''}; {outcome}"
    )


async def junk(url: str, seconds: float, log: Path) -> str:
    size0 = log.stat().st_size
    client = await _socket_io(url, "junk")
    sent = 0
    try:
        for n in range(JUNK_MESSAGES):
            await client.send(("42[", "4junk", "9", b"\x00\x01")[n % 4])
            sent += 1
    except websockets.ConnectionClosed:
        pass
    await asyncio.sleep(1)
    await client.close()
    await asyncio.sleep(seconds)
    return (
        f"{sent} junk messages sent (of {JUNK_MESSAGES}); the server logged "
        f"{log.stat().st_size - size0} bytes"
    )


def hostile(server_src: Path | None, seconds: float) -> None:
    """The calm pairs' p99 alone and beside each hostile client; its outcome."""
    with tempfile.NamedTemporaryFile(prefix="p2p-server-log-", suffix=".txt") as log:
        server, proc = start_server(server_src=server_src, log=log)
        log_path = Path(log.name)
        try:
            cases: list[tuple[str, Callable[[float], Awaitable[str]] | None]] = [
                ("none", None),
                ("flood", partial(flood, server.url)),
                ("slow reader", partial(slow_reader, server.url, pid=proc.pid)),
                ("idle sockets", partial(idle_sockets, server.url, pid=proc.pid)),
                ("junk", partial(junk, server.url, log=log_path)),
                ("attach. bomb", partial(attachment_bomb, server.url, pid=proc.pid)),
                ("crowd at door", partial(crowd_at_the_door, server.url)),
            ]
            print("hostile        calm pairs' p50 / p99 / max ms, drops   outcome")
            for n, (name, during) in enumerate(cases):
                row = asyncio.run(run_load(server, 5, seconds, f"calm{n}", during))
                print(
                    f"{name:13s}  {row['p50_ms']} / {row['p99_ms']} / {row['max_ms']}, "
                    f"{row['drops']}   {row['hostile']}",
                    flush=True,
                )
        finally:
            proc.terminate()
            proc.wait(timeout=10)


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
    parser.add_argument(
        "--hostile", action="store_true", help="the hostile cases beside 5 calm pairs, instead"
    )
    parser.add_argument(
        "--server-src",
        type=Path,
        default=None,
        help="run the server from this py_src/ (an earlier checkout, for before/after figures)",
    )
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {CLIENT_CORE})
    if args.hostile:
        hostile(args.server_src, args.seconds)
        return 0
    print(
        "processes  pairs  msg/s  p50 ms  p99 ms  max ms  drops  cpu %  rss MB  load cpu %  failed"
    )
    for processes in args.processes:
        if processes == 1:
            server, proc = start_server(server_src=args.server_src)
            stop = proc.terminate
        else:
            cluster = Cluster(processes, cpu=SERVER_CORE).start()
            server = Server(cluster.url, cluster.pids)
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
