"""Corrected against naive RTT while the answering tab's main thread stalls, over many stalls.

Run inside the loopback-only namespace:

    scripts/netns.sh .venv/bin/python benchmarks/bench_stall_rtt.py [--stalls 60] [--json PATH]

Two tabs of the demo in Chromium; the pinging tab pings every 100 ms on the worker-held ping
channel while the answering tab busy-loops its main thread for 200 ms, ``--stalls`` times (the
browser stall test does the same 6 times). Then, as a control, a third tab that takes no part
stalls the same way: a core is as busy as in a stall, but no ping is held. Prints
count, median, p95 and max of each kind of sample, and the share within 5 ms of the unstalled
median. Figures only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

from playwright.sync_api import sync_playwright

from p2p_demo.harness import (
    TurnServer,
    launch_chromium,
    open_tab,
    require_loopback_namespace,
    wait_ready,
)
from p2p_demo.stall_probe import (
    STALL_TAB_OPTIONS,
    TARGET_MS,
    describe,
    stall_tab,
)
from p2p_server.server import ServerThread

REPORT_JS = "() => window.p2pDemo ? JSON.parse(p2pDemo.report_json()) : null"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalls", type=int, default=60, help="200 ms stalls (%(default)s)")
    parser.add_argument("--json", type=Path, default=Path("reports/bench_stall_rtt.json"))
    args = parser.parse_args(argv)
    require_loopback_namespace()
    with TurnServer() as turn, ServerThread() as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context()
            options = {
                **STALL_TAB_OPTIONS,
                "room": f"bench-{uuid.uuid4().hex}",
                "ice_servers": turn.ice_servers,
            }
            pages = [open_tab(context, server.url, options) for _ in range(2)]
            for page in pages:
                wait_ready(page)
            for page in pages:
                page.wait_for_function(
                    f"() => {{ const r = ({REPORT_JS})(); return r && r.player_index !== null "
                    "&& r.stats.ping_channel === 'in use' && r.stats.rtt_samples >= 20; }",
                    timeout=30_000,
                )
            pinger, answerer = sorted(pages, key=lambda p: p.evaluate(REPORT_JS)["player_index"])
            run = stall_tab(pinger, answerer, args.stalls)
            control = stall_tab(pinger, context.new_page(), args.stalls)
        finally:
            browser.close()
    rows = run.rows()
    rows["bystander stalls"] = describe(
        [c for c, _ in control.in_stalls(True)], run.unstalled_median
    )
    print(
        f"{'RTT samples (ms)':<18}{'n':>6}{'median':>9}{'p95':>9}{'max':>9}"
        f"  within {TARGET_MS:g} ms of the unstalled median"
    )
    for name, row in rows.items():
        print(
            f"{name:<18}{row['count']:>6}{row['median_ms']:>9.2f}{row['p95_ms']:>9.2f}"
            f"{row['max_ms']:>9.2f}  {row['within_target']:.1%}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "rows": rows,
        "samples": {
            "unstalled": run.unstalled,
            "timed": run.timed,
            "stalls": run.stalls,
            "bystander_timed": control.timed,
            "bystander_stalls": control.stalls,
        },
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
