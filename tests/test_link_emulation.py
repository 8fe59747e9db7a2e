"""Whole-link emulation (netem's delay, jitter and loss on every path a side receives on): the
words it takes, what it does to packets, and that every RTT, the ping channel's included, and
the rollback layer's time sync see the delay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_transport import P2PSession
from p2p_transport.errors import UsageError
from p2p_transport.protocol.faults import LINK_PUMP_INTERVAL_MS, LinkConfig, LinkEmulator
from p2p_transport.protocol.routing import Link
from p2p_transport.session import SessionConfig
from p2p_transport.wire.codec import encode_held_pong, encode_pong
from tests.fakes import FakeChannel, FakeClock, FakePingChannel, FakeScheduler, FakeSocket
from tests.rollback_sim import simulate_games
from tests.test_rollback_game_pieces import Walk, _keys

DELAY_MS = 40.0


@pytest.mark.parametrize(
    ("text", "config"),
    [
        ("delay 40ms 5ms loss 5%", LinkConfig(delay_ms=40, jitter_ms=5, loss=0.05)),
        ("delay 60ms", LinkConfig(delay_ms=60)),
        ("loss 2.5%", LinkConfig(loss=0.025)),
        ("  loss 1% delay 0.5ms ", LinkConfig(delay_ms=0.5, loss=0.01)),
    ],
)
def test_a_link_in_netems_words(text: str, config: LinkConfig) -> None:
    assert LinkConfig.parse(text) == config
    assert LinkConfig.parse(str(config)) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("delay 40", "netem's words"),
        ("pigeon", "netem's words"),
        ("", "netem's words"),
        ("loss 150%", r"loss must be in \[0, 1\]"),
        ("delay 5ms 10ms", "must not exceed delay_ms"),
    ],
)
def test_a_link_that_cannot_be_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        LinkConfig.parse(text)


@given(
    delay=st.floats(0, 200),
    jitter_share=st.floats(0, 1),
    seed=st.integers(0, 2**16),
)
def test_each_packet_arrives_within_the_delay_and_jitter(
    delay: float, jitter_share: float, seed: int
) -> None:
    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    config = LinkConfig(delay_ms=delay, jitter_ms=delay * jitter_share)
    link = LinkEmulator(config, clock, scheduler, seed)
    arrivals: list[tuple[float, float]] = []
    for sent in range(20):
        link.receive(float(sent), lambda at, sent=sent: arrivals.append((float(sent), at)))
    scheduler.advance(500.0)
    assert len(arrivals) == 20 and link.held == 0 and not link.timer_running
    for sent, at in arrivals:
        assert abs(at - sent - delay) <= config.jitter_ms + 1e-9


def test_loss_drops_its_share_and_close_lets_go_of_what_is_held() -> None:
    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    link = LinkEmulator(LinkConfig(delay_ms=10, loss=0.2), clock, scheduler, seed=7)
    got: list[float] = []
    for _ in range(5000):
        link.receive(clock(), got.append)
    assert link.counters.dropped == pytest.approx(1000, rel=0.1)
    assert link.timer_running and got == []
    link.close()
    assert link.counters.lost_in_flight == 5000 - link.counters.dropped
    assert not link.timer_running and scheduler.active == {}
    link.receive(clock(), got.append)
    scheduler.advance(100.0)
    assert got == []


def linked(config: SessionConfig) -> tuple[list[P2PSession], FakeScheduler, list[FakePingChannel]]:
    """Two sessions whose game channels, relays and ping channels carry each other's packets at
    once: whatever delay there is comes from the link emulation."""
    clock = FakeClock(1000.0)
    scheduler = FakeScheduler(clock)
    channels = [FakeChannel(), FakeChannel()]
    relays = [FakeSocket(), FakeSocket()]
    pings = [FakePingChannel(), FakePingChannel()]
    sessions = [
        P2PSession(
            p,
            1 - p,
            lambda frame, action: None,
            clock=clock,
            scheduler=scheduler,
            channel=channels[p],
            relay=relays[p],
            config=config,
        )
        for p in (0, 1)
    ]
    for p in (0, 1):
        other = sessions[1 - p]
        channels[p].on_send = other.edge.on_message
        relays[p].on_emit = lambda _event, data, other=other: other.edge.on_relay_message(data)
        sessions[p].edge.attach_ping_channel(pings[p])
        sessions[p].edge.start_watchdog()
        sessions[p].edge.on_open()
    return sessions, scheduler, pings


def test_every_path_sees_the_delay_both_ways() -> None:
    sessions, scheduler, _ = linked(SessionConfig(link=LinkConfig(delay_ms=DELAY_MS)))
    scheduler.advance(10_000.0)
    for session in sessions:
        stats = session.stats()
        for prefix in ("", "relay_"):
            # Each side delays what it receives: a round trip crosses the link twice.
            assert stats[f"{prefix}rtt_p50_ms"] == pytest.approx(
                2 * DELAY_MS, abs=2 * LINK_PUMP_INTERVAL_MS
            ), prefix
        assert session.link is not None and session.link.counters.delivered > 0
    sessions[0].close()
    assert sessions[0].link is not None and not sessions[0].link.timer_running


def test_the_ping_channel_arrival_moves_with_the_delay() -> None:
    sessions, scheduler, _ = linked(SessionConfig(link=LinkConfig(delay_ms=DELAY_MS)))
    session = sessions[0]
    session.parts.pinger.ping(Link.P2P)
    sent_at = session.parts.clock()
    # The worker stamps the pong's arrival 2 ms after the ping left; the link adds its delay.
    session.edge.on_ping_channel_message(encode_held_pong(sent_at, 0.0), arrival_ms=sent_at + 2)
    session.edge.on_message(encode_pong(sent_at))
    scheduler.advance(DELAY_MS + 2 * LINK_PUMP_INTERVAL_MS)
    # The ping channel's copy is timed from its emulated arrival, to the microsecond.
    assert session.stats()["rtt_last_ms"] == pytest.approx(DELAY_MS + 2)


def test_without_a_link_nothing_is_held() -> None:
    sessions, scheduler, _ = linked(SessionConfig())
    assert all(session.link is None for session in sessions)
    intervals = sorted(timer.interval_ms for timer in scheduler.active.values())
    assert LINK_PUMP_INTERVAL_MS not in intervals  # no emulation timer, ever


def test_the_rollback_layers_time_sync_sees_the_emulated_delay() -> None:
    link = LinkConfig(delay_ms=DELAY_MS, jitter_ms=5.0)
    loops = simulate_games(Walk, _keys, frames=240, one_way_ms=0.0, seed=4, link=link)
    a, b = (loops[side].rollback for side in ("a", "b"))
    assert a.episodes == b.episodes and a.stats()["desyncs"] == 0
    for rollback in (a, b):
        # The RTT the time sync estimates the peer's frame with is the emulated round trip.
        srtt = rollback.session.parts.rtt.srtt_ms
        assert srtt == pytest.approx(2 * DELAY_MS, abs=10.0)
        # Inputs arrive 40 ms (2.4 frames) late, beyond the input delay of 2: rollbacks.
        assert rollback.stats()["rollbacks"] > 0
        assert rollback.stats()["time_sync_received"] > 0
    # Symmetric delay: neither side runs ahead once the estimate adds half the round trip.
    assert abs(a.frames_ahead) < 1.0 and abs(b.frames_ahead) < 1.0
