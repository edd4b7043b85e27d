"""A numpy-batched MecOffload-v0 (the id's ``vector_entry_point``); SB3 trains on it through
``servegym.agents.vec_env.SB3VecEnvAdapter``.

All sub-environments live in one ``MecBatch``, so a step of N environments is one set of array
operations. Finished sub-environments reset in the same step (Gymnasium's ``SAME_STEP``
autoreset): the returned observation is the new episode's first one and the last observation of
the finished episode is in ``infos["final_obs"]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from .edge.rules import R_COST, R_DELAY, R_ENERGY, R_MISSED
from .edge.system import MecBatch
from .mec_offload import check_invalid_action_options, episode_kpis, observation_size, scenario_config


class MecOffloadVectorEnv(VectorEnv):
    """``num_envs`` MecOffload systems stepped together (masked actions are rejected per env)."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 16,
        scenario: str = "default",
        invalid_action_penalty: float = 1.0,
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        **overrides: Any,
    ) -> None:
        # max_episode_steps comes from gym.make_vec; episodes end after `episode_tasks` tasks.
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        penalty = check_invalid_action_options("reject", invalid_action_penalty)
        self.config = scenario_config(scenario, overrides)
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.invalid_action_penalty = penalty
        self.system = MecBatch(self.config, num_envs)
        n_actions = self.config.max_edges + 2
        obs_size = observation_size(self.config)
        self.single_action_space = spaces.Discrete(n_actions)
        self.single_observation_space = spaces.Box(0.0, 1.0, (obs_size,), np.float32)
        self.action_space = spaces.MultiDiscrete(np.full(num_envs, n_actions))
        self.observation_space = spaces.Box(0.0, 1.0, (num_envs, obs_size), np.float32)
        self._rng = np.random.default_rng()
        self._started = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.system.reset(self._rng)
        self._started = True
        self.system.observe()
        return self.system.obs.copy(), self._mask_info()

    def _mask_info(self) -> dict[str, np.ndarray]:
        """The action masks in the infos, as a vector of the scalar envs would give them."""
        return {"action_mask": self.system.mask.copy(), "_action_mask": np.ones(self.num_envs, dtype=bool)}

    def action_masks(self) -> np.ndarray:
        """[num_envs, actions]: the valid actions of each env's pending task."""
        return self.system.mask.copy()

    def step(self, actions):
        if not self._started:
            raise RuntimeError("MecOffloadVectorEnv.step() called before reset()")
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {np.shape(actions)}")
        n_actions = self.single_action_space.n
        if actions.dtype.kind not in "iu" and (
            actions.dtype.kind not in "fb" or not np.all(np.isfinite(actions)) or np.any(actions % 1)
        ):
            raise ValueError(f"actions must be integers, got {actions}")
        if actions.min() < 0 or actions.max() >= n_actions:
            raise ValueError(f"actions must be integers in 0..{n_actions - 1}, got {actions}")
        actions = actions.astype(np.int64, copy=False)
        s = self.system
        obs = np.empty_like(s.obs)  # handed out: a fresh array every step
        valid = s.step(actions, self._rng, obs)  # rejected where masked: the task stays pending
        result = s.result
        reward = np.where(valid, -result[:, R_COST], -self.invalid_action_penalty)
        truncated = valid & (s.tasks_done >= self.config.episode_tasks)
        infos: dict[str, Any] = {
            "delay_s": result[:, R_DELAY].copy(),  # NaN where the action was rejected
            "energy_j": result[:, R_ENERGY].copy(),
            "deadline_missed": result[:, R_MISSED] > 0,
            "rejected_action": ~valid,
        }
        if truncated.any():
            rows = np.flatnonzero(truncated)
            kpis = np.empty(self.num_envs, dtype=object)
            # the system logged each finished episode's episode_tasks tasks (rejections do not count)
            w = s.preference[rows]  # before the reset
            kpis[rows] = episode_kpis(*s.task_log[:, rows], w, self.config)
            infos["episode_kpis"], infos["_episode_kpis"] = kpis, truncated.copy()
            infos["final_obs"] = obs.copy()
            infos["_final_obs"] = truncated.copy()
            s.reset(self._rng, rows)
            s.observe(rows, obs)
        infos.update(self._mask_info())
        return obs, reward, np.zeros(self.num_envs, dtype=bool), truncated, infos


__all__ = ["MecOffloadVectorEnv"]
