"""P2PSession with fake channel, relay, clock and scheduler."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_transport import SessionConfig, SessionState
from p2p_transport.protocol.routing import Link
from p2p_transport.session import Callbacks, P2PSession
from p2p_transport.session.pinger import MAX_OUTSTANDING_PINGS
from p2p_transport.session.timers import VALIDATION_TICK_MS
from p2p_transport.wire.codec import (
    decode,
    encode_focus_state,
    encode_input_packet,
    encode_keepalive,
    encode_ping,
    encode_pong,
)
from p2p_transport.wire.messages import MessageType
from tests.fakes import FakeChannel, FakeClock, FakeScheduler, FakeSocket


@dataclass
class Side:
    session: P2PSession
    channel: FakeChannel
    socket: FakeSocket
    inputs: list[tuple[int, int]] = field(default_factory=list)


def make(
    player: int = 0,
    peer: int = 1,
    clock: FakeClock | None = None,
    scheduler: FakeScheduler | None = None,
    config: SessionConfig | None = None,
) -> Side:
    clock = clock or FakeClock(1000.0)
    scheduler = scheduler or FakeScheduler(clock)
    channel, socket = FakeChannel(), FakeSocket()
    inputs: list[tuple[int, int]] = []
    session = P2PSession(
        player,
        peer,
        lambda frame, action: inputs.append((frame, action)),
        clock=clock,
        scheduler=scheduler,
        channel=channel,
        relay=socket,
        config=config,
    )
    return Side(session, channel, socket, inputs)


def pair(config: SessionConfig | None = None) -> tuple[Side, Side, FakeClock, FakeScheduler]:
    clock = FakeClock(1000.0)
    scheduler = FakeScheduler(clock)
    return (
        make(0, 1, clock, scheduler, config),
        make(1, 0, clock, scheduler, config),
        clock,
        scheduler,
    )


# --- the ping timer ---------------------------------------------------------------------------


def pings(channel: FakeChannel) -> list[bytes]:
    """The pings among what was sent on ``channel`` (a new channel's validation pings aside)."""
    return [packet for packet in channel.sent if packet[0] == MessageType.PING]


def test_on_open_starts_exactly_one_ping_timer_and_one_validation_timer() -> None:
    clock = FakeClock(1000.0)
    scheduler = FakeScheduler(clock)
    a = make(clock=clock, scheduler=scheduler)
    assert not a.session.parts.timers.ping_running
    assert scheduler.active == {}
    a.session.edge.on_open()
    a.session.edge.on_open()  # a second open event must not start a second timer
    assert len(scheduler.started) == 2
    assert sorted(t.interval_ms for t in scheduler.active.values()) == [VALIDATION_TICK_MS, 500.0]
    assert a.session.parts.timers.ping_running
    assert a.session.state is SessionState.OPEN


@pytest.mark.parametrize("relay_pings", [True, False])
@pytest.mark.parametrize("stop", ["on_close", "on_failed", "close"])
def test_closing_stops_the_timer_and_none_is_left(stop: str, relay_pings: bool) -> None:
    clock = FakeClock()
    scheduler = FakeScheduler(clock)
    a = make(clock=clock, scheduler=scheduler, config=SessionConfig(relay_pings=relay_pings))
    a.session.edge.on_open()
    on = a.session if stop == "close" else a.session.edge
    getattr(on, stop)()
    getattr(on, stop)()  # twice is harmless
    # A lost DataChannel leaves the relay carrying the game: its pings go on (and only those).
    relay_left = relay_pings and stop != "close"
    assert a.session.parts.timers.ping_running is relay_left
    assert len(scheduler.active) == relay_left
    channel_sent, relay_sent = len(a.channel.sent), len(a.socket.emitted)
    scheduler.advance(5000)
    assert len(a.channel.sent) == channel_sent
    assert len(a.socket.emitted) - relay_sent == (10 if relay_left else 0)
    expected = {"on_close": "closed", "on_failed": "failed", "close": "shut_down"}[stop]
    assert a.session.state.value == expected
    a.session.close()
    assert scheduler.active == {}
    assert sorted(scheduler.cleared) == sorted(scheduler.started)  # each timer cleared once


def test_close_after_failure_keeps_failed_state_and_reopen_restarts_one_timer() -> None:
    clock = FakeClock()
    scheduler = FakeScheduler(clock)
    a = make(clock=clock, scheduler=scheduler)
    a.session.edge.on_open()
    a.session.edge.on_failed()
    a.session.edge.on_close()
    assert a.session.state is SessionState.FAILED
    new_channel = FakeChannel()
    a.session.edge.attach_channel(new_channel)
    old_sent = len(a.channel.sent)
    a.session.edge.on_open()
    assert len(scheduler.active) == 2  # the ping timer and the new channel's validation timer
    assert len(scheduler.started) == 3  # the ping timer went on for the relay meanwhile
    scheduler.advance(500)
    assert len(pings(new_channel)) == 1  # the new channel is pinged, not the old one
    assert len(a.channel.sent) == old_sent


def test_ping_timer_pings_both_paths_every_interval() -> None:
    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    a = make(clock=clock, scheduler=scheduler)
    a.session.edge.on_open()
    scheduler.advance(499)
    assert pings(a.channel) == []
    scheduler.advance(1)
    assert pings(a.channel) == [encode_ping(500.0)]
    assert a.socket.emitted == [("relay", encode_ping(500.0))]
    scheduler.advance(1000)
    assert pings(a.channel)[1:] == [encode_ping(1000.0), encode_ping(1500.0)]
    assert a.session.stats()["pings_sent"] == 6
    assert a.session.stats()["p2p_pings_sent"] == 3
    assert a.session.stats()["relay_pings_sent"] == 3


def test_ping_timer_skips_closed_paths_and_relay_when_disabled() -> None:
    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    a = make(clock=clock, scheduler=scheduler, config=SessionConfig(relay_pings=False))
    a.session.edge.on_open()
    scheduler.advance(500)
    assert len(pings(a.channel)) == 1
    assert a.socket.emitted == []
    a.channel.readyState = "closed"
    scheduler.advance(500)
    assert len(pings(a.channel)) == 1
    stats = a.session.stats()
    assert stats["pings_sent"] == 1
    assert stats["p2p_skipped_closed"] == 0  # the timer did not even try


# --- ping / pong ------------------------------------------------------------------------------


def test_ping_is_answered_on_the_same_path_and_gives_an_rtt_sample() -> None:
    a, b, clock, _ = pair()
    a.session.parts.pinger.ping(Link.P2P)
    (ping,) = a.channel.sent
    assert ping == encode_ping(1000.0)
    b.session.edge.on_message(ping)
    assert b.channel.sent == [encode_pong(1000.0)]  # echoes the timestamp
    assert b.socket.emitted == []
    clock.advance(42.0)
    a.session.edge.on_message(b.channel.sent[0])
    assert a.session.parts.rtt.last_sample_ms == 42.0
    assert a.session.parts.rtt.sample_count == 1
    assert a.session.parts.relay_rtt.sample_count == 0
    stats = a.session.stats()
    assert (stats["pings_sent"], stats["pongs_received"], stats["unmatched_pongs"]) == (1, 1, 0)
    assert stats["rtt_p50_ms"] == stats["rtt_p95_ms"] == 42.0
    assert b.session.stats()["p2p_pings_received"] == 1


def test_relay_ping_is_answered_through_the_relay() -> None:
    a, b, clock, _ = pair()
    a.session.parts.pinger.ping(Link.RELAY)
    ((event, ping),) = a.socket.emitted
    assert event == "relay"
    b.session.edge.on_relay_message(ping)
    assert b.socket.emitted == [("relay", encode_pong(1000.0))]
    assert b.channel.sent == []
    clock.advance(120.0)
    a.session.edge.on_relay_message(b.socket.emitted[0][1])
    assert a.session.parts.relay_rtt.last_sample_ms == 120.0
    assert a.session.parts.rtt.sample_count == 0
    assert a.session.stats()["relay_pongs_received"] == 1


def test_pong_on_the_other_path_does_not_match() -> None:
    a, _, clock, _ = pair()
    a.session.parts.pinger.ping(Link.P2P)
    clock.advance(10)
    a.session.edge.on_relay_message(encode_pong(1000.0))
    assert a.session.stats()["unmatched_pongs"] == 1
    assert a.session.parts.relay_rtt.sample_count == 0
    a.session.edge.on_message(encode_pong(1000.0))
    assert a.session.parts.rtt.last_sample_ms == 10.0


def test_unmatched_and_duplicate_pongs_are_counted_not_sampled() -> None:
    a, _, clock, _ = pair()
    a.session.edge.on_message(encode_pong(123.0))
    assert a.session.stats()["unmatched_pongs"] == 1
    a.session.parts.pinger.ping(Link.P2P)
    clock.advance(30)
    a.session.edge.on_message(encode_pong(1000.0))
    a.session.edge.on_message(encode_pong(1000.0))  # the same pong again
    stats = a.session.stats()
    assert stats["unmatched_pongs"] == 2
    assert stats["pongs_received"] == 1
    assert stats["rtt_samples"] == 1


def test_zero_round_trip_on_a_coarse_clock_is_still_a_sample() -> None:
    a, _, _, _ = pair()
    a.session.parts.pinger.ping(Link.P2P)
    a.session.edge.on_message(encode_pong(1000.0))  # same clock reading
    assert a.session.parts.rtt.last_sample_ms == 0.1


def test_only_the_most_recent_pings_are_remembered() -> None:
    a, _, clock, _ = pair()
    for _ in range(MAX_OUTSTANDING_PINGS + 1):
        a.session.parts.pinger.ping(Link.P2P)
        clock.advance(1)
    a.session.edge.on_message(encode_pong(1000.0))  # the first ping: forgotten
    a.session.edge.on_message(encode_pong(1001.0))  # the second: still outstanding
    stats = a.session.stats()
    assert (stats["unmatched_pongs"], stats["pongs_received"]) == (1, 1)


def test_ping_on_a_closed_channel_is_not_counted_as_sent() -> None:
    a = make()
    a.channel.readyState = "closed"
    a.session.parts.pinger.ping(Link.P2P)
    stats = a.session.stats()
    assert stats["pings_sent"] == 0
    assert stats["p2p_skipped_closed"] == 1


# --- garbage ----------------------------------------------------------------------------------


def test_random_garbage_is_counted_never_raised() -> None:
    a = make()
    rng = random.Random(1234)
    count = 0
    for _ in range(500):
        data = rng.randbytes(rng.randrange(0, 40))
        if data and data[0] in set(MessageType):
            continue  # might be valid; the property test below covers those
        a.session.edge.on_message(data)
        a.session.edge.on_relay_message(data)
        count += 1
    stats = a.session.stats()
    assert stats["p2p_decode_errors"] == count
    assert stats["relay_decode_errors"] == count
    assert stats["handler_errors"] == 0
    assert a.inputs == []


@pytest.mark.parametrize("data", [None, 42, "text", object(), 3.5, [1, 2, 3], "\x04"])
def test_non_bytes_are_counted_as_decode_errors(data: object) -> None:
    a = make()
    a.session.edge.on_message(data)  # type: ignore[arg-type]
    a.session.edge.on_relay_message(data)  # type: ignore[arg-type]
    stats = a.session.stats()
    assert stats["p2p_decode_errors"] == 1
    assert stats["relay_decode_errors"] == 1
    assert stats["health_packets_received"] == 0


@given(st.binary(max_size=64))
def test_any_bytes_never_raise(data: bytes) -> None:
    a = make()
    a.session.edge.on_message(data)
    a.session.edge.on_relay_message(data)
    stats = a.session.stats()
    assert stats["handler_errors"] == 0
    assert stats["p2p_packets_received"] == stats["relay_packets_received"] == 1


def test_wrong_player_packet_is_counted() -> None:
    a = make(player=0, peer=1)
    a.session.edge.on_message(encode_input_packet(2, 0, [(0, 1)]))
    assert a.inputs == []
    assert a.session.stats()["wrong_player"] == 1


def test_handler_exception_is_counted_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    a = make()

    def broken(*fields: object) -> int:
        raise RuntimeError("bug")

    monkeypatch.setattr(a.session.parts.inputs.receiver, "receive_inputs", broken)
    a.session.edge.on_message(encode_input_packet(1, 0, [(0, 1)]))
    assert a.session.stats()["handler_errors"] == 1


def test_game_on_input_exception_is_counted_not_raised() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def on_input(frame: int, action: int) -> None:
        calls.append(frame)
        raise ValueError("the game's own bug")

    session = P2PSession(
        0, 1, on_input, clock=clock, scheduler=FakeScheduler(clock), channel=FakeChannel()
    )
    session.edge.on_message(encode_input_packet(1, 1, [(0, 1), (1, 2)]))
    assert calls == [0, 1]  # the second input is still delivered
    stats = session.stats()
    assert stats["callback_errors"] == 2
    assert stats["inputs_received"] == 2
    assert stats["handler_errors"] == 0


# --- inputs -----------------------------------------------------------------------------------


def test_step_sends_the_same_bytes_on_both_paths() -> None:
    a = make()
    assert a.session.step(0, 5) is True
    assert a.session.step(1, 6) is True
    assert a.channel.sent == [
        encode_input_packet(0, 0, [(0, 5)]),
        encode_input_packet(0, 1, [(0, 5), (1, 6)]),
    ]
    assert a.socket.emitted == [("relay", data) for data in a.channel.sent]
    stats = a.session.stats()
    assert stats["inputs_sent"] == 2
    assert stats["p2p_packets_sent"] == stats["relay_packets_sent"] == 2


def test_step_return_value_reports_whether_any_path_took_it() -> None:
    a = make()
    a.channel.readyState = "closed"
    assert a.session.step(0, 1) is True  # the relay took it
    a.socket.connected = False
    assert a.session.step(1, 1) is False
    assert a.socket.emitted == [("relay", encode_input_packet(0, 0, [(0, 1)]))]
    stats = a.session.stats()
    assert stats["inputs_sent"] == 2
    assert (stats["p2p_skipped_closed"], stats["relay_skipped_closed"]) == (2, 1)


def test_relay_inputs_disabled_sends_on_p2p_only() -> None:
    a = make(config=SessionConfig(relay_inputs=False))
    assert a.session.step(0, 1) is True
    assert len(a.channel.sent) == 1
    assert a.socket.emitted == []


def test_step_with_a_bad_frame_raises() -> None:
    a = make()
    a.session.step(3, 1)
    with pytest.raises(ValueError, match="not after the last recorded frame"):
        a.session.step(3, 1)


def test_both_copies_deliver_once_and_count_a_duplicate() -> None:
    a, b, _, _ = pair()
    a.session.step(0, 7)
    b.session.edge.on_message(a.channel.sent[0])
    b.session.edge.on_relay_message(a.socket.emitted[0][1])
    assert b.inputs == [(0, 7)]
    stats = b.session.stats()
    assert stats["inputs_received"] == 1
    assert stats["duplicates"] == 1
    # Relay packets do not count as the DataChannel's health.
    assert stats["health_packets_received"] == 1


def test_relay_copy_first_then_p2p() -> None:
    a, b, _, _ = pair()
    for frame in range(3):
        a.session.step(frame, frame + 10)
    b.session.edge.on_relay_message(a.socket.emitted[1][1])  # frames 0, 1
    for data in a.channel.sent:
        b.session.edge.on_message(data)
    assert b.inputs == [(0, 10), (1, 11), (2, 12)]
    stats = b.session.stats()
    assert stats["recovered"] == 1  # frame 0, first seen in a redundant slot
    assert stats["duplicates"] == 1 + 2 + 2  # packet 0: 1; packet 1: 2; packet 2: 0, 1 again


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=11), st.booleans()), min_size=1, max_size=40
    ),
    st.booleans(),
)
def test_a_repeated_packet_is_counted_as_handling_it_again_would(
    arrivals: list[tuple[int, bool]], acked: bool
) -> None:
    # The peer's packets of 12 frames, arriving in any order and any number of times on either
    # path; the session that recognises a repeat by its bytes must end with the same figures as
    # one made to decode and apply every copy.
    a = make(0, 1, config=SessionConfig(acked_inputs=acked))
    for frame in range(12):
        a.session.step(frame, frame % 5)
    packets = a.channel.sent[-12:]
    fast, full = make(1, 0), make(1, 0)
    for index, on_relay in arrivals:
        for side in (fast, full):
            if side is full:
                side.session.parts.intake.last_input = None  # the oracle forgets what it handled
            receive = (
                side.session.edge.on_relay_message if on_relay else side.session.edge.on_message
            )
            receive(packets[index])
    assert fast.inputs == full.inputs
    assert fast.session.stats() == full.session.stats()


def test_keepalive() -> None:
    a, b, clock, _ = pair()
    assert a.session.parts.watchdog.send_keepalive() is True
    assert a.channel.sent == [encode_keepalive()]
    clock.advance(2000)
    b.session.edge.on_message(a.channel.sent[0])
    assert b.session.parts.health.last_packet_at_ms == 3000.0
    assert b.session.stats()["health_silence_ms"] == 0.0


def test_reset_episode_clears_inputs_and_keeps_the_connection() -> None:
    a, b, clock, scheduler = pair()
    a.session.edge.on_open()
    b.session.edge.on_open()
    a.session.parts.pinger.ping(Link.P2P)
    clock.advance(20)
    b.session.edge.on_message(a.channel.sent[-1])
    a.session.edge.on_message(b.channel.sent[-1])
    for frame in range(5):
        a.session.step(frame, 1)
        b.session.edge.on_message(a.channel.sent[-1])
    assert b.inputs == [(f, 1) for f in range(5)]
    a.session.reset_episode()
    b.session.reset_episode()
    assert a.session.parts.inputs.v1.window == ()
    assert b.session.parts.inputs.receiver.newest_frame is None
    # Frame numbers restart at 0 without a ValueError, and the peer delivers them again.
    a.session.step(0, 9)
    assert a.channel.sent[-1] == encode_input_packet(0, 0, [(0, 9)])
    b.session.edge.on_message(a.channel.sent[-1])
    assert b.inputs[-1] == (0, 9)
    # The connection, its timer and what was measured about it survive.
    assert a.session.state is SessionState.OPEN
    assert a.session.parts.timers.ping_running
    assert len(scheduler.active) == 4  # each side's ping timer and channel validation timer
    assert a.session.edge.channel is a.channel
    assert a.session.parts.rtt.sample_count == 1
    assert a.session.stats()["inputs_sent"] == 6


def test_close_lets_go_of_both_paths() -> None:
    a = make()
    a.session.edge.on_open()
    a.session.close()
    assert a.session.edge.channel is None
    assert a.session.step(0, 1) is False
    assert a.channel.sent == []
    assert a.socket.emitted == []


# --- stats ------------------------------------------------------------------------------------


def test_stats_is_json_serialisable_with_the_documented_keys() -> None:
    a, b, clock, _ = pair()
    b.session.stats()  # before anything happened
    json.dumps(b.session.stats())
    a.session.edge.on_open()
    for frame in range(3):
        a.session.step(frame, 2)
        b.session.edge.on_message(a.channel.sent[-1])
    b.session.edge.on_relay_message(a.socket.emitted[-1][1])
    b.session.parts.pinger.ping(Link.P2P)
    clock.advance(30)
    a.session.edge.on_message(b.channel.sent[-1])  # a answers b's ping
    b.session.edge.on_message(a.channel.sent[-1])
    stats = b.session.stats()
    assert json.loads(json.dumps(stats)) == stats
    for key in (
        "inputs_sent",
        "inputs_received",
        "duplicates",
        "recovered",
        "pings_sent",
        "pongs_received",
        "rtt_p50_ms",
        "rtt_p95_ms",
    ):
        assert key in stats, key
    assert stats["inputs_sent"] == 0
    assert stats["inputs_received"] == 3
    assert stats["duplicates"] == 1 + 2 + 3  # redundant copies, plus the relay's 3
    assert stats["recovered"] == 0
    assert stats["pings_sent"] == 1
    assert stats["pongs_received"] == 1
    assert stats["rtt_p50_ms"] == stats["rtt_p95_ms"] == 30.0
    assert stats["state"] == "new"
    assert a.session.stats()["inputs_sent"] == 3
    assert a.session.stats()["state"] == "open"


def test_constructor_validation() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="must differ"):
        P2PSession(1, 1, lambda f, a: None, clock=clock, scheduler=FakeScheduler(clock))
    with pytest.raises(ValueError, match="ping_interval_ms must be positive"):
        SessionConfig(ping_interval_ms=0)


def test_open_after_close_starts_no_timer() -> None:
    clock = FakeClock()
    scheduler = FakeScheduler(clock)
    session = P2PSession(
        0, 1, lambda f, a: None, clock=clock, scheduler=scheduler, channel=FakeChannel()
    )
    session.close()
    session.edge.on_open()
    assert not session.parts.timers.ping_running
    assert scheduler.active == {}
    assert scheduler.started == []
    assert session.state is SessionState.SHUT_DOWN


def test_packets_after_close_are_dropped_and_counted() -> None:
    a, b, _, _ = pair()
    a.session.edge.on_open()
    a.session.step(0, 5)
    packet = a.channel.sent[-1]
    b.session.close()
    b.session.edge.on_message(packet)
    b.session.edge.on_relay_message(packet)
    assert b.inputs == []
    assert b.session.stats()["packets_after_close"] == 2
    fresh = make(1, 0)
    fresh.session.edge.on_message(packet)
    assert fresh.inputs == [(0, 5)]


def test_congestion_holds_inputs_back_but_not_pings_and_pongs() -> None:
    clock = FakeClock()
    channel = FakeChannel(bufferedAmount=1_000_000)
    session = P2PSession(
        0,
        1,
        lambda f, a: None,
        clock=clock,
        scheduler=FakeScheduler(clock),
        channel=channel,
        config=SessionConfig(relay_inputs=False),
    )
    session.edge.on_open()
    assert session.step(0, 1) is False
    session.parts.pinger.ping(Link.P2P)
    session.edge.on_message(encode_ping(5.0))
    assert [decode(p).type for p in channel.sent] == [MessageType.PING, MessageType.PONG]
    stats = session.stats()
    assert stats["p2p_skipped_congested"] == 1
    assert stats["pings_sent"] == 1


@pytest.mark.parametrize("on_relay", [True, False])
def test_control_messages_use_the_relay_only_when_configured(on_relay: bool) -> None:
    clock = FakeClock()
    channel, socket = FakeChannel(), FakeSocket()
    session = P2PSession(
        0,
        1,
        lambda f, a: None,
        clock=clock,
        scheduler=FakeScheduler(clock),
        channel=channel,
        relay=socket,
        config=SessionConfig(control_on_relay=on_relay),
    )
    session.edge.on_open()
    session.send_control(0x80, b"go")
    assert [decode(p).type for p in channel.sent] == [MessageType.CONTROL]
    relayed = [decode(data).type for _, data in socket.emitted]
    assert relayed == ([MessageType.CONTROL] if on_relay else [])


def test_reading_stats_and_telemetry_changes_nothing() -> None:
    clock = FakeClock()
    scheduler = FakeScheduler(clock)
    session = P2PSession(
        0, 1, lambda f, a: None, clock=clock, scheduler=scheduler, channel=FakeChannel()
    )
    session.edge.start_watchdog()
    session.edge.on_open()
    scheduler.advance(2000)
    # Past the local-stall threshold with nothing run: only an entry point may count a stall,
    # and the health status the reads report must not be recorded as a transition by them.
    clock.advance(5000)
    before = (session.stats(), session.telemetry())
    for _ in range(3):
        assert (session.stats(), session.telemetry()) == before
    assert before[0]["local_stalls"] == 0
    transitions = before[1]["health_transitions"]["rows"]
    assert transitions[-1][2] != before[0]["p2p_health_status"]  # read, not recorded
    scheduler.advance(200)  # the watchdog runs: the stall is counted, the status recorded
    after = session.stats()
    assert after["local_stalls"] == 1
    assert session.telemetry()["health_transitions"]["rows"][-1][2] == after["p2p_health_status"]


def test_a_raising_on_rtt_is_counted_and_the_sample_kept() -> None:
    clock = FakeClock()

    def broken(rtt_ms: float, path: object) -> None:
        raise RuntimeError("the game's bug")

    channel = FakeChannel()
    session = P2PSession(
        0,
        1,
        Callbacks(on_input=lambda f, a: None, on_rtt=broken),
        clock=clock,
        scheduler=FakeScheduler(clock),
        channel=channel,
    )
    session.parts.pinger.ping(Link.P2P)
    (ping,) = channel.sent
    clock.advance(12)
    session.edge.on_message(b"\x03" + ping[1:])
    stats = session.stats()
    assert (stats["callback_errors"], stats["handler_errors"]) == (1, 0)
    assert session.parts.rtt.last_sample_ms == 12


def test_health_follows_the_path_that_carries_the_game() -> None:
    a, b, clock, _ = pair()
    b.session.edge.start_watchdog()
    a.session.step(0, 1)
    b.session.edge.on_message(a.channel.sent[-1])
    assert b.session.stats()["health_path"] == "p2p"
    # The DataChannel goes quiet past the disconnect threshold; the relay keeps bringing inputs.
    b.channel.readyState = "closed"
    for frame in range(1, 6):
        clock.advance(1000.0)
        a.session.step(frame, 1)
        b.session.edge.on_relay_message(a.socket.emitted[-1][1])
    stats = b.session.stats()
    assert stats["p2p_health_status"] == "disconnected"
    assert (stats["health_path"], stats["health_status"]) == ("relay", "good")
    # And with the relay silent too, the game is disconnected.
    clock.advance(3500.0)
    stats = b.session.stats()
    assert (stats["health_path"], stats["health_status"]) == (None, "disconnected")


def test_a_reused_receive_buffer_is_not_taken_for_a_repeat() -> None:
    # A caller may hand in the same bytearray refilled: the last input packet is remembered by
    # its bytes then, not by a view that would change with the buffer.
    a = make()
    buffer = bytearray(encode_input_packet(1, 0, [(0, 1)]))
    a.session.edge.on_message(buffer)
    buffer[:] = encode_input_packet(1, 1, [(1, 2)])
    a.session.edge.on_message(memoryview(buffer))
    a.session.edge.on_relay_message(bytes(buffer))  # the other path's copy: a repeat
    assert a.inputs == [(0, 1), (1, 2)]
    stats = a.session.stats()
    assert stats["duplicates"] == 1 and stats["inputs_received"] == 2


# --- focus --------------------------------------------------------------------------------------


def test_send_focus_goes_on_every_open_path_and_the_peer_reports_it() -> None:
    a, _, clock, scheduler = pair()
    events: list[tuple[str, dict[str, object]]] = []
    b = P2PSession(
        1,
        0,
        Callbacks(on_input=lambda frame, action: None, on_event=lambda e, d: events.append((e, d))),
        clock=clock,
        scheduler=scheduler,
        channel=FakeChannel(),
    )
    assert a.session.send_focus(False, 310) is True
    # 0x14, focused 0, frame 310: the deployed peers' focus state.
    packet = bytes.fromhex("14 00 00000136")
    assert a.channel.sent == [packet]
    assert a.socket.emitted == [("relay", packet)]
    b.edge.on_message(a.channel.sent[0])
    b.edge.on_message(encode_focus_state(True, 400))
    assert events == [
        ("peer_focus", {"focused": False, "frame": 310}),
        ("peer_focus", {"focused": True, "frame": 400}),
    ]
    a.channel.readyState = "closed"
    a.socket.connected = False
    assert a.session.send_focus(True, 311) is False
    assert a.channel.sent == [packet]
    with pytest.raises(ValueError, match="focused must be a bool"):
        a.session.send_focus(1, 312)  # type: ignore[arg-type]
