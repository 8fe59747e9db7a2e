"""The session's watchdog: keepalives over an idle DataChannel, and the peer's silence reported
once per threshold crossed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from p2p_transport import SessionConfig
from p2p_transport.protocol.health import HealthThresholds
from p2p_transport.session import Callbacks, P2PSession, SessionEvent
from p2p_transport.session.watchdog import DEFAULT_KEEPALIVE_INTERVAL_MS
from p2p_transport.timing import FRAME_MS
from p2p_transport.wire.codec import encode_keepalive, encode_ping
from tests.fakes import FakeChannel, FakeClock, FakeScheduler, FakeSocket

KEEPALIVE = encode_keepalive()
INTERVAL = DEFAULT_KEEPALIVE_INTERVAL_MS
WARNING = HealthThresholds().warning_silence_ms
DISCONNECT = HealthThresholds().disconnect_silence_ms


class Watched:
    def __init__(self, config: SessionConfig | None = None) -> None:
        self.clock = FakeClock(1000.0)
        self.scheduler = FakeScheduler(self.clock)
        self.channel = FakeChannel()
        self.socket = FakeSocket()
        self.events: list[tuple[SessionEvent, dict[str, Any]]] = []
        self.session = P2PSession(
            0,
            1,
            Callbacks(
                on_input=lambda frame, action: None,
                on_event=lambda event, detail: self.events.append((event, detail)),
            ),
            clock=self.clock,
            scheduler=self.scheduler,
            channel=self.channel,
            relay=self.socket,
            config=config or SessionConfig(),
        )

    def names(self) -> list[str]:
        return [event.value for event, _ in self.events]

    def keepalives(self) -> int:
        return self.channel.sent.count(KEEPALIVE)


def test_start_watchdog_starts_one_timer_that_close_stops() -> None:
    w = Watched()
    assert not w.session.parts.timers.watchdog_running
    w.session.edge.start_watchdog()
    w.session.edge.start_watchdog()
    # The watchdog, and the ping timer for the relay, which may carry the game alone.
    assert len(w.scheduler.active) == 2
    assert w.session.parts.timers.watchdog_running and w.session.parts.timers.ping_running
    assert w.session.stats()["watchdog_running"] is True
    w.session.close()
    assert w.scheduler.active == {}
    assert not w.session.parts.timers.watchdog_running
    w.session.edge.start_watchdog()
    assert w.scheduler.active == {}


def test_an_idle_channel_gets_a_keepalive_every_interval() -> None:
    w = Watched()
    w.session.edge.start_watchdog()
    w.scheduler.advance(INTERVAL)
    assert w.channel.sent == [KEEPALIVE]
    w.scheduler.advance(4 * INTERVAL)
    assert w.keepalives() == 5
    assert w.session.stats()["keepalives_sent"] == 5


def test_no_keepalive_while_the_game_sends_or_the_channel_is_closed() -> None:
    w = Watched()
    w.session.edge.start_watchdog()
    for frame in range(30):  # half a second of inputs at 60 Hz
        w.session.step(frame, 1)
        w.scheduler.advance(FRAME_MS)
    assert w.keepalives() == 0
    w.channel.readyState = "closed"
    w.scheduler.advance(5 * INTERVAL)
    assert w.keepalives() == 0
    w.channel.readyState = "open"
    w.scheduler.advance(2 * INTERVAL)
    assert w.keepalives() >= 1


def test_a_keepalive_counts_as_hearing_the_peer() -> None:
    w = Watched()
    w.clock.advance(900)
    w.session.edge.on_message(KEEPALIVE)
    assert w.session.parts.health.silence_ms == 0
    assert w.session.parts.watchdog.peer_silence_ms == 0


def test_silence_raises_a_warning_then_a_disconnect_each_once() -> None:
    w = Watched()
    w.session.edge.start_watchdog()
    w.scheduler.advance(WARNING)
    assert w.events == []  # not above the threshold yet
    w.scheduler.advance(INTERVAL)
    assert w.names() == ["p2p_silent", "peer_silent"]
    assert w.events[0][1]["silence_ms"] == pytest.approx(WARNING + INTERVAL)
    w.scheduler.advance(DISCONNECT - WARNING)
    assert w.names() == ["p2p_silent", "peer_silent", "p2p_dead", "peer_gone"]
    w.scheduler.advance(10 * DISCONNECT)
    assert len(w.events) == 4


def test_the_relay_keeps_the_peer_alive_while_the_channel_is_silent() -> None:
    w = Watched()
    w.session.edge.start_watchdog()
    ping = encode_ping(1.0)
    for _ in range(int(2 * DISCONNECT / 500)):
        w.scheduler.advance(500)
        w.session.edge.on_relay_message(ping)
    assert w.names() == ["p2p_silent", "p2p_dead"]
    # Once the channel brings a packet again, a new silence is reported afresh.
    w.session.edge.on_message(KEEPALIVE)
    for _ in range(3):
        w.scheduler.advance(500)
        w.session.edge.on_relay_message(ping)
    assert w.names() == ["p2p_silent", "p2p_dead", "p2p_silent"]


def test_a_packet_after_the_peer_was_gone_reports_it_back() -> None:
    w = Watched()
    w.session.edge.start_watchdog()
    w.scheduler.advance(DISCONNECT + INTERVAL)
    assert "peer_gone" in w.names()
    w.session.edge.on_relay_message(KEEPALIVE)
    w.scheduler.advance(INTERVAL)
    assert w.names()[-1] == "peer_back"
    assert w.events[-1][1]["silence_ms"] <= INTERVAL
    w.scheduler.advance(INTERVAL)
    assert w.names().count("peer_back") == 1


def test_a_closed_channel_is_not_reported_silent() -> None:
    w = Watched()
    w.channel.readyState = "closed"
    w.session.edge.start_watchdog()
    for _ in range(20):
        w.scheduler.advance(500)
        w.session.edge.on_relay_message(KEEPALIVE)
    assert w.events == []


def test_a_channel_that_reopens_late_is_not_a_silent_peer() -> None:
    """on_open forgets the old channel's last packet; the peer's silence must start afresh, not
    from when the watchdog started a minute ago."""
    w = Watched(SessionConfig(relay_pings=False))
    w.session.edge.start_watchdog()
    w.session.edge.on_open()
    for _ in range(120):  # a minute of keepalives both ways
        w.scheduler.advance(500)
        w.session.edge.on_message(KEEPALIVE)
    w.session.edge.on_close()
    w.session.edge.on_open()
    w.scheduler.advance(INTERVAL)
    assert w.events == []
    assert w.session.parts.watchdog.peer_silence_ms <= INTERVAL


def test_reset_episode_keeps_the_peer_silence() -> None:
    w = Watched()
    w.session.edge.start_watchdog()
    w.scheduler.advance(2000)
    w.session.edge.on_message(KEEPALIVE)
    w.scheduler.advance(400)
    w.session.reset_episode()
    assert w.session.parts.watchdog.peer_silence_ms == pytest.approx(400)


def test_an_on_event_callback_that_raises_is_counted() -> None:
    w = Watched()

    def broken(event: SessionEvent, detail: dict[str, Any]) -> None:
        raise RuntimeError("game bug")

    w.session.parts.delivery.callbacks = replace(
        w.session.parts.delivery.callbacks, on_event=broken
    )
    w.session.edge.start_watchdog()
    w.scheduler.advance(WARNING + INTERVAL)
    stats = w.session.stats()
    assert (stats["callback_errors"], stats["handler_errors"]) == (2, 0)
    assert w.session.parts.timers.watchdog_running


def test_keepalive_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keepalive_interval_ms must be positive"):
        SessionConfig(keepalive_interval_ms=0)
