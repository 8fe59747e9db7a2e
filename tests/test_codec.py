"""The wire format: exact bytes of every layout, every decode error, and property tests.

The hex literals below were written by hand from the layout table (big-endian):
  0x01 input:     type u8 | player u16 | current frame u32 | count u8 | reserved u8 (0)
                  | count x (frame u32 | action u8)
  0x02 ping:      type u8 | float64 ms
  0x03 pong:      type u8 | float64 ms
  0x04 keepalive: type u8
They are not produced with ``struct``, so a layout mistake in the codec cannot hide in the test.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_transport.wire.codec import (
    MAX_INPUTS_PER_PACKET,
    DecodeError,
    decode,
    encode_input_packet,
    encode_keepalive,
    encode_ping,
    encode_pong,
)
from p2p_transport.wire.messages import InputPacket, Keepalive, Message, MessageType, Ping, Pong
from tests.codec_helpers import (
    check_decode_error,
    check_encode_error,
    decode_or_error,
    encode,
    h,
    near_valid_input_packets,
    u32,
)

# --- exact bytes ------------------------------------------------------------------------------

INPUT_0 = h("01 | 00 01 | 01 02 03 04 | 00 | 00")
INPUT_1 = h("01 | 02 03 | 00 00 00 64 | 01 | 00 | 00 00 00 64 07")
INPUT_3 = h("01 | 00 01 | 00 01 00 00 | 03 | 00| 00 00 ff fe 00| 00 00 ff ff ff| 00 01 00 00 80")
INPUT_15 = h(
    "01 | ff ff | ff ff ff ff | 0f | 00"
    "| ff ff ff f1 00 | ff ff ff f2 01 | ff ff ff f3 02 | ff ff ff f4 03 | ff ff ff f5 04"
    "| ff ff ff f6 05 | ff ff ff f7 06 | ff ff ff f8 07 | ff ff ff f9 08 | ff ff ff fa 09"
    "| ff ff ff fb 0a | ff ff ff fc 0b | ff ff ff fd 0c | ff ff ff fe 0d | ff ff ff ff 0e"
)
FIFTEEN = tuple((0xFFFF_FFF1 + i, i) for i in range(15))

EXACT = [
    pytest.param(
        lambda: encode_input_packet(1, 0x01020304, ()),
        INPUT_0,
        InputPacket(1, 0x01020304, ()),
        id="input-0",
    ),
    pytest.param(
        lambda: encode_input_packet(0x0203, 100, [(100, 7)]),
        INPUT_1,
        InputPacket(0x0203, 100, ((100, 7),)),
        id="input-1",
    ),
    pytest.param(
        lambda: encode_input_packet(1, 65536, [(65534, 0), (65535, 255), (65536, 128)]),
        INPUT_3,
        InputPacket(1, 65536, ((65534, 0), (65535, 255), (65536, 128))),
        id="input-3",
    ),
    pytest.param(
        lambda: encode_input_packet(0xFFFF, 0xFFFF_FFFF, FIFTEEN),
        INPUT_15,
        InputPacket(0xFFFF, 0xFFFF_FFFF, FIFTEEN),
        id="input-15",
    ),
    # 1.0 = 0x3ff0000000000000; 1234.5 = 1.00110100101b x 2^10 -> exponent 0x409, mantissa 0x34a...
    pytest.param(lambda: encode_ping(1.0), h("02 | 3f f0 00 00 00 00 00 00"), Ping(1.0), id="ping"),
    pytest.param(
        lambda: encode_ping(1234.5), h("02 | 40 93 4a 00 00 00 00 00"), Ping(1234.5), id="ping-2"
    ),
    pytest.param(lambda: encode_pong(0.5), h("03 | 3f e0 00 00 00 00 00 00"), Pong(0.5), id="pong"),
    pytest.param(
        lambda: encode_pong(-2.0), h("03 | c0 00 00 00 00 00 00 00"), Pong(-2.0), id="pong-neg"
    ),
    pytest.param(encode_keepalive, h("04"), Keepalive(), id="keepalive"),
]


@pytest.mark.parametrize(("make", "wire", "message"), EXACT)
def test_encode_exact_bytes(make, wire, message) -> None:
    data = make()
    assert type(data) is bytes
    assert data == wire


@pytest.mark.parametrize(("make", "wire", "message"), EXACT)
def test_decode_exact_bytes(make, wire, message) -> None:
    decoded = decode(wire)
    assert decoded == message
    assert type(decoded) is type(message)
    assert decoded.type is MessageType(wire[0])


def test_ping_integer_timestamp_is_encoded_as_float64() -> None:
    assert encode_ping(2) == h("02 | 40 00 00 00 00 00 00 00")
    assert decode(encode_ping(2)) == Ping(2.0)


def test_input_packet_sizes() -> None:
    # 9-byte header plus 5 bytes per input.
    assert [len(x) for x in (INPUT_0, INPUT_1, INPUT_3, INPUT_15)] == [9, 14, 24, 84]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_decode_accepts_every_buffer_type(kind) -> None:
    assert decode(kind(INPUT_3)) == decode(INPUT_3)
    assert decode(kind(h("02 3ff0000000000000"))) == Ping(1.0)
    assert decode(kind(b"\x04")) == Keepalive()


def test_decode_accepts_a_slice_of_a_larger_buffer() -> None:
    # A memoryview into the middle of a receive buffer, as a zero-copy caller would pass.
    buffer = bytearray(b"\xaa\xbb" + INPUT_1 + b"\xcc")
    assert decode(memoryview(buffer)[2:-1]) == InputPacket(0x0203, 100, ((100, 7),))


def test_decoded_inputs_are_plain_int_tuples() -> None:
    packet = decode(INPUT_3)
    assert isinstance(packet, InputPacket)
    assert packet.inputs == ((65534, 0), (65535, 255), (65536, 128))
    assert all(type(x) is int for pair in packet.inputs for x in pair)


# --- decode errors ----------------------------------------------------------------------------

DECODE_ERRORS = [
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"\x00", "unknown message type 0x00", id="type-0"),
    pytest.param(b"\x15", "unknown message type 0x15", id="type-15"),
    pytest.param(b"\xff\x00\x01", "unknown message type 0xff", id="type-ff"),
    pytest.param(h("01 00 01 00 00 00"), "truncated: 6 bytes, header needs 9", id="short-header"),
    pytest.param(h("01"), "truncated: 1 bytes, header needs 9", id="type-only"),
    pytest.param(
        h("01 | 00 01 | 00 00 00 02 | 02 | 00 | 00 00 00 01 05 | 00 00 00"),
        "truncated: 17 bytes, 2 inputs need 19",
        id="truncated-inputs",
    ),
    pytest.param(
        h("01 | 00 01 | 00 00 00 02 | 01 | 00 | 00 00 00 01 05 | 99"),
        "1 trailing bytes after 1 inputs",
        id="trailing",
    ),
    pytest.param(
        h("01 | 00 01 | 00 00 00 02 | 10 | 00") + bytes(80),
        "count 16 over the limit of 15",
        id="count-16",
    ),
    pytest.param(
        h("01 | 00 01 | 00 00 00 02 | ff | 00"), "count 255 over the limit", id="count-255"
    ),
    pytest.param(
        h("01 | 00 01 | 00 00 00 02 | 00 | 01"), "reserved byte must be 0, got 1", id="rsv"
    ),
    pytest.param(
        h("01 | 00 01 | 00 00 00 02 | 02 | 00 | 00 00 00 02 05 | 00 00 00 02 06"),
        "not strictly increasing: 2 after 2",
        id="frames-equal",
    ),
    pytest.param(
        h("01 | 00 01 | 00 00 00 02 | 02 | 00 | 00 00 00 02 05 | 00 00 00 01 06"),
        "not strictly increasing: 1 after 2",
        id="frames-decreasing",
    ),
    pytest.param(h("02 | 7f f8 00 00 00 00 00 00"), "ping timestamp is not finite", id="ping-nan"),
    pytest.param(h("02 | 7f f0 00 00 00 00 00 00"), "ping timestamp is not finite", id="ping-inf"),
    pytest.param(h("03 | ff f0 00 00 00 00 00 00"), "pong timestamp is not finite", id="pong-ninf"),
    pytest.param(h("02 | 3f f0 00 00 00 00 00"), "ping must be 9 bytes, got 8", id="ping-short"),
    pytest.param(
        h("02 | 3f f0 00 00 00 00 00 00 00"), "ping must be 9 bytes, got 10", id="ping-long"
    ),
    pytest.param(h("02"), "ping must be 9 bytes, got 1", id="ping-bare"),
    pytest.param(h("03 | 3f f0 00"), "pong must be 9 bytes, got 4", id="pong-short"),
    pytest.param(
        h("03 | 3f f0 00 00 00 00 00 00 01"), "pong must be 9 bytes, got 10", id="pong-long"
    ),
    pytest.param(h("04 00"), "keepalive has 1 trailing bytes", id="keepalive-long"),
    pytest.param(h("04 00 00 00"), "keepalive has 3 trailing bytes", id="keepalive-long-3"),
]


@pytest.mark.parametrize(("data", "message"), DECODE_ERRORS)
def test_decode_error_says_what_was_wrong(data: bytes, message: str) -> None:
    check_decode_error(data, message)


@pytest.mark.parametrize(
    ("data", "type_name"),
    [("abc", "str"), (None, "NoneType"), (42, "int"), ([1, 2], "list"), (1.5, "float")],
)
def test_decode_rejects_non_buffers_with_decode_error(data: object, type_name: str) -> None:
    with pytest.raises(
        DecodeError, match=f"expected bytes, bytearray or a contiguous memoryview, got {type_name}"
    ):
        decode(data)  # type: ignore[arg-type]


def test_decode_names_a_non_contiguous_memoryview() -> None:
    strided = memoryview(encode_keepalive() * 4)[::2]
    with pytest.raises(DecodeError, match="got a non-contiguous memoryview"):
        decode(strided)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


# --- encoder argument errors ------------------------------------------------------------------

ENCODE_ERRORS = [
    pytest.param(
        lambda: encode_input_packet(0, 0, [(0, 256)]), "action must be in 0..255", id="a256"
    ),
    pytest.param(
        lambda: encode_input_packet(0, 0, [(0, -1)]), "action must be in 0..255", id="a-1"
    ),
    pytest.param(
        lambda: encode_input_packet(0, 0, [(0, True)]),
        "action must be an int, got bool",
        id="abool",
    ),
    pytest.param(
        lambda: encode_input_packet(0, 0, [(0, 1.0)]), "action must be an int, got float", id="aflt"
    ),
    pytest.param(
        lambda: encode_input_packet(0, 0, [(2**32, 1)]), "frame must be in 0..4294967295", id="f32"
    ),
    pytest.param(lambda: encode_input_packet(0, 0, [(-1, 1)]), "frame must be in 0..", id="f-1"),
    pytest.param(
        lambda: encode_input_packet(0, 2**32, []), "current_frame must be in 0..4294967295", id="cf"
    ),
    pytest.param(
        lambda: encode_input_packet(65536, 0, []), "player_index must be in 0..65535", id="p16"
    ),
    pytest.param(lambda: encode_input_packet(-1, 0, []), "player_index must be in 0..", id="p-1"),
    pytest.param(
        lambda: encode_input_packet(False, 0, []), "player_index must be an int, got bool", id="pb"
    ),
    pytest.param(
        lambda: encode_input_packet(0, 0, [(i, 0) for i in range(16)]),
        "at most 15 inputs per packet, got 16",
        id="16-inputs",
    ),
    pytest.param(
        lambda: encode_input_packet(0, 0, [(5, 0), (5, 1)]),
        "strictly increasing, got 5 after 5",
        id="frames-equal",
    ),
    pytest.param(
        lambda: encode_input_packet(0, 0, [(5, 0), (4, 1)]),
        "strictly increasing, got 4 after 5",
        id="frames-decreasing",
    ),
    pytest.param(lambda: encode_ping(math.nan), "timestamp_ms must be finite", id="ping-nan"),
    pytest.param(lambda: encode_ping(math.inf), "timestamp_ms must be finite", id="ping-inf"),
    pytest.param(lambda: encode_pong(-math.inf), "timestamp_ms must be finite", id="pong-ninf"),
    pytest.param(lambda: encode_pong(math.nan), "timestamp_ms must be finite", id="pong-nan"),
    pytest.param(lambda: encode_ping(True), "must be a number, got bool", id="ping-bool"),
    pytest.param(lambda: encode_ping("1"), "must be a number, got str", id="ping-str"),
    pytest.param(
        lambda: encode_pong(10**400),
        "timestamp_ms must be finite, got an int beyond float64",
        id="pong-hugeint",
    ),
]


@pytest.mark.parametrize(("call", "message"), ENCODE_ERRORS)
def test_encoder_value_errors(call: Callable[[], bytes], message: str) -> None:
    check_encode_error(call, message)


# --- properties -------------------------------------------------------------------------------


@st.composite
def input_packets(draw: st.DrawFn) -> InputPacket:
    frames = sorted(draw(st.sets(u32, max_size=MAX_INPUTS_PER_PACKET)))
    actions = draw(st.lists(st.integers(0, 255), min_size=len(frames), max_size=len(frames)))
    return InputPacket(
        draw(st.integers(0, 0xFFFF)), draw(u32), tuple(zip(frames, actions, strict=True))
    )


finite = st.floats(allow_nan=False, allow_infinity=False)
messages = st.one_of(
    input_packets(),
    finite.map(Ping),
    finite.map(Pong),
    st.just(Keepalive()),
)


@given(messages)
def test_round_trip(message: Message) -> None:
    data = encode(message)
    decoded = decode(data)
    assert decoded == message
    # Bit-exact for floats too (-0.0 == 0.0 would hide a lost sign).
    if isinstance(message, Ping | Pong):
        assert struct.pack(">d", decoded.timestamp_ms) == struct.pack(">d", message.timestamp_ms)
    assert encode(decoded) == data


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_decode_error_only(data: bytes) -> None:
    decode_or_error(data)


@given(st.sampled_from(list(MessageType)), st.binary(max_size=120))
def test_arbitrary_bytes_after_each_valid_type_byte(kind: MessageType, body: bytes) -> None:
    data = bytes([kind]) + body
    message = decode_or_error(data)
    if message is not None:
        assert message.type is kind


@given(near_valid_input_packets())
def test_near_valid_input_packets(data: bytes) -> None:
    message = decode_or_error(data)
    if message is not None:
        assert isinstance(message, InputPacket)
        frames = [frame for frame, _ in message.inputs]
        assert frames == sorted(set(frames))
        assert len(data) == 9 + 5 * len(frames)


@given(st.sampled_from([MessageType.PING, MessageType.PONG]), st.binary(min_size=8, max_size=8))
def test_every_eight_byte_timestamp_decodes_unless_non_finite(
    kind: MessageType, body: bytes
) -> None:
    (value,) = struct.unpack(">d", body)
    data = bytes([kind]) + body
    if math.isfinite(value):
        assert decode_or_error(data) == (Ping(value) if kind is MessageType.PING else Pong(value))
    else:
        with pytest.raises(DecodeError, match="not finite"):
            decode(data)
