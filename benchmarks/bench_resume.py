"""What it costs to rebuild the game of a page that came back: its state sent, or its episode's
inputs replayed (p2p_transport.rollback.resume).

    scripts/netns.sh .venv/bin/python -m benchmarks.bench_resume [--no-browser] [--json PATH]

For episodes of 300, 1800 and 10800 frames (5 s, 30 s, 3 min at 60 Hz) of the demo's Pong (bots
on both sides) and of cogrid's Overcooked CrampedRoom (the scripted cooks; cogrid's episode ends
at 1000 steps, so its longest row is 1000 frames): the replay re-simulates every frame of the
episode from its start (the game's ``resimulate``, the cheapest way a frame is simulated again);
the state transfer is what the player who stayed does (save, encode, the package with every
player's inputs, its chunks) and what the page that came back does (the package decoded, the
state decoded and loaded). The bytes are the package's, which crosses the reliable control path
in chunks of about 1 KB. Pong runs under CPython here and under Pyodide in a Chromium tab of the
demo page; cogrid under CPython only (Pyodide has no numpy here). Best of three runs each;
nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any, Final

from benchmarks.in_page import run_in_page

#: 5 s, 30 s and 3 min at 60 Hz.
LENGTHS: Final = (300, 1800, 10800)

# Runs as it is under CPython (exec) and in the browser (pyodide.runPythonAsync).
RESUME_SOURCE = """
import time

from p2p_transport.protocol.chunks import chunk_payloads
from p2p_transport.rollback.game import resimulate
from p2p_transport.rollback.resume import ResumePackage


def pong_inputs(frames):
    from p2p_demo.pong import PongBot, PongGame

    game = PongGame(0)
    bots = [PongBot(0, 0), PongBot(1, 0)]
    inputs = []
    for _ in range(frames):
        step = tuple(bot.action(game) for bot in bots)
        inputs.append(step)
        game.advance(step)
    return inputs


def pong_game():
    from p2p_demo.pong import PongGame

    return PongGame(0)


def best_ms(work, runs):
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best * 1000.0


def measure(make_game, inputs, runs=3):
    frames = len(inputs)

    def replay():
        game = replay.game
        for step in inputs:
            resimulate(game, step)

    def fresh():
        replay.game = make_game()

    played = make_game()
    for step in inputs:
        played.advance(step)
    columns = tuple(bytes(step[p] for step in inputs) for p in range(len(inputs[0])))
    sent = {}

    def send():
        state = played.encode_state(played.save_state())
        package = ResumePackage(0, frames, 0, 2, columns, state, played.episode_params()
                                if hasattr(played, "episode_params") else None).encode()
        sent["package"] = package
        sent["chunks"] = len(chunk_payloads(frames, 0, package))

    receiver = make_game()

    def receive():
        package = ResumePackage.decode(sent["package"])
        receiver.load_state(receiver.decode_state(package.state))

    replay_ms = float("inf")
    for _ in range(runs):
        fresh()
        replay_ms = min(replay_ms, best_ms(replay, 1))
    send_ms = best_ms(send, runs)
    receive_ms = best_ms(receive, runs)
    assert receiver.checksum() == played.checksum()
    return {
        "frames": frames,
        "replay_ms": replay_ms,
        "send_ms": send_ms,
        "receive_ms": receive_ms,
        "package_bytes": len(sent["package"]),
        "state_bytes": len(played.encode_state(played.save_state())),
        "chunks": sent["chunks"],
    }


def measure_pong(lengths):
    inputs = pong_inputs(max(lengths))
    return [measure(pong_game, inputs[:frames]) for frames in lengths]
"""


def in_cpython(lengths: tuple[int, ...]) -> dict[str, list[dict[str, Any]]]:
    namespace: dict[str, Any] = {}
    exec(RESUME_SOURCE, namespace)  # the same text the browser runs
    results: dict[str, list[dict[str, Any]]] = {"Pong": namespace["measure_pong"](lengths)}
    from tests.cogrid_play import CogridGame, scripted_action

    # cogrid's episode is at most its max_steps (1000) long.
    steps = [(scripted_action(0, s), scripted_action(1, s)) for s in range(999)]
    results["cogrid CrampedRoom"] = [
        namespace["measure"](CogridGame, steps[:frames]) for frames in (300, 999)
    ]
    return results


def in_pyodide(lengths: tuple[int, ...]) -> dict[str, list[dict[str, Any]]]:
    code = RESUME_SOURCE + f"\nimport json\njson.dumps(measure_pong({lengths!r}))"
    return {"Pong": json.loads(run_in_page(code))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=Path("reports/bench_resume.json"))
    parser.add_argument("--no-browser", action="store_true", help="CPython only")
    args = parser.parse_args(argv)
    results = {"CPython " + platform.python_version(): in_cpython(LENGTHS)}
    if not args.no_browser:
        results["Pyodide in Chromium"] = in_pyodide(LENGTHS)
    print("rebuilding a page's game: the episode replayed, or its state sent (ms, best of 3)")
    print(
        f"{'where':22}{'game':20}{'frames':>7}{'replay':>10}{'send':>9}{'receive':>9}"
        f"{'package B':>11}{'state B':>9}{'chunks':>8}"
    )
    for where, games in results.items():
        for game, rows in games.items():
            for row in rows:
                print(
                    f"{where:22}{game:20}{row['frames']:7d}{row['replay_ms']:10.2f}"
                    f"{row['send_ms']:9.2f}{row['receive_ms']:9.2f}{row['package_bytes']:11d}"
                    f"{row['state_bytes']:9d}{row['chunks']:8d}"
                )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
