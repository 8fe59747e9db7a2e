"""The input packets' hot-path forms: reading one into its fields and writing one as a head and
entries agree with :func:`decode` and the encoders, byte for byte and error for error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_transport.wire.codec import (
    ACKED_INPUT_TYPE,
    INPUT_TYPE,
    DecodeError,
    byte_view,
    decode,
    decode_acked_input_fields,
    decode_input_fields,
    encode_acked_input_packet,
    encode_input_packet,
    pack_acked_input_head,
    pack_input_entry,
    pack_input_head,
)
from p2p_transport.wire.messages import AckedInputPacket, InputPacket
from tests.codec_helpers import h, near_valid_acked_packets, near_valid_input_packets, u32


def test_input_type_bytes() -> None:
    assert (INPUT_TYPE, ACKED_INPUT_TYPE) == (0x01, 0x20)
    assert type(INPUT_TYPE) is int and type(ACKED_INPUT_TYPE) is int


def test_heads_and_entries_exact_bytes() -> None:
    assert pack_input_entry(0x01020304, 0xFF) == h("01 02 03 04 ff")
    assert pack_input_head(0x0203, 100, 2) == h("01 | 02 03 | 00 00 00 64 | 02 | 00")
    assert pack_acked_input_head(1, 2, None, 0) == h("20 | 00 01 | 00 00 00 02 | ff ff ff ff | 00")
    assert pack_acked_input_head(1, 2, 0, 3) == h("20 | 00 01 | 00 00 00 02 | 00 00 00 00 | 03")


frames = st.lists(st.integers(0, 0xFFFF_FFFF), max_size=15, unique=True).map(sorted)


@given(st.integers(0, 0xFFFF), u32, frames, st.data())
def test_a_head_and_entries_are_the_encoded_packet(
    player: int, current: int, sorted_frames: list[int], data: st.DataObject
) -> None:
    inputs = tuple((frame, data.draw(st.integers(0, 255))) for frame in sorted_frames)
    entries = b"".join(pack_input_entry(frame, action) for frame, action in inputs)
    ack = data.draw(st.none() | st.integers(0, 0xFFFF_FFFE))
    assert pack_input_head(player, current, len(inputs)) + entries == encode_input_packet(
        player, current, inputs
    )
    acked = pack_acked_input_head(player, current, ack, len(inputs)) + entries
    assert acked == encode_acked_input_packet(player, current, ack, inputs)


def outcome(read: object, data: bytes) -> object:
    try:
        return read(data)  # type: ignore[operator]
    except DecodeError as error:
        return ("error", str(error))


@given(st.sampled_from([INPUT_TYPE, ACKED_INPUT_TYPE]), st.binary(max_size=120))
def test_fields_agree_with_decode_on_any_bytes(kind: int, body: bytes) -> None:
    data = bytes([kind]) + body
    read = decode_input_fields if kind == INPUT_TYPE else decode_acked_input_fields
    message = outcome(decode, data)
    fields = outcome(read, data)
    if isinstance(message, InputPacket | AckedInputPacket):
        assert type(message)(*fields) == message  # type: ignore[arg-type, misc]
    else:
        assert fields == message  # the same DecodeError and message


@given(near_valid_input_packets() | near_valid_acked_packets())
def test_fields_agree_with_decode_near_valid(data: bytes) -> None:
    read = decode_input_fields if data[0] == INPUT_TYPE else decode_acked_input_fields
    message = outcome(decode, data)
    fields = outcome(read, data)
    if isinstance(message, InputPacket | AckedInputPacket):
        assert type(message)(*fields) == message  # type: ignore[arg-type, misc]
    else:
        assert fields == message


def test_each_reader_refuses_the_other_type() -> None:
    acked = encode_acked_input_packet(0, 5, None, ((5, 1),))
    with pytest.raises(DecodeError, match="not an input packet: type 0x20"):
        decode_input_fields(acked)
    # A version-1 packet of the acked length, so only the type byte is wrong.
    v1 = encode_input_packet(0, 5, ((5, 1),)) + b"\x00\x00\x00"
    with pytest.raises(DecodeError, match="not an acked input packet: type 0x01"):
        decode_acked_input_fields(v1)


def test_byte_view() -> None:
    data = encode_input_packet(0, 5, ((5, 1),))
    assert byte_view(data) is data
    view = byte_view(bytearray(data))
    assert isinstance(view, memoryview) and view == data
    with pytest.raises(DecodeError, match="got str"):
        byte_view("text")  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="non-contiguous memoryview"):
        byte_view(memoryview(data * 2)[::2])
