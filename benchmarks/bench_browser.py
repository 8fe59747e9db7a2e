"""Round-trip time and page-ready time in real Chromium, side by side.

Run inside the loopback-only namespace:

    scripts/netns.sh .venv/bin/python benchmarks/bench_browser.py [--pings 1000] [--json PATH]

In one browser run, two tabs paired through the reference server measure sequential ping/pongs:
  (a) Python (Pyodide) on both ends over the DataChannel, through P2PSession;
  (b) raw JavaScript on both ends over a DataChannel of the same kind between the same two tabs;
  (c) Python on both ends through the Socket.IO server relay;
  (d) Python on both ends of (b)'s channel doing nothing but entering Pyodide (a bare echo):
      (a) - (d) is what the session itself adds to a round trip.
The kinds take turns in rounds so that machine noise falls on all of them alike. Then single tabs
measure navigation-to-ready: with the package installed by each installer (the default archive,
and micropip) against a bare Pyodide boot. Figures are printed and written as JSON; nothing here
passes or fails on speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from p2p_demo.harness import (
    TurnServer,
    launch_chromium,
    open_tab,
    require_loopback_namespace,
    wait_ready,
)
from p2p_server.server import ServerThread
from p2p_transport.protocol.rtt import nearest_rank

# Runs inside the pinging tab: sequential pings on one path, each sent from the pong's handler.
PY_PINGER = """
from dataclasses import replace

from p2p_transport.protocol.routing import Link

class SequentialPinger:
    def __init__(self, session, path, count):
        self.session, self.path, self.count, self.samples = session, Link(path), count, []
        # (a) is the game's DataChannel itself, not the worker-held ping channel the session
        # measures RTT on by default.
        session.edge.attach_ping_channel(None)
        delivery = session.parts.delivery
        delivery.callbacks = replace(delivery.callbacks, on_rtt=self.on_rtt)
        self._ping = lambda: session.parts.pinger.ping(self.path)
        self._ping()

    def on_rtt(self, rtt_ms, path):
        if path is self.path:
            self.samples.append(rtt_ms)
            if len(self.samples) < self.count:
                self._ping()

    @property
    def done(self):
        return len(self.samples) >= self.count

def start_pinger(path, count):
    global pinger
    pinger = SequentialPinger(js.p2pDemo.transport.session, path, count)

import js
"""

# (d): Python on both ends of the raw channel doing nothing but entering Pyodide: the pinger
# stamps and sends the next ping from its handler, the echo sends back what it got. Against (a),
# what is left is what the session itself adds to a round trip.
PY_BARE = """
import time

import js
from pyodide.ffi import create_proxy


class BarePinger:
    def __init__(self, count):
        self.count, self.samples = count, []
        self.ping = js.Uint8Array.new(9)
        self.proxy = create_proxy(self.on_message)
        js.rawChannel.onmessage = self.proxy
        self.sent = time.monotonic() * 1000.0
        js.rawChannel.send(self.ping)

    @property
    def done(self):
        return len(self.samples) >= self.count

    def on_message(self, event):
        now = time.monotonic() * 1000.0
        self.samples.append(now - self.sent)
        if self.done:
            js.rawChannel.onmessage = None
            self.proxy.destroy()
            return
        self.sent = now
        js.rawChannel.send(self.ping)


def start_bare_pinger(count):
    global pinger
    pinger = BarePinger(count)


def bare_echo(event):
    js.rawChannel.send(event.data)


bare_echo_proxy = create_proxy(bare_echo)
"""
ECHO_IN_PYTHON = "() => { rawChannel.onmessage = p2pShim.pyodide.globals.get('bare_echo_proxy'); }"
ECHO_IN_JS = "() => { rawChannel.onmessage = (m) => rawChannel.send(m.data); }"

# A second peer connection of the same kind, in plain JavaScript, between the same two tabs.
JS_SETUP = """async ([iceServers, offerer]) => {
  const pc = new RTCPeerConnection({iceServers});
  window.rawPc = pc; window.rawCandidates = [];
  pc.onicecandidate = (e) => { if (e.candidate) window.rawCandidates.push(e.candidate.toJSON()); };
  const ready = (ch) => { ch.binaryType = "arraybuffer"; window.rawChannel = ch; };
  if (offerer) {
    ready(pc.createDataChannel("raw", {ordered: false, maxRetransmits: 0}));
    const offer = await pc.createOffer(); await pc.setLocalDescription(offer);
    return pc.localDescription.toJSON();
  }
  pc.ondatachannel = (e) => {
    ready(e.channel);
    e.channel.onmessage = (m) => e.channel.send(m.data);
  };
  return null;
}"""
JS_ANSWER = """async (offer) => {
  await rawPc.setRemoteDescription(offer);
  const answer = await rawPc.createAnswer(); await rawPc.setLocalDescription(answer);
  return rawPc.localDescription.toJSON();
}"""
JS_PINGS = """async (count) => {
  const ch = window.rawChannel, samples = [];
  const ping = new Uint8Array(9); ping[0] = 2;
  await new Promise((resolve) => {
    let sent = 0;
    ch.onmessage = () => {
      samples.push(performance.now() - sent);
      if (samples.length >= count) resolve(); else { sent = performance.now(); ch.send(ping); }
    };
    sent = performance.now(); ch.send(ping);
  });
  return samples;
}"""
WARMUP = 50


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "median_ms": statistics.median(ordered),
        "p95_ms": nearest_rank(ordered, 0.95),
        "mean_ms": statistics.fmean(ordered),
    }


def connect_raw(pages: list[Any], ice: list[dict[str, Any]]) -> None:
    offer = pages[0].evaluate(JS_SETUP, [ice, True])
    pages[1].evaluate(JS_SETUP, [ice, False])
    answer = pages[1].evaluate(JS_ANSWER, offer)
    pages[0].evaluate("async (a) => rawPc.setRemoteDescription(a)", answer)
    pages[0].wait_for_timeout(300)  # let both sides gather their loopback candidates
    for src, dst in ((0, 1), (1, 0)):
        for candidate in pages[src].evaluate("() => rawCandidates"):
            pages[dst].evaluate("async (c) => rawPc.addIceCandidate(c)", candidate)
    pages[0].wait_for_function("() => window.rawChannel && rawChannel.readyState === 'open'")
    pages[1].wait_for_function("() => window.rawChannel && rawChannel.readyState === 'open'")


def python_pings(page: Any, path: str, count: int) -> list[float]:
    """Sequential pings from Python: through the session on ``path``, or ``bare`` ones."""
    if path == "bare":
        page.evaluate(f"() => p2pShim.pyodide.globals.get('start_bare_pinger')({count})")
    else:
        page.evaluate(
            "([path, count]) => p2pShim.pyodide.globals.get('start_pinger')(path, count)",
            [path, count],
        )
    page.wait_for_function(
        "() => p2pShim.pyodide.globals.get('pinger').done", timeout=120_000, polling=50
    )
    samples: list[float] = page.evaluate(
        "() => p2pShim.pyodide.globals.get('pinger').samples.toJs()"
    )
    return samples


def measure_rtt(
    server_url: str, ice: list[dict[str, Any]], browser: Any, pings: int, rounds: int
) -> dict[str, Any]:
    context = browser.new_context()
    # No interval pings and no game traffic: only the benchmark's ping chain is in flight.
    options = {
        "game": "scripted",
        "autostart": False,
        "frames": 1,
        "room": "bench",
        "ice_servers": ice,
        "ping_interval_ms": 1e9,
    }
    pages = [open_tab(context, server_url, options) for _ in range(2)]
    for page in pages:
        wait_ready(page)
        page.wait_for_function(
            "() => window.p2pDemo && JSON.parse(p2pDemo.report_json()).channel_open_ms !== null",
            timeout=30_000,
        )
    pages[0].evaluate("(code) => p2pShim.pyodide.runPython(code)", PY_PINGER + PY_BARE)
    pages[1].evaluate("(code) => p2pShim.pyodide.runPython(code)", PY_BARE)
    connect_raw(pages, ice)
    kinds: dict[str, list[float]] = {
        "python_p2p": [],
        "raw_js_p2p": [],
        "python_relay": [],
        "bare_python_p2p": [],
    }
    per_round = pings // rounds
    for _ in range(rounds):
        kinds["python_p2p"] += python_pings(pages[0], "p2p", per_round + WARMUP)[WARMUP:]
        kinds["raw_js_p2p"] += pages[0].evaluate(JS_PINGS, per_round + WARMUP)[WARMUP:]
        kinds["python_relay"] += python_pings(pages[0], "relay", per_round + WARMUP)[WARMUP:]
        pages[1].evaluate(ECHO_IN_PYTHON)
        kinds["bare_python_p2p"] += python_pings(pages[0], "bare", per_round + WARMUP)[WARMUP:]
        pages[1].evaluate(ECHO_IN_JS)
    context.close()
    return {kind: summary(samples) for kind, samples in kinds.items()}


def measure_ready(server_url: str, browser: Any, repeats: int) -> dict[str, Any]:
    """Navigation to ``import p2p_transport`` done, per installer, against a bare Pyodide boot.

    The three kinds take turns, each in a fresh context (no cache), so noise falls on all alike.
    """
    times: dict[str, list[float]] = {"micropip": [], "archive": [], "bare_pyodide": []}
    # The package's own share: from Pyodide loaded to the package imported.
    after_pyodide: dict[str, list[float]] = {"micropip": [], "archive": []}
    options = {"game": "scripted", "autostart": False, "frames": 1, "room": "ready", "ui": False}
    for _ in range(repeats):
        for installer in ("micropip", "archive"):
            context = browser.new_context()
            page = open_tab(context, server_url, options, query=f"installer={installer}")
            wait_ready(page)
            timings = page.evaluate("() => p2pShim.timings")
            times[installer].append(timings["readyMs"])
            after_pyodide[installer].append(timings["readyMs"] - timings["pyodideLoadedMs"])
            context.close()
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{server_url}/?autoboot=0", wait_until="load")
        times["bare_pyodide"].append(
            page.evaluate(
                "async () => { await loadPyodide({indexURL: '/pyodide/'});"
                " return performance.now(); }"
            )
        )
        context.close()
    return {
        **{kind: summary(samples) for kind, samples in times.items()},
        "after_pyodide_loaded": {kind: summary(samples) for kind, samples in after_pyodide.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=1000, help="per kind (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=4, help="turns each kind takes")
    # One boot varies by +-500 ms on a shared 2-core machine, while the package adds about 50 ms:
    # nine of each keep the ratio's median steady to a few percent.
    parser.add_argument("--ready-repeats", type=int, default=9)
    parser.add_argument("--json", type=Path, default=Path("reports/bench_browser.json"))
    args = parser.parse_args(argv)
    require_loopback_namespace()
    with TurnServer() as turn, ServerThread() as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            rtt = measure_rtt(server.url, turn.ice_servers, browser, args.pings, args.rounds)
            ready = measure_ready(server.url, browser, args.ready_repeats)
        finally:
            browser.close()
    a, b, c = rtt["python_p2p"], rtt["raw_js_p2p"], rtt["python_relay"]
    d = rtt["bare_python_p2p"]
    result = {
        "rtt": rtt,
        "ratio_python_over_raw_js_median": a["median_ms"] / b["median_ms"],
        "ratio_bare_python_over_raw_js_median": d["median_ms"] / b["median_ms"],
        "session_ms_per_round_trip_median": a["median_ms"] - d["median_ms"],
        "ratio_python_p2p_over_relay_median": a["median_ms"] / c["median_ms"],
        "ready": ready,
        "ratio_ready_over_bare_median": {
            installer: ready[installer]["median_ms"] / ready["bare_pyodide"]["median_ms"]
            for installer in ("micropip", "archive")
        },
    }
    print(f"{'round trip (sequential pings)':36}{'median ms':>11}{'p95 ms':>9}{'n':>7}")
    for label, key in (
        ("(a) Python over DataChannel", "python_p2p"),
        ("(b) raw JS over DataChannel", "raw_js_p2p"),
        ("(c) Python through Socket.IO relay", "python_relay"),
        ("(d) bare Python echo over DataChannel", "bare_python_p2p"),
    ):
        s = rtt[key]
        print(f"{label:36}{s['median_ms']:>11.3f}{s['p95_ms']:>9.3f}{s['count']:>7}")
    print(
        f"a/b at the median: {result['ratio_python_over_raw_js_median']:.2f}   "
        f"a/c: {result['ratio_python_p2p_over_relay_median']:.2f}   "
        f"d/b: {result['ratio_bare_python_over_raw_js_median']:.2f}"
    )
    print(
        "what the session adds to a round trip beyond entering Pyodide (a - d): "
        f"{result['session_ms_per_round_trip_median'] * 1000:.0f} us"
    )
    bare = ready["bare_pyodide"]["median_ms"]
    print(f"page ready (navigation to package imported), median of {args.ready_repeats}:")
    print(f"  bare Pyodide boot          {bare:7.0f} ms")
    for installer, label in (("archive", "archive (default)"), ("micropip", "micropip")):
        median = ready[installer]["median_ms"]
        own = ready["after_pyodide_loaded"][installer]["median_ms"]
        print(
            f"  package via {label:<17} {median:7.0f} ms  ({median / bare:.3f} x bare;"
            f" {own:.0f} ms of it after Pyodide loaded)"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
