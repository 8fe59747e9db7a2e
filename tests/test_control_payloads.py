"""The transport's control payloads, byte for byte: episode end, episode ready, state hash, time
sync, seat left and seat hidden, each encoded, decoded and refused when malformed."""

from __future__ import annotations

import pytest

from p2p_transport.wire.control_payloads import (
    MAX_SEAT_LEFT_ACTIONS,
    RollbackKind,
    decode_episode_end_payload,
    decode_episode_ready_payload,
    decode_seat_hidden_payload,
    decode_seat_left_payload,
    decode_state_hash_payload,
    decode_time_sync_payload,
    encode_episode_end_payload,
    encode_episode_ready_payload,
    encode_seat_hidden_payload,
    encode_seat_left_payload,
    encode_state_hash_payload,
    encode_time_sync_payload,
)


def test_episode_payloads() -> None:
    assert encode_episode_end_payload(0x01020304, 3) == bytes.fromhex("00000003 01020304")
    assert decode_episode_end_payload(encode_episode_end_payload(600, 3)) == (600, 3)
    assert encode_episode_ready_payload(7) == bytes.fromhex("00000007")
    assert decode_episode_ready_payload(encode_episode_ready_payload(7)) == 7
    with pytest.raises(ValueError, match="8 bytes, got 4"):
        decode_episode_end_payload(b"\x00" * 4)
    with pytest.raises(ValueError, match="4 bytes, got 5"):
        decode_episode_ready_payload(b"\x00" * 5)
    with pytest.raises(ValueError, match=r"episode must be in 0\.\.4294967295, got -1"):
        encode_episode_ready_payload(-1)


def test_state_hash_payload_layout_and_validation() -> None:
    assert encode_state_hash_payload(2, 1, b"\xab") == bytes.fromhex("00000001 00000002 ab")
    assert decode_state_hash_payload(encode_state_hash_payload(4, 3, bytes(32))) == (
        4,
        3,
        bytes(32),
    )
    with pytest.raises(ValueError, match="hash_bytes must be 1 to 32 bytes"):
        encode_state_hash_payload(0, 0, b"")
    with pytest.raises(ValueError, match="hash_bytes must be 1 to 32 bytes"):
        encode_state_hash_payload(0, 0, bytes(33))
    with pytest.raises(ValueError, match=r"frame must be in 0\.\.4294967295, got -1"):
        encode_state_hash_payload(-1, 0, b"h")


def test_time_sync_payload_bytes() -> None:
    assert encode_time_sync_payload(-1.5, 2) == b"\xff\x6a\x02"
    assert decode_time_sync_payload(b"\xff\x6a\x02") == (-1.5, 2)
    assert encode_time_sync_payload(1e9, 0) == b"\x7f\xff\x00"  # clamped, not wrapped
    with pytest.raises(ValueError, match="3 bytes"):
        decode_time_sync_payload(b"\x00\x00")


def test_seat_left_payload_bytes() -> None:
    assert RollbackKind.SEAT_LEFT == 0x08
    # Episode 2, player 3, frames 0..301 held (302 of them), the last two handed on.
    payload = encode_seat_left_payload(301, 2, 3, b"\x01\x04")
    assert payload == bytes.fromhex("00000002 03 0000012e 0104")
    assert decode_seat_left_payload(payload) == (301, 2, 3, b"\x01\x04")
    # Nothing held yet: -1 travels as 0 frames held, with no actions.
    assert encode_seat_left_payload(-1, 0, 7, b"") == bytes.fromhex("00000000 07 00000000")
    assert decode_seat_left_payload(bytes.fromhex("00000000 07 00000000")) == (-1, 0, 7, b"")
    assert MAX_SEAT_LEFT_ACTIONS == 1024 - 9
    whole = encode_seat_left_payload(5000, 0, 1, bytes(MAX_SEAT_LEFT_ACTIONS))
    assert len(whole) == 1024


def test_seat_left_payload_refusals() -> None:
    with pytest.raises(ValueError, match=r"player must be in 0\.\.7, got 8"):
        encode_seat_left_payload(10, 0, 8, b"")
    with pytest.raises(ValueError, match="3 actions for frames up to 1"):
        encode_seat_left_payload(1, 0, 1, b"\x00\x00\x00")
    with pytest.raises(ValueError, match=r"last_frame must be in -1\.\."):
        encode_seat_left_payload(-2, 0, 1, b"")
    with pytest.raises(ValueError, match=r"9\.\.1024 bytes, got 8"):
        decode_seat_left_payload(bytes(8))
    with pytest.raises(ValueError, match="names player 8"):
        decode_seat_left_payload(bytes.fromhex("00000000 08 00000001"))
    with pytest.raises(ValueError, match="hands on 2 actions of 1 frames held"):
        decode_seat_left_payload(bytes.fromhex("00000000 01 00000001 0000"))


def test_seat_hidden_payload_bytes() -> None:
    assert RollbackKind.SEAT_HIDDEN == 0x09
    # Episode 2, frame 603: idles from there (hidden), real inputs again from 1250 (not hidden).
    assert encode_seat_hidden_payload(603, 2, True, False) == bytes.fromhex("00000002 0000025b 01")
    back = encode_seat_hidden_payload(1250, 2, False, False)
    assert back == bytes.fromhex("00000002 000004e2 00")
    # Pause at frame 7 of episode 0, and the pause over.
    assert encode_seat_hidden_payload(7, 0, True, True) == bytes.fromhex("00000000 00000007 03")
    assert encode_seat_hidden_payload(7, 0, False, True) == bytes.fromhex("00000000 00000007 02")
    for hidden in (False, True):
        for pause in (False, True):
            payload = encode_seat_hidden_payload(0xFFFFFFFF, 5, hidden, pause)
            assert decode_seat_hidden_payload(payload) == (0xFFFFFFFF, 5, hidden, pause)


def test_seat_hidden_payload_refusals() -> None:
    with pytest.raises(ValueError, match=r"frame must be in 0\.\.4294967295, got -1"):
        encode_seat_hidden_payload(-1, 0, True, False)
    with pytest.raises(ValueError, match="hidden must be a bool, got int"):
        encode_seat_hidden_payload(0, 0, 1, False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pause must be a bool, got NoneType"):
        encode_seat_hidden_payload(0, 0, True, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="9 bytes, got 8"):
        decode_seat_hidden_payload(bytes(8))
    with pytest.raises(ValueError, match="9 bytes, got 10"):
        decode_seat_hidden_payload(bytes(10))
    with pytest.raises(ValueError, match="unknown bits: 0x04"):
        decode_seat_hidden_payload(bytes.fromhex("00000000 00000000 04"))
