"""The control message (0x22) and control ack (0x23): exact bytes, every decode error, properties.

Layout (big-endian), written out by hand below rather than produced with ``struct``:
  0x22 control:     type u8 | sequence u32 | kind u8 | payload length u16 | payload
  0x23 control ack: type u8 | cumulative ack u32 (ff ff ff ff: none yet)
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_transport.wire.codec import (
    CONTROL_ACK_SIZE,
    CONTROL_HEADER_SIZE,
    MAX_CONTROL_PAYLOAD,
    MAX_CONTROL_SEQUENCE,
    MAX_INPUTS_PER_RESPONSE,
    MAX_PACKET_BYTES,
    decode,
    encode_control,
    encode_control_ack,
    encode_input_response,
)
from p2p_transport.wire.messages import (
    GAME_KIND_MAX,
    GAME_KIND_MIN,
    ControlAck,
    ControlKind,
    ControlMessage,
    MessageType,
)
from p2p_transport.wire.signaling import MAX_RELAY_BYTES
from tests.codec_helpers import check_decode_error, check_encode_error, decode_or_error, h

FULL = bytes(range(256)) * 4

EXACT_CONTROL = [
    pytest.param((0, 0x01, b""), h("22 | 00 00 00 00 | 01 | 00 00"), id="empty-episode-end"),
    pytest.param(
        (0x01020304, 0x80, b"\xaa\xbb\xcc"),
        h("22 | 01 02 03 04 | 80 | 00 03 | aa bb cc"),
        id="game-kind-three-bytes",
    ),
    pytest.param(
        (0xFFFF_FFFE, 0xFF, FULL),
        h("22 | ff ff ff fe | ff | 04 00 |" + FULL.hex()),
        id="max-sequence-max-payload",
    ),
]

EXACT_ACK = [
    pytest.param(None, h("23 | ff ff ff ff"), id="none-yet"),
    pytest.param(0, h("23 | 00 00 00 00"), id="zero"),
    pytest.param(0x01020304, h("23 | 01 02 03 04"), id="some"),
    pytest.param(0xFFFF_FFFE, h("23 | ff ff ff fe"), id="max"),
]


@pytest.mark.parametrize(("args", "wire"), EXACT_CONTROL)
def test_control_exact_bytes(args: tuple[Any, ...], wire: bytes) -> None:
    data = encode_control(*args)
    assert type(data) is bytes
    assert data == wire
    message = decode(wire)
    assert message == ControlMessage(*args)
    assert message.type is MessageType.CONTROL
    assert decode(memoryview(bytearray(wire))) == message


@pytest.mark.parametrize(("ack", "wire"), EXACT_ACK)
def test_control_ack_exact_bytes(ack: int | None, wire: bytes) -> None:
    assert encode_control_ack(ack) == wire
    message = decode(wire)
    assert message == ControlAck(ack)
    assert message.type is MessageType.CONTROL_ACK


def test_sizes_and_kinds() -> None:
    assert (CONTROL_HEADER_SIZE, CONTROL_ACK_SIZE, MAX_CONTROL_PAYLOAD) == (8, 5, 1024)
    assert MAX_CONTROL_SEQUENCE == 0xFFFF_FFFE
    assert len(EXACT_CONTROL[2].values[1]) == 1032
    assert (MessageType.CONTROL, MessageType.CONTROL_ACK) == (0x22, 0x23)
    assert [int(kind) for kind in ControlKind] == [1, 2, 3, 4]
    assert all(kind < GAME_KIND_MIN for kind in ControlKind)
    assert (GAME_KIND_MIN, GAME_KIND_MAX) == (0x80, 0xFF)


def test_payload_may_be_any_buffer() -> None:
    wire = h("22 | 00 00 00 07 | 02 | 00 02 | 01 02")
    assert encode_control(7, 2, bytearray(b"\x01\x02")) == wire
    assert encode_control(7, 2, memoryview(b"\x01\x02")) == wire


DECODE_ERRORS = [
    pytest.param(h("22"), "control message truncated: 1 bytes, header needs 8", id="bare"),
    pytest.param(
        h("22 | 00 00 00 00 | 01 | 00"), "truncated: 7 bytes, header needs 8", id="header-7"
    ),
    pytest.param(
        h("22 | ff ff ff ff | 01 | 00 00"),
        "control sequence 0xffffffff is reserved",
        id="reserved-sequence",
    ),
    pytest.param(
        h("22 | 00 00 00 00 | 01 | 04 01") + bytes(1025),
        "control payload length 1025 over the limit of 1024",
        id="payload-over-limit",
    ),
    pytest.param(
        h("22 | 00 00 00 00 | 01 | 00 03 | aa bb"),
        "truncated: 10 bytes, a 3-byte payload needs 11",
        id="payload-short",
    ),
    pytest.param(
        h("22 | 00 00 00 00 | 01 | 00 01 | aa bb"),
        "control message has 1 trailing bytes",
        id="payload-long",
    ),
    pytest.param(h("23"), "control ack must be 5 bytes, got 1", id="ack-bare"),
    pytest.param(h("23 | 00 00 00"), "control ack must be 5 bytes, got 4", id="ack-short"),
    pytest.param(h("23 | 00 00 00 00 00"), "control ack must be 5 bytes, got 6", id="ack-long"),
]


@pytest.mark.parametrize(("data", "message"), DECODE_ERRORS)
def test_decode_error_says_what_was_wrong(data: bytes, message: str) -> None:
    check_decode_error(data, message)


ENCODE_ERRORS = [
    pytest.param(lambda: encode_control(-1, 1, b""), "sequence must be in", id="negative-seq"),
    pytest.param(
        lambda: encode_control(0xFFFF_FFFF, 1, b""),
        "sequence must be in 0..4294967294",
        id="reserved-seq",
    ),
    pytest.param(lambda: encode_control(0, 256, b""), "kind must be in 0..255", id="kind"),
    pytest.param(lambda: encode_control(0, True, b""), "kind must be an int", id="bool-kind"),
    pytest.param(
        lambda: encode_control(0, 1, bytes(1025)),
        "payload is at most 1024 bytes, got 1025",
        id="payload-long",
    ),
    pytest.param(lambda: encode_control(0, 1, "text"), "payload must be bytes", id="str"),
    pytest.param(lambda: encode_control_ack(0xFFFF_FFFF), "ack must be in", id="ack-reserved"),
    pytest.param(lambda: encode_control_ack(-1), "ack must be in", id="ack-negative"),
]


@pytest.mark.parametrize(("call", "message"), ENCODE_ERRORS)
def test_encoder_value_errors(call: Callable[[], bytes], message: str) -> None:
    check_encode_error(call, message)


# --- properties -------------------------------------------------------------------------------

sequences = st.integers(0, MAX_CONTROL_SEQUENCE)


@given(sequences, st.integers(0, 255), st.binary(max_size=MAX_CONTROL_PAYLOAD))
def test_control_round_trip(sequence: int, kind: int, payload: bytes) -> None:
    data = encode_control(sequence, kind, payload)
    assert decode(data) == ControlMessage(sequence, kind, payload)
    assert len(data) == CONTROL_HEADER_SIZE + len(payload)


@given(st.none() | sequences)
def test_control_ack_round_trip(ack: int | None) -> None:
    assert decode(encode_control_ack(ack)) == ControlAck(ack)


@given(st.sampled_from([0x22, 0x23]), st.binary(max_size=64))
def test_arbitrary_bytes_after_the_type_byte(kind: int, body: bytes) -> None:
    message = decode_or_error(bytes([kind]) + body)
    if message is not None:
        assert message.type == kind


@st.composite
def near_valid_controls(draw: st.DrawFn) -> bytes:
    """A plausible header with a payload of about the stated length, so the length checks are
    reached, not only the header's."""
    length = draw(st.integers(0, MAX_CONTROL_PAYLOAD + 2))
    header = struct.pack(
        ">BIBH", 0x22, draw(st.integers(0, 0xFFFF_FFFF)), draw(st.integers(0, 255)), length
    )
    actual = draw(st.sampled_from([length, max(0, length - 1), length + 1]))
    return header + draw(st.binary(min_size=actual, max_size=actual))


@given(near_valid_controls())
def test_near_valid_controls(data: bytes) -> None:
    message = decode_or_error(data)
    if message is not None:
        assert isinstance(message, ControlMessage)
        assert len(message.payload) <= MAX_CONTROL_PAYLOAD
        assert len(data) == CONTROL_HEADER_SIZE + len(message.payload)


def test_the_largest_packet_fits_the_relay_limit() -> None:
    largest_control = encode_control(0, 0x80, bytes(MAX_CONTROL_PAYLOAD))
    largest_response = encode_input_response(0, [(f, 0) for f in range(MAX_INPUTS_PER_RESPONSE)])
    assert len(largest_control) == 8 + MAX_CONTROL_PAYLOAD
    assert MAX_PACKET_BYTES == len(largest_response) == 5 + 5 * MAX_INPUTS_PER_RESPONSE
    assert len(largest_control) < MAX_PACKET_BYTES
    assert MAX_PACKET_BYTES <= MAX_RELAY_BYTES
