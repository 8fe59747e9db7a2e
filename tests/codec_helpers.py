"""What the codec tests share: hex literals, the one encoder for any message, and the checks
every message type's decode errors, encode errors and garbage go through."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import strategies as st

from p2p_transport.errors import UsageError
from p2p_transport.wire.codec import (
    MAX_ACKED_INPUTS_PER_PACKET,
    MAX_INPUTS_PER_PACKET,
    DecodeError,
    decode,
    encode_acked_input_packet,
    encode_control,
    encode_control_ack,
    encode_focus_state,
    encode_held_pong,
    encode_input_packet,
    encode_input_request,
    encode_input_response,
    encode_keepalive,
    encode_ping,
    encode_pong,
    encode_v1_episode_end,
    encode_v1_episode_ready,
    encode_v1_state_hash,
    encode_validation_ping,
    encode_validation_pong,
)
from p2p_transport.wire.messages import (
    AckedInputPacket,
    ControlAck,
    ControlMessage,
    EpisodeEnd,
    EpisodeReady,
    FocusState,
    HeldPong,
    InputPacket,
    InputRequest,
    InputResponse,
    Keepalive,
    Message,
    Ping,
    Pong,
    StateHash,
    ValidationPing,
    ValidationPong,
)

#: Any frame, sequence or other u32 field.
u32 = st.integers(0, 0xFFFF_FFFF)


def h(text: str) -> bytes:
    """Hex with spaces and ``|`` separators for readability."""
    return bytes.fromhex(text.replace("|", " "))


def encode(message: Message) -> bytes:
    """Any decoded message back to bytes, with its own encoder."""
    if isinstance(message, InputPacket):
        return encode_input_packet(message.player_index, message.current_frame, message.inputs)
    if isinstance(message, Ping):
        return encode_ping(message.timestamp_ms)
    if isinstance(message, Pong):
        return encode_pong(message.timestamp_ms)
    if isinstance(message, AckedInputPacket):
        return encode_acked_input_packet(
            message.player_index, message.current_frame, message.ack_frame, message.inputs
        )
    if isinstance(message, ControlMessage):
        return encode_control(message.sequence, message.kind, message.payload)
    if isinstance(message, ControlAck):
        return encode_control_ack(message.ack)
    if isinstance(message, HeldPong):
        return encode_held_pong(message.timestamp_ms, message.hold_ms)
    if isinstance(message, EpisodeEnd):
        return encode_v1_episode_end(message.frame, message.episode)
    if isinstance(message, EpisodeReady):
        return encode_v1_episode_ready(message.episode, message.state_hash)
    if isinstance(message, StateHash):
        return encode_v1_state_hash(message.frame, message.digest)
    if isinstance(message, InputRequest):
        return encode_input_request(message.start_frame, message.end_frame)
    if isinstance(message, InputResponse):
        return encode_input_response(message.player_index, message.inputs)
    if isinstance(message, FocusState):
        return encode_focus_state(message.focused, message.frame)
    if isinstance(message, ValidationPing):
        return encode_validation_ping(message.timestamp_ms)
    if isinstance(message, ValidationPong):
        return encode_validation_pong(message.timestamp_ms)
    assert isinstance(message, Keepalive)
    return encode_keepalive()


def decode_or_error(data: bytes) -> Message | None:
    """Decode ``data``, which must either fail with a :class:`DecodeError` that says something
    (``None``) or give a message that encodes back to exactly ``data``."""
    try:
        message = decode(data)
    except DecodeError as exc:
        assert str(exc)  # every error says something
        return None
    # Whatever decodes is canonical: encoding it again gives back exactly the same bytes.
    assert encode(message) == data
    return message


def check_decode_error(data: bytes, message: str) -> None:
    """Decoding ``data`` raises a DecodeError that says ``message``."""
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert message in str(info.value)


def check_encode_error(call: Callable[[], bytes], message: str) -> None:
    """``call`` raises a UsageError (the caller's mistake: a ValueError, and no subclass such
    as DecodeError) that says ``message``."""
    with pytest.raises(ValueError) as info:
        call()
    assert type(info.value) is UsageError
    assert message in str(info.value)


@st.composite
def near_valid_input_packets(draw: st.DrawFn) -> bytes:
    """A plausible header (count <= 15, reserved 0) with a body of about the right length, so the
    parser's length, ordering and entry checks are reached, not only the header's."""
    count = draw(st.integers(0, MAX_INPUTS_PER_PACKET))
    header = struct.pack(">BHIBB", 1, draw(st.integers(0, 0xFFFF)), draw(u32), count, 0)
    length = draw(st.sampled_from([5 * count, 5 * count - 1, 5 * count + 1, 5 * count + 5]))
    entries = b"".join(
        struct.pack(">IB", draw(st.integers(0, 40)), draw(st.integers(0, 255)))
        for _ in range(count + 1)
    )
    return header + entries[: max(0, length)]


@st.composite
def near_valid_acked_packets(draw: st.DrawFn) -> bytes:
    """A plausible header (count <= 64) with a body of about the right length, so the length,
    ordering and entry checks are reached, not only the header's."""
    count = draw(st.integers(0, MAX_ACKED_INPUTS_PER_PACKET))
    header = struct.pack(">BHIIB", 0x20, draw(st.integers(0, 0xFFFF)), draw(u32), draw(u32), count)
    length = draw(st.sampled_from([5 * count, 5 * count - 1, 5 * count + 1, 5 * count + 5]))
    entries = b"".join(
        struct.pack(">IB", draw(st.integers(0, 80)), draw(st.integers(0, 255)))
        for _ in range(count + 1)
    )
    return header + entries[: max(0, length)]
