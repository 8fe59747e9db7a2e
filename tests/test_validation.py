"""The deployed peers' channel validation (0x10 / 0x11): exact bytes, both directions, resends and
their bound, and a new channel starting over."""

from __future__ import annotations

import itertools

import pytest

from p2p_transport.protocol.validation import (
    MAX_VALIDATION_PINGS,
    VALIDATION_DELAY_MS,
    VALIDATION_RESEND_MS,
    VALIDATION_TIMEOUT_MS,
    Validation,
)
from p2p_transport.session import P2PSession
from p2p_transport.wire.codec import decode, encode_validation_ping, encode_validation_pong
from p2p_transport.wire.messages import MessageType, ValidationPing, ValidationPong
from tests.codec_helpers import check_decode_error, h
from tests.fakes import FakeChannel, FakeClock
from tests.test_session import make, pair


def test_the_layouts_are_the_deployed_peers() -> None:
    assert encode_validation_ping(100.0) == h("10 | 40 59 00 00 00 00 00 00")
    assert encode_validation_pong(1.5) == h("11 | 3f f8 00 00 00 00 00 00")
    assert decode(h("10 | 40 59 00 00 00 00 00 00")) == ValidationPing(100.0)
    assert decode(h("11 | 3f f8 00 00 00 00 00 00")) == ValidationPong(1.5)
    check_decode_error(h("10 | 40 59 00 00"), "validation ping must be 9 bytes, got 5")
    check_decode_error(h("11 | 7f f8 00 00 00 00 00 00"), "validation pong timestamp is not finite")


def test_validated_once_a_ping_is_sent_a_pong_received_and_the_peers_ping_seen() -> None:
    clock = FakeClock(0.0)
    v = Validation(clock)
    v.opened()
    assert not v.ping_due()
    clock.advance(VALIDATION_DELAY_MS)
    assert v.ping_due()
    v.ping_sent(100.0)
    assert not v.ping_due()
    v.on_pong(100.0)
    assert v.finished and not v.validated  # the peer's own ping has not come yet
    clock.advance(20)
    v.on_peer_ping()
    assert v.validated
    assert v.stats()["validated_after_ms"] == 120.0
    clock.advance(VALIDATION_TIMEOUT_MS)
    assert not v.expired  # validated stays validated
    v.on_pong(99.0)
    assert v.counters.unmatched_pongs == 1


def test_unanswered_pings_are_resent_a_bounded_number_of_times() -> None:
    clock = FakeClock(0.0)
    v = Validation(clock)
    v.opened()
    sent_at = []
    for _ in range(500):
        clock.advance(10)
        if v.ping_due():
            v.ping_sent(clock())
            sent_at.append(clock())
    assert len(sent_at) == MAX_VALIDATION_PINGS
    assert sent_at[0] == VALIDATION_DELAY_MS
    assert {b - a for a, b in itertools.pairwise(sent_at)} == {VALIDATION_RESEND_MS}
    assert v.finished and not v.validated
    v.opened()  # a new channel starts over
    clock.advance(VALIDATION_DELAY_MS)
    assert v.ping_due() and not v.validated


def test_a_session_answers_every_validation_ping_with_its_timestamp() -> None:
    a = make()
    a.session.edge.on_open()
    for timestamp in (12.5, 12.5, 40.0):
        a.session.edge.on_message(encode_validation_ping(timestamp))
    assert [p for p in a.channel.sent if p[0] == MessageType.VALIDATION_PONG] == [
        encode_validation_pong(12.5),
        encode_validation_pong(12.5),
        encode_validation_pong(40.0),
    ]
    assert a.session.stats()["validation_peer_pings"] == 3
    assert a.session.stats()["p2p_decode_errors"] == 0


def test_two_sessions_validate_each_other_and_stop_sending() -> None:
    a, b, _, scheduler = pair()
    in_flight: list[tuple[P2PSession, bytes]] = []
    for side, other in ((a, b), (b, a)):
        side.channel.on_send = lambda data, to=other.session: in_flight.append((to, data))
        side.session.edge.on_open()

    def deliver() -> None:
        while in_flight:
            to, data = in_flight.pop(0)
            to.edge.on_message(data)

    for _ in range(15):  # 150 ms, each 10 ms step delivering what was sent in it
        scheduler.advance(10)
        deliver()
    for side in (a, b):
        stats = side.session.stats()
        assert stats["validated"], stats
        assert stats["validation_pings_sent"] == stats["validation_pongs_received"] == 1
        assert stats["validated_after_ms"] <= VALIDATION_DELAY_MS + 50
    scheduler.advance(10_000)
    deliver()
    for side in (a, b):
        validation = [p for p in side.channel.sent if p[0] == MessageType.VALIDATION_PING]
        assert len(validation) == 1  # answered at once: never sent again
    assert len(scheduler.active) == 2  # the validation timers stopped; the ping timers run


@pytest.mark.parametrize("stop", ["on_close", "close"])
def test_a_closed_channel_stops_the_validation(stop: str) -> None:
    a = make()
    a.session.edge.on_open()
    getattr(a.session if stop == "close" else a.session.edge, stop)()
    assert not [p for p in a.channel.sent if p[0] == MessageType.VALIDATION_PING]
    a.session.edge.attach_channel(channel := FakeChannel())
    if stop == "on_close":
        a.session.edge.on_open()
        assert not a.session.parts.validation.validated  # the new channel is validated afresh
        assert channel.sent == []


def test_text_messages_are_counted_apart_from_garbage() -> None:
    a = make()
    a.session.edge.on_text_message('{"type": "test"}')
    stats = a.session.stats()
    assert (stats["text_messages"], stats["p2p_decode_errors"]) == (1, 0)
