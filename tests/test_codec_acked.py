"""The acked input message (0x20): exact bytes, every decode error, and property tests.

Layout (big-endian), written out by hand below rather than produced with ``struct``:
  0x20 acked input: type u8 | player u16 | current frame u32 | ack frame u32 (ff ff ff ff: none)
                    | count u8 | count x (frame u32 | action u8)
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_transport.wire.codec import (
    ACKED_INPUT_HEADER_SIZE,
    MAX_ACKED_INPUTS_PER_PACKET,
    NO_ACK,
    decode,
    encode_acked_input_packet,
    encode_input_packet,
)
from p2p_transport.wire.messages import AckedInputPacket, MessageType
from tests.codec_helpers import (
    check_decode_error,
    check_encode_error,
    decode_or_error,
    h,
    near_valid_acked_packets,
    u32,
)


def entries_hex(inputs: tuple[tuple[int, int], ...]) -> str:
    return "".join(f"{frame:08x}{action:02x}" for frame, action in inputs)


SIXTY_FOUR = tuple((1000 + 2 * i, (7 * i) % 256) for i in range(64))

EXACT = [
    pytest.param(
        (1, 0x01020304, None, ()),
        h("20 | 00 01 | 01 02 03 04 | ff ff ff ff | 00"),
        id="no-ack-no-inputs",
    ),
    pytest.param(
        (0x0203, 100, 99, ((100, 7),)),
        h("20 | 02 03 | 00 00 00 64 | 00 00 00 63 | 01 | 00 00 00 64 07"),
        id="one-input",
    ),
    pytest.param(
        (0, 2, 0, ((0, 255), (1, 0), (2, 128))),
        h("20 | 00 00 | 00 00 00 02 | 00 00 00 00 | 03 | 00000000 ff | 00000001 00 | 00000002 80"),
        id="ack-zero-three-inputs",
    ),
    pytest.param(
        (0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFE, SIXTY_FOUR),
        h("20 | ff ff | ff ff ff ff | ff ff ff fe | 40 |" + entries_hex(SIXTY_FOUR)),
        id="max-fields-64-inputs",
    ),
]


@pytest.mark.parametrize(("args", "wire"), EXACT)
def test_encode_exact_bytes(args: tuple[Any, ...], wire: bytes) -> None:
    data = encode_acked_input_packet(*args)
    assert type(data) is bytes
    assert data == wire
    assert len(data) == ACKED_INPUT_HEADER_SIZE + 5 * len(args[3])


@pytest.mark.parametrize(("args", "wire"), EXACT)
def test_decode_exact_bytes(args: tuple[Any, ...], wire: bytes) -> None:
    message = decode(wire)
    assert message == AckedInputPacket(*args)
    assert message.type is MessageType.ACKED_INPUT
    assert decode(memoryview(bytearray(wire))) == message


def test_sizes() -> None:
    # 12-byte header, 5 bytes per input: 64 inputs (the limit) make 332 bytes.
    assert ACKED_INPUT_HEADER_SIZE == 12
    assert len(EXACT[3].values[1]) == 332
    assert MAX_ACKED_INPUTS_PER_PACKET == 64
    assert NO_ACK == 0xFFFF_FFFF


def test_version_one_input_is_unchanged() -> None:
    # The new type sits beside 0x01, which deployed peers speak; 0x01 keeps its bytes.
    assert encode_input_packet(1, 2, [(2, 3)]) == h(
        "01 | 00 01 | 00 00 00 02 | 01 | 00 | 00000002 03"
    )


DECODE_ERRORS = [
    pytest.param(h("20"), "acked input packet truncated: 1 bytes, header needs 12", id="bare"),
    pytest.param(
        h("20 | 00 01 | 00 00 00 02 | ff ff ff ff"), "truncated: 11 bytes, header needs 12", id="11"
    ),
    pytest.param(
        h("20 | 00 01 | 00 00 00 02 | ff ff ff ff | 41") + bytes(65 * 5),
        "acked input packet count 65 over the limit of 64",
        id="count-65",
    ),
    pytest.param(
        h("20 | 00 01 | 00 00 00 02 | ff ff ff ff | ff"), "count 255 over the limit", id="count-255"
    ),
    pytest.param(
        h("20 | 00 01 | 00 00 00 02 | 00 00 00 01 | 02 | 00 00 00 01 05 | 00 00"),
        "acked input packet truncated: 19 bytes, 2 inputs need 22",
        id="truncated-inputs",
    ),
    pytest.param(
        h("20 | 00 01 | 00 00 00 02 | 00 00 00 01 | 01 | 00 00 00 01 05 | 00"),
        "acked input packet has 1 trailing bytes after 1 inputs",
        id="trailing",
    ),
    pytest.param(
        h("20 | 00 01 | 00 00 00 02 | 00 00 00 01 | 00 | 00"),
        "acked input packet has 1 trailing bytes after 0 inputs",
        id="trailing-after-none",
    ),
    pytest.param(
        h("20 | 00 01 | 00 00 00 02 | 00 00 00 01 | 02 | 00 00 00 02 05 | 00 00 00 02 06"),
        "not strictly increasing: 2 after 2",
        id="frames-equal",
    ),
    pytest.param(
        h("20 | 00 01 | 00 00 00 02 | 00 00 00 01 | 02 | 00 00 00 03 05 | 00 00 00 01 06"),
        "not strictly increasing: 1 after 3",
        id="frames-decreasing",
    ),
]


@pytest.mark.parametrize(("data", "message"), DECODE_ERRORS)
def test_decode_error_says_what_was_wrong(data: bytes, message: str) -> None:
    check_decode_error(data, message)


ENCODE_ERRORS = [
    pytest.param(
        lambda: encode_acked_input_packet(0, 0, NO_ACK, []),
        "ack_frame must be in 0..4294967294",
        id="ack-is-the-none-marker",
    ),
    pytest.param(
        lambda: encode_acked_input_packet(0, 0, -1, []), "ack_frame must be in 0..", id="ack-neg"
    ),
    pytest.param(
        lambda: encode_acked_input_packet(0, 0, True, []),
        "ack_frame must be an int, got bool",
        id="ack-bool",
    ),
    pytest.param(
        lambda: encode_acked_input_packet(0, 0, None, [(i, 0) for i in range(65)]),
        "at most 64 inputs per acked packet, got 65",
        id="65-inputs",
    ),
    pytest.param(
        lambda: encode_acked_input_packet(0, 0, None, [(5, 0), (5, 1)]),
        "strictly increasing, got 5 after 5",
        id="frames-equal",
    ),
    pytest.param(
        lambda: encode_acked_input_packet(0, 0, None, [(0, 256)]),
        "action must be in 0..255",
        id="action",
    ),
    pytest.param(
        lambda: encode_acked_input_packet(65536, 0, None, []),
        "player_index must be in 0..65535",
        id="player",
    ),
    pytest.param(
        lambda: encode_acked_input_packet(0, 2**32, None, []),
        "current_frame must be in 0..4294967295",
        id="current-frame",
    ),
]


@pytest.mark.parametrize(("call", "message"), ENCODE_ERRORS)
def test_encoder_value_errors(call: Callable[[], bytes], message: str) -> None:
    check_encode_error(call, message)


# --- properties -------------------------------------------------------------------------------


@st.composite
def acked_packets(draw: st.DrawFn) -> AckedInputPacket:
    frames = sorted(draw(st.sets(u32, max_size=MAX_ACKED_INPUTS_PER_PACKET)))
    actions = draw(st.lists(st.integers(0, 255), min_size=len(frames), max_size=len(frames)))
    return AckedInputPacket(
        draw(st.integers(0, 0xFFFF)),
        draw(u32),
        draw(st.none() | st.integers(0, NO_ACK - 1)),
        tuple(zip(frames, actions, strict=True)),
    )


@given(acked_packets())
def test_round_trip(message: AckedInputPacket) -> None:
    data = encode_acked_input_packet(
        message.player_index, message.current_frame, message.ack_frame, message.inputs
    )
    assert decode(data) == message
    assert len(data) == 12 + 5 * len(message.inputs)


@given(st.binary(max_size=400))
def test_arbitrary_bytes_after_the_type_byte(body: bytes) -> None:
    message = decode_or_error(b"\x20" + body)
    if message is not None:
        assert isinstance(message, AckedInputPacket)


@given(near_valid_acked_packets())
def test_near_valid_acked_packets(data: bytes) -> None:
    message = decode_or_error(data)
    if message is not None:
        assert isinstance(message, AckedInputPacket)
        frames = [frame for frame, _ in message.inputs]
        assert frames == sorted(set(frames))
        assert len(data) == 12 + 5 * len(frames)
        (raw_ack,) = struct.unpack_from(">I", data, 7)
        assert message.ack_frame == (None if raw_ack == NO_ACK else raw_ack)
