"""What a live page pays per ``conn.step()``: the JavaScript API's call, timed inside the page.

Run inside the loopback-only namespace:

    scripts/netns.sh .venv/bin/python -m benchmarks.bench_page_step [--frames 600] [--json PATH]

Two tabs (headless Chromium, cross-origin isolated so ``performance.now()`` ticks in 5 us) boot
the transport's wheel alone, pair through the reference server with ``p2pShim.connect`` over a
real DataChannel (loopback coturn), and each runs a 60 Hz ``setInterval`` game loop timing every
``conn.step(frame, action)``, once per route mode. Then, in the same tabs:

- a tight loop of calls after the game (no frame pacing), per route;
- the parts, from Python timers wrapped around them for one more timed run: the Python side of
  ``step`` as a whole and each send in it, labelled by what it goes to (the DataChannel, the
  relay's WebSocket, a postMessage to the ping worker); the rest is the session's own work;
- the floors no Python can lower, from JavaScript in the same loop: entering Pyodide (a Python
  function that does nothing), the browser's own send of a packet on the DataChannel and on the
  relay's WebSocket, a postMessage to a worker.

Times are per call, both tabs' samples together; medians, p95 and max are printed and written as
JSON. Nothing here passes or fails on speed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from playwright.sync_api import sync_playwright

from p2p_demo.harness import TurnServer, launch_chromium, require_loopback_namespace
from p2p_server.server import ServerThread
from p2p_transport.protocol.rtt import nearest_rank

ROUTES: Final = ("parallel", "p2p-first", "p2p", "relay")
TIGHT_CALLS: Final = 200

# Boots the wheels the server lists (micropip and the transport, never the demo) and connects.
CONNECT: Final = """async ({room, route, iceServers}) => {
  if (!p2pShim.ready) {
    const {wheels} = await (await fetch("/wheels/index.json")).json();
    const wheelUrls = ["micropip", "p2p_transport"].map(
      (name) => "/wheels/" + wheels.find((w) => w.startsWith(name + "-")));
    await p2pShim.boot({pyodideBase: "/pyodide/", wheelUrls});
  }
  window.received = 0;
  window.conn = await p2pShim.connect({
    room, routeMode: route, iceServers, onInput: () => { window.received += 1; },
  });
  return window.conn.playerIndex;
}"""

# The game loop: one step a frame at 60 Hz, each call timed; resolves with the times (ms).
LOOP: Final = """([first, frames]) => new Promise((resolve, reject) => {
  const times = [];
  let frame = first;
  const timer = setInterval(() => {
    const start = performance.now();
    try {
      conn.step(frame, frame % 7);
    } catch (err) {
      clearInterval(timer);
      return reject(err);
    }
    times.push(performance.now() - start);
    frame += 1;
    if (frame === first + frames) { clearInterval(timer); resolve(times); }
  }, 1000 / 60);
})"""

# After the game: calls back to back, the mean per call (ms).
TIGHT: Final = """([first, calls]) => {
  const start = performance.now();
  for (let frame = first; frame < first + calls; frame++) conn.step(frame, frame % 7);
  return (performance.now() - start) / calls;
}"""

# The parts: Python timers around step's Python side and around each send, installed for one
# run and removed after it, each send labelled by what it goes to.
PARTS_PY: Final = """
import time
from p2p_transport.browser import adapters, js_api

class Parts:
    def __init__(self):
        self.samples = {}
        self.originals = {}

    def label(self, channel):
        if isinstance(channel, adapters.WorkerChannel):
            return "post to ping worker"
        return "send on " + str(channel.raw.constructor.name)

    def _wrap(self, owner, name, key=None):
        original = getattr(owner, name)
        self.originals[(owner, name)] = original

        def timed(*args):
            start = time.perf_counter()
            try:
                return original(*args)
            finally:
                label = key or self.label(args[0])
                self.samples.setdefault(label, []).append((time.perf_counter() - start) * 1000)

        setattr(owner, name, timed)

    def install(self):
        self._wrap(js_api.JsConnection, "step", "python step")
        self._wrap(adapters.JsDataChannel, "send")
        self._wrap(adapters.WorkerChannel, "send")

    def remove(self):
        for (owner, name), original in self.originals.items():
            setattr(owner, name, original)
        self.originals.clear()

    def taken(self):
        return {key: list(values) for key, values in self.samples.items()}

conn = next(c for c in js_api._made if not c.closed)
parts = Parts()

def noop(frame, action):
    return True
"""

# What no Python can make cheaper, from the same 60 Hz loop: entering Pyodide (a Python function
# that does nothing, called as conn.step calls into Python), the browser's own send of a 24-byte
# packet on the game's DataChannel and on the relay's WebSocket (the peer counts each as
# undecodable and drops it), and a postMessage of one to a worker that does nothing with it.
FLOORS: Final = """(frames) => new Promise((resolve) => {
  const noop = p2pShim.pyodide.globals.get("noop");
  const channel = p2pShim.pyodide.runPython("conn.transport.data_channel");
  // (The lean relay socket the server's ticket opened at pairing.)
  const relay = p2pShim.pyodide.runPython("conn.transport._server._relay_socket.channel.raw");
  const worker = new Worker(URL.createObjectURL(new Blob(["onmessage = () => {};"])));
  const packet = new Uint8Array(24);
  const kinds = {
    "enter Pyodide": (frame) => noop(frame, frame % 7),
    "JS send on RTCDataChannel": () => channel.send(packet),
    "JS send on the relay WebSocket": () => relay.send(packet),
    "JS postMessage to a worker": () => worker.postMessage(packet),
  };
  const times = Object.fromEntries(Object.keys(kinds).map((name) => [name, []]));
  const names = Object.keys(kinds);
  let frame = 0;
  const timer = setInterval(() => {
    // One kind a frame, in turn, so each meets the loop as a step would.
    const name = names[frame % names.length];
    const start = performance.now();
    kinds[name](frame);
    times[name].push(performance.now() - start);
    frame += 1;
    if (frame === frames * names.length) {
      clearInterval(timer);
      noop.destroy();
      worker.terminate();
      resolve(times);
    }
  }, 1000 / 60);
})"""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary(samples: list[float]) -> dict[str, float]:
    """Count, median, p95 and max, in microseconds."""
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "median_us": nearest_rank(ordered, 0.5) * 1000,
        "p95_us": nearest_rank(ordered, 0.95) * 1000,
        "max_us": ordered[-1] * 1000,
    }


def on_both(pages: list[Any], script: str, arg: Any) -> list[Any]:
    """Start ``script`` in every tab at once (so their loops overlap as in a game) and collect
    each tab's result."""
    handles = [
        page.evaluate_handle(f"(arg) => {{ window.benchResult = ({script})(arg); }}", arg)
        for page in pages
    ]
    for handle in handles:
        handle.dispose()
    return [page.evaluate("() => window.benchResult") for page in pages]


def measure_route(
    browser: Any, server: ServerThread, ice: list[dict[str, Any]], route: str, frames: int
) -> dict[str, Any]:
    context = browser.new_context()
    try:
        pages = [context.new_page() for _ in range(2)]
        for page in pages:
            page.goto(f"{server.url}/?autoboot=0")
        room = f"bench-step-{route}"
        connects = [
            page.evaluate_handle(
                f"(a) => {{ window.connected = ({CONNECT})(a); }}",
                {"room": room, "route": route, "iceServers": ice},
            )
            for page in pages
        ]
        for handle in connects:
            handle.dispose()
        players = [page.evaluate("() => window.connected") for page in pages]
        # The DataChannel open before timing, as in a game past its start.
        for page in pages:
            page.wait_for_function("() => conn.stats().state === 'open'", timeout=60_000)
        progress(f"{route}: paired as {players}, timing {frames} frames")
        live = [t for times in on_both(pages, LOOP, [0, frames]) for t in times]
        tight = [page.evaluate(TIGHT, [frames, TIGHT_CALLS]) for page in pages]
        for page in pages:
            page.evaluate("(code) => p2pShim.pyodide.runPython(code)", PARTS_PY)
            page.evaluate("() => p2pShim.pyodide.runPython('parts.install()')")
        first = frames + TIGHT_CALLS
        on_both(pages, LOOP, [first, frames])
        taken = [
            page.evaluate(
                "() => { p2pShim.pyodide.runPython('parts.remove()');"
                " return p2pShim.pyodide.runPython('parts.taken()').toJs("
                "{dict_converter: Object.fromEntries}); }"
            )
            for page in pages
        ]
        progress(f"{route}: parts timed, now the floors")
        floors = on_both(pages, FLOORS, frames // 3)
        stats = [page.evaluate("() => conn.stats()") for page in pages]
        for page in pages:
            page.evaluate("() => conn.close()")
    finally:
        context.close()
    parts = {
        key: summary([t for tab in taken for t in tab.get(key, [])])
        for key in sorted({key for tab in taken for key in tab})
    }
    parts.update(
        {key: summary([t for tab in floors for t in tab[key]]) for key in sorted(floors[0])}
    )
    return {
        "players": players,
        "step_in_frame_loop": summary(live),
        "tight_loop_mean_us": [t * 1000 for t in tight],
        "parts": parts,
        "routes_taken": [
            {"p2p": s.get("p2p_inputs_delivered"), "relay": s.get("relay_inputs_delivered")}
            for s in stats
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--routes", nargs="+", default=list(ROUTES), choices=ROUTES)
    parser.add_argument("--json", type=Path, default=Path("reports/bench_page_step.json"))
    args = parser.parse_args(argv)
    require_loopback_namespace()
    results: dict[str, Any] = {}
    with TurnServer() as turn, ServerThread() as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            for route in args.routes:
                results[route] = measure_route(
                    browser, server, turn.ice_servers, route, args.frames
                )
        finally:
            browser.close()
    print(f"conn.step() in a live page, 2 players, {args.frames} frames a tab, both tabs (us)")
    print(f"{'route':10}{'median':>9}{'p95':>9}{'max':>9}{'tight loop':>12}")
    for route, result in results.items():
        s = result["step_in_frame_loop"]
        tight = sum(result["tight_loop_mean_us"]) / len(result["tight_loop_mean_us"])
        print(
            f"{route:10}{s['median_us']:>9.0f}{s['p95_us']:>9.0f}{s['max_us']:>9.0f}{tight:>12.0f}"
        )
    print("its parts, in a timed run of the same loop (us: median / p95 / max)")
    for route, result in results.items():
        for part, s in result["parts"].items():
            if s["count"]:
                print(
                    f"  {route:10}{part:30}{s['median_us']:>7.0f} /{s['p95_us']:>6.0f} /"
                    f"{s['max_us']:>6.0f}   n={s['count']}"
                )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
