"""The server's CPU per player-frame in rooms of N players: fan-out against addressed packets.

    .venv/bin/python -m benchmarks.bench_rooms [--rooms 5] [--players 2 4] [--seconds 10]
        [--inputs]

Starts ``python -m p2p_server`` pinned to core 0 (as ``bench_server`` does) and drives it from this
process on core 1, loopback only. Every player joins its room (``players: N``), opens its lean
relay socket with the ticket ``paired`` / ``room_ready`` gave it, and sends at 60 Hz:

* ``pairs`` (N = 2): one 24-byte packet a frame to its peer, as today;
* ``fan-out`` (N > 2): one packet a frame with the envelope for the whole room
  (``RELAY_TO_ALL``), which the server copies to the N - 1 others;
* ``addressed`` (N > 2): one packet a frame to each of its N - 1 peers.

The packet is a 24-byte one the server does not read, or with ``--inputs`` an acked input packet
of the frame's input and the 7 before it (54 bytes, as a player sends them), which the server's
spectator feed reads and keeps (:mod:`p2p_server.spectator_feed`; no spectator joins): the
difference between the two runs is what the feed costs a room without spectators.

Printed per row: the mode, N, players, the packets the server read and wrote per second, its CPU
(% of one core) and its CPU per player-frame in microseconds (CPU time over players x frames),
and the packets each player received against those it should have. Nothing here passes or fails;
every load stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import websockets

from benchmarks.bench_server import CLIENT_CORE, _cpu_seconds, start_server
from benchmarks.load_clients import PACKET, next_event, open_socket_io
from p2p_transport.wire.codec import encode_acked_input_packet
from p2p_transport.wire.signaling import RELAY_TO_ALL, relay_socket_url

FRAME_HZ: Final = 60.0
#: How long after the last send the players keep reading, for packets still on their way.
DRAIN_S: Final = 1.0
JOIN_TIMEOUT_S: Final = 30.0
#: The inputs an ``--inputs`` packet holds: its frame's and the ones before (a sender repeats
#: those its peer has not acknowledged).
WINDOW: Final = 8


@dataclass
class _Player:
    room: str
    index: int
    control: Any = None
    lean: Any = None
    received: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def _answer_pings(ws: Any) -> None:
    """Keep the Socket.IO session alive (Engine.IO pings every 10 s)."""
    try:
        async for message in ws:
            if message == "2":
                await ws.send("3")
    except websockets.ConnectionClosed:
        pass


async def _count(player: _Player) -> None:
    try:
        async for _ in player.lean:
            player.received += 1
    except websockets.ConnectionClosed:
        pass


async def _join(url: str, room: str, players: int) -> list[_Player]:
    """A room of ``players`` joined in index order, each on its lean relay socket."""
    joined: list[_Player] = []
    for index in range(players):
        ws = await open_socket_io(url, {"room": room, "players": players}, compression=None)
        joined.append(_Player(room, index, ws))
    full_event = "paired" if players == 2 else "room_ready"
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for player in joined:
        ready = await next_event(player.control, full_event, deadline)
        assert ready["player_index"] == player.index, ready
        player.lean = await websockets.connect(
            relay_socket_url(url, ready["relay_ticket"], room), compression=None, max_queue=None
        )
        player.tasks = [
            asyncio.create_task(_answer_pings(player.control)),
            asyncio.create_task(_count(player)),
        ]
    return joined


def _envelopes(mode: str, player: _Player, players: int) -> list[bytes]:
    """What a player puts before its packet each frame: one entry per packet it sends."""
    if mode == "pairs":
        return [b""]
    if mode == "fan-out":
        return [bytes((RELAY_TO_ALL,))]
    return [bytes((peer,)) for peer in range(players) if peer != player.index]


def _packet(player: _Player, frame: int, inputs: bool) -> bytes:
    if not inputs:
        return PACKET.pack(frame, time.perf_counter_ns())
    window = [(f, (f + player.index) % 4) for f in range(max(0, frame - WINDOW + 1), frame + 1)]
    return encode_acked_input_packet(player.index, frame, frame - 1 if frame else None, window)


async def run(
    url: str, pid: int, mode: str, rooms: int, players: int, seconds: float, inputs: bool
) -> str:
    tag = f"{mode}-{players}-{time.monotonic_ns()}"
    everyone = [p for r in range(rooms) for p in await _join(url, f"{tag}-{r}", players)]
    plans = [(p, _envelopes(mode, p, players)) for p in everyone]
    cpu0 = _cpu_seconds(pid)
    start = time.perf_counter()
    frames = 0
    while (now := time.perf_counter()) < start + seconds:
        for player, envelopes in plans:
            packet = _packet(player, frames, inputs)
            for envelope in envelopes:
                await player.lean.send(envelope + packet)
        frames += 1
        await asyncio.sleep(max(0.0, start + frames / FRAME_HZ - now))
    elapsed = time.perf_counter() - start
    cpu = _cpu_seconds(pid) - cpu0
    await asyncio.sleep(DRAIN_S)
    sent_in = frames * sum(len(envelopes) for _, envelopes in plans)
    expected = frames * len(everyone) * (players - 1)
    received = sum(p.received for p in everyone)
    for player in everyone:
        for task in player.tasks:
            task.cancel()
        await player.lean.close()
        await player.control.close()
    player_frames = frames * len(everyone)
    return (
        f"{mode:9s}  {players:2d}  {len(everyone):7d}  {sent_in / elapsed:8.0f}  "
        f"{received / elapsed:9.0f}  {100 * cpu / elapsed:5.1f}  "
        f"{1e6 * cpu / player_frames:9.1f}  {received}/{expected}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=5)
    parser.add_argument("--players", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--inputs", action="store_true", help="relay real input packets")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {CLIENT_CORE})
    server, proc = start_server()
    try:
        print("mode       N  players  in pkt/s  out pkt/s  cpu %  µs/player-frame  received")
        for players in args.players:
            modes = ["pairs"] if players == 2 else ["fan-out", "addressed"]
            for mode in modes:
                row = asyncio.run(
                    run(server.url, proc.pid, mode, args.rooms, players, args.seconds, args.inputs)
                )
                print(row, flush=True)
    finally:
        proc.terminate()
        proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
