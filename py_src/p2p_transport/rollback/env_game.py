"""A PettingZoo-style environment as a rollback :class:`~p2p_transport.rollback.game.Game`.

The adapter pattern for the envs studies run (cogrid, gymnasium / PettingZoo parallel envs):
``reset(seed=...)`` starts an episode, ``step({agent: action})`` returns observations, rewards,
terminations, truncations and infos. The env's state is taken with its own ``get_state()`` /
``set_state()`` where it has them (cogrid: a 1 kB dict of lists), else with
:func:`copy.deepcopy` of the whole env, twice per rollback (once to save, once to load, so the
saved copy stays untouched). What it costs per frame is printed by benchmarks/bench_envs.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
from collections.abc import Callable
from typing import Any, cast

from p2p_transport.errors import UsageError

__all__ = ["EnvGame"]


class EnvGame:
    """``env`` played by its agents in ``env.possible_agents`` order (player ``i`` is agent
    ``i``), from ``reset(seed=seed)``.

    ``idle_action`` is the env's no-op (what a player does before its first input).
    ``checksum(env) -> bytes`` digests the state; without it, the BLAKE2b of the pickled
    ``get_state()`` (an env without ``get_state`` must pass one). After a frame, ``observations``,
    ``rewards``, ``terminations``, ``truncations`` and ``infos`` hold what ``step`` returned;
    a re-simulated frame keeps only whether the episode ended (subclass and override
    :meth:`resimulate` to step an env more cheaply there).
    """

    def __init__(
        self,
        env: Any,
        *,
        seed: int | None = None,
        idle_action: int = 0,
        checksum: Callable[[Any], bytes] | None = None,
    ) -> None:
        self.env = env
        self.idle_action = idle_action
        self._has_state = callable(getattr(env, "get_state", None)) and callable(
            getattr(env, "set_state", None)
        )
        if checksum is None and not self._has_state:
            raise UsageError(f"{type(env).__name__} has no get_state(): pass checksum=")
        self._checksum = checksum
        self.agents = list(env.possible_agents)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (both sides with the same seed)."""
        self.seed = seed
        self.observations, self.infos = self.env.reset(seed=seed)
        self.rewards: dict[Any, float] = {}
        self.terminations: dict[Any, bool] = {}
        self.truncations: dict[Any, bool] = {}
        self._over = False

    def episode_params(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def save_state(self) -> object:
        env_state = self.env.get_state() if self._has_state else copy.deepcopy(self.env)
        return (env_state, self._over)

    def load_state(self, state: object) -> None:
        env_state, self._over = cast(tuple[Any, bool], state)
        if self._has_state:
            self.env.set_state(env_state)
        else:
            self.env = copy.deepcopy(env_state)

    def encode_state(self, state: object) -> bytes:
        """A ``get_state()`` snapshot as JSON (what cogrid's is made for); an env saved by
        deepcopy has no plain form and cannot be sent (``repair_desync``)."""
        if not self._has_state:
            raise UsageError(f"{type(self.env).__name__} has no get_state(): no plain state")
        return json.dumps(state, separators=(",", ":")).encode()

    def decode_state(self, data: bytes) -> object:
        env_state, over = json.loads(data)
        return (env_state, bool(over))

    def actions(self, inputs: tuple[int, ...]) -> dict[Any, int]:
        return dict(zip(self.agents, inputs, strict=True))

    def advance(self, inputs: tuple[int, ...]) -> None:
        result = self.env.step(self.actions(inputs))
        self.observations, self.rewards, self.terminations, self.truncations, self.infos = result
        self._over = any(self.terminations.values()) or any(self.truncations.values())

    def resimulate(self, inputs: tuple[int, ...]) -> None:
        _, _, terminations, truncations, _ = self.env.step(self.actions(inputs))
        self._over = any(terminations.values()) or any(truncations.values())

    def done(self) -> bool:
        return self._over

    def checksum(self) -> bytes:
        if self._checksum is not None:
            return self._checksum(self.env)
        state = pickle.dumps(self.env.get_state(), protocol=pickle.HIGHEST_PROTOCOL)
        return hashlib.blake2b(state, digest_size=16).digest()
