"""The binary wire format.

Version-1 messages are byte-for-byte the layout that deployed interactive_gym / mug JavaScript peers
speak, so a Python peer and a JavaScript peer understand each other. Everything is big-endian.

=====  ===========  =====================================================================
type   message      layout after the type byte
=====  ===========  =====================================================================
0x01   input        player u16, current frame u32, count u8, reserved u8 (0),
                    then count x (frame u32, action u8), oldest first
0x02   ping         float64 timestamp in ms (sender's clock)
0x03   pong         float64: the ping's timestamp echoed unchanged
0x04   keepalive    nothing
0x20   acked input  player u16, current frame u32, ack frame u32, count u8,
                    then count x (frame u32, action u8), oldest first
=====  ===========  =====================================================================

0x20 is not version 1: it carries, besides the inputs, the sender's acknowledgement of the peer's
inputs (the highest frame up to which it holds every one; 0xFFFFFFFF when it holds none yet), so a
peer can stop resending what arrived. A session sends it only to a peer that has shown it
understands it (:mod:`p2p_transport.negotiation`).

Decoding is table-driven: each message type registers one parser, so later message types (acks,
reliable control messages, episode and state-hash messages) are a new table entry, not a new branch.
:func:`decode` raises :class:`DecodeError` and nothing else, whatever bytes it is given.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, TypeAlias

__all__ = [
    "ACKED_INPUT_HEADER_SIZE",
    "INPUT_HEADER_SIZE",
    "INPUT_SIZE",
    "MAX_ACKED_INPUTS_PER_PACKET",
    "MAX_ACTION",
    "MAX_FRAME",
    "MAX_INPUTS_PER_PACKET",
    "MAX_PLAYER_INDEX",
    "NO_ACK",
    "AckedInputPacket",
    "Buffer",
    "DecodeError",
    "InputPacket",
    "Keepalive",
    "Message",
    "MessageType",
    "Ping",
    "Pong",
    "decode",
    "encode_acked_input_packet",
    "encode_input_packet",
    "encode_keepalive",
    "encode_ping",
    "encode_pong",
]


class MessageType(IntEnum):
    """The first byte of every message."""

    INPUT = 0x01
    PING = 0x02
    PONG = 0x03
    KEEPALIVE = 0x04
    ACKED_INPUT = 0x20


class DecodeError(ValueError):
    """The bytes are not a valid message. The only exception :func:`decode` raises."""


Buffer: TypeAlias = bytes | bytearray | memoryview

_INPUT_HEADER: Final = struct.Struct(">BHIBB")
_INPUT_ENTRY: Final = struct.Struct(">IB")
_ACKED_INPUT_HEADER: Final = struct.Struct(">BHIIB")
_TIMESTAMP: Final = struct.Struct(">Bd")

INPUT_HEADER_SIZE: Final = _INPUT_HEADER.size  # 9 bytes
INPUT_SIZE: Final = _INPUT_ENTRY.size  # 5 bytes per (frame, action)
MAX_PLAYER_INDEX: Final = 0xFFFF
MAX_FRAME: Final = 0xFFFF_FFFF
MAX_ACTION: Final = 0xFF
# The count field is a u8, but deployed JavaScript encoders cap a packet at 15 inputs; accepting at
# most that keeps a hostile count from costing a large allocation and matches what peers send.
MAX_INPUTS_PER_PACKET: Final = 15
ACKED_INPUT_HEADER_SIZE: Final = _ACKED_INPUT_HEADER.size  # 12 bytes
# An acked packet carries every input the peer has not acknowledged, and the sender keeps at most
# 64 of them: about a second at 60 Hz, longer than any loss burst worth riding out. 64 inputs make
# a 332-byte packet, well inside one unfragmented DataChannel message.
MAX_ACKED_INPUTS_PER_PACKET: Final = 64
#: The ack field's value for "I hold none of your inputs yet"; it stands for ``None`` in Python.
#: Frame 0xFFFFFFFF itself can therefore not be acknowledged (it comes after 2.2 years at 60 Hz).
NO_ACK: Final = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class InputPacket:
    """One player's most recent inputs as ``(frame, action)`` pairs, oldest first."""

    player_index: int
    current_frame: int
    inputs: tuple[tuple[int, int], ...]

    @property
    def type(self) -> MessageType:
        return MessageType.INPUT


@dataclass(frozen=True, slots=True)
class AckedInputPacket:
    """Inputs as in :class:`InputPacket`, plus the sender's acknowledgement of the peer's inputs.

    ``ack_frame`` is the highest frame up to which the sender holds every input of the peer it is
    sending to, or ``None`` if it holds none yet.
    """

    player_index: int
    current_frame: int
    ack_frame: int | None
    inputs: tuple[tuple[int, int], ...]

    @property
    def type(self) -> MessageType:
        return MessageType.ACKED_INPUT


@dataclass(frozen=True, slots=True)
class Ping:
    timestamp_ms: float

    @property
    def type(self) -> MessageType:
        return MessageType.PING


@dataclass(frozen=True, slots=True)
class Pong:
    timestamp_ms: float

    @property
    def type(self) -> MessageType:
        return MessageType.PONG


@dataclass(frozen=True, slots=True)
class Keepalive:
    @property
    def type(self) -> MessageType:
        return MessageType.KEEPALIVE


Message: TypeAlias = InputPacket | Ping | Pong | Keepalive | AckedInputPacket

_KEEPALIVE: Final = Keepalive()
_KEEPALIVE_BYTES: Final = bytes([MessageType.KEEPALIVE])


# --- encoding ---------------------------------------------------------------------------------


def _check_int(name: str, value: int, maximum: int) -> None:
    # bool is an int subclass; a True action is almost certainly a caller's bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} must be in 0..{maximum}, got {value}")


def encode_input_packet(
    player_index: int, current_frame: int, inputs: Sequence[tuple[int, int]]
) -> bytes:
    """Encode ``inputs`` (``(frame, action)`` pairs, oldest first) as a version-1 input packet.

    Frames must be strictly increasing. ``current_frame`` is the sender's target frame; it is
    carried as given, with no relation to the input frames enforced, because deployed peers differ
    in how they fill it.
    """
    _check_int("player_index", player_index, MAX_PLAYER_INDEX)
    _check_int("current_frame", current_frame, MAX_FRAME)
    count = len(inputs)
    if count > MAX_INPUTS_PER_PACKET:
        raise ValueError(f"at most {MAX_INPUTS_PER_PACKET} inputs per packet, got {count}")
    out = bytearray(INPUT_HEADER_SIZE + INPUT_SIZE * count)
    _INPUT_HEADER.pack_into(out, 0, MessageType.INPUT, player_index, current_frame, count, 0)
    _pack_inputs(out, INPUT_HEADER_SIZE, inputs)
    return bytes(out)


def encode_acked_input_packet(
    player_index: int,
    current_frame: int,
    ack_frame: int | None,
    inputs: Sequence[tuple[int, int]],
) -> bytes:
    """Encode ``inputs`` (oldest first, frames strictly increasing) with an acknowledgement.

    ``ack_frame`` is the highest frame up to which the sender holds every input of the peer, or
    ``None`` for none yet.
    """
    _check_int("player_index", player_index, MAX_PLAYER_INDEX)
    _check_int("current_frame", current_frame, MAX_FRAME)
    if ack_frame is not None:
        _check_int("ack_frame", ack_frame, NO_ACK - 1)
    count = len(inputs)
    if count > MAX_ACKED_INPUTS_PER_PACKET:
        raise ValueError(
            f"at most {MAX_ACKED_INPUTS_PER_PACKET} inputs per acked packet, got {count}"
        )
    out = bytearray(ACKED_INPUT_HEADER_SIZE + INPUT_SIZE * count)
    _ACKED_INPUT_HEADER.pack_into(
        out,
        0,
        MessageType.ACKED_INPUT,
        player_index,
        current_frame,
        NO_ACK if ack_frame is None else ack_frame,
        count,
    )
    _pack_inputs(out, ACKED_INPUT_HEADER_SIZE, inputs)
    return bytes(out)


def _pack_inputs(out: bytearray, offset: int, inputs: Sequence[tuple[int, int]]) -> None:
    previous = -1
    for frame, action in inputs:
        _check_int("frame", frame, MAX_FRAME)
        _check_int("action", action, MAX_ACTION)
        if frame <= previous:
            raise ValueError(
                f"input frames must be strictly increasing, got {frame} after {previous}"
            )
        _INPUT_ENTRY.pack_into(out, offset, frame, action)
        offset += INPUT_SIZE
        previous = frame


def _encode_timestamp(kind: MessageType, timestamp_ms: float) -> bytes:
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int | float):
        raise ValueError(f"timestamp_ms must be a number, got {type(timestamp_ms).__name__}")
    try:
        finite = math.isfinite(timestamp_ms)
    except OverflowError:  # an int beyond float64's range; do not print all its digits
        raise ValueError("timestamp_ms must be finite, got an int beyond float64") from None
    if not finite:
        raise ValueError(f"timestamp_ms must be finite, got {timestamp_ms}")
    return _TIMESTAMP.pack(kind, timestamp_ms)


def encode_ping(timestamp_ms: float) -> bytes:
    """A ping carrying the sender's clock reading in milliseconds."""
    return _encode_timestamp(MessageType.PING, timestamp_ms)


def encode_pong(timestamp_ms: float) -> bytes:
    """A pong echoing a ping's timestamp unchanged."""
    return _encode_timestamp(MessageType.PONG, timestamp_ms)


def encode_keepalive() -> bytes:
    return _KEEPALIVE_BYTES


# --- decoding ---------------------------------------------------------------------------------

#: What the per-type decoders read: the caller's bytes, or a byte view of any other buffer.
_View: TypeAlias = bytes | memoryview


def _decode_input(data: _View) -> InputPacket:
    if len(data) < INPUT_HEADER_SIZE:
        raise DecodeError(
            f"input packet truncated: {len(data)} bytes, header needs {INPUT_HEADER_SIZE}"
        )
    _, player_index, current_frame, count, reserved = _INPUT_HEADER.unpack_from(data)
    if reserved != 0:
        raise DecodeError(f"input packet reserved byte must be 0, got {reserved}")
    if count > MAX_INPUTS_PER_PACKET:
        raise DecodeError(f"input packet count {count} over the limit of {MAX_INPUTS_PER_PACKET}")
    inputs = _unpack_inputs(data, INPUT_HEADER_SIZE, count, "input packet")
    return InputPacket(player_index, current_frame, inputs)


def _decode_acked_input(data: _View) -> AckedInputPacket:
    if len(data) < ACKED_INPUT_HEADER_SIZE:
        raise DecodeError(
            f"acked input packet truncated: {len(data)} bytes, header needs "
            f"{ACKED_INPUT_HEADER_SIZE}"
        )
    _, player_index, current_frame, ack_frame, count = _ACKED_INPUT_HEADER.unpack_from(data)
    if count > MAX_ACKED_INPUTS_PER_PACKET:
        raise DecodeError(
            f"acked input packet count {count} over the limit of {MAX_ACKED_INPUTS_PER_PACKET}"
        )
    inputs = _unpack_inputs(data, ACKED_INPUT_HEADER_SIZE, count, "acked input packet")
    return AckedInputPacket(
        player_index, current_frame, None if ack_frame == NO_ACK else ack_frame, inputs
    )


def _unpack_inputs(
    data: _View, header_size: int, count: int, what: str
) -> tuple[tuple[int, int], ...]:
    """The ``count`` (frame, action) entries after the header: exactly, strictly increasing."""
    expected = header_size + INPUT_SIZE * count
    if len(data) < expected:
        raise DecodeError(f"{what} truncated: {len(data)} bytes, {count} inputs need {expected}")
    if len(data) > expected:
        raise DecodeError(f"{what} has {len(data) - expected} trailing bytes after {count} inputs")
    inputs = tuple(_INPUT_ENTRY.iter_unpack(data[header_size:]))
    previous = -1
    for frame, _action in inputs:
        if frame <= previous:
            raise DecodeError(f"input frames not strictly increasing: {frame} after {previous}")
        previous = frame
    return inputs


def _timestamp_decoder(
    name: str, make: Callable[[float], Ping | Pong]
) -> Callable[[_View], Ping | Pong]:
    def decode_timestamp(data: _View) -> Ping | Pong:
        if len(data) != _TIMESTAMP.size:
            raise DecodeError(f"{name} must be {_TIMESTAMP.size} bytes, got {len(data)}")
        (_, timestamp_ms) = _TIMESTAMP.unpack(data)
        if not math.isfinite(timestamp_ms):
            raise DecodeError(f"{name} timestamp is not finite: {timestamp_ms}")
        return make(timestamp_ms)

    return decode_timestamp


def _decode_keepalive(data: _View) -> Keepalive:
    if len(data) != 1:
        raise DecodeError(f"keepalive has {len(data) - 1} trailing bytes")
    return _KEEPALIVE


_DECODERS: Final[dict[int, Callable[[_View], Message]]] = {
    MessageType.INPUT: _decode_input,
    MessageType.PING: _timestamp_decoder("ping", Ping),
    MessageType.PONG: _timestamp_decoder("pong", Pong),
    MessageType.KEEPALIVE: _decode_keepalive,
    MessageType.ACKED_INPUT: _decode_acked_input,
}


def decode(data: Buffer) -> Message:
    """Parse one message. Raises :class:`DecodeError` (and only that) if ``data`` is not valid."""
    view: bytes | memoryview
    if type(data) is bytes:
        view = data  # the common case, from the browser's ArrayBuffer: no view needed
    else:
        try:
            view = memoryview(data).cast("B")
        except (TypeError, ValueError) as exc:
            what = "a non-contiguous memoryview" if isinstance(data, memoryview) else None
            raise DecodeError(
                f"expected bytes, bytearray or a contiguous memoryview, got "
                f"{what or type(data).__name__}"
            ) from exc
    if not view:
        raise DecodeError("empty message")
    decoder = _DECODERS.get(view[0])
    if decoder is None:
        raise DecodeError(f"unknown message type 0x{view[0]:02x}")
    return decoder(view)
