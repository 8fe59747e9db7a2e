"""What the transport costs the main thread per frame, under CPython and under Pyodide in Chromium.

    scripts/netns.sh .venv/bin/python -m benchmarks.bench_frame [--frames 3000] [--json PATH]

One frame of one player is what the game loop pays each frame: its ``step()`` (the input packed
and sent on both paths of the default parallel route) and handling the peer's packet, which
arrives twice (over the DataChannel and through the relay). Two ``P2PSession``s with the default
``SessionConfig`` (acked inputs on), their watchdogs started as ``BrowserTransport`` starts them
(each entry point then notes that this side is awake), play each other for ``--frames`` frames:

1. fake channels (in-memory queues, no FFI): the same source is run under CPython here and
   under Pyodide in a Chromium tab of the demo page, in one run;
2. in the browser again with the real DataChannel adapters: a ``JsDataChannel`` on each end of an
   RTCDataChannel pair between two peer connections of the tab (the relay stays an in-memory
   queue), each packet received through the real ``onmessage`` and ``payload_bytes``. Only the
   Python time is counted (``step`` and the message handlers), not the wait for delivery.

Each figure is the best of several runs (the machine is shared); nothing passes or fails on speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

# Runs as it is under CPython (exec) and in the browser (pyodide.runPythonAsync).
FRAME_SOURCE = '''
import time

from p2p_transport import P2PSession


class NullScheduler:
    def set_interval(self, callback, interval_ms):
        return object()

    def clear_interval(self, handle):
        pass


class QueueChannel:
    """An open DataChannel whose packets wait in a queue until the test delivers them."""

    readyState = "open"
    bufferedAmount = 0

    def __init__(self):
        self.queue = []

    def send(self, data):
        self.queue.append(data)


class QueueSocket:
    """A connected Socket.IO client whose relayed packets wait in a queue."""

    connected = True

    def __init__(self):
        self.queue = []

    def emit(self, event, data):
        self.queue.append(data)


def make_sessions(channels, sockets):
    clock = lambda: time.monotonic() * 1000.0
    sessions = [
        P2PSession(p, 1 - p, lambda frame, action: None, clock=clock, scheduler=NullScheduler(),
                   channel=channels[p], relay=sockets[p])
        for p in (0, 1)
    ]
    for session in sessions:
        session.edge.on_open()
        session.edge.start_watchdog()
    return sessions


def action(player, frame):
    return (frame // 8 + player) % 4


def deliver(queues, receive):
    for sender, queue in enumerate(queues):
        packets, queue[:] = list(queue), []
        for data in packets:
            receive[1 - sender](data)


def fake_channels_run(frames):
    channels, sockets = [QueueChannel(), QueueChannel()], [QueueSocket(), QueueSocket()]
    sessions = make_sessions(channels, sockets)
    p2p = [s.edge.on_message for s in sessions]
    relay = [s.edge.on_relay_message for s in sessions]
    start = time.perf_counter()
    for frame in range(frames):
        for player, session in enumerate(sessions):
            session.step(frame, action(player, frame))
        deliver([c.queue for c in channels], p2p)
        deliver([s.queue for s in sockets], relay)
    elapsed = time.perf_counter() - start
    received = sessions[0].stats()["inputs_received"]
    assert received == frames, f"{received} of {frames} inputs arrived"
    return elapsed / frames / 2 * 1e6


def fake_channels(frames, runs=5):
    fake_channels_run(300)  # warm up
    return min(fake_channels_run(frames) for _ in range(runs))
'''

# Browser only: the real DataChannel adapters. Needs window.benchChannels (two open, connected
# RTCDataChannels) and FRAME_SOURCE run before it.
REAL_SOURCE = """
import asyncio

import js
from pyodide.ffi import create_proxy

from p2p_transport.browser.adapters import JsDataChannel, payload_bytes


async def real_adapters_run(frames):
    raws = [js.benchChannels[0], js.benchChannels[1]]
    sockets = [QueueSocket(), QueueSocket()]
    sessions = make_sessions([JsDataChannel(raw) for raw in raws], sockets)
    spent = [0.0]
    arrived = [0]

    def handler(session):
        def on_message(event):
            start = time.perf_counter()
            session.edge.on_message(payload_bytes(event.data))
            spent[0] += time.perf_counter() - start
            arrived[0] += 1
        return on_message

    proxies = [create_proxy(handler(sessions[1 - p])) for p in (0, 1)]
    for raw, proxy in zip(raws, proxies):
        raw.onmessage = proxy
    relay = [s.edge.on_relay_message for s in sessions]
    try:
        for frame in range(frames):
            start = time.perf_counter()
            for player, session in enumerate(sessions):
                session.step(frame, action(player, frame))
            deliver([s.queue for s in sockets], relay)
            spent[0] += time.perf_counter() - start
            while arrived[0] < 2 * (frame + 1):
                await asyncio.sleep(0)
    finally:
        for raw, proxy in zip(raws, proxies):
            raw.onmessage = None
            proxy.destroy()
    return spent[0] / frames / 2 * 1e6


async def real_adapters(frames, runs=3):
    await real_adapters_run(100)  # warm up
    return min([await real_adapters_run(frames) for _ in range(runs)])
"""

# Two peer connections in one tab, joined through coturn, with one unordered, unreliable
# DataChannel pair (the game channel's settings); resolves when both ends are open.
OPEN_CHANNELS_JS = """async (iceServers) => {
  const config = { iceServers, iceTransportPolicy: "relay" };
  const pcs = [new RTCPeerConnection(config), new RTCPeerConnection(config)];
  pcs[0].onicecandidate = (e) => e.candidate && pcs[1].addIceCandidate(e.candidate);
  pcs[1].onicecandidate = (e) => e.candidate && pcs[0].addIceCandidate(e.candidate);
  const options = { negotiated: true, id: 0, ordered: false, maxRetransmits: 0 };
  const channels = pcs.map((pc) => pc.createDataChannel("bench", options));
  channels.forEach((c) => (c.binaryType = "arraybuffer"));
  const opened = channels.map((c) => new Promise((resolve) => (c.onopen = resolve)));
  const offer = await pcs[0].createOffer();
  await pcs[0].setLocalDescription(offer);
  await pcs[1].setRemoteDescription(offer);
  const answer = await pcs[1].createAnswer();
  await pcs[1].setLocalDescription(answer);
  await pcs[0].setRemoteDescription(answer);
  await Promise.all(opened);
  window.benchPeers = pcs;
  window.benchChannels = channels;
}"""


def in_cpython(frames: int) -> float:
    namespace: dict[str, Any] = {}
    exec(FRAME_SOURCE, namespace)  # the same text the browser runs
    cost: float = namespace["fake_channels"](frames)
    return cost


def in_pyodide(frames: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    from p2p_demo.harness import TurnServer, launch_chromium, quiet_page, require_loopback_namespace
    from p2p_server.server import ServerThread

    require_loopback_namespace()
    with TurnServer() as turn, ServerThread() as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = quiet_page(browser, server.url)
            run = "(code) => p2pShim.pyodide.runPythonAsync(code)"
            fake = page.evaluate(run, FRAME_SOURCE + f"\nfake_channels({frames})")
            page.evaluate(OPEN_CHANNELS_JS, turn.ice_servers)
            real = page.evaluate(
                run, FRAME_SOURCE + REAL_SOURCE + f"\nawait real_adapters({frames})"
            )
        finally:
            browser.close()
    return {"fake_channels_us": float(fake), "real_adapters_us": float(real)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames per run (3000)")
    parser.add_argument("--json", type=Path, default=Path("reports/bench_frame.json"))
    parser.add_argument("--no-browser", action="store_true", help="CPython only")
    args = parser.parse_args(argv)
    cpython = in_cpython(args.frames)
    print(f"us per frame per player, default SessionConfig, {args.frames} frames, best run:")
    print(f"  CPython {platform.python_version()}, fake channels:      {cpython:8.1f}")
    result: dict[str, Any] = {"frames": args.frames, "cpython_us": cpython}
    if not args.no_browser:
        pyodide = in_pyodide(args.frames)
        fake, real = pyodide["fake_channels_us"], pyodide["real_adapters_us"]
        print(
            f"  Pyodide in Chromium, fake channels:  {fake:8.1f}   ({fake / cpython:.2f}x CPython)"
        )
        print(
            f"  Pyodide, real DataChannel adapters:  {real:8.1f}   ({real / cpython:.2f}x CPython)"
        )
        result.update(pyodide)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"python": sys.version, **result}, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
