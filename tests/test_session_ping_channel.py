"""RTT over the ping channel: arrival-timed pongs that carry the responder's hold time."""

from __future__ import annotations

import pytest

from p2p_transport import P2PSession
from p2p_transport.protocol.routing import Link
from p2p_transport.session.pinger import LATE_HANDLING_MS, PING_CHANNEL_PROBES
from p2p_transport.wire.codec import (
    decode,
    encode_held_pong,
    encode_input_packet,
    encode_ping,
    encode_pong,
)
from p2p_transport.wire.messages import HeldPong, MessageType, Ping, Pong
from tests.fakes import FakeChannel, FakeClock, FakePingChannel, FakeScheduler


def make() -> tuple[P2PSession, FakeClock, FakeChannel, FakePingChannel]:
    clock = FakeClock(1000.0)
    main, pings = FakeChannel(), FakePingChannel()
    session = P2PSession(
        0, 1, lambda f, a: None, clock=clock, scheduler=FakeScheduler(clock), channel=main
    )
    session.edge.attach_ping_channel(pings)
    session.edge.on_open()
    return session, clock, main, pings


def sent_types(channel: FakeChannel) -> list[MessageType]:
    return [decode(p).type for p in channel.sent]


def test_pings_probe_the_ping_channel_then_fall_back_when_unanswered() -> None:
    session, _, main, pings = make()
    for _ in range(PING_CHANNEL_PROBES + 2):
        session.parts.pinger.ping(Link.P2P)
    assert sent_types(pings) == [MessageType.PING] * PING_CHANNEL_PROBES
    # Each probe went on the game channel too, then the pings kept to it.
    assert sent_types(main) == [MessageType.PING] * (PING_CHANNEL_PROBES + 2)
    stats = session.stats()
    assert stats["ping_channel"] == "unanswered"
    assert stats["pings_while_probing"] == PING_CHANNEL_PROBES


def test_the_first_ping_gives_an_rtt_whichever_channel_the_peer_answers_on() -> None:
    # A peer without the ping channel (a deployed peer) answers the game channel's copy.
    session, clock, main, _ = make()
    session.parts.pinger.ping(Link.P2P)
    clock.advance(12)
    (ping,) = main.sent
    session.edge.on_message(encode_pong(decode(ping).timestamp_ms))  # type: ignore[union-attr]
    assert session.stats()["rtt_last_ms"] == pytest.approx(12.0)
    # A peer of this package answers both: each copy is its own sample, none unmatched.
    session, clock, _, _ = make()
    session.parts.pinger.ping(Link.P2P)
    sent_at = clock()
    clock.advance(3)
    session.edge.on_ping_channel_message(encode_held_pong(sent_at, 0.5), arrival_ms=sent_at + 3)
    session.edge.on_message(encode_pong(sent_at))
    stats = session.stats()
    assert (stats["rtt_samples"], stats["unmatched_pongs"]) == (2, 0)


def test_a_held_pong_gives_the_round_trip_without_the_hold() -> None:
    session, clock, main, _ = make()
    session.parts.pinger.ping(Link.P2P)
    sent_at = clock()
    # The peer held the ping 150 ms (its main thread was busy); the pong arrived 152 ms after
    # the ping left and is handled 5 ms after that.
    clock.advance(157)
    session.edge.on_ping_channel_message(encode_held_pong(sent_at, 150.0), arrival_ms=sent_at + 152)
    stats = session.stats()
    assert stats["rtt_last_ms"] == pytest.approx(2.0)
    assert stats["naive_rtt_last_ms"] == pytest.approx(157.0)
    assert stats["held_pongs_received"] == 1
    assert stats["rtt_samples_handled_late"] == 0
    assert stats["ping_channel"] == "in use"
    # Proven: later pings keep to the ping channel, past the probe count (the game channel
    # carried only the first ping's copy, sent before the peer answered).
    for _ in range(PING_CHANNEL_PROBES + 1):
        session.parts.pinger.ping(Link.P2P)
    assert sent_types(main) == [MessageType.PING]


def test_a_pong_handled_late_is_counted_and_timed_from_its_arrival() -> None:
    session, clock, _, _ = make()
    session.parts.pinger.ping(Link.P2P)
    sent_at = clock()
    clock.advance(2 + LATE_HANDLING_MS + 100)  # this side was busy when the pong came
    session.edge.on_ping_channel_message(encode_held_pong(sent_at, 0.5), arrival_ms=sent_at + 2.5)
    stats = session.stats()
    assert stats["rtt_last_ms"] == pytest.approx(2.0)
    assert stats["rtt_samples_handled_late"] == 1
    # The experiment's record keeps the sample beside the naive RTT, the hold and the flag.
    (row,) = session.telemetry()["rtt"]["p2p"]["rows"]
    assert row == [clock(), 2.0, 2 + LATE_HANDLING_MS + 100, 0.5, True]


def test_the_round_trip_starts_when_the_channel_says_the_ping_left() -> None:
    session, clock, _, pings = make()
    session.parts.pinger.ping(Link.P2P)
    ((ping, timestamp),) = pings.pings
    assert decode(ping) == Ping(timestamp)
    # The worker sent it 4 ms after Python asked (its thread was waiting for a core).
    session.edge.on_ping_left(timestamp, timestamp + 4)
    session.edge.on_ping_left(timestamp + 1, timestamp + 9)  # no such ping: ignored
    clock.advance(10)
    session.edge.on_ping_channel_message(encode_held_pong(timestamp, 1.0), arrival_ms=timestamp + 7)
    stats = session.stats()
    assert stats["rtt_last_ms"] == pytest.approx(2.0)
    assert stats["naive_rtt_last_ms"] == pytest.approx(10.0)


def test_pings_on_the_ping_channel_get_the_hold_time_and_on_the_datachannel_a_v1_pong() -> None:
    session, clock, main, pings = make()
    session.edge.on_ping_channel_message(encode_ping(42.0), arrival_ms=clock() - 150)
    (answer,) = [decode(p) for p in pings.sent]
    assert answer == HeldPong(42.0, 150.0)
    # The channel is asked to bring the hold up to date as the pong leaves: the field is the
    # pong's last four bytes, counted from the ping's arrival.
    ((pong, hold_offset, arrival_ms),) = pings.held_pongs
    assert (hold_offset, arrival_ms) == (9, clock() - 150)
    assert pong[hold_offset:] == (150_000).to_bytes(4, "big")
    session.edge.on_message(encode_ping(43.0))
    assert [decode(p) for p in main.sent] == [Pong(43.0)]
    assert session.stats()["held_pongs_sent"] == 1


def test_other_messages_and_garbage_on_the_ping_channel_are_counted() -> None:
    session, clock, _, _ = make()
    session.edge.on_ping_channel_message(encode_input_packet(1, 0, [(0, 1)]), arrival_ms=clock())
    session.edge.on_ping_channel_message(b"\xff", arrival_ms=clock())
    stats = session.stats()
    assert stats["ping_channel_unexpected"] == 1
    assert stats["p2p_decode_errors"] == 1
    assert stats["inputs_received"] == 0


def test_close_lets_go_of_the_ping_channel() -> None:
    session, clock, _, pings = make()
    session.close()
    session.parts.pinger.ping(Link.P2P)
    # A ping already on its way when the session closed is not answered, and is no error.
    session.edge.on_ping_channel_message(encode_ping(1.0), arrival_ms=clock())
    assert pings.sent == []
    assert session.stats()["handler_errors"] == 0


def test_ping_channel_traffic_does_not_make_the_datachannel_look_alive() -> None:
    # The game channel can be dead one way while the ping channel works; its silence must show.
    session, clock, _, _ = make()
    session.edge.on_ping_channel_message(encode_ping(1.0), arrival_ms=clock())
    assert session.parts.health.packets_received == 0


def test_a_closed_ping_channel_says_so_and_pings_go_on_the_game_channel() -> None:
    session, _, main, pings = make()
    pings.readyState = "closed"
    session.parts.pinger.ping(Link.P2P)
    assert session.stats()["ping_channel"] == "closed"
    assert pings.sent == []
    assert sent_types(main) == [MessageType.PING]


def test_an_idle_game_channel_gets_keepalives_however_busy_the_ping_channel() -> None:
    """A paused game with the ping channel in use: the pings and held pongs on the ping channel
    must not stand in for traffic on the game channel, or the peer, which judges silence on the
    game channel, would find it dead and tear the connection down."""
    clock = FakeClock(1000.0)
    scheduler = FakeScheduler(clock)
    main, pings = FakeChannel(), FakePingChannel()
    session = P2PSession(0, 1, lambda f, a: None, clock=clock, scheduler=scheduler, channel=main)
    session.edge.attach_ping_channel(pings)
    session.edge.on_open()
    session.edge.start_watchdog()
    # The peer answers on the ping channel: every ping stays there from now on.
    pings.on_send = lambda data: session.edge.on_ping_channel_message(
        encode_held_pong(decode(data).timestamp_ms, 0.1),
        arrival_ms=clock(),  # type: ignore[union-attr]
    )
    scheduler.advance(3000)  # the validation pings (unanswered here) keep the channel busy
    before = len(main.sent)
    scheduler.advance(3000)
    assert len(pings.pings) >= 10 and session.stats()["ping_channel"] == "in use"
    # Then a keepalive at every 200 ms watchdog tick, and nothing else on the game channel.
    assert {p[0] for p in main.sent[before:]} == {MessageType.KEEPALIVE}
    assert len(main.sent) - before >= 3000 / 200 - 1
    stats = session.stats()
    assert stats["ping_channel_packets_sent"] == len(pings.sent)
    assert stats["p2p_packets_sent"] == len(main.sent)


def test_a_ping_on_the_ping_channel_says_the_peer_is_of_this_package() -> None:
    # Only this package opens the ping channel: a peer whose game channel is cut one way at a
    # game's start (its probes never answered) is not taken for a deployed version-1 peer.
    session, clock, _, _ = make()
    assert session.stats()["peer_protocol_version"] is None
    session.edge.on_ping_channel_message(encode_ping(1.0), arrival_ms=clock())
    assert session.stats()["peer_protocol_version"] == 2
