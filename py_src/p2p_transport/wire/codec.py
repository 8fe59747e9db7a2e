"""The binary wire format: how each message of :mod:`~p2p_transport.wire.messages` is written.

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
0x05   episode end  frame u32, episode u32
0x06   episode      episode u32, 8 ASCII characters of a state hash
       ready
0x07   state hash   frame u32, 8 raw bytes of a state hash
0x10   validation   float64 timestamp: sent when a channel opens (deployed peers' pre-game check)
       ping
0x11   validation   float64: the validation ping's timestamp echoed
       pong
0x12   input        start frame u32, end frame u32, inclusive
       request
0x13   input        player u16, count u16, then count x (frame u32, action u8), oldest first
       response
0x14   focus state  focused u8 (0 or 1), frame u32
0x20   acked input  player u16, current frame u32, ack frame u32, count u8,
                    then count x (frame u32, action u8), oldest first
0x21   held pong    float64: the ping's timestamp; hold u32: microseconds from the ping's
                    arrival to this pong's departure
0x22   control      sequence u32, kind u8, payload length u16, then the payload
0x23   control ack  cumulative ack u32 (0xFFFFFFFF: none yet)
0x30   input        player u16, count u16, then count x (frame u32, action u8), oldest first
       record       (the input response's layout): for the relay server, never a peer
=====  ===========  =====================================================================

0x20 is not version 1: it carries, besides the inputs, the sender's acknowledgement of the peer's
inputs (the highest frame up to which it holds every one; 0xFFFFFFFF when it holds none yet), so a
peer can stop resending what arrived. A session sends it only to a peer that has shown it
understands it (:mod:`p2p_transport.protocol.negotiation`).

0x21 is not version 1 either: it answers a ping on the ping channel (:mod:`p2p_transport.session`)
with the time the responder held the ping, so a stalled responder does not inflate the RTT.

0x22 and 0x23 are not version 1 either: :mod:`p2p_transport.protocol.control` sends each
control message (episode end, episode ready, state hash, or one of the game's own kinds) until the
peer's control ack, the highest sequence up to which it holds every control message, covers it.
The transport's own control payloads are laid out in :mod:`.control_payloads`; the functions
here that write 0x05, 0x06 and 0x07 are named ``encode_v1_*`` so that nothing confuses the two.

0x30 goes to the reference relay server only, which records its inputs and forwards it to no one
(:mod:`p2p_transport.protocol.input_upload`): a session sends it the inputs the peer confirmed
while they do not travel on the relay. It reuses the input response's layout, which holds just
what the server keeps (a player and a run of inputs) and up to 256 inputs (a u16 count; the acked
packet's u8 count, its current frame and ack mean nothing to the server). :func:`decode` does not
read it (a peer that got one would count an unknown type); the server reads it with
:func:`decode_input_record`.

Decoding is table-driven: each message type registers one parser, so later message types (acks,
reliable control messages, episode and state-hash messages) are a new table entry, not a new branch.
:func:`decode` raises :class:`DecodeError` and nothing else, whatever bytes it is given.

Input packets are most of what arrives, so a receiver can read them into their fields without a
message object (:func:`decode_input_fields`, :func:`decode_acked_input_fields`; :func:`decode`
wraps the same readers), and a sender can write one as a head and the entries it keeps
(:func:`pack_input_head`, :func:`pack_acked_input_head`, :func:`pack_input_entry`).
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, Final, TypeAlias

from p2p_transport._checks import check_finite, check_int
from p2p_transport.errors import RemoteError, UsageError
from p2p_transport.wire.messages import (
    AckedInputPacket,
    ControlAck,
    ControlMessage,
    EpisodeEnd,
    EpisodeReady,
    FocusState,
    HeldPong,
    InputPacket,
    InputRecord,
    InputRequest,
    InputResponse,
    Keepalive,
    Message,
    MessageType,
    Ping,
    Pong,
    StateHash,
    ValidationPing,
    ValidationPong,
)

__all__ = [
    "ACKED_INPUT_HEADER_SIZE",
    "ACKED_INPUT_TYPE",
    "CONTROL_ACK_SIZE",
    "CONTROL_HEADER_SIZE",
    "INPUT_HEADER_SIZE",
    "INPUT_RECORD_TYPE",
    "INPUT_RESPONSE_HEADER_SIZE",
    "INPUT_SIZE",
    "INPUT_TYPE",
    "MAX_ACKED_INPUTS_PER_PACKET",
    "MAX_ACTION",
    "MAX_CONTROL_PAYLOAD",
    "MAX_CONTROL_SEQUENCE",
    "MAX_FRAME",
    "MAX_INPUTS_PER_PACKET",
    "MAX_INPUTS_PER_RECORD",
    "MAX_INPUTS_PER_RESPONSE",
    "MAX_PACKET_BYTES",
    "MAX_PLAYER_INDEX",
    "NO_ACK",
    "V1_HASH_SIZE",
    "Buffer",
    "ByteView",
    "DecodeError",
    "Inputs",
    "byte_view",
    "decode",
    "decode_acked_input_fields",
    "decode_input_fields",
    "decode_input_record",
    "encode_acked_input_packet",
    "encode_control",
    "encode_control_ack",
    "encode_focus_state",
    "encode_held_pong",
    "encode_input_packet",
    "encode_input_record",
    "encode_input_request",
    "encode_input_response",
    "encode_keepalive",
    "encode_ping",
    "encode_pong",
    "encode_v1_episode_end",
    "encode_v1_episode_ready",
    "encode_v1_state_hash",
    "encode_validation_ping",
    "encode_validation_pong",
    "pack_acked_input_head",
    "pack_input_entry",
    "pack_input_head",
]


class DecodeError(RemoteError, ValueError):
    """The bytes are not a valid message. The only exception :func:`decode` raises.

    A :class:`~p2p_transport.errors.RemoteError`: what is decoded is what a peer or the relay
    sent, and no call of the receiving side can make it valid. Also a ``ValueError``, as it was.
    """


Buffer: TypeAlias = bytes | bytearray | memoryview

_INPUT_HEADER: Final = struct.Struct(">BHIBB")
_INPUT_ENTRY: Final = struct.Struct(">IB")
_ACKED_INPUT_HEADER: Final = struct.Struct(">BHIIB")
_TIMESTAMP: Final = struct.Struct(">Bd")
_HELD_PONG: Final = struct.Struct(">BdI")
_CONTROL_HEADER: Final = struct.Struct(">BIBH")
_CONTROL_ACK: Final = struct.Struct(">BI")
_INPUT_REQUEST: Final = struct.Struct(">BII")
_INPUT_RESPONSE_HEADER: Final = struct.Struct(">BHH")
_FOCUS_STATE: Final = struct.Struct(">BBI")
_EPISODE_END: Final = struct.Struct(">BII")
_EPISODE_READY: Final = struct.Struct(">BI8s")
_STATE_HASH: Final = struct.Struct(">BI8s")
#: The input packets' type bytes as plain ints: they are read and written for every packet, and
#: comparing or packing an int skips the enum's own methods (about 70 ns a time).
INPUT_TYPE: Final = int(MessageType.INPUT)
ACKED_INPUT_TYPE: Final = int(MessageType.ACKED_INPUT)
#: The server checks every relayed packet's first byte against it.
INPUT_RECORD_TYPE: Final = int(MessageType.INPUT_RECORD)

INPUT_HEADER_SIZE: Final = _INPUT_HEADER.size  # 9 bytes
INPUT_SIZE: Final = _INPUT_ENTRY.size  # 5 bytes per (frame, action)
MAX_PLAYER_INDEX: Final = 0xFFFF
MAX_FRAME: Final = 0xFFFF_FFFF
_HOLD: Final = struct.Struct(">I")
#: The hold time is a u32 of microseconds: up to about 71 minutes.
MAX_HOLD_MS: Final = 0xFFFF_FFFF / 1000
#: Where a held pong's hold field starts (byte 9): whoever sends the pong can rewrite the field at
#: the moment it leaves, so the hold covers everything up to the send.
HELD_PONG_HOLD_OFFSET: Final = _HELD_PONG.size - _HOLD.size
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
CONTROL_HEADER_SIZE: Final = _CONTROL_HEADER.size  # 8 bytes
CONTROL_ACK_SIZE: Final = _CONTROL_ACK.size  # 5 bytes
#: A control message is resent whole until acknowledged, so it must fit in one DataChannel packet:
#: browsers send SCTP packets of about 1200 bytes (IPv6's minimum MTU, 1280, less the IP, UDP, DTLS
#: and SCTP headers), and a message split across two is lost when either piece is. 1024 bytes of
#: payload (1032 on the wire) fits with room to spare, and holds an episode summary or a few dozen
#: state hashes; bulk data belongs on a reliable channel, not here.
MAX_CONTROL_PAYLOAD: Final = 1024
#: 0xFFFFFFFF is the control ack's "none yet", so it is never a sequence number: a session would
#: reach it after 4 billion control messages, which no game sends.
MAX_CONTROL_SEQUENCE: Final = NO_ACK - 1
#: The deployed peers' episode-ready hash and state hash are 8 characters and 8 bytes.
V1_HASH_SIZE: Final = 8
INPUT_RESPONSE_HEADER_SIZE: Final = _INPUT_RESPONSE_HEADER.size  # 5 bytes
#: An input response this side sends or takes holds at most 256 inputs (about 4 s at 60 Hz,
#: 1285 bytes): more than any sender keeps (the acked sender's 64), and a hostile count (the field
#: is a u16) cannot cost more than a small allocation.
MAX_INPUTS_PER_RESPONSE: Final = 256
#: An input record holds as many (its layout is the response's): 1285 bytes, about 4 s at 60 Hz,
#: so one a second carries a game of up to 256 Hz and drains a backlog several times faster than
#: a 60 Hz game adds to it.
MAX_INPUTS_PER_RECORD: Final = MAX_INPUTS_PER_RESPONSE
#: The largest packet of any type: an input response of 256 inputs, 1285 bytes (a control
#: message is at most 1032, an acked input packet 332, a version-1 one 84). The relay's size
#: limit is checked against it (:data:`p2p_transport.wire.signaling.MAX_RELAY_BYTES`).
MAX_PACKET_BYTES: Final = max(
    INPUT_RESPONSE_HEADER_SIZE + INPUT_SIZE * MAX_INPUTS_PER_RESPONSE,
    INPUT_RESPONSE_HEADER_SIZE + INPUT_SIZE * MAX_INPUTS_PER_RECORD,
    CONTROL_HEADER_SIZE + MAX_CONTROL_PAYLOAD,
    ACKED_INPUT_HEADER_SIZE + INPUT_SIZE * MAX_ACKED_INPUTS_PER_PACKET,
    INPUT_HEADER_SIZE + INPUT_SIZE * MAX_INPUTS_PER_PACKET,
    _HELD_PONG.size,
)


_KEEPALIVE: Final = Keepalive()
_KEEPALIVE_BYTES: Final = bytes([MessageType.KEEPALIVE])


# --- encoding ---------------------------------------------------------------------------------


def encode_input_packet(
    player_index: int, current_frame: int, inputs: Sequence[tuple[int, int]]
) -> bytes:
    """Encode ``inputs`` (``(frame, action)`` pairs, oldest first) as a version-1 input packet.

    Frames must be strictly increasing. ``current_frame`` is the sender's target frame; it is
    carried as given, with no relation to the input frames enforced, because deployed peers differ
    in how they fill it.
    """
    check_int("player_index", player_index, MAX_PLAYER_INDEX)
    check_int("current_frame", current_frame, MAX_FRAME)
    count = len(inputs)
    if count > MAX_INPUTS_PER_PACKET:
        raise UsageError(f"at most {MAX_INPUTS_PER_PACKET} inputs per packet, got {count}")
    _check_inputs(inputs)
    return pack_input_head(player_index, current_frame, count) + _pack_entries(inputs)


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
    check_int("player_index", player_index, MAX_PLAYER_INDEX)
    check_int("current_frame", current_frame, MAX_FRAME)
    if ack_frame is not None:
        check_int("ack_frame", ack_frame, NO_ACK - 1)
    count = len(inputs)
    if count > MAX_ACKED_INPUTS_PER_PACKET:
        raise UsageError(
            f"at most {MAX_ACKED_INPUTS_PER_PACKET} inputs per acked packet, got {count}"
        )
    _check_inputs(inputs)
    return pack_acked_input_head(player_index, current_frame, ack_frame, count) + _pack_entries(
        inputs
    )


#: One ``(frame, action)`` entry of an input-carrying message (5 bytes), unchecked. A sender keeps
#: its recorded inputs in this form as well, so each packet is a head and the newest entries
#: joined, not every input packed again
#: (:class:`~p2p_transport.protocol.recorded_inputs.RecordedInputs`).
pack_input_entry: Final[Callable[[int, int], bytes]] = _INPUT_ENTRY.pack


def pack_input_head(player_index: int, current_frame: int, count: int) -> bytes:
    """The bytes before a version-1 input packet's ``count`` entries, unchecked: for a sender that
    checked each input when it recorded it (one check at the edge, not one per packet)."""
    return _INPUT_HEADER.pack(INPUT_TYPE, player_index, current_frame, count, 0)


def pack_acked_input_head(
    player_index: int, current_frame: int, ack_frame: int | None, count: int
) -> bytes:
    """The bytes before an acked input packet's ``count`` entries, unchecked (see
    :func:`pack_input_head`)."""
    ack = NO_ACK if ack_frame is None else ack_frame
    return _ACKED_INPUT_HEADER.pack(ACKED_INPUT_TYPE, player_index, current_frame, ack, count)


def _check_inputs(inputs: Sequence[tuple[int, int]]) -> None:
    previous = -1
    for frame, action in inputs:
        check_int("frame", frame, MAX_FRAME)
        check_int("action", action, MAX_ACTION)
        if frame <= previous:
            raise UsageError(
                f"input frames must be strictly increasing, got {frame} after {previous}"
            )
        previous = frame


def _pack_entries(inputs: Sequence[tuple[int, int]]) -> bytes:
    return _entries_layout(len(inputs)).pack(*chain.from_iterable(inputs))


@functools.cache
def _entries_layout(count: int) -> struct.Struct:
    """``count`` entries as one layout, compiled once per count: one ``pack`` call per message
    instead of one per input."""
    return struct.Struct(">" + _INPUT_ENTRY.format.lstrip(">") * count)


def _encode_timestamp(kind: MessageType, timestamp_ms: float) -> bytes:
    check_finite("timestamp_ms", timestamp_ms)
    return _TIMESTAMP.pack(kind, timestamp_ms)


def encode_ping(timestamp_ms: float) -> bytes:
    """A ping carrying the sender's clock reading in milliseconds."""
    return _encode_timestamp(MessageType.PING, timestamp_ms)


def encode_pong(timestamp_ms: float) -> bytes:
    """A pong echoing a ping's timestamp unchanged."""
    return _encode_timestamp(MessageType.PONG, timestamp_ms)


def encode_validation_ping(timestamp_ms: float) -> bytes:
    """The validation ping a channel's opening side sends (deployed peers' 0x10)."""
    return _encode_timestamp(MessageType.VALIDATION_PING, timestamp_ms)


def encode_validation_pong(timestamp_ms: float) -> bytes:
    """The answer to a validation ping, echoing its timestamp (0x11)."""
    return _encode_timestamp(MessageType.VALIDATION_PONG, timestamp_ms)


def encode_input_request(start_frame: int, end_frame: int) -> bytes:
    """Ask the peer for its inputs of ``start_frame`` to ``end_frame`` inclusive (0x12)."""
    check_int("start_frame", start_frame, MAX_FRAME)
    check_int("end_frame", end_frame, MAX_FRAME)
    if end_frame < start_frame:
        raise UsageError(f"end_frame {end_frame} is before start_frame {start_frame}")
    return _INPUT_REQUEST.pack(MessageType.INPUT_REQUEST, start_frame, end_frame)


def encode_input_response(player_index: int, inputs: Sequence[tuple[int, int]]) -> bytes:
    """This side's ``inputs`` (strictly increasing frames) answering an input request (0x13)."""
    return _encode_player_inputs(
        MessageType.INPUT_RESPONSE, player_index, inputs, MAX_INPUTS_PER_RESPONSE, "response"
    )


def encode_input_record(player_index: int, inputs: Sequence[tuple[int, int]]) -> bytes:
    """This side's confirmed ``inputs`` (strictly increasing frames) for the relay server's
    record (0x30)."""
    return _encode_player_inputs(
        MessageType.INPUT_RECORD, player_index, inputs, MAX_INPUTS_PER_RECORD, "input record"
    )


def _encode_player_inputs(
    kind: MessageType, player_index: int, inputs: Sequence[tuple[int, int]], limit: int, what: str
) -> bytes:
    """The input response's layout, under type byte ``kind``."""
    check_int("player_index", player_index, MAX_PLAYER_INDEX)
    count = len(inputs)
    if count > limit:
        raise UsageError(f"at most {limit} inputs per {what}, got {count}")
    _check_inputs(inputs)
    return _INPUT_RESPONSE_HEADER.pack(kind, player_index, count) + _pack_entries(inputs)


def encode_v1_episode_end(frame: int, episode: int) -> bytes:
    """Deployed peers' episode end (0x05): frame u32, episode u32."""
    check_int("frame", frame, MAX_FRAME)
    check_int("episode", episode, MAX_FRAME)
    return _EPISODE_END.pack(MessageType.EPISODE_END, frame, episode)


def encode_v1_episode_ready(episode: int, state_hash: str) -> bytes:
    """Deployed peers' episode ready (0x06): episode u32, 8 ASCII characters of a state hash."""
    check_int("episode", episode, MAX_FRAME)
    if (
        not isinstance(state_hash, str)
        or len(state_hash) != V1_HASH_SIZE
        or not state_hash.isascii()
    ):
        raise UsageError(f"state_hash must be {V1_HASH_SIZE} ASCII characters, got {state_hash!r}")
    return _EPISODE_READY.pack(MessageType.EPISODE_READY, episode, state_hash.encode("ascii"))


def encode_v1_state_hash(frame: int, digest: Buffer) -> bytes:
    """Deployed peers' state hash (0x07): frame u32, 8 raw bytes."""
    check_int("frame", frame, MAX_FRAME)
    if len(digest) != V1_HASH_SIZE:
        raise UsageError(f"digest must be {V1_HASH_SIZE} bytes, got {len(digest)}")
    return _STATE_HASH.pack(MessageType.STATE_HASH, frame, bytes(digest))


def encode_focus_state(focused: bool, frame: int) -> bytes:
    """Whether this side's tab is in the foreground, as of ``frame`` (0x14)."""
    if not isinstance(focused, bool):
        raise UsageError(f"focused must be a bool, got {type(focused).__name__}")
    check_int("frame", frame, MAX_FRAME)
    return _FOCUS_STATE.pack(MessageType.FOCUS_STATE, focused, frame)


def encode_held_pong(timestamp_ms: float, hold_ms: float) -> bytes:
    """A pong echoing a ping's timestamp, with the time the responder held the ping (whole
    microseconds on the wire, at most :data:`MAX_HOLD_MS`)."""
    packet = _encode_timestamp(MessageType.HELD_PONG, timestamp_ms)
    check_finite("hold_ms", hold_ms)
    if not 0 <= hold_ms <= MAX_HOLD_MS:
        raise UsageError(f"hold_ms must be in 0..{MAX_HOLD_MS}, got {hold_ms}")
    return packet + _HOLD.pack(round(hold_ms * 1000))


def encode_keepalive() -> bytes:
    return _KEEPALIVE_BYTES


def encode_control(sequence: int, kind: int, payload: Buffer) -> bytes:
    """A control message: ``payload`` is at most :data:`MAX_CONTROL_PAYLOAD` bytes."""
    check_int("sequence", sequence, MAX_CONTROL_SEQUENCE)
    check_int("kind", kind, 0xFF)
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise UsageError(f"payload must be bytes, got {type(payload).__name__}")
    body = bytes(payload)
    if len(body) > MAX_CONTROL_PAYLOAD:
        raise UsageError(f"payload is at most {MAX_CONTROL_PAYLOAD} bytes, got {len(body)}")
    return _CONTROL_HEADER.pack(MessageType.CONTROL, sequence, kind, len(body)) + body


def encode_control_ack(ack: int | None) -> bytes:
    """A control ack: every control sequence up to ``ack`` received (``None``: none yet)."""
    if ack is not None:
        check_int("ack", ack, MAX_CONTROL_SEQUENCE)
    return _CONTROL_ACK.pack(MessageType.CONTROL_ACK, NO_ACK if ack is None else ack)


# --- decoding ---------------------------------------------------------------------------------

#: What the per-type decoders read: the caller's bytes, or a byte view of any other buffer.
ByteView: TypeAlias = bytes | memoryview


#: ``(frame, action)`` pairs, oldest first, as every input-carrying message holds them.
Inputs: TypeAlias = tuple[tuple[int, int], ...]


def decode_input_fields(data: ByteView) -> tuple[int, int, Inputs]:
    """A version-1 input packet's player index, current frame and inputs: what :func:`decode`
    makes an :class:`InputPacket` of, for a receiver that handles every packet of the game and
    needs no object per packet (building a frozen dataclass costs more than reading the bytes).
    ``data`` is a :func:`byte_view`; raises :class:`DecodeError` as :func:`decode` does."""
    if len(data) < INPUT_HEADER_SIZE:
        raise DecodeError(
            f"input packet truncated: {len(data)} bytes, header needs {INPUT_HEADER_SIZE}"
        )
    kind, player_index, current_frame, count, reserved = _INPUT_HEADER.unpack_from(data)
    if kind != INPUT_TYPE:
        raise DecodeError(f"not an input packet: type 0x{kind:02x}")
    if reserved != 0:
        raise DecodeError(f"input packet reserved byte must be 0, got {reserved}")
    if count > MAX_INPUTS_PER_PACKET:
        raise DecodeError(f"input packet count {count} over the limit of {MAX_INPUTS_PER_PACKET}")
    return (
        player_index,
        current_frame,
        _unpack_inputs(data, INPUT_HEADER_SIZE, count, "input packet"),
    )


def decode_acked_input_fields(data: ByteView) -> tuple[int, int, int | None, Inputs]:
    """An acked input packet's player index, current frame, ack frame (``None``: none yet) and
    inputs, as :func:`decode_input_fields` reads a version-1 one."""
    if len(data) < ACKED_INPUT_HEADER_SIZE:
        raise DecodeError(
            f"acked input packet truncated: {len(data)} bytes, header needs "
            f"{ACKED_INPUT_HEADER_SIZE}"
        )
    kind, player_index, current_frame, ack_frame, count = _ACKED_INPUT_HEADER.unpack_from(data)
    if kind != ACKED_INPUT_TYPE:
        raise DecodeError(f"not an acked input packet: type 0x{kind:02x}")
    if count > MAX_ACKED_INPUTS_PER_PACKET:
        raise DecodeError(
            f"acked input packet count {count} over the limit of {MAX_ACKED_INPUTS_PER_PACKET}"
        )
    inputs = _unpack_inputs(data, ACKED_INPUT_HEADER_SIZE, count, "acked input packet")
    return player_index, current_frame, None if ack_frame == NO_ACK else ack_frame, inputs


def _decode_input(data: ByteView) -> InputPacket:
    return InputPacket(*decode_input_fields(data))


def _decode_acked_input(data: ByteView) -> AckedInputPacket:
    return AckedInputPacket(*decode_acked_input_fields(data))


def _unpack_inputs(data: ByteView, header_size: int, count: int, what: str) -> Inputs:
    """The ``count`` (frame, action) entries after the header: exactly, strictly increasing."""
    expected = header_size + INPUT_SIZE * count
    if len(data) != expected:
        if len(data) < expected:
            raise DecodeError(
                f"{what} truncated: {len(data)} bytes, {count} inputs need {expected}"
            )
        raise DecodeError(f"{what} has {len(data) - expected} trailing bytes after {count} inputs")
    inputs = tuple(_INPUT_ENTRY.iter_unpack(data[header_size:]))
    previous = -1
    for frame, _action in inputs:
        if frame <= previous:
            raise DecodeError(f"input frames not strictly increasing: {frame} after {previous}")
        previous = frame
    return inputs


def _unpack_exact(data: ByteView, layout: struct.Struct, name: str) -> tuple[Any, ...]:
    """A fixed-size message's fields (the type byte first), or a DecodeError naming ``name``."""
    if len(data) != layout.size:
        raise DecodeError(f"{name} must be {layout.size} bytes, got {len(data)}")
    return layout.unpack(data)


def _decode_input_request(data: ByteView) -> InputRequest:
    _, start_frame, end_frame = _unpack_exact(data, _INPUT_REQUEST, "input request")
    if end_frame < start_frame:
        raise DecodeError(f"input request ends at {end_frame}, before its start {start_frame}")
    return InputRequest(start_frame, end_frame)


def _decode_input_response(data: ByteView) -> InputResponse:
    return InputResponse(*_decode_player_inputs(data, MAX_INPUTS_PER_RESPONSE, "input response"))


def decode_input_record(data: Buffer) -> InputRecord:
    """Parse an input record (0x30), which :func:`decode` does not read: what the relay server
    does with it. Raises :class:`DecodeError` (and only that) if ``data`` is not one."""
    view = byte_view(data)
    if view[:1] != bytes((INPUT_RECORD_TYPE,)):
        raise DecodeError(f"not an input record: type {f'0x{view[0]:02x}' if view else 'missing'}")
    return InputRecord(*_decode_player_inputs(view, MAX_INPUTS_PER_RECORD, "input record"))


def _decode_player_inputs(data: ByteView, limit: int, what: str) -> tuple[int, Inputs]:
    """The player and inputs of the input response's layout."""
    if len(data) < INPUT_RESPONSE_HEADER_SIZE:
        raise DecodeError(
            f"{what} truncated: {len(data)} bytes, header needs {INPUT_RESPONSE_HEADER_SIZE}"
        )
    _, player_index, count = _INPUT_RESPONSE_HEADER.unpack_from(data)
    if count > limit:
        raise DecodeError(f"{what} count {count} over the limit of {limit}")
    return player_index, _unpack_inputs(data, INPUT_RESPONSE_HEADER_SIZE, count, what)


def _decode_episode_end(data: ByteView) -> EpisodeEnd:
    _, frame, episode = _unpack_exact(data, _EPISODE_END, "episode end")
    return EpisodeEnd(frame, episode)


def _decode_episode_ready(data: ByteView) -> EpisodeReady:
    _, episode, raw_hash = _unpack_exact(data, _EPISODE_READY, "episode ready")
    if not raw_hash.isascii():
        raise DecodeError(f"episode ready's state hash is not ASCII: {raw_hash!r}")
    return EpisodeReady(episode, raw_hash.decode("ascii"))


def _decode_state_hash(data: ByteView) -> StateHash:
    _, frame, digest = _unpack_exact(data, _STATE_HASH, "state hash")
    return StateHash(frame, digest)


def _decode_focus_state(data: ByteView) -> FocusState:
    _, focused, frame = _unpack_exact(data, _FOCUS_STATE, "focus state")
    if focused > 1:
        raise DecodeError(f"focus state's focused byte must be 0 or 1, got {focused}")
    return FocusState(bool(focused), frame)


_TimestampMessage: TypeAlias = Ping | Pong | ValidationPing | ValidationPong


def _timestamp_decoder(
    name: str, make: Callable[[float], _TimestampMessage]
) -> Callable[[ByteView], _TimestampMessage]:
    def decode_timestamp(data: ByteView) -> _TimestampMessage:
        _, timestamp_ms = _unpack_exact(data, _TIMESTAMP, name)
        if not math.isfinite(timestamp_ms):
            raise DecodeError(f"{name} timestamp is not finite: {timestamp_ms}")
        return make(timestamp_ms)

    return decode_timestamp


def _decode_held_pong(data: ByteView) -> HeldPong:
    _, timestamp_ms, hold_us = _unpack_exact(data, _HELD_PONG, "held pong")
    if not math.isfinite(timestamp_ms):
        raise DecodeError(f"held pong timestamp is not finite: {timestamp_ms}")
    return HeldPong(timestamp_ms, hold_us / 1000)


def _decode_keepalive(data: ByteView) -> Keepalive:
    if len(data) != 1:
        raise DecodeError(f"keepalive has {len(data) - 1} trailing bytes")
    return _KEEPALIVE


def _decode_control(data: ByteView) -> ControlMessage:
    if len(data) < CONTROL_HEADER_SIZE:
        raise DecodeError(
            f"control message truncated: {len(data)} bytes, header needs {CONTROL_HEADER_SIZE}"
        )
    _, sequence, kind, length = _CONTROL_HEADER.unpack_from(data)
    if sequence > MAX_CONTROL_SEQUENCE:
        raise DecodeError(f"control sequence 0x{sequence:08x} is reserved")
    if length > MAX_CONTROL_PAYLOAD:
        raise DecodeError(
            f"control payload length {length} over the limit of {MAX_CONTROL_PAYLOAD}"
        )
    expected = CONTROL_HEADER_SIZE + length
    if len(data) < expected:
        raise DecodeError(
            f"control message truncated: {len(data)} bytes, "
            f"a {length}-byte payload needs {expected}"
        )
    if len(data) > expected:
        raise DecodeError(f"control message has {len(data) - expected} trailing bytes")
    return ControlMessage(sequence, kind, bytes(data[CONTROL_HEADER_SIZE:]))


def _decode_control_ack(data: ByteView) -> ControlAck:
    _, ack = _unpack_exact(data, _CONTROL_ACK, "control ack")
    return ControlAck(None if ack == NO_ACK else ack)


_DECODERS: Final[dict[int, Callable[[ByteView], Message]]] = {
    MessageType.INPUT: _decode_input,
    MessageType.PING: _timestamp_decoder("ping", Ping),
    MessageType.PONG: _timestamp_decoder("pong", Pong),
    MessageType.VALIDATION_PING: _timestamp_decoder("validation ping", ValidationPing),
    MessageType.VALIDATION_PONG: _timestamp_decoder("validation pong", ValidationPong),
    MessageType.EPISODE_END: _decode_episode_end,
    MessageType.EPISODE_READY: _decode_episode_ready,
    MessageType.STATE_HASH: _decode_state_hash,
    MessageType.INPUT_REQUEST: _decode_input_request,
    MessageType.INPUT_RESPONSE: _decode_input_response,
    MessageType.FOCUS_STATE: _decode_focus_state,
    MessageType.HELD_PONG: _decode_held_pong,
    MessageType.KEEPALIVE: _decode_keepalive,
    MessageType.ACKED_INPUT: _decode_acked_input,
    MessageType.CONTROL: _decode_control,
    MessageType.CONTROL_ACK: _decode_control_ack,
}


def byte_view(data: Buffer) -> ByteView:
    """``data`` as the decoders read it: bytes as they are (the common case, from the browser's
    ArrayBuffer), any other buffer as a byte view. Raises :class:`DecodeError` for anything
    else."""
    if type(data) is bytes:
        return data
    try:
        return memoryview(data).cast("B")
    except (TypeError, ValueError) as exc:
        what = "a non-contiguous memoryview" if isinstance(data, memoryview) else None
        raise DecodeError(
            f"expected bytes, bytearray or a contiguous memoryview, got "
            f"{what or type(data).__name__}"
        ) from exc


def decode(data: Buffer) -> Message:
    """Parse one message. Raises :class:`DecodeError` (and only that) if ``data`` is not valid."""
    view = byte_view(data)
    if not view:
        raise DecodeError("empty message")
    decoder = _DECODERS.get(view[0])
    if decoder is None:
        raise DecodeError(f"unknown message type 0x{view[0]:02x}")
    return decoder(view)
