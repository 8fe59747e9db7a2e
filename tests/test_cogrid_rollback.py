"""cogrid 0.3.2's Overcooked, what studies run, under the rollback layer: deterministic under
SyncTest with scripted cooks who deliver soups, and two sides over a lossy, slow link end on the
same state, which their records replay to."""

from __future__ import annotations

import numpy as np
import pytest

from p2p_transport.rollback import SyncTestSession, replay_episode
from tests.cogrid_play import PERIOD, CogridGame, scripted_action
from tests.rollback_sim import simulate_games


@pytest.mark.parametrize("distance", [2, 8])
def test_synctest_passes_with_cooks_that_deliver(distance: int) -> None:
    game = CogridGame()
    sync = SyncTestSession(game, check_distance=distance)
    for step in range(600):
        # numpy integers, as env code hands actions around
        sync.advance_frame([np.int64(scripted_action(p, step)) for p in (0, 1)])
    assert sync.frames_checked == (600 - distance + 1) * distance
    assert game.delivered == 600 // PERIOD


@pytest.mark.parametrize("one_way_ms", [50.0, 100.0])
def test_two_sides_over_a_lossy_link_agree_and_replay(one_way_ms: float) -> None:
    loops = simulate_games(
        CogridGame,
        scripted_action,
        frames=900,
        loss=0.2,
        one_way_ms=one_way_ms,
        seed=4,
        input_delay=2,
    )
    a, b = (loops[side].rollback for side in ("a", "b"))
    assert a.episode_over and b.episode_over
    assert a.episodes == b.episodes
    record = a.episodes[0]
    assert record["frames"] == 900
    assert record["params"] == {"env_id": "Overcooked-CrampedRoom-V0", "seed": 0}
    for rollback in (a, b):
        stats = rollback.stats()
        assert stats["desyncs"] == 0 and stats["rollbacks"] > 0
        assert stats["hashes_compared"] == 91
    assert replay_episode(CogridGame, record).hex() == record["final_checksum"]
