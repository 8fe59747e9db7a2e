"""Telemetry: the bounded recorder, and P2PSession.telemetry() after a fake-link run."""

from __future__ import annotations

import json

import pytest

from p2p_transport import HealthStatus, SessionConfig
from p2p_transport.protocol.acked_sender import PENDING_LIMIT
from p2p_transport.protocol.routing import Route, RouteChange, RouteMode
from p2p_transport.session.telemetry import (
    RTT_COLUMNS,
    RTT_SAMPLE_ROWS,
    SCHEMA,
    SCHEMA_VERSION,
    BoundedLog,
    TelemetryRecorder,
)
from p2p_transport.wire.messages import GAME_KIND_MIN
from tests.test_session_routing import FRAME_MS, Game


def test_a_bounded_log_drops_the_oldest_rows_and_counts_them() -> None:
    log = BoundedLog(("at_ms", "value"), 3)
    for i in range(5):
        log.append(float(i), i * 10)
    assert len(log) == 3
    assert log.dropped == 2
    assert log.rows() == [(2.0, 20), (3.0, 30), (4.0, 40)]
    assert log.to_dict() == {
        "columns": ["at_ms", "value"],
        "capacity": 3,
        "dropped": 2,
        "rows": [[2.0, 20], [3.0, 30], [4.0, 40]],
    }
    with pytest.raises(ValueError, match="2 fields"):
        log.append(1.0)
    with pytest.raises(ValueError, match="capacity"):
        BoundedLog(("a",), 0)


def test_rtt_samples_stay_within_the_ring_however_long_the_session() -> None:
    recorder = TelemetryRecorder(("p2p", "relay"), 0.0)
    extra = 250
    for i in range(RTT_SAMPLE_ROWS + extra):
        recorder.record_rtt(i * 500.0, "p2p", 20.0 + i % 7, 20.0 + i % 7)
    p2p = recorder.to_dict(rtt_interval_ms=500.0)["rtt"]["p2p"]
    assert len(p2p["rows"]) == RTT_SAMPLE_ROWS
    assert p2p["dropped"] == extra
    # The oldest went first: the ring starts at the first sample kept.
    assert p2p["rows"][0][0] == extra * 500.0
    assert p2p["covers_ms"] == RTT_SAMPLE_ROWS * 500.0 == 3_600_000.0  # one hour
    assert recorder.to_dict()["rtt"]["relay"]["rows"] == []


def test_health_transitions_are_recorded_only_when_the_status_changes() -> None:
    recorder = TelemetryRecorder(("p2p",), 0.0)
    assert recorder.observe_health(0.0, HealthStatus.GOOD)
    assert not recorder.observe_health(200.0, HealthStatus.GOOD)
    assert recorder.observe_health(1200.0, HealthStatus.WARNING)
    assert recorder.observe_health(3200.0, HealthStatus.DISCONNECTED)
    assert recorder.observe_health(3400.0, HealthStatus.GOOD)
    assert recorder.health.rows() == [
        (0.0, None, "good"),
        (1200.0, "good", "warning"),
        (3200.0, "warning", "disconnected"),
        (3400.0, "disconnected", "good"),
    ]


def test_route_changes_loss_and_control_rows() -> None:
    recorder = TelemetryRecorder(("p2p",), 0.0)
    recorder.record_route_change(
        RouteChange(12.345, Route.RELAY, Route.BOTH, Route.P2P, "p2p open")
    )
    recorder.record_loss(10.0, None)  # too few packets to tell: nothing recorded
    recorder.record_loss(20.0, 0.123456)
    recorder.record_control_delivery(30.0, 41.00001)
    out = recorder.to_dict()
    assert out["route_changes"]["rows"] == [[12.35, "relay", "both", "p2p", "p2p open"]]
    assert out["loss_estimates"]["rows"] == [[20.0, 0.1235]]
    assert out["control_deliveries"]["rows"] == [[30.0, 41.0]]


def run_game() -> Game:
    """Two sessions on p2p-first: open, play, the DataChannel closes and reopens, and a few control
    messages go each way."""
    game = Game(SessionConfig(route_mode=RouteMode.P2P_FIRST))
    for session in game.sessions.values():
        session.edge.start_watchdog()
    game.set_channels("open")
    game.play(2000)
    for i in range(3):
        game.a.send_control(GAME_KIND_MIN, b"x")
        game.sessions["b"].send_episode_ready(i)
    game.play(1000)
    game.set_channels("closed")
    game.play(4000)
    game.set_channels("open")
    game.play(4000)
    game.link.drain()
    return game


def test_a_session_reports_what_it_measured_and_it_survives_json() -> None:
    game = run_game()
    a = game.a
    record = a.telemetry()
    assert json.loads(json.dumps(record)) == record
    assert record["schema"] == SCHEMA
    assert record["schema_version"] == SCHEMA_VERSION
    assert (record["player_index"], record["peer_index"]) == (0, 1)
    assert record["clock"]["unit"] == "ms"
    assert record["clock"]["recorded_at_ms"] == pytest.approx(game.clock(), abs=0.01)

    # RTT: one row per matched pong on each path, timestamps in order, values the trackers saw.
    stats = a.stats()
    for path in ("p2p", "relay"):
        rtt = record["rtt"][path]
        assert len(rtt["rows"]) == stats[f"{path}_pongs_received"] > 0
        assert rtt["dropped"] == 0
        assert rtt["columns"] == list(RTT_COLUMNS)
        times = [at for at, *_ in rtt["rows"]]
        assert times == sorted(times)
        # Game channel and relay pongs (the fakes have no ping channel): the RTT is the naive
        # one, no hold is known, and nothing was handled late.
        for _, value, naive, hold, late in rtt["rows"]:
            assert value == naive > 0
            assert (hold, late) == (None, False)
    assert record["rtt"]["p2p"]["rows"][-1][1] == pytest.approx(
        a.parts.rtt.last_sample_ms, abs=0.01
    )
    assert record["rtt"]["p2p"]["summary"]["rtt_samples"] == a.parts.rtt.sample_count

    # Route changes: every one the router made, with reasons, in the form the events use.
    routes = record["route_changes"]
    assert (
        record["route_changes_total"] == a.parts.inputs.router.change_count == len(routes["rows"])
    )
    assert routes["columns"] == list(a.parts.inputs.router.last_change.as_dict())
    assert routes["rows"][-1] == list(a.parts.inputs.router.last_change.as_dict().values())
    assert a.route_changes()[-1] == a.parts.inputs.router.last_change.as_dict()
    assert "p2p channel not open" in [row[4] for row in routes["rows"]]

    # Health: the closed channel went silent past the disconnect threshold and came back.
    transitions = [(row[1], row[2]) for row in record["health_transitions"]["rows"]]
    assert transitions[0] == (None, "good")
    assert ("warning", "disconnected") in transitions
    assert transitions[-1][1] == record["health_status"] == "good"

    # Totals match the session's counters.
    for path in ("p2p", "relay"):
        counts = record["paths"][path]
        assert counts["packets_sent"] == stats[f"{path}_packets_sent"] > 0
        assert counts["bytes_sent"] == stats[f"{path}_bytes_sent"] > counts["packets_sent"]
        assert counts["packets_received"] == stats[f"{path}_packets_received"] > 0
        assert counts["bytes_received"] == stats[f"{path}_bytes_received"]
    inputs = record["inputs"]
    assert inputs["sent"] == game.frame
    assert inputs["inputs_delivered"] == game.frame
    for key in ("recovered", "duplicates", "conflicts", "gaps", "lost"):
        assert inputs[key] == stats[key]
    assert inputs["duplicates"] > 0  # the overlaps sent every input on both paths
    assert record["loss_estimates"]["rows"]

    # Control: every message the side sent was acknowledged, each delivery time recorded.
    control = record["control"]
    assert control["acked"] == control["sent"] == 3
    deliveries = record["control_deliveries"]["rows"]
    assert len(deliveries) == 3
    assert [d for _, d in deliveries] == pytest.approx(
        list(a.parts.control.delivery_times_ms), abs=0.01
    )


def test_the_peers_stall_is_recorded_when_it_starts_and_ends_not_at_the_next_tick() -> None:
    """A DataChannel dead one way: the peer still talks (no silence) but acknowledges none of this
    side's inputs, so after PENDING_LIMIT of them the status is a warning, from that very step."""
    game = Game(SessionConfig(route_mode=RouteMode.P2P))
    for session in game.sessions.values():
        session.edge.start_watchdog()
    game.set_channels("open")
    game.play(1000)
    send = game.link.channel_a.on_send
    game.link.channel_a.on_send = lambda data: None  # a's packets vanish; b's still arrive
    dead_at = game.clock()
    game.play(1500)
    game.link.channel_a.on_send = send
    healed_at = game.clock()
    game.play(500)
    rows = game.a.telemetry()["health_transitions"]["rows"]
    assert [(row[1], row[2]) for row in rows] == [
        (None, "good"),
        ("good", "warning"),
        ("warning", "good"),
    ]
    assert rows[1][0] == pytest.approx(dead_at + PENDING_LIMIT * FRAME_MS, abs=2 * FRAME_MS)
    assert healed_at < rows[2][0] < healed_at + 3 * FRAME_MS  # a watchdog tick is 200 ms
