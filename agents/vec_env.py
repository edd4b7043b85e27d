"""SB3 ``VecEnv`` over a Gymnasium ``VectorEnv``: a batched env trains in one process."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from stable_baselines3.common.vec_env import VecEnv


class SB3VecEnvAdapter(VecEnv):
    """Presents a Gymnasium ``VectorEnv`` with same-step autoreset as an SB3 ``VecEnv``.

    Implements what SB3 (and sb3-contrib's MaskablePPO, through ``env_method("action_masks")``)
    calls; ``terminal_observation`` and ``TimeLimit.truncated`` follow SB3's conventions, and a
    finished episode's ``episode_kpis`` are passed on in its info.
    """

    def __init__(self, venv: VectorEnv) -> None:
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None

    def reset(self) -> np.ndarray:
        obs, _ = self.venv.reset(seed=self._seed)
        self._seed = None
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rewards, terms, truncs, infos = self.venv.step(self._actions)
        dones = terms | truncs
        out: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        final = infos.get("final_obs")
        kpis = infos.get("episode_kpis")
        for i in np.flatnonzero(dones):
            out[i]["terminal_observation"] = final[i] if final is not None else obs[i]
            if kpis is not None and kpis[i] is not None:
                out[i]["episode_kpis"] = kpis[i]
            out[i]["TimeLimit.truncated"] = bool(truncs[i] and not terms[i])
        return obs, rewards.astype(np.float32), dones, out

    def close(self) -> None:
        self.venv.close()

    def seed(self, seed: int | None = None) -> list[int | None]:
        self._seed = seed
        return [seed] * self.num_envs

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list[Any]:
        idx = self._indices(indices)
        if method_name == "action_masks":
            masks = self.venv.action_masks()
            return [masks[i] for i in idx]
        result = getattr(self.venv, method_name)(*args, **kwargs)
        return [result] * len(idx)

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)


def has_batched_env(env_id: str) -> bool:
    """Whether the id registers a numpy-batched ``vector_entry_point``."""
    spec = gym.registry.get(env_id)
    return spec is not None and spec.vector_entry_point is not None


def make_sb3_vec_env(env_id: str, num_envs: int = 16, **kwargs: Any) -> SB3VecEnvAdapter:
    """An SB3 ``VecEnv`` running ``num_envs`` copies of ``env_id`` in its batched vector env."""
    if not has_batched_env(env_id):
        raise ValueError(f"{env_id} has no batched vector env (vector_entry_point)")
    venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    return SB3VecEnvAdapter(venv)
