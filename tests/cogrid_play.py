"""cogrid's Overcooked (what studies run) as a rollback game, and a scripted pair of cooks.

Used by tests/test_cogrid_rollback.py and benchmarks/bench_envs.py. The scripted players cook
and deliver one onion soup in CrampedRoom every :data:`PERIOD` steps: player 1 carries three
onions to the pot, player 0 fetches a plate, waits for the soup and delivers it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Final

import cogrid
from cogrid.core.pipeline.step import build_step_fn

try:
    from p2p_transport.rollback import EnvGame
except ImportError:  # an older layer (bench_envs's run before the change): this tree's adapter
    _SPEC = importlib.util.spec_from_file_location(
        "env_game", Path(__file__).parent.parent / "py_src/p2p_transport/rollback/env_game.py"
    )
    assert _SPEC is not None and _SPEC.loader is not None
    _MODULE = importlib.util.module_from_spec(_SPEC)
    _SPEC.loader.exec_module(_MODULE)
    EnvGame = _MODULE.EnvGame

CRAMPED_ROOM: Final = "Overcooked-CrampedRoom-V0"
#: cogrid's action 6; 0 is move_up.
NOOP: Final = 6
UP, DOWN, LEFT, RIGHT, INTERACT = 0, 1, 2, 3, 4
#: Player 0: left twice, face the plates, take one, wait for the soup, up and right to the pot,
#: face it, plate the soup, down and right, face the delivery zone, deliver.
_PLATER: Final = (
    *(LEFT, LEFT, DOWN, INTERACT),
    *([NOOP] * 50),
    *(UP, RIGHT, UP, INTERACT, DOWN, RIGHT, DOWN, INTERACT),
)
#: Player 1, three times: face the onions, take one, left, face the pot, drop it in, back right.
_ONIONS: Final = (RIGHT, INTERACT, LEFT, UP, INTERACT, RIGHT) * 3
#: One soup per period; both cooks end it where they started.
PERIOD: Final = 64
#: What the delivery is worth to each agent in cogrid 0.3.2's reward.
DELIVERY_REWARD: Final = 20.0


def scripted_action(player: int, step: int) -> int:
    script = _PLATER if player == 0 else _ONIONS
    index = step % PERIOD
    return script[index] if index < len(script) else NOOP


class CogridGame(EnvGame):  # type: ignore[misc, valid-type]
    """A cogrid env under rollback: no-op is the idle action and the prediction (a key press
    lasts one frame), deliveries of new frames are counted, and a re-simulated frame computes
    no observations (most of a step's cost)."""

    def __init__(self, env_id: str = CRAMPED_ROOM, seed: int = 0) -> None:
        self.env_id = env_id
        self.delivered = 0
        super().__init__(cogrid.make(env_id), seed=seed, idle_action=NOOP)
        env = self.env
        # cogrid 0.3.2's own step pipeline, built with an observation function that computes
        # nothing. What CoGridEnv.step does around the pipeline is done in resimulate; SyncTest
        # (which re-simulates with it) proves the two give the same state.
        self._blind_step = build_step_fn(
            env._scope_config,
            env._lookup_tables,
            lambda state, index: None,
            env._reward_config,
            env._action_pickup_drop_idx,
            env._action_toggle_idx,
            env.max_steps,
            agent_ids=env._agent_id_order,
            terminated_fn=env._terminated_fn,
        )

    def resimulate(self, inputs: tuple[int, ...]) -> None:
        env = self.env
        key = int(env.np_random.integers(2**31))
        _, env._env_state, rewards, terminateds, truncateds, _ = self._blind_step(
            key, env._env_state, self.actions(inputs)
        )
        env.t += 1
        env.cumulative_score += sum(float(reward) for reward in rewards.values())
        self._over = any(bool(t) for t in terminateds.values()) or any(
            bool(t) for t in truncateds.values()
        )

    def episode_params(self) -> dict[str, Any]:
        return {"env_id": self.env_id, "seed": self.seed}

    def predict(self, player: int, frame: int, last_confirmed: int) -> int:
        return NOOP

    def advance(self, inputs: tuple[int, ...]) -> None:
        super().advance(inputs)
        if self.rewards and max(self.rewards.values()) >= DELIVERY_REWARD:
            self.delivered += 1
