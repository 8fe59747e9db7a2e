"""cogrid 0.3.2's Overcooked, what studies run, under the rollback layer: deterministic under
SyncTest with scripted cooks who deliver soups, two sides over a lossy, slow link end on the
same state, which their records replay to, and OvercookedV2, which draws its recipes from
numpy's global generator, is deterministic only with that generator in its snapshots."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from p2p_transport.rollback import (
    DesyncError,
    Game,
    SyncTestSession,
    replay_episode,
    with_global_random,
)
from tests.cogrid_play import NOOP, PERIOD, CogridGame, scripted_action
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


class RecipesChange(CogridGame):
    """OvercookedV2 where a soup is delivered every 10 steps: cogrid's own delivery flag is
    raised (what a delivery sets), and the next step draws a new recipe from numpy's global
    generator."""

    def _deliver(self) -> None:
        env = self.env
        if env.t % 10 == 5:
            state = env._env_state
            extra = {**state.extra_state, "overcooked.delivery_occurred": np.int32(1)}
            env._env_state = dataclasses.replace(state, extra_state=extra)

    def advance(self, inputs: tuple[int, ...]) -> None:
        self._deliver()
        super().advance(inputs)

    def resimulate(self, inputs: tuple[int, ...]) -> None:
        self._deliver()
        super().resimulate(inputs)


@pytest.mark.parametrize("snapshot_global_random", [False, True])
def test_overcooked_v2_needs_the_global_generator_in_its_snapshots(
    snapshot_global_random: bool,
) -> None:
    np.random.seed(1)
    cogrid_game = RecipesChange("OvercookedV2-CrampedRoomIndicator-V0")
    game: Game = with_global_random(cogrid_game) if snapshot_global_random else cogrid_game
    sync = SyncTestSession(game, check_distance=2)
    recipes = set()
    if not snapshot_global_random:
        # The first delivery's frame, simulated again, draws another number.
        with pytest.raises(DesyncError) as raised:
            for _ in range(100):
                sync.advance_frame([NOOP, NOOP])
        assert raised.value.frame == 5
        return
    for _ in range(100):
        sync.advance_frame([NOOP, NOOP])
        recipes.add(int(cogrid_game.env._env_state.extra_state["overcooked.target_recipe"]))
    assert sync.frames_checked == 198
    assert recipes == {0, 1}  # the recipe did change
