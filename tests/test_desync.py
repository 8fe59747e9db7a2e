"""DesyncChecker: two checkers joined directly, the first differing frame, bounds, bad payloads."""

from __future__ import annotations

import pytest

from p2p_transport.protocol.desync import Desync, DesyncChecker
from p2p_transport.wire.control_payloads import MAX_HASH_SIZE, encode_state_hash_payload


class Pair:
    """Two checkers whose payloads are held until :meth:`deliver`, as a control channel would."""

    def __init__(self, history: int = 256) -> None:
        self.found: dict[str, list[Desync]] = {"a": [], "b": []}
        self.wire: dict[str, list[bytes]] = {"a": [], "b": []}
        self.a = DesyncChecker(self.wire["a"].append, self.found["a"].append, history=history)
        self.b = DesyncChecker(self.wire["b"].append, self.found["b"].append, history=history)

    def deliver(self) -> None:
        for side, to in (("a", self.b), ("b", self.a)):
            for payload in self.wire[side]:
                to.on_peer_hash(payload)
            self.wire[side].clear()


def test_equal_hashes_match() -> None:
    pair = Pair()
    for frame in range(0, 300, 30):
        pair.a.add_local_hash(frame, frame.to_bytes(8, "big"))
        pair.b.add_local_hash(frame, frame.to_bytes(8, "big"))
    pair.deliver()
    assert pair.a.counters.matches == pair.b.counters.matches == 10
    assert pair.a.first_desync is None and pair.found == {"a": [], "b": []}


def test_first_differing_frame_is_reported_once_on_both_sides() -> None:
    pair = Pair()
    for frame in range(10):
        pair.a.add_local_hash(frame, bytes([frame]))
        pair.b.add_local_hash(frame, bytes([frame if frame < 4 else 99]))
        if frame % 3 == 0:
            pair.deliver()  # whichever side's hash arrives first, the result is the same
    pair.deliver()
    assert pair.found["a"] == [Desync(0, 4, b"\x04", b"\x63")]
    assert pair.found["b"] == [Desync(0, 4, b"\x63", b"\x04")]
    assert pair.a.first_desync == Desync(0, 4, b"\x04", b"\x63")
    assert pair.a.counters.mismatches == 6 and pair.a.counters.matches == 4
    assert pair.a.stats()["first_desync_frame"] == 4


def test_episodes_keep_frame_numbers_apart() -> None:
    pair = Pair()
    pair.a.add_local_hash(5, b"old")
    pair.a.start_episode(1)
    pair.a.add_local_hash(5, b"new")
    pair.b.start_episode(1)
    pair.b.add_local_hash(5, b"new")
    pair.deliver()
    assert pair.a.first_desync is None and pair.a.counters.matches == 1
    pair.b.start_episode(0)
    pair.b.add_local_hash(5, b"bad")
    pair.deliver()
    assert pair.a.first_desync == Desync(0, 5, b"old", b"bad")


def test_memory_is_bounded() -> None:
    pair = Pair(history=8)
    for frame in range(100):
        pair.a.add_local_hash(frame, b"h")
    pair.deliver()  # b has hashed nothing: its table holds only the last 8
    assert pair.b.peer_hashes_waiting == 8 and pair.b.counters.forgotten == 92
    assert pair.a.local_hashes_waiting == 8


def test_malformed_payloads_are_counted() -> None:
    checker = DesyncChecker(lambda payload: None)
    for payload in (b"", bytes(8), bytes(8 + MAX_HASH_SIZE + 1)):
        checker.on_peer_hash(payload)
    assert checker.counters.malformed == 3 and checker.counters.peer_hashes == 0


def test_a_refused_send_skips_the_hash() -> None:
    def full(payload: bytes) -> None:
        raise RuntimeError("window full")

    checker = DesyncChecker(full)
    checker.add_local_hash(1, b"h")
    assert checker.counters.hashes_unsent == 1 and checker.counters.hashes_recorded == 1


def test_history_validation() -> None:
    with pytest.raises(ValueError, match="history must be at least 1"):
        DesyncChecker(lambda payload: None, history=0)


def test_a_raising_on_desync_is_counted_and_the_check_goes_on() -> None:
    def broken(desync: Desync) -> None:
        raise RuntimeError("the game's bug")

    wire: list[bytes] = []
    checker = DesyncChecker(wire.append, broken)
    checker.on_peer_hash(encode_state_hash_payload(1, 0, b"peer"))
    checker.add_local_hash(1, b"mine")
    checker.on_peer_hash(encode_state_hash_payload(2, 0, b"same"))
    checker.add_local_hash(2, b"same")
    assert checker.counters.callback_errors == 1
    assert checker.first_desync == Desync(0, 1, b"mine", b"peer")
    assert checker.counters.mismatches == 1 and checker.counters.matches == 1
