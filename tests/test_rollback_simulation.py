"""Two Pong matches under the rollback layer over a simulated lossy, slow link
(tests/rollback_sim.py): the games agree on every confirmed frame whatever the link does, and
the layer's time sync, desync reports and episodes behave as a study needs."""

from __future__ import annotations

import pytest

from p2p_demo.pong import PongGame
from p2p_transport.rollback import replay
from tests.rollback_sim import RollbackRun, simulate_matches

EPISODE_FRAMES = 900


def _assert_agree(run: RollbackRun, episodes: int) -> None:
    a, b = run.matches["a"], run.matches["b"]
    assert a.finished and b.finished, run.finished_ms
    records_a, records_b = a.records(), b.records()
    assert len(records_a) == episodes
    # The same frames, the same inputs for both players, the same final state, on both sides.
    assert records_a == records_b
    for match in (a, b):
        stats = match.rollback.stats()
        assert stats["desyncs"] == 0
        # Every 10th frame and each episode's last one, compared on both sides.
        assert stats["hashes_compared"] == episodes * (EPISODE_FRAMES // 10 + 1)
        assert stats["duplicate_inputs"] == 0
    for index, record in enumerate(records_a):
        assert record["frames"] == EPISODE_FRAMES
        # Episode n is played from PongGame(seed + n), as the match resets it.
        fresh = PongGame(a.seed + index)
        assert replay(fresh, record["inputs"]).hex() == record["final_checksum"]


@pytest.mark.parametrize("loss", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("one_way_ms", [0.0, 50.0, 100.0])
def test_games_agree_at_any_loss_and_delay(loss: float, one_way_ms: float) -> None:
    run = simulate_matches(
        loss=loss, one_way_ms=one_way_ms, episode_frames=EPISODE_FRAMES, episodes=2, seed=11
    )
    _assert_agree(run, episodes=2)
    rollbacks = sum(m.rollback.stats()["rollbacks"] for m in run.matches.values())
    if loss > 0 or one_way_ms > 0:
        # 2 frames of input delay hide 33 ms: past that, or with loss, predictions miss.
        assert rollbacks > 0
    if one_way_ms == 0 and loss == 0:
        assert rollbacks == 0


def test_a_long_trip_stalls_but_never_for_good() -> None:
    # 150 ms each way is 9 frames, past the 8-frame prediction window: the game must stall.
    run = simulate_matches(loss=0.2, one_way_ms=150.0, episode_frames=EPISODE_FRAMES, seed=3)
    _assert_agree(run, episodes=1)
    assert all(m.rollback.stats()["stall_frames"] > 0 for m in run.matches.values())


def test_a_tab_that_starts_a_second_late_is_caught_up_with() -> None:
    run = simulate_matches(
        one_way_ms=30.0, episode_frames=EPISODE_FRAMES, late_start_ms=1000.0, seed=5
    )
    _assert_agree(run, episodes=1)
    early = run.matches["a"].rollback.telemetry()["frames_ahead_series"]
    # The early side found itself the whole prediction window ahead...
    assert max(ahead for _, ahead in early) >= 6
    # ...and from 4 s after the late one started to the end it stays within about a frame.
    for side in ("a", "b"):
        series = run.matches[side].rollback.telemetry()["frames_ahead_series"]
        settled = [ahead for at_ms, ahead in series if at_ms >= 5000.0]
        assert settled and max(abs(ahead) for ahead in settled) <= 1.5, (side, settled)


def test_a_game_that_diverges_is_reported_at_the_first_checked_frame() -> None:
    run = simulate_matches(one_way_ms=20.0, episode_frames=EPISODE_FRAMES, perturb_at=123)
    for match in run.matches.values():
        desync = match.desync
        assert desync is not None
        # The state after frame 123 differs; frames are hashed every 10, so 130 is the first.
        assert (desync.episode, desync.frame) == (0, 130)
        assert desync.local_hash != desync.peer_hash
        telemetry = match.rollback.telemetry()
        assert telemetry["first_desync_frame"] == 130
        assert telemetry["first_desync"] == {
            "episode": 0,
            "frame": 130,
            "local_checksum": desync.local_hash.hex(),
            "peer_checksum": desync.peer_hash.hex(),
        }
    # Each side's "local" checksum is the other's "peer" one.
    a, b = (run.matches[side].desync for side in ("a", "b"))
    assert a is not None and b is not None
    assert (a.local_hash, a.peer_hash) == (b.peer_hash, b.local_hash)


def test_episodes_restart_frames_and_leak_nothing() -> None:
    run = simulate_matches(
        loss=0.1, one_way_ms=40.0, episode_frames=EPISODE_FRAMES, episodes=3, seed=8
    )
    _assert_agree(run, episodes=3)
    # Each episode replays from its own fresh game: nothing of the one before is in it.
    records = run.matches["a"].records()
    assert [record["episode"] for record in records] == [0, 1, 2]
    for match in run.matches.values():
        assert match.rollback.episode == 2
        assert match.rollback.current_frame == EPISODE_FRAMES
