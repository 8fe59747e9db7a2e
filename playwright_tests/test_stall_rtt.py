"""RTT that a stalled main thread cannot fake.

The answering tab busy-loops its main thread for 200 ms at a time while pings are in flight. Pings
travel on the ping channel, which a worker holds in each tab: it notes when each ping and pong
arrives and leaves while the page is busy, the pong carries how long the ping was held (arrival
to departure), and the pinger times the round trip from the ping's departure to the pong's
arrival. The naive RTT (handling time minus sending time, hold included) is reported beside it.
"""

from __future__ import annotations

import statistics

from playwright.sync_api import BrowserContext
from test_transport import open_pair

from p2p_demo.harness import TurnServer
from p2p_demo.stall_probe import STALL_MS, STALL_TAB_OPTIONS, TARGET_MS, stall_tab
from p2p_server.server import ServerThread

STALLS = 6
#: How far short of the peer's hold a correction that takes all of it out can read: six clock
#: readings go into a sample's naive RTT, corrected RTT and hold, each coarsened to 0.1 ms, and the
#: telemetry rounds each figure to 0.01 ms.
CLOCK_SLACK_MS = 1.0


def test_corrected_rtt_ignores_the_answering_tabs_stalls(
    context: BrowserContext, console_messages: list[str], server: ServerThread, turn: TurnServer
) -> None:
    pinger, answerer = open_pair(context, server, turn, console_messages, **STALL_TAB_OPTIONS)
    for tab in (pinger, answerer):
        tab.wait_open()
    pinger.wait_until("r.stats.ping_channel === 'in use' && r.stats.rtt_samples >= 20", 20_000)

    run = stall_tab(pinger.page, answerer.page, STALLS)

    for name, row in run.rows().items():
        print(f"{name}: " + ", ".join(f"{key} {value:.2f}" for key, value in row.items()))
    held = run.held
    # The stalls were real: every stall held some answers, some for most of the stall.
    assert len(held) >= STALLS
    assert max(s.hold_ms for s in held) > STALL_MS / 2
    # Each sample leaves all of the hold its pong carries out: its naive RTT exceeds the corrected
    # one by at least the hold. The rest of the gap is this tab's own hops between page and
    # worker, which a loaded machine lengthens and never shortens, so a slow machine cannot fail
    # this, while any hold left in makes the gap fall short by it. (A sample's corrected RTT alone
    # cannot tell a hold left in from a slow transit: with other test suites running on these
    # 2-core machines a held ping's corrected RTT has reached 85 ms.)
    for sample in held:
        assert sample.naive_ms - sample.rtt_ms >= sample.hold_ms - CLOCK_SLACK_MS, sample
    # The bound (TARGET_MS, 5 ms), held by the median of the held samples. Single
    # samples on these 2-core machines wander past it now and then, stalled or not (the busy loop
    # holds one core and everything carrying the pings shares the other):
    # ``benchmarks/bench_stall_rtt.py`` prints how often, over many stalls.
    assert statistics.median(s.rtt_ms for s in held) < run.unstalled_median + TARGET_MS
    stats = pinger.stats()
    assert stats["held_pongs_received"] >= len(run.corrected)
    assert answerer.stats()["held_pongs_sent"] > 0
    # The game is over (one frame) and only the ping channel is busy: keepalives must keep the
    # game channel alive, or each side finds it dead and the connection is torn down.
    for tab in (pinger, answerer):
        tab_stats = tab.stats()
        assert tab_stats["p2p_losses"] == tab_stats["reconnects"] == 0, tab_stats
        assert tab_stats["keepalives_sent"] > 0, tab_stats
