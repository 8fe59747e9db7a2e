"""The rollback layer's pieces and RollbackSession frame by frame, with the peer's inputs and
control messages handed in by the test."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_demo.pong import PongBot, PongGame
from p2p_transport import Callbacks, P2PSession
from p2p_transport.rollback import (
    DesyncError,
    RollbackSession,
    RollbackState,
    SyncTestSession,
    replay,
)
from p2p_transport.rollback.peer_inputs import PeerInputs
from p2p_transport.rollback.session import MAX_INPUT_DELAY
from p2p_transport.rollback.state_ring import StateRing
from p2p_transport.rollback.time_sync import TimeSync
from p2p_transport.wire.codec import decode
from p2p_transport.wire.control_payloads import (
    encode_episode_end_payload,
    encode_episode_ready_payload,
    encode_time_sync_payload,
)
from p2p_transport.wire.messages import ControlKind
from tests.fakes import FakeChannel, FakeClock, FakeScheduler


class HistoryGame:
    """A game whose state is every input it was given: after any rollback, its state says
    exactly which inputs each frame was simulated with."""

    def __init__(self) -> None:
        self.history: tuple[tuple[int, ...], ...] = ()
        self.advances = 0

    def save_state(self) -> object:
        return self.history

    def load_state(self, state: object) -> None:
        assert isinstance(state, tuple)
        self.history = state

    def advance(self, inputs: tuple[int, ...]) -> None:
        self.history += (inputs,)
        self.advances += 1

    def checksum(self) -> bytes:
        return hashlib.blake2b(repr(self.history).encode(), digest_size=8).digest()


class Harness:
    """A RollbackSession over a real P2PSession whose channel records what is sent; the test
    plays the peer through the session's callbacks."""

    def __init__(self, player: int = 0, **options: Any) -> None:
        self.clock = FakeClock(0.0)
        self.channel = FakeChannel()
        self.controls: list[tuple[int, bytes]] = []
        self.session = P2PSession(
            player,
            1 - player,
            Callbacks(
                on_input=lambda frame, action: None,
                on_control=lambda kind, payload: self.controls.append((kind, payload)),
            ),
            clock=self.clock,
            scheduler=FakeScheduler(self.clock),
            channel=self.channel,
        )
        self.game = HistoryGame()
        self.rb = RollbackSession(self.game, self.session, **options)

    def peer_input(self, frame: int, action: int) -> None:
        """The peer's input, handed on as the session hands on every input it receives."""
        self.session.parts.delivery.on_input(frame, action)

    def peer_control(self, kind: int, payload: bytes) -> None:
        """The peer's control message, handed on as the session hands on every one."""
        self.session.parts.delivery.on_control(kind, payload)

    def sent_inputs(self) -> dict[int, int]:
        """Frame -> action of every input this side sent."""
        sent: dict[int, int] = {}
        for data in self.channel.sent:
            inputs = getattr(decode(data), "inputs", None)
            if inputs is not None:
                sent.update(dict(inputs))
        return sent

    def sent_controls(self) -> list[tuple[int, bytes]]:
        out = []
        for data in self.channel.sent:
            message = decode(data)
            if hasattr(message, "kind") and hasattr(message, "payload"):
                out.append((int(message.kind), bytes(message.payload)))
        return out


# --- the pieces ------------------------------------------------------------------------------


@given(st.permutations(list(range(40))), st.integers(min_value=0, max_value=40))
def test_peer_inputs_in_any_order_confirm_the_contiguous_prefix(
    order: list[int], delivered: int
) -> None:
    inputs = PeerInputs()
    for frame in order[:delivered]:
        assert inputs.add(frame, frame * 7 % 256)
        assert not inputs.add(frame, 0)  # a second copy is refused and changes nothing
    arrived = set(order[:delivered])
    prefix = 0
    while prefix in arrived:
        prefix += 1
    assert inputs.confirmed_frame == prefix - 1
    assert inputs.confirmed == bytes(frame * 7 % 256 for frame in range(prefix))
    for frame in range(40):
        assert inputs.get(frame) == (frame * 7 % 256 if frame in arrived else None)
    assert inputs.prediction() == ((prefix - 1) * 7 % 256 if prefix else 0)


@given(st.sets(st.integers(min_value=0, max_value=60)), st.integers(min_value=0, max_value=60))
def test_peer_inputs_hand_on_everything_from_a_frame(frames: set[int], first: int) -> None:
    inputs = PeerInputs()
    for frame in frames:
        inputs.add(frame, frame % 256)
    assert inputs.take_from(first) == {f - first: f % 256 for f in frames if f >= first}


@given(st.integers(min_value=1, max_value=12), st.lists(st.integers(0, 200), max_size=80))
def test_state_ring_keeps_exactly_the_last_size_frames(size: int, frames: list[int]) -> None:
    ring = StateRing(size)
    saved: dict[int, object] = {}
    for frame in frames:
        ring.save(frame, ("state", frame))
        saved[frame] = ("state", frame)
        # Another frame in the same slot is gone.
        for other in list(saved):
            if other != frame and other % size == frame % size:
                del saved[other]
    for frame, state in saved.items():
        assert ring.load(frame) == state
    with pytest.raises(LookupError, match="no saved state for frame 201"):
        ring.load(201)


def test_time_sync_splits_the_difference_and_stretches_only_the_side_ahead() -> None:
    sync = TimeSync(fps=60)
    assert sync.frames_ahead == 0.0 and sync.tick_stretch == 1.0
    # The peer's newest input is frame 10 with delay 2, so it is at 8; with a 60 ms RTT it is
    # 1.8 frames further on by now: estimate 9.8, this side at frame 16.
    sync.on_report(6.0, 2)
    assert sync.sample(16, 10, 60.0) == pytest.approx(-6.2)
    assert sync.frames_ahead == pytest.approx((6.0 + 6.2) / 2)
    assert sync.tick_stretch == pytest.approx(1.5)  # capped at half again
    behind = TimeSync(fps=60)
    behind.on_report(-4.0, 2)
    behind.sample(4, 10, 0.0)  # the peer is at 8, this side at 4: advantage +4
    assert behind.frames_ahead == pytest.approx(-4.0)
    assert behind.tick_stretch == 1.0


# --- the session frame by frame --------------------------------------------------------------


def test_a_late_input_that_contradicts_the_prediction_is_rolled_back_at_once() -> None:
    h = Harness(input_delay=0)
    rb, game = h.rb, h.game
    h.peer_input(0, 5)
    for _ in range(4):
        assert rb.advance_frame(1)
    # Frames 1-3 were predicted from the last confirmed action, 5.
    assert game.history == ((1, 5),) * 4
    h.peer_input(1, 5)  # as predicted: nothing to redo
    h.peer_input(2, 9)  # not as predicted
    h.peer_input(3, 9)
    assert rb.advance_frame(1)
    assert game.history == ((1, 5), (1, 5), (1, 9), (1, 9), (1, 9))
    stats = rb.stats()
    assert stats["rollbacks"] == 1
    assert stats["rollback_depths"] == {"2": 1}  # frames 2 and 3 again
    assert stats["frames_resimulated"] == 2
    assert stats["frames_predicted"] == 4  # frames 1-3, and 4 (predicted 9 now)
    assert rb.confirmed_frame == 3
    under_way = rb.telemetry()["episode_under_way"]
    assert under_way == {
        "episode": 0,
        "frames": 4,
        "inputs": [[1, 5], [1, 5], [1, 9], [1, 9]],
    }


def test_player_one_sees_the_inputs_in_player_order() -> None:
    h = Harness(player=1, input_delay=0)
    h.peer_input(0, 7)
    assert h.rb.advance_frame(3)
    assert h.game.history == ((7, 3),)


def test_no_more_than_max_prediction_frames_past_the_peer() -> None:
    h = Harness(input_delay=0, max_prediction=3)
    rb = h.rb
    for _ in range(3):
        assert rb.advance_frame(0)
    h.clock.advance(10)
    assert not rb.advance_frame(0)  # frame 3 would be the 4th predicted
    h.clock.advance(40)
    assert not rb.advance_frame(0)
    assert h.game.advances == 3
    h.peer_input(0, 0)
    h.clock.advance(5)
    assert rb.advance_frame(0)
    stats = rb.stats()
    assert stats["stall_frames"] == 2
    assert stats["stall_ms"] == 45.0
    assert rb.current_frame == 4


def test_lockstep_with_max_prediction_zero() -> None:
    h = Harness(input_delay=0, max_prediction=0)
    assert not h.rb.advance_frame(1)
    h.peer_input(0, 2)
    assert h.rb.advance_frame(1)
    assert not h.rb.advance_frame(1)
    assert h.rb.stats()["frames_predicted"] == 0


def test_input_delay_schedules_ahead_and_fills_the_first_frames() -> None:
    h = Harness(input_delay=2)
    for action in (10, 11, 12):
        h.peer_input(h.rb.current_frame, 0)
        assert h.rb.advance_frame(action)
    assert h.sent_inputs() == {0: 0, 1: 0, 2: 10, 3: 11, 4: 12}
    assert [inputs[0] for inputs in h.game.history] == [0, 0, 10]


def test_changing_the_input_delay_between_frames() -> None:
    h = Harness(input_delay=1)
    rb = h.rb
    assert rb.advance_frame(10)  # frame 1 <- 10
    rb.input_delay = 3
    assert rb.advance_frame(11)  # frame 4 <- 11; frames 2, 3 repeat 10
    rb.input_delay = 0
    assert rb.advance_frame(12)  # frame 2 is already scheduled: 12 is dropped
    assert h.sent_inputs() == {0: 0, 1: 10, 2: 10, 3: 10, 4: 11}
    assert rb.stats()["inputs_dropped_by_delay"] == 1
    with pytest.raises(ValueError, match=rf"input_delay must be in 0\.\.{MAX_INPUT_DELAY}, got 31"):
        rb.input_delay = 31


def test_only_confirmed_frames_are_hashed() -> None:
    h = Harness(input_delay=0, check_interval=2, max_prediction=8)
    rb = h.rb
    for _ in range(6):
        rb.advance_frame(0)
    assert h.session.parts.desync.counters.hashes_recorded == 0  # frames 0-5 all predicted
    for frame in range(3):
        h.peer_input(frame, 0)
    rb.advance_frame(0)
    # Frames 0-2 are confirmed: the hashes of frames 0 and 2 go out, not 4.
    assert h.session.parts.desync.counters.hashes_recorded == 2
    hashes = [p for kind, p in h.sent_controls() if kind == ControlKind.STATE_HASH]
    assert [int.from_bytes(p[4:8], "big") for p in hashes] == [0, 2]


def test_an_episode_ends_together_and_the_next_starts_clean() -> None:
    h = Harness(input_delay=1, episode_frames=4)
    rb = h.rb
    for frame in range(4):
        h.peer_input(frame, 3)
        assert rb.advance_frame(1)
    # Frame 3 was the last; it is confirmed on the next call, which simulates nothing.
    h.peer_input(4, 3)  # the peer's input delay ran past the end: ignored
    assert not rb.advance_frame(1)
    assert rb.episode_over and rb.state is RollbackState.ENDED
    record = rb.episodes[0]
    assert record["frames"] == 4
    assert record["inputs"] == [[0, 3], [1, 3], [1, 3], [1, 3]]
    assert record["final_checksum"] == h.game.checksum().hex()
    assert (ControlKind.EPISODE_END, encode_episode_end_payload(3, 0)) in h.sent_controls()
    rb.start_next_episode()
    with pytest.raises(RuntimeError, match="episode 1 already waits for the peer"):
        rb.start_next_episode()
    assert (ControlKind.EPISODE_READY, encode_episode_ready_payload(1)) in h.sent_controls()
    # The next episode's frames start past the last frame either side could send: 4 + 30.
    base = 4 + MAX_INPUT_DELAY
    h.peer_input(base, 8)  # the peer started first; its input waits
    assert not rb.advance_frame(1)  # the peer's end and readiness have not come
    h.peer_control(ControlKind.EPISODE_END, encode_episode_end_payload(3, 0))
    h.peer_control(ControlKind.EPISODE_READY, encode_episode_ready_payload(1))
    h.game.history = ()
    assert rb.advance_frame(5)
    assert rb.episode == 1 and rb.current_frame == 1
    assert h.game.history == ((0, 8),)
    sent = h.sent_inputs()
    # Every frame up to the new base was sent (the gap filled), and the new frame 1 after it.
    assert sorted(sent) == list(range(base + 2))
    assert sent[base + 1] == 5
    assert h.session.parts.desync.episode == 1
    h.peer_input(5, 99)  # a late packet of the old episode: counted, never played
    h.peer_input(base + 1, 8)
    assert rb.advance_frame(5)
    assert h.game.history == ((0, 8), (5, 8))
    assert rb.stats()["stale_inputs"] == 1
    with pytest.raises(RuntimeError, match="episode 1 is not over yet"):
        rb.start_next_episode()


def test_the_transport_kinds_are_taken_and_the_game_kinds_passed_on() -> None:
    h = Harness()
    h.peer_control(ControlKind.TIME_SYNC, encode_time_sync_payload(1.0, 2))
    h.peer_control(ControlKind.TIME_SYNC, b"\x01")
    h.peer_control(0x80, b"game")
    assert h.controls == [(0x80, b"game")]
    stats = h.rb.stats()
    assert stats["time_sync_received"] == 1
    assert stats["malformed_control"] == 1


def test_wrong_arguments_name_what_is_wrong() -> None:
    h = Harness()
    with pytest.raises(TypeError, match="object is not a Game: it has no save_state, load_state"):
        RollbackSession(object(), h.session)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_prediction must be in 0\.\.60, got 61"):
        RollbackSession(HistoryGame(), h.session, max_prediction=61)
    with pytest.raises(ValueError, match="fps must be positive"):
        RollbackSession(HistoryGame(), h.session, fps=0)
    with pytest.raises(ValueError, match=r"local_action must be in 0\.\.255, got 256"):
        h.rb.advance_frame(256)


# --- SyncTest and replay ---------------------------------------------------------------------


def _bot_inputs(frames: int, seed: int) -> list[tuple[int, int]]:
    game, bots = PongGame(seed), (PongBot(0, seed), PongBot(1, seed))
    inputs = []
    for _ in range(frames):
        frame_inputs = (bots[0].action(game), bots[1].action(game))
        game.advance(frame_inputs)
        inputs.append(frame_inputs)
    return inputs


def test_synctest_passes_the_demo_game() -> None:
    sync = SyncTestSession(PongGame(7), num_players=2, check_distance=4)
    for frame_inputs in _bot_inputs(3000, 7):
        sync.advance_frame(frame_inputs)
    assert sync.frames_checked == (3000 - 3) * 4


class HiddenStateGame(HistoryGame):
    """Counts its frames outside the saved state: what a rollback cannot restore."""

    def checksum(self) -> bytes:
        return bytes([self.advances % 256]) + super().checksum()


def test_synctest_catches_state_outside_save_state() -> None:
    sync = SyncTestSession(HiddenStateGame(), check_distance=2)
    sync.advance_frame((0, 0))
    with pytest.raises(DesyncError) as caught:
        sync.advance_frame((0, 0))
    assert caught.value.frame == 0
    assert "frame 0 is not deterministic" in str(caught.value)


class AliasingGame(HistoryGame):
    """Returns its live state from save_state, so a saved snapshot changes after saving."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[int] = [0]

    def save_state(self) -> object:
        return self.cells

    def load_state(self, state: object) -> None:
        assert isinstance(state, list)
        self.cells = state

    def advance(self, inputs: tuple[int, ...]) -> None:
        self.cells.append(sum(inputs) + len(self.cells))

    def checksum(self) -> bytes:
        return repr(self.cells).encode()[:32]


def test_synctest_catches_a_snapshot_that_changes_after_saving() -> None:
    sync = SyncTestSession(AliasingGame(), check_distance=3)
    with pytest.raises(DesyncError):
        for _ in range(10):
            sync.advance_frame((1, 2))


def test_synctest_checks_its_arguments() -> None:
    sync = SyncTestSession(PongGame(), num_players=2)
    with pytest.raises(ValueError, match="one action per player"):
        sync.advance_frame((1,))
    with pytest.raises(ValueError, match=r"action must be in 0\.\.255"):
        sync.advance_frame((1, 300))


def test_replay_reaches_the_same_checksum() -> None:
    inputs = _bot_inputs(900, 3)
    live = PongGame(3)
    for frame_inputs in inputs:
        live.advance(frame_inputs)
    assert replay(PongGame(3), [list(i) for i in inputs]) == live.checksum()
    assert replay(PongGame(4), inputs) != live.checksum()  # another seed, another game
