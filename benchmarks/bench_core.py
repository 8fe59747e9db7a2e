"""CPU cost of the transport's hot paths under CPython, and the packet size for each redundancy.

    .venv/bin/python benchmarks/bench_core.py [--runs 7] [--min-time 0.2] [--json PATH]

Each figure is timed with :mod:`timeit`: the loop count is chosen so one run takes at least
``--min-time`` seconds, then ``--runs`` runs are made; the table shows the best run (the least
disturbed by the rest of the machine, the usual timeit advice) and the median.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2p_transport import P2PInputSender, P2PSession
from p2p_transport.wire.codec import MAX_INPUTS_PER_PACKET, decode, encode_input_packet

INPUTS_3 = ((1000, 3), (1001, 4), (1002, 5))


class OpenChannel:
    """An always-open DataChannel that drops what it is given (the browser would queue it)."""

    readyState = "open"
    bufferedAmount = 0

    def send(self, data: bytes) -> None:
        pass


class NullScheduler:
    def set_interval(self, callback: Callable[[], None], interval_ms: float) -> object:
        return object()

    def clear_interval(self, handle: object) -> None:
        pass


def bench_encode() -> Callable[[], object]:
    return lambda: encode_input_packet(1, 1002, INPUTS_3)


def bench_decode() -> Callable[[], object]:
    packet = encode_input_packet(1, 1002, INPUTS_3)
    return lambda: decode(packet)


def bench_record_and_send() -> Callable[[], object]:
    sender = P2PInputSender(OpenChannel(), 0)
    frames = iter(range(10**9))  # each call needs a new frame
    record_and_send = sender.record_and_send
    return lambda: record_and_send(7, next(frames))


@functools.cache
def peer_packets() -> tuple[bytes, ...]:
    """What the peer sends for frames 0..199,999 with redundancy 3, encoded once."""
    return tuple(
        encode_input_packet(1, f, [(g, g % 256) for g in range(max(0, f - 2), f + 1)])
        for f in range(200_000)
    )


def bench_on_message() -> Callable[[], object]:
    """A session receiving the peer's packets in order: each brings one new input, two repeats."""
    session = P2PSession(
        0,
        1,
        lambda frame, action: None,
        clock=lambda: 0.0,
        scheduler=NullScheduler(),
        channel=OpenChannel(),
    )
    stream = iter(peer_packets())
    on_message = session.edge.on_message
    return lambda: on_message(next(stream))


BENCHMARKS: list[tuple[str, Callable[[], Callable[[], object]], int | None]] = [
    ("encode_input_packet (3 inputs)", bench_encode, None),
    ("decode (3-input packet)", bench_decode, None),
    ("P2PInputSender.record_and_send", bench_record_and_send, None),
    # Capped so the pre-built packet stream is never exhausted: 7 runs x 20,000 < 200,000.
    ("SessionEdge.on_message (input)", bench_on_message, 20_000),
]


def measure(
    make: Callable[[], Callable[[], object]], runs: int, min_time: float, cap: int | None
) -> dict[str, float]:
    timer = timeit.Timer(make())
    number, _ = timer.autorange()
    # autorange reaches 0.2 s; scale up to the wanted minimum run time.
    number = max(1, int(number * max(1.0, min_time / 0.2)))
    if cap is not None:
        number = min(number, cap)
    # A fresh callable per run, so state (frame counters, packet streams) never runs out.
    per_call = [timeit.Timer(make()).timeit(number) / number * 1e6 for _ in range(runs)]
    return {
        "best_us": min(per_call),
        "median_us": statistics.median(per_call),
        "loops": number,
        "runs": runs,
    }


def packet_sizes() -> dict[int, int]:
    return {
        r: len(encode_input_packet(0, r, [(f, 0) for f in range(r)]))
        for r in range(1, MAX_INPUTS_PER_PACKET + 1)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure (default 7)")
    parser.add_argument(
        "--min-time", type=float, default=0.2, help="minimum seconds per run (default 0.2)"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    print(
        f"p2p_transport core benchmark: {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.machine()}, "
        f"{args.runs} runs of >= {args.min_time} s each"
    )
    timings: dict[str, dict[str, float]] = {}
    header = f"{'operation':<34} {'best us':>9} {'median us':>10} {'loops/run':>10}"
    print()
    print(header)
    print("-" * len(header))
    for name, make, cap in BENCHMARKS:
        result = measure(make, args.runs, args.min_time, cap)
        timings[name] = result
        print(
            f"{name:<34} {result['best_us']:>9.2f} {result['median_us']:>10.2f} "
            f"{int(result['loops']):>10}"
        )

    sizes = packet_sizes()
    print()
    print(f"{'redundancy':>10} {'bytes/packet':>13} {'bytes/s at 60 Hz':>17}")
    print("-" * 42)
    for redundancy, size in sizes.items():
        print(f"{redundancy:>10} {size:>13} {size * 60:>17}")

    if args.json is not None:
        report: dict[str, Any] = {
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "machine": platform.machine(),
            "timings_us": timings,
            "bytes_per_packet": sizes,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
