"""A game the relay alone carries (no DataChannel ever opens, as behind strict networks) is
measured on the relay: pings and RTT from the pairing on, health judged by the relay, and the
telemetry plot shades nothing while the relay is fine."""

from __future__ import annotations

import pytest

from p2p_demo.plot_telemetry import degraded_spans
from p2p_transport import P2PSession
from p2p_transport.session import SessionConfig
from p2p_transport.session.pinger import DEFAULT_PING_INTERVAL_MS
from p2p_transport.wire.codec import decode, encode_pong
from p2p_transport.wire.messages import Ping
from tests.fakes import FakeChannel, FakeClock, FakeScheduler, FakeSocket

#: The relay's round trip in these tests.
RELAY_RTT_MS = 30.0


class RelayOnly:
    """A paired session whose DataChannel never opens, and a peer that answers each relay ping
    :data:`RELAY_RTT_MS` after it was sent."""

    def __init__(self, config: SessionConfig | None = None) -> None:
        self.clock = FakeClock(1000.0)
        self.scheduler = FakeScheduler(self.clock)
        relay = FakeSocket()
        self.session = P2PSession(
            0,
            1,
            lambda frame, action: None,
            clock=self.clock,
            scheduler=self.scheduler,
            channel=FakeChannel(readyState="connecting"),
            relay=relay,
            config=config,
        )
        self._pongs: list[tuple[float, bytes]] = []  # (due, pong)
        relay.on_emit = self._answer
        self.session.edge.start_watchdog()  # what the pairing does at "paired"

    def _answer(self, _event: str, data: bytes) -> None:
        message = decode(data)
        if isinstance(message, Ping):
            self._pongs.append((self.clock() + RELAY_RTT_MS, encode_pong(message.timestamp_ms)))

    def run(self, ms: float, step_ms: float = 10.0) -> None:
        for _ in range(round(ms / step_ms)):
            self.scheduler.advance(step_ms)
            due = [pong for pong in self._pongs if pong[0] <= self.clock()]
            for pong in due:
                self._pongs.remove(pong)
                self.clock.set(pong[0])
                self.session.edge.on_relay_message(pong[1])


def test_the_relay_alone_is_pinged_and_its_rtt_measured() -> None:
    side = RelayOnly()
    side.run(10 * DEFAULT_PING_INTERVAL_MS + 2 * RELAY_RTT_MS)
    stats = side.session.stats()
    assert stats["pings_sent"] == 10 and stats["pongs_received"] == 10
    assert stats["relay_rtt_samples"] == 10
    assert stats["relay_rtt_p50_ms"] == pytest.approx(RELAY_RTT_MS, abs=10.0)
    assert stats["rtt_samples"] == 0  # the DataChannel never carried a ping
    assert (stats["health_path"], stats["health_status"]) == ("relay", "good")
    record = side.session.telemetry()
    assert len(record["rtt"]["relay"]["rows"]) == 10
    # The DataChannel's own health is "disconnected" all along; the game's, the relay's, good.
    assert record["health_transitions"]["rows"][-1][2] == "disconnected"
    _, path, _, status = record["game_health_transitions"]["rows"][-1]
    assert (path, status) == ("relay", "good")
    spans = degraded_spans(record, record["clock"]["recorded_at_ms"])
    # Only the start, before the relay's first packet came (the first pong, then the next
    # tick that looks), is shaded: never the healthy session after it.
    started = record["clock"]["session_created_at_ms"]
    assert [label for *_, label in spans] == ["health disconnected (no path)"]
    assert spans[0][1] - started <= 2 * DEFAULT_PING_INTERVAL_MS, spans


def test_without_relay_pings_nothing_is_pinged_before_a_channel_opens() -> None:
    side = RelayOnly(SessionConfig(relay_pings=False))
    side.run(10 * DEFAULT_PING_INTERVAL_MS)
    assert side.session.stats()["pings_sent"] == 0
    assert not side.session.parts.timers.ping_running


def test_the_plot_shades_the_path_that_carried_the_game() -> None:
    transitions = {"columns": ["at_ms", "path", "from", "to"], "dropped": 0, "capacity": 9}
    record = {
        "health_transitions": {"rows": [[0.0, None, "disconnected"]]},
        "game_health_transitions": {
            **transitions,
            "rows": [
                [0.0, None, None, "disconnected"],
                [400.0, "relay", "disconnected", "good"],
                [5000.0, "relay", "good", "warning"],
                [6000.0, "relay", "warning", "good"],
            ],
        },
    }
    assert degraded_spans(record, 9000.0) == [
        (0.0, 400.0, "health disconnected (no path)"),
        (5000.0, 6000.0, "health warning (relay)"),
    ]
    # A record from before the game's health was kept: the DataChannel's, named as such.
    del record["game_health_transitions"]
    assert degraded_spans(record, 9000.0) == [(0.0, 9000.0, "p2p health disconnected")]
