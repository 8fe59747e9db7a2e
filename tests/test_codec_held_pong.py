"""The held pong (0x21): a pong that carries the responder's hold time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_transport.wire.codec import MAX_HOLD_MS, DecodeError, decode, encode_held_pong
from p2p_transport.wire.messages import HeldPong, MessageType
from tests.codec_helpers import decode_or_error


def test_exact_bytes() -> None:
    # type 0x21, float64 1234.5 = 0x40934A0000000000, hold 200.25 ms = 200250 us = 0x00030E3A
    assert encode_held_pong(1234.5, 200.25) == bytes.fromhex("21 40934a0000000000 00030e3a")
    assert decode(bytes.fromhex("21 40934a0000000000 00030e3a")) == HeldPong(1234.5, 200.25)
    assert HeldPong(1.0, 0.0).type is MessageType.HELD_PONG


def test_hold_is_whole_microseconds() -> None:
    message = decode(encode_held_pong(5.0, 0.0004))
    assert isinstance(message, HeldPong)
    assert message.hold_ms == 0.0


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (bytes.fromhex("21 40934a0000000000 0003"), "held pong must be 13 bytes, got 11"),
        (bytes.fromhex("21 40934a0000000000 00030e3a 00"), "held pong must be 13 bytes, got 14"),
        (bytes.fromhex("21 7ff8000000000000 00000000"), "held pong timestamp is not finite"),
    ],
)
def test_decode_errors(data: bytes, text: str) -> None:
    with pytest.raises(DecodeError, match=text):
        decode(data)


@pytest.mark.parametrize("hold", [-0.001, math.nan, math.inf, MAX_HOLD_MS + 1, True, "1"])
def test_encoder_refuses_bad_holds(hold: object) -> None:
    with pytest.raises(ValueError, match="hold_ms"):
        encode_held_pong(1.0, hold)  # type: ignore[arg-type]


@given(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=0xFFFF_FFFF),
)
def test_round_trip(timestamp: float, hold_us: int) -> None:
    message = decode(encode_held_pong(timestamp, hold_us / 1000))
    assert message == HeldPong(timestamp, hold_us / 1000)


@given(st.binary(max_size=20))
def test_garbage_after_the_type_byte_is_a_message_or_a_decode_error(tail: bytes) -> None:
    message = decode_or_error(b"\x21" + tail)
    assert message is None or isinstance(message, HeldPong)
