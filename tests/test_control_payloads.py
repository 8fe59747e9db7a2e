"""The transport's control payloads, byte for byte: episode end, episode ready, state hash and
time sync, each encoded, decoded and refused when malformed."""

from __future__ import annotations

import pytest

from p2p_transport.wire.control_payloads import (
    decode_episode_end_payload,
    decode_episode_ready_payload,
    decode_state_hash_payload,
    decode_time_sync_payload,
    encode_episode_end_payload,
    encode_episode_ready_payload,
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
