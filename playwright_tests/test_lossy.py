"""Loss and recovery in the browser: two demo tabs whose DataChannel adapters are wrapped in the
seeded fault injection, and a DataChannel taken away mid-game.

- 30% loss both ways with the relay out of the inputs' route: acknowledged redundancy delivers
  every input exactly once anyway.
- ``p2p-first``: the DataChannel is closed in one tab at frame 300 of 900. The inputs fall back to
  the relay at once, the lower player index sets up a fresh peer connection, and the route comes
  back to P2P after the router's dwell time, all before the game ends; nothing is lost, and no
  timer or proxy of the old connection is left behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from conftest import LoopbackGuard
from playwright.sync_api import BrowserContext
from test_transport import assert_no_page_errors, open_pair

from p2p_demo.harness import TurnServer
from p2p_server.server import ServerThread
from p2p_transport.timing import FRAME_MS

LOSSY_FRAMES: Final = 600
LOSS: Final = 0.3
# With about 650 packets each way, the dropped share is within 0.3 +- 0.05 with probability well
# above 0.999 (3.5 standard deviations); outside it, the fault injection is not doing its job.
LOSS_TOLERANCE: Final = 0.08
# A small added delay, so the fault injection's pump timer carries every packet.
DELAY_MS: Final = 10.0

RECOVERY_FRAMES: Final = 900
CLOSE_AT_FRAME: Final = 300
# The router leaves P2P at the next step after the channel closes: one frame, plus a busy tab.
MAX_TO_RELAY_MS: Final = 100.0


def at_frame_js(action: str) -> str:
    """A page function of ``frame``: polls the game every 4 ms and, as soon as ``frame`` has been
    stepped, runs ``action`` (JavaScript, with ``game`` in scope); resolves with the page's clock
    just before the action, its time origin and the frame it happened at."""
    return f"""frame => new Promise(resolve => {{
    const game = p2pDemo.game;
    const id = setInterval(() => {{
        const next = game.next_frame;
        if (next < frame) return;
        clearInterval(id);
        const at = performance.now();
        {action}
        resolve({{at, next, origin: performance.timeOrigin}});
    }}, 4);
}})"""


# Closes the DataChannel as soon as frame 300 has been stepped.
CLOSE_AT_FRAME_JS: Final = at_frame_js("p2pDemo.transport.close_channel(); game.destroy();")


def events_named(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [entry for entry in report["event_log"] if entry["event"] == name]


def first_after(entries: Sequence[dict[str, Any]], at_ms: float) -> dict[str, Any] | None:
    return next((entry for entry in entries if entry["at_ms"] >= at_ms), None)


def test_30_percent_loss_both_ways_without_the_relay_loses_nothing(
    context: BrowserContext,
    server: ServerThread,
    turn: TurnServer,
    loopback_guard: LoopbackGuard,
    console_messages: list[str],
) -> None:
    tabs = open_pair(
        context,
        server,
        turn,
        console_messages,
        frames=LOSSY_FRAMES,
        route="p2p",
        loss=LOSS,
        delay_ms=DELAY_MS,
        fault_seed=7,
    )
    for tab in tabs:
        tab.wait_game_done(LOSSY_FRAMES)
    for tab in tabs:
        report = tab.report()
        game, stats = report["game"], report["stats"]
        assert game["delivered_exactly_once"], game
        assert game["frames_received"] == LOSSY_FRAMES
        assert game["extra_deliveries"] == 0
        # Every input came over the DataChannel: the relay carried none.
        assert stats["route"] == "p2p"
        assert report["route_changes"] == []
        assert stats["relay_inputs_delivered"] == 0, stats
        assert stats["p2p_inputs_delivered"] == LOSSY_FRAMES
        # The loss was real, and redundancy is what brought the inputs whose packet was lost.
        dropped_share = stats["fault_dropped"] / stats["fault_packets"]
        assert abs(dropped_share - LOSS) < LOSS_TOLERANCE, stats
        assert stats["recovered"] > 0
        assert stats["acked_inputs_in_use"] is True
        assert stats["fault_pump_running"] is True
        print(
            f"player {report['player_index']}: {stats['fault_dropped']} of "
            f"{stats['fault_packets']} DataChannel packets dropped ({dropped_share:.1%}), "
            f"{stats['recovered']} inputs recovered from later packets, "
            f"{stats['duplicates']} duplicate copies dropped, "
            f"{stats['p2p_bytes_sent'] / stats['p2p_packets_sent']:.1f} bytes per packet sent"
        )
    # The pump timer goes with the connection: after close nothing is left.
    for tab in tabs:
        tab.page.evaluate("() => p2pDemo.close()")
        after = tab.page.evaluate("() => JSON.parse(p2pDemo.report_json()).stats")
        assert after["fault_pump_running"] is False
        assert after["live_proxies"] == 0
        assert tab.active_intervals() == 0
    assert_no_page_errors(console_messages)


def test_a_channel_closed_mid_game_falls_back_to_the_relay_and_comes_back(
    context: BrowserContext,
    server: ServerThread,
    turn: TurnServer,
    loopback_guard: LoopbackGuard,
    console_messages: list[str],
) -> None:
    tabs = open_pair(
        context, server, turn, console_messages, frames=RECOVERY_FRAMES, route="p2p-first"
    )
    offerer, answerer = tabs
    closer = answerer  # the side that does not make offers: the other must notice and re-offer
    for tab in tabs:
        tab.wait_until(f"r.game !== null && r.game.frames_stepped >= {CLOSE_AT_FRAME // 2}", 30_000)
        tab.page.evaluate("() => { window.firstPc = p2pDemo.transport.peer_connection; }")
    closed = closer.page.evaluate(CLOSE_AT_FRAME_JS, CLOSE_AT_FRAME)
    before = {id(tab): tab.report() for tab in tabs}
    for tab in tabs:
        tab.wait_game_done(RECOVERY_FRAMES)
    # The route may still be on its way back when the last frame is stepped; it must have been
    # back before the game ended (checked below), so this wait is short.
    for tab in tabs:
        tab.wait_until('r.stats.route === "p2p"', 5_000)

    lines = [f"DataChannel closed in player 1's tab at frame {closed['next']}"]
    for tab in tabs:
        report = tab.report()
        game, stats = report["game"], report["stats"]
        start = before[id(tab)]
        assert game["delivered_exactly_once"], game
        assert game["frames_received"] == RECOVERY_FRAMES

        # When this side lost the channel: the close call, or the close event it caused.
        if tab is closer:
            lost_at = closed["at"]
        else:
            closes = events_named(report, "closed")
            assert closes, report["event_log"]
            lost_at = closes[0]["at_ms"]
        changes = report["route_changes"]
        leave = first_after(changes, lost_at)
        assert leave is not None, changes
        # The route was P2P when the channel went: ``before`` cannot tell, since it is read after
        # the close, and the peer's close event can beat it.
        assert (leave["previous"], leave["target"]) == ("p2p", "relay"), changes
        assert leave["reason"] == "p2p channel not open"
        on_relay = first_after([c for c in changes if c["route"] == "relay"], lost_at)
        assert on_relay is not None, changes
        back = first_after([c for c in changes if c["route"] == "p2p"], lost_at)
        assert back is not None, changes
        assert back["reason"] == "switch complete"
        heading_back = [c for c in changes if c["target"] == "p2p" and c["at_ms"] >= lost_at]
        assert heading_back[0]["reason"].startswith("p2p healthy for"), heading_back
        # Back on P2P before the game's last frame.
        assert back["at_ms"] < game["sent_all_at_ms"], (back, game)
        reconnected = first_after(events_named(report, "reconnected"), lost_at)
        assert reconnected is not None, report["event_log"]
        assert events_named(report, "degraded"), report["event_log"]
        assert leave["at_ms"] - lost_at < MAX_TO_RELAY_MS

        # The peer's inputs could only come through the relay while the channel was down and
        # while the peer's route was the relay alone; its route changed at about the same times
        # as this side's, so those windows, less a fifth for the difference, bound what the relay
        # delivered first.
        relay_only_ms = (reconnected["at_ms"] - lost_at) + (
            heading_back[0]["at_ms"] - on_relay["at_ms"]
        )
        via_relay = stats["relay_inputs_delivered"] - start["stats"]["relay_inputs_delivered"]
        assert via_relay >= 0.8 * relay_only_ms / FRAME_MS, (via_relay, relay_only_ms)

        # A new peer connection, the old one's handlers freed, no timer left behind.
        assert tab.page.evaluate("() => p2pDemo.transport.peer_connection !== window.firstPc")
        assert stats["generation"] >= 1
        assert stats["reconnects"] == 1
        assert stats["live_pc_proxies"] == start["stats"]["live_pc_proxies"]
        assert stats["reconnect_timer_running"] is False
        assert stats["reconnect_attempt_running"] is False
        timers = 2 + int(stats["resend_timer_running"])  # ping timer, watchdog, resend timer
        assert tab.active_intervals() == timers, stats

        lines.append(
            f"player {report['player_index']}: relay after {leave['at_ms'] - lost_at:.1f} ms "
            f"(both paths), relay only after {on_relay['at_ms'] - lost_at:.0f} ms; "
            f"new DataChannel open after {reconnected['at_ms'] - lost_at:.0f} ms "
            f"({reconnected['attempts']} attempt(s) made here); "
            f"back on P2P after {back['at_ms'] - lost_at:.0f} ms "
            f"(both paths from {heading_back[0]['at_ms'] - lost_at:.0f} ms); "
            f"{via_relay} inputs first delivered by the relay meanwhile"
        )
    print("\n".join(lines))
    offerer_stats = offerer.stats()
    assert offerer_stats["reconnect_attempts"] >= 1
    assert answerer.stats()["reconnect_attempts"] == 0  # only the lower index offers
    assert_no_page_errors(console_messages)


ONE_WAY_FRAMES: Final = 900
# In the offerer's tab: once frame 300 has been stepped, drop everything it sends over the
# DataChannel (the peer's packets still arrive); once a new connection has opened, stop dropping.
BREAK_ONE_WAY_JS: Final = at_frame_js("""game.destroy(); p2pDemo.set_faults('{"loss": 1.0}');""")
MEND_AFTER_RECONNECT_JS: Final = """timeoutMs => new Promise((resolve, reject) => {
    const transport = p2pDemo.transport;
    const started = performance.now();
    const reconnects = () => {
        const stats = transport.stats();
        const count = stats.get("reconnects");
        stats.destroy();
        return count;
    };
    const id = setInterval(() => {
        if (reconnects() < 1) {
            if (performance.now() - started > timeoutMs) {
                clearInterval(id);
                transport.destroy();
                reject(new Error("no reconnection"));
            }
            return;
        }
        clearInterval(id);
        transport.destroy();
        p2pDemo.set_faults("{}");
        resolve(performance.now());
    }, 4);
})"""


def test_a_channel_dead_one_way_is_left_and_replaced_without_losing_an_input(
    context: BrowserContext,
    server: ServerThread,
    turn: TurnServer,
    loopback_guard: LoopbackGuard,
    console_messages: list[str],
) -> None:
    """Player 0's DataChannel packets stop arriving while player 1's still do. Player 0 hears
    nothing wrong but sees its inputs go unacknowledged and moves them to the relay; player 1
    moves to the relay too, and after 3 s of silence on the channel closes its end, since only
    player 0 makes offers; player 0 sees its channel close and offers a new connection."""
    offerer, answerer = open_pair(
        context, server, turn, console_messages, frames=ONE_WAY_FRAMES, route="p2p-first"
    )
    for tab in (offerer, answerer):
        tab.wait_until(f"r.game !== null && r.game.frames_stepped >= {CLOSE_AT_FRAME // 2}", 30_000)
    broken = offerer.page.evaluate(BREAK_ONE_WAY_JS, CLOSE_AT_FRAME)
    mended_at = offerer.page.evaluate(MEND_AFTER_RECONNECT_JS, 15_000)
    for tab in (offerer, answerer):
        tab.wait_game_done(ONE_WAY_FRAMES)
    for tab in (offerer, answerer):
        tab.wait_until('r.stats.route === "p2p"', 5_000)

    origins = [tab.page.evaluate("() => performance.timeOrigin") for tab in (offerer, answerer)]
    # Each tab's clock starts at its own navigation: the break, in the answerer's clock.
    broken_at = [broken["at"], broken["at"] + origins[0] - origins[1]]
    reports = [tab.report() for tab in (offerer, answerer)]
    for report, since in zip(reports, broken_at, strict=True):
        game, stats = report["game"], report["stats"]
        assert game["delivered_exactly_once"], game
        assert game["frames_received"] == ONE_WAY_FRAMES
        assert stats["acked_inputs_abandoned"] == 0
        assert stats["reconnects"] == 1
        assert stats["route"] == "p2p"
        back = first_after([c for c in report["route_changes"] if c["route"] == "p2p"], since)
        assert back is not None and back["at_ms"] < game["sent_all_at_ms"], report["route_changes"]

    off, ans = reports
    off_leave = first_after(off["route_changes"], broken_at[0])
    ans_leave = first_after(ans["route_changes"], broken_at[1])
    assert off_leave is not None and ans_leave is not None
    assert off_leave["reason"] == "32 inputs unacknowledged over p2p"
    # Player 1's acks travel back over player 0's dead direction too: its own backlog, or the
    # silence, whichever trips first (player 0's acks reach it over the relay once player 0 left).
    assert ans_leave["reason"] == off_leave["reason"] or ans_leave["reason"].startswith(
        "p2p silent for"
    ), ans["route_changes"]
    ans_dead = first_after(events_named(ans, "degraded"), broken_at[1])
    assert ans_dead is not None
    off_closed = first_after(events_named(off, "degraded"), broken_at[0])
    assert off_closed is not None and off_closed["reason"] == "data channel closed"
    # Player 1 gave up the channel after the 3 s disconnect threshold, not before.
    dead_events = [e for e in events_named(ans, "degraded") if "open but silent" in e["reason"]]
    assert dead_events, ans["event_log"]
    assert 3000 <= dead_events[0]["at_ms"] - broken_at[1] < 4000
    assert off["stats"]["reconnect_attempts"] >= 1
    assert ans["stats"]["reconnect_attempts"] == 0
    reconnected = first_after(events_named(off, "reconnected"), broken_at[0])
    assert reconnected is not None
    print(
        f"DataChannel dead one way (player 0 -> 1) from frame {broken['next']}: "
        f"player 0 left P2P after {off_leave['at_ms'] - broken_at[0]:.0f} ms (backlog), "
        f"player 1 after {ans_leave['at_ms'] - broken_at[1]:.0f} ms ({ans_leave['reason']}); "
        f"player 1 closed "
        f"its end after {dead_events[0]['at_ms'] - broken_at[1]:.0f} ms; new channel open "
        f"after {reconnected['at_ms'] - broken_at[0]:.0f} ms; the break mended "
        f"{mended_at - reconnected['at_ms']:.0f} ms after that; nothing lost"
    )
    assert_no_page_errors(console_messages)
