"""The payloads of the transport's own control messages (:class:`~.messages.ControlKind`), byte
for byte: what a 0x22 control message carries after its header (:func:`.codec.encode_control`).

These are not the deployed peers' version-1 packets 0x05, 0x06 and 0x07 (``encode_v1_*`` in
:mod:`.codec`), which say the same three things in layouts of their own and with no sequence
number. Every function here takes the frame first, wherever there is one; each decoder returns
its fields in its encoder's argument order and raises :class:`~.codec.DecodeError` (a
``ValueError``) for a payload of the wrong size. Everything is big-endian.

============  ===========================================================================
kind          payload
============  ===========================================================================
episode end   episode u32, the episode's last frame u32
episode       episode u32
ready
state hash    episode u32, frame u32, then the hash (1 to :data:`MAX_HASH_SIZE` bytes)
time sync     frame advantage i16 in hundredths of a frame (clamped), input delay u8
rollback end  episode u32, frame u32, flags u8 (bit 0: during a re-simulation), then the
              reason in UTF-8 (at most :data:`MAX_REASON_SIZE` bytes)
input delay   the input delay the sender needs both sides to use, u8
state chunk   episode u32, frame u32, chunk index u16, chunk count u16, the whole state's
              16-byte BLAKE2b, then up to :data:`MAX_CHUNK_DATA` bytes of the state
seat left     episode u32, player u8, frames held u32 (the player's last frame the sender
              holds the input of, plus one), then the actions (u8 each) of the last of those
              frames, up to :data:`MAX_SEAT_LEFT_ACTIONS`
seat hidden   episode u32, frame u32, flags u8 (bit 0: hidden, bit 1: pause; the others must
              be 0)
resume ask    empty
resume        empty (nothing to resume), or a chunk laid out as a state chunk's, its data part
              of the resume package (:mod:`p2p_transport.rollback.resume`)
============  ===========================================================================
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final

from p2p_transport._checks import check_int
from p2p_transport.errors import UsageError
from p2p_transport.wire.codec import MAX_CONTROL_PAYLOAD, MAX_FRAME, DecodeError
from p2p_transport.wire.signaling import MAX_PLAYERS

__all__ = [
    "MAX_CHUNK_DATA",
    "MAX_HASH_SIZE",
    "MAX_REASON_SIZE",
    "MAX_SEAT_LEFT_ACTIONS",
    "STATE_DIGEST_SIZE",
    "RollbackKind",
    "decode_episode_end_payload",
    "decode_episode_ready_payload",
    "decode_input_delay_payload",
    "decode_rollback_end_payload",
    "decode_seat_hidden_payload",
    "decode_seat_left_payload",
    "decode_state_chunk_payload",
    "decode_state_hash_payload",
    "decode_time_sync_payload",
    "encode_episode_end_payload",
    "encode_episode_ready_payload",
    "encode_input_delay_payload",
    "encode_rollback_end_payload",
    "encode_seat_hidden_payload",
    "encode_seat_left_payload",
    "encode_state_chunk_payload",
    "encode_state_hash_payload",
    "encode_time_sync_payload",
]


class RollbackKind(IntEnum):
    """The rollback layer's own control kinds, in the range :class:`~.messages.ControlKind`
    reserves for the transport's later messages (a peer without them acknowledges and drops
    them). Their payloads are the last five rows of the table above."""

    ROLLBACK_END = 0x05
    INPUT_DELAY = 0x06
    STATE_CHUNK = 0x07
    #: A player of a room of more than two left; the sender says how far it holds that player's
    #: inputs, and hands on the last of them (see :mod:`p2p_transport.rollback.seats`).
    SEAT_LEFT = 0x08
    #: The sender's page was hidden long enough that its seat plays its idle action from a frame
    #: on, or it asks everyone to pause at a frame; or it is back (see
    #: :mod:`p2p_transport.rollback.visibility`).
    SEAT_HIDDEN = 0x09
    #: The sender is a page that came back (a reload) and asks for the game under way, if any
    #: (see :mod:`p2p_transport.rollback.resume`).
    RESUME_ASK = 0x0A
    #: The answer: nothing to resume, or a chunk of the game under way.
    RESUME = 0x0B
    #: A JavaScript page that came back took the game handed over (payload 0x01) or not (0x00)
    #: (:mod:`p2p_transport.protocol.handoff`; the rollback layer's pages do not send it).
    RESUMED = 0x0C


#: A SHA-256 digest; a longer hash detects nothing a 32-byte one misses.
MAX_HASH_SIZE: Final = 32

_EPISODE_END: Final = struct.Struct(">II")  # episode, last frame
_EPISODE_READY: Final = struct.Struct(">I")  # episode
_STATE_HASH_HEAD: Final = struct.Struct(">II")  # episode, frame
_TIME_SYNC: Final = struct.Struct(">hB")  # advantage, input delay
_ROLLBACK_END_HEAD: Final = struct.Struct(">IIB")  # episode, frame, flags
_INPUT_DELAY: Final = struct.Struct(">B")
#: A rollback end's reason is for a person reading the record: an exception's type and the start
#: of its message; longer ones are cut (at a character boundary).
MAX_REASON_SIZE: Final = 200
_RESIMULATING_FLAG: Final = 0x01
#: A transferred state's digest: BLAKE2b-128, as the desync check hashes long checksums.
STATE_DIGEST_SIZE: Final = 16
_STATE_CHUNK_HEAD: Final = struct.Struct(">IIHH16s")  # episode, frame, index, count, digest
#: A state chunk's data: what the largest control payload leaves after its head.
MAX_CHUNK_DATA: Final = MAX_CONTROL_PAYLOAD - _STATE_CHUNK_HEAD.size
_SEAT_LEFT_HEAD: Final = struct.Struct(">IBI")  # episode, player, frames held
#: The actions a seat-left message hands on: what the largest control payload leaves after its
#: head.
MAX_SEAT_LEFT_ACTIONS: Final = MAX_CONTROL_PAYLOAD - _SEAT_LEFT_HEAD.size
_SEAT_HIDDEN: Final = struct.Struct(">IIB")  # episode, frame, flags
_HIDDEN_FLAG: Final = 0x01
_PAUSE_FLAG: Final = 0x02
#: The time sync's advantage is in hundredths of a frame, so a window's average keeps its
#: fraction.
_ADVANTAGE_SCALE: Final = 100
_I16_MAX: Final = 0x7FFF


def encode_episode_end_payload(frame: int, episode: int) -> bytes:
    """The EPISODE_END payload: ``episode`` ended with ``frame`` as its last frame."""
    check_int("frame", frame, MAX_FRAME)
    check_int("episode", episode, MAX_FRAME)
    return _EPISODE_END.pack(episode, frame)


def decode_episode_end_payload(payload: bytes) -> tuple[int, int]:
    """``(frame, episode)`` from an EPISODE_END payload."""
    if len(payload) != _EPISODE_END.size:
        raise DecodeError(f"an episode end payload is 8 bytes, got {len(payload)}")
    episode, frame = _EPISODE_END.unpack(payload)
    return frame, episode


def encode_episode_ready_payload(episode: int) -> bytes:
    """The EPISODE_READY payload: the sender is ready to start ``episode``."""
    check_int("episode", episode, MAX_FRAME)
    return _EPISODE_READY.pack(episode)


def decode_episode_ready_payload(payload: bytes) -> int:
    """The episode from an EPISODE_READY payload."""
    if len(payload) != _EPISODE_READY.size:
        raise DecodeError(f"an episode ready payload is 4 bytes, got {len(payload)}")
    (episode,) = _EPISODE_READY.unpack(payload)
    return int(episode)


def encode_state_hash_payload(frame: int, episode: int, hash_bytes: bytes) -> bytes:
    """The STATE_HASH payload: the sender's hash (1 to 32 bytes) of its state at ``frame`` of
    ``episode``."""
    check_int("frame", frame, MAX_FRAME)
    check_int("episode", episode, MAX_FRAME)
    if not isinstance(hash_bytes, bytes | bytearray) or not 1 <= len(hash_bytes) <= MAX_HASH_SIZE:
        raise UsageError(f"hash_bytes must be 1 to {MAX_HASH_SIZE} bytes, got {hash_bytes!r}")
    return _STATE_HASH_HEAD.pack(episode, frame) + bytes(hash_bytes)


def decode_state_hash_payload(payload: bytes) -> tuple[int, int, bytes]:
    """``(frame, episode, hash)`` from a STATE_HASH payload."""
    head = _STATE_HASH_HEAD.size
    if not head < len(payload) <= head + MAX_HASH_SIZE:
        raise DecodeError(f"a state hash payload is 9 to 40 bytes, got {len(payload)}")
    episode, frame = _STATE_HASH_HEAD.unpack_from(payload)
    return frame, episode, bytes(payload[head:])


def encode_time_sync_payload(advantage_frames: float, input_delay: int) -> bytes:
    """The TIME_SYNC payload: the sender's frame advantage (clamped to what an i16 of hundredths
    holds, never wrapped) and its input delay."""
    scaled = max(-_I16_MAX, min(_I16_MAX, round(advantage_frames * _ADVANTAGE_SCALE)))
    return _TIME_SYNC.pack(scaled, input_delay)


def decode_time_sync_payload(payload: bytes) -> tuple[float, int]:
    """``(advantage in frames, input delay)`` from a TIME_SYNC payload."""
    if len(payload) != _TIME_SYNC.size:
        raise DecodeError(f"a time sync payload is {_TIME_SYNC.size} bytes, got {len(payload)}")
    scaled, delay = _TIME_SYNC.unpack(payload)
    return scaled / _ADVANTAGE_SCALE, delay


def encode_rollback_end_payload(frame: int, episode: int, resimulating: bool, reason: str) -> bytes:
    """The ROLLBACK_END payload: the sender's game failed at ``frame`` of ``episode`` (in a
    re-simulation or not) and its rollback layer ended the session; ``reason`` is cut to
    :data:`MAX_REASON_SIZE` bytes of UTF-8."""
    check_int("frame", frame, MAX_FRAME)
    check_int("episode", episode, MAX_FRAME)
    text = reason.encode("utf-8")[:MAX_REASON_SIZE].decode("utf-8", "ignore").encode("utf-8")
    flags = _RESIMULATING_FLAG if resimulating else 0
    return _ROLLBACK_END_HEAD.pack(episode, frame, flags) + text


def decode_rollback_end_payload(payload: bytes) -> tuple[int, int, bool, str]:
    """``(frame, episode, resimulating, reason)`` from a ROLLBACK_END payload."""
    head = _ROLLBACK_END_HEAD.size
    if not head <= len(payload) <= head + MAX_REASON_SIZE:
        raise DecodeError(
            f"a rollback end payload is {head}..{head + MAX_REASON_SIZE} bytes, got {len(payload)}"
        )
    episode, frame, flags = _ROLLBACK_END_HEAD.unpack_from(payload)
    try:
        reason = bytes(payload[head:]).decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("a rollback end's reason is not UTF-8") from None
    return frame, episode, bool(flags & _RESIMULATING_FLAG), reason


def encode_input_delay_payload(input_delay: int) -> bytes:
    """The INPUT_DELAY payload: the input delay the sender needs both sides to use."""
    check_int("input_delay", input_delay, 0xFF)
    return _INPUT_DELAY.pack(input_delay)


def decode_input_delay_payload(payload: bytes) -> int:
    """The input delay from an INPUT_DELAY payload."""
    if len(payload) != _INPUT_DELAY.size:
        raise DecodeError(f"an input delay payload is 1 byte, got {len(payload)}")
    return int(payload[0])


def encode_state_chunk_payload(
    frame: int, episode: int, index: int, count: int, digest: bytes, data: bytes
) -> bytes:
    """The STATE_CHUNK payload: chunk ``index`` of ``count`` of the game state after ``frame``
    of ``episode``, whose bytes, joined, have the BLAKE2b-128 ``digest``."""
    check_int("frame", frame, MAX_FRAME)
    check_int("episode", episode, MAX_FRAME)
    check_int("count", count, 0xFFFF, minimum=1)
    check_int("index", index, count - 1)
    if len(digest) != STATE_DIGEST_SIZE:
        raise UsageError(f"digest must be {STATE_DIGEST_SIZE} bytes, got {len(digest)}")
    if len(data) > MAX_CHUNK_DATA:
        raise UsageError(f"a chunk holds at most {MAX_CHUNK_DATA} bytes, got {len(data)}")
    return _STATE_CHUNK_HEAD.pack(episode, frame, index, count, digest) + data


def decode_state_chunk_payload(payload: bytes) -> tuple[int, int, int, int, bytes, bytes]:
    """``(frame, episode, index, count, digest, data)`` from a STATE_CHUNK payload."""
    head = _STATE_CHUNK_HEAD.size
    if not head <= len(payload) <= head + MAX_CHUNK_DATA:
        raise DecodeError(
            f"a state chunk payload is {head}..{head + MAX_CHUNK_DATA} bytes, got {len(payload)}"
        )
    episode, frame, index, count, digest = _STATE_CHUNK_HEAD.unpack_from(payload)
    if not index < count:
        raise DecodeError(f"state chunk {index} of {count}")
    return frame, episode, index, count, digest, bytes(payload[head:])


def encode_seat_left_payload(last_frame: int, episode: int, player: int, actions: bytes) -> bytes:
    """The SEAT_LEFT payload: ``player`` left during ``episode``, and the sender holds that
    player's inputs of every frame up to ``last_frame`` (-1: none); ``actions`` are the inputs
    of the last ``len(actions)`` of those frames, oldest first."""
    check_int("last_frame", last_frame, MAX_FRAME - 1, minimum=-1)
    check_int("episode", episode, MAX_FRAME)
    check_int("player", player, MAX_PLAYERS - 1)
    if not isinstance(actions, bytes | bytearray):
        raise UsageError(f"actions must be bytes, got {type(actions).__name__}")
    if len(actions) > min(last_frame + 1, MAX_SEAT_LEFT_ACTIONS):
        raise UsageError(
            f"{len(actions)} actions for frames up to {last_frame} "
            f"(at most {MAX_SEAT_LEFT_ACTIONS} travel)"
        )
    return _SEAT_LEFT_HEAD.pack(episode, player, last_frame + 1) + bytes(actions)


def decode_seat_left_payload(payload: bytes) -> tuple[int, int, int, bytes]:
    """``(last_frame, episode, player, actions)`` from a SEAT_LEFT payload."""
    head = _SEAT_LEFT_HEAD.size
    if not head <= len(payload) <= head + MAX_SEAT_LEFT_ACTIONS:
        raise DecodeError(
            f"a seat left payload is {head}..{head + MAX_SEAT_LEFT_ACTIONS} bytes, "
            f"got {len(payload)}"
        )
    episode, player, held = _SEAT_LEFT_HEAD.unpack_from(payload)
    actions = bytes(payload[head:])
    if player >= MAX_PLAYERS:
        raise DecodeError(f"a seat left names player {player}, past the last ({MAX_PLAYERS - 1})")
    if len(actions) > held:
        raise DecodeError(f"a seat left hands on {len(actions)} actions of {held} frames held")
    return held - 1, episode, player, actions


def encode_seat_hidden_payload(frame: int, episode: int, hidden: bool, pause: bool) -> bytes:
    """The SEAT_HIDDEN payload. Without ``pause``: the sender's seat plays its idle action from
    ``frame`` of ``episode`` on (``hidden``), or its real actions again from there (not
    ``hidden``). With ``pause``: nobody may simulate ``frame`` of ``episode`` or later
    (``hidden``), or the pause at that frame is over (not ``hidden``)."""
    check_int("frame", frame, MAX_FRAME)
    check_int("episode", episode, MAX_FRAME)
    for name, flag in (("hidden", hidden), ("pause", pause)):
        if not isinstance(flag, bool):
            raise UsageError(f"{name} must be a bool, got {type(flag).__name__}")
    flags = (_HIDDEN_FLAG if hidden else 0) | (_PAUSE_FLAG if pause else 0)
    return _SEAT_HIDDEN.pack(episode, frame, flags)


def decode_seat_hidden_payload(payload: bytes) -> tuple[int, int, bool, bool]:
    """``(frame, episode, hidden, pause)`` from a SEAT_HIDDEN payload."""
    if len(payload) != _SEAT_HIDDEN.size:
        raise DecodeError(f"a seat hidden payload is {_SEAT_HIDDEN.size} bytes, got {len(payload)}")
    episode, frame, flags = _SEAT_HIDDEN.unpack(payload)
    if flags & ~(_HIDDEN_FLAG | _PAUSE_FLAG):
        raise DecodeError(f"a seat hidden payload's flags have unknown bits: {flags:#04x}")
    return frame, episode, bool(flags & _HIDDEN_FLAG), bool(flags & _PAUSE_FLAG)
