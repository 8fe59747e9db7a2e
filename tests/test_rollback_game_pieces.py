"""The Game protocol's optional pieces, the global-random snapshots, a game that raises, and the
payloads of the layer's new control messages."""

from __future__ import annotations

import random

import numpy as np
import pytest

from p2p_transport.errors import UsageError
from p2p_transport.rollback import (
    DesyncError,
    GameError,
    SyncTestSession,
    replay_episode,
    with_global_random,
)
from p2p_transport.wire.control_payloads import (
    MAX_CHUNK_DATA,
    decode_input_delay_payload,
    decode_rollback_end_payload,
    decode_state_chunk_payload,
    encode_input_delay_payload,
    encode_rollback_end_payload,
    encode_state_chunk_payload,
)
from tests.rollback_sim import GameLoop, simulate_games

IDLE = 6


class Walk:
    """A deterministic little game with every optional piece, counting how it is called."""

    idle_action = IDLE

    def __init__(self, seed: int = 1) -> None:
        self.seed = seed
        self.state = seed
        self.first_inputs: list[tuple[int, ...]] = []
        self.resimulated = 0
        self.predictions = 0
        self.fail_at: int | None = None
        self.frame = 0

    def save_state(self) -> object:
        return (self.state, self.frame)

    def load_state(self, state: object) -> None:
        self.state, self.frame = state  # type: ignore[misc]

    def _step(self, inputs: tuple[int, ...]) -> None:
        if self.frame == self.fail_at:
            self.fail_at = None  # once
            raise ZeroDivisionError("a bug in the game")
        self.state = (self.state * 31 + inputs[0] * 7 + inputs[1]) & 0xFFFFFFFF
        self.frame += 1

    def advance(self, inputs: tuple[int, ...]) -> None:
        if len(self.first_inputs) < 4:
            self.first_inputs.append(inputs)
        self._step(inputs)

    def resimulate(self, inputs: tuple[int, ...]) -> None:
        self.resimulated += 1
        self._step(inputs)

    def predict(self, player: int, frame: int, last_confirmed: int) -> int:
        self.predictions += 1
        return IDLE

    def episode_params(self) -> dict[str, int]:
        return {"seed": self.seed}

    def checksum(self) -> bytes:
        return self.state.to_bytes(4, "big")


def _keys(player: int, tick: int) -> int:
    return np.int64((tick // 5 + player) % 7)  # type: ignore[return-value]


def test_the_optional_pieces_are_used_and_the_record_replays() -> None:
    loops = simulate_games(Walk, _keys, frames=300, one_way_ms=60.0, loss=0.1, seed=2)
    a, b = (loops[side].rollback for side in ("a", "b"))
    assert a.episodes == b.episodes and a.stats()["desyncs"] == 0
    game = loops["a"].game
    # Before any input, both players are idle: the delay's first two frames.
    assert game.first_inputs[:2] == [(IDLE, IDLE), (IDLE, IDLE)]
    assert game.predictions > 0
    assert game.resimulated == a.stats()["frames_resimulated"] > 0
    record = a.episodes[0]
    assert record["params"] == {"seed": 1}
    assert replay_episode(Walk, record).hex() == record["final_checksum"]
    for key in ("advance_ms", "resimulate_ms", "frame_cpu_ms_max", "overrun_frames"):
        assert key in a.stats()


def test_actions_of_any_integer_type_and_nothing_else() -> None:
    sync = SyncTestSession(Walk())
    sync.advance_frame([np.int64(3), np.uint8(4)])
    with pytest.raises(UsageError, match="must be an int, got float"):
        sync.advance_frame([1.0, 2])
    with pytest.raises(UsageError, match=r"must be in 0\.\.255"):
        sync.advance_frame([np.int64(256), 2])


@pytest.mark.parametrize("go_on", [False, True])
def test_a_game_that_raises_ends_the_session_for_both_or_goes_on(go_on: bool) -> None:
    errors: list[GameError] = []

    def handler(error: GameError) -> bool:
        errors.append(error)
        return go_on

    def perturb(loop: GameLoop) -> None:
        if loop.ticks == 100:
            loop.game.fail_at = 100  # side b's game raises at its frame 100, once

    loops = simulate_games(
        Walk, _keys, frames=300, one_way_ms=30.0, seed=3, perturb=perturb, on_game_error=handler
    )
    a, b = (loops[side].rollback for side in ("a", "b"))
    assert len(errors) == 1
    error = errors[0]
    assert (error.phase, error.episode, error.frame) == ("advance", 0, 100)
    assert isinstance(error.__cause__, ZeroDivisionError)
    if go_on:
        # The frame is simulated again on the next tick; both end on the same state.
        assert a.episodes == b.episodes and a.stats()["desyncs"] == 0
        assert b.stats()["game_errors"] == 1
    else:
        for rollback, by in ((a, "peer"), (b, "local")):
            assert rollback.state.value == "closed"
            reason = rollback.telemetry()["end_reason"]
            assert reason == {
                "by": by,
                "episode": 0,
                "frame": 100,
                "resimulating": False,
                "reason": "advance: ZeroDivisionError: a bug in the game",
            }


class RandomWalk(Walk):
    """Draws from numpy's and random's global generators: state outside save_state."""

    def _step(self, inputs: tuple[int, ...]) -> None:
        noise = int(np.random.randint(0, 1000)) + int(random.random() * 1000)
        self.state = (self.state * 31 + inputs[0] * 7 + inputs[1] + noise) & 0xFFFFFFFF
        self.frame += 1


def test_the_global_generators_in_the_snapshot_make_a_game_deterministic() -> None:
    np.random.seed(5)
    random.seed(5)
    with pytest.raises(DesyncError):
        sync = SyncTestSession(RandomWalk())
        for step in range(20):
            sync.advance_frame([step % 7, 3])
    sync = SyncTestSession(with_global_random(RandomWalk()))
    for step in range(200):
        sync.advance_frame([step % 7, 3])
    assert sync.frames_checked == 398


def test_the_new_control_payloads_bytes() -> None:
    payload = encode_rollback_end_payload(100, 2, True, "advance: ValueError: é")
    assert payload == bytes.fromhex("000000020000006401") + "advance: ValueError: é".encode()
    assert decode_rollback_end_payload(payload) == (100, 2, True, "advance: ValueError: é")
    # Cut at 200 bytes without splitting a character.
    long = encode_rollback_end_payload(1, 0, False, "é" * 150)
    assert len(long) == 9 + 200 and decode_rollback_end_payload(long)[3] == "é" * 100
    assert encode_input_delay_payload(5) == b"\x05"
    assert decode_input_delay_payload(b"\x05") == 5
    for bad in (b"", b"\x01\x02"):
        with pytest.raises(ValueError):
            decode_input_delay_payload(bad)
    with pytest.raises(ValueError):
        decode_rollback_end_payload(b"\x00" * 8)


class DivergingWalk(Walk):
    """Walk with plain-bytes snapshots; on one side it diverges at frame 130."""

    diverge_at: int | None = None
    told = 0

    def _step(self, inputs: tuple[int, ...]) -> None:
        super()._step(inputs)
        if self.frame == self.diverge_at:
            self.state ^= 0x5A5A

    def encode_state(self, state: object) -> bytes:
        value, frame = state  # type: ignore[misc]
        return int(value).to_bytes(4, "big") + int(frame).to_bytes(4, "big") + bytes(1500)

    def decode_state(self, data: bytes) -> object:
        assert data[8:] == bytes(1500)  # two chunks, joined in order
        return (int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big"))

    def on_desync(self, desync: object) -> None:
        self.told += 1


def test_a_desync_is_repaired_by_the_lower_index_sides_state() -> None:
    def perturb(loop: GameLoop) -> None:
        loop.game.diverge_at = 131  # the state after frame 130, side b only

    loops = simulate_games(
        DivergingWalk,
        _keys,
        frames=400,
        one_way_ms=40.0,
        loss=0.1,
        seed=6,
        perturb=perturb,
        repair_desync=True,
    )
    a, b = (loops[side].rollback for side in ("a", "b"))
    for side, rollback in (("a", a), ("b", b)):
        assert rollback.first_desync is not None and rollback.first_desync.frame == 130
        assert loops[side].game.told == 1
    assert [t["role"] for t in a.state_transfers] == ["sent"]
    assert [t["role"] for t in b.state_transfers] == ["received"]
    sent, received = a.state_transfers[0], b.state_transfers[0]
    assert sent == {**received, "role": "sent"} and sent["frame"] >= 130 and sent["bytes"] == 1508
    # Both go on from the same state and end the episode on the same checksum and inputs.
    assert a.episode_over and b.episode_over
    assert a.episodes == b.episodes
    assert b.telemetry()["state_transfer_records"] == [received]


def test_the_state_chunk_payload_bytes() -> None:
    digest = bytes(range(16))
    payload = encode_state_chunk_payload(130, 1, 0, 2, digest, b"abc")
    assert payload == bytes.fromhex("000000010000008200000002") + digest + b"abc"
    assert decode_state_chunk_payload(payload) == (130, 1, 0, 2, digest, b"abc")
    assert len(encode_state_chunk_payload(0, 0, 1, 2, digest, bytes(MAX_CHUNK_DATA))) == 1024
    with pytest.raises(ValueError):
        decode_state_chunk_payload(bytes.fromhex("000000010000008200020002") + digest)


class FailingReplays(Walk):
    """Walk whose resimulate raises once, the first time it reaches frame 150."""

    armed = False

    def resimulate(self, inputs: tuple[int, ...]) -> None:
        if self.armed and self.frame == 150:
            self.armed = False
            raise KeyError("lost in a rollback")
        super().resimulate(inputs)


@pytest.mark.parametrize("go_on", [False, True])
def test_a_game_that_raises_while_re_simulating(go_on: bool) -> None:
    errors: list[GameError] = []

    def handler(error: GameError) -> bool:
        errors.append(error)
        return go_on

    def arm(loop: GameLoop) -> None:
        if loop.ticks == 140:
            loop.game.armed = True

    loops = simulate_games(
        FailingReplays,
        _keys,
        frames=300,
        one_way_ms=60.0,
        loss=0.2,
        seed=7,
        input_delay=0,
        perturb=arm,
        on_game_error=handler,
    )
    a, b = (loops[side].rollback for side in ("a", "b"))
    assert [(e.phase, e.frame, e.resimulating) for e in errors] == [("resimulate", 150, True)]
    if go_on:
        # The rollback is tried again on the next tick; nothing of the failed pass remains.
        assert a.episodes == b.episodes and a.stats()["desyncs"] == b.stats()["desyncs"] == 0
    else:
        assert a.state.value == b.state.value == "closed"
        assert a.end_reason is not None and b.end_reason is not None
        assert {**a.end_reason, "by": "local"} == b.end_reason
        assert b.end_reason["resimulating"] is True and b.end_reason["frame"] == 150
