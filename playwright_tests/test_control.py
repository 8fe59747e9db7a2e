"""Reliable control messages between two tabs under 30% loss on the DataChannel.

Control messages are kept off the relay here (``control_on_relay`` false), so every one of them,
and every ack, crosses the lossy DataChannel: each must still arrive exactly once and in order.
"""

from __future__ import annotations

import json

from playwright.sync_api import BrowserContext
from test_transport import Tab, open_pair

from p2p_demo.harness import TurnServer
from p2p_server.server import ServerThread

MESSAGES = 100
GAME_KIND = 0x80
LOSS = 0.3
# Sends the next messages whenever the control window has room; the window holds 32 in flight.
SENDER = f"""
import js
from p2p_transport.protocol.control import ControlWindowFull
tab = js.p2pDemo
session = tab.transport.session
scheduler = tab.transport.scheduler
next_index = 0

def pump():
    global next_index
    while next_index < {MESSAGES}:
        try:
            session.send_control({GAME_KIND}, next_index.to_bytes(2, "big"))
        except ControlWindowFull:
            return
        next_index += 1
    scheduler.clear_interval(timer)

timer = scheduler.set_interval(pump, 20)
"""
# Sending 100 messages under 30% loss takes a few seconds; 60 s only bounds a hang.
DELIVERY_TIMEOUT_MS = 60_000


def received(tab: Tab) -> list[tuple[int, int]]:
    pairs = json.loads(tab.page.evaluate("() => p2pDemo.controls_json()"))
    return [(kind, int(payload, 16)) for kind, payload in pairs]


def test_control_messages_arrive_once_in_order_under_loss(
    context: BrowserContext, console_messages: list[str], server: ServerThread, turn: TurnServer
) -> None:
    tabs = open_pair(
        context,
        server,
        turn,
        console_messages,
        frames=1,
        route="p2p",
        relay_inputs=False,
        control_on_relay=False,
        loss=LOSS,
        reconnect_attempts=0,
    )
    for tab in tabs:
        tab.wait_open()
    for tab in tabs:
        tab.page.evaluate("(code) => p2pShim.pyodide.runPython(code)", SENDER)
    for tab in tabs:
        tab.page.wait_for_function(
            f"() => JSON.parse(p2pDemo.controls_json()).length >= {MESSAGES}",
            timeout=DELIVERY_TIMEOUT_MS,
        )
    for tab in tabs:
        # Every message acknowledged: the last acks may themselves be lost and wait for a resend
        # (up to a second each under 30% loss), so wait for them rather than a fixed time.
        tab.wait_until(f"r.stats.control_acked === {MESSAGES}", DELIVERY_TIMEOUT_MS)
    for tab in tabs:
        tab.page.wait_for_timeout(500)  # a duplicate delivered late would show up here
        assert received(tab) == [(GAME_KIND, index) for index in range(MESSAGES)]
        stats = tab.stats()
        assert stats["control_acked"] == MESSAGES, stats
        assert stats["fault_dropped"] > 0, stats
        assert stats["relay_packets_sent"] <= stats["pings_sent"], "control used the relay"
        print(
            f"player {tab.report()['player_index']}: {MESSAGES} control messages, "
            f"delivery (send to ack) p50 {stats['control_delivery_p50_ms']:.1f} ms, "
            f"p99 {stats['control_delivery_p99_ms']:.1f} ms, "
            f"{stats['control_retransmits']} retransmits, "
            f"{stats['fault_dropped']} DataChannel packets dropped"
        )
