"""Shared helpers of the environment tests: ids, short-horizon envs, rollouts, deep comparison."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

import servegym  # noqa: F401  (registers the ids)

CHUNK_ID = "servegym/ChunkedPrefill-v0"
SPEC_ID = "servegym/SpecDecode-v0"
ENV_IDS = (CHUNK_ID, SPEC_ID)
SHORT_S = 20.0  # simulated seconds: short episodes keep the suite fast


def make_short(env_id: str, horizon_s: float = SHORT_S, **kwargs: Any) -> gym.Env:
    """``gym.make`` with a short horizon (a scenario override)."""
    return gym.make(env_id, horizon_s=horizon_s, **kwargs)


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Recursive equality of observations/infos: arrays with array_equal, NaN equals NaN."""
    if isinstance(a, Mapping):
        assert isinstance(b, Mapping), f"{path}: {type(a).__name__} vs {type(b).__name__}"
        assert set(a) == set(b), f"{path}: keys differ: {sorted(set(a) ^ set(b))}"
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        assert a_arr.dtype == b_arr.dtype, f"{path}: dtype {a_arr.dtype} vs {b_arr.dtype}"
        assert a_arr.shape == b_arr.shape, f"{path}: shape {a_arr.shape} vs {b_arr.shape}"
        nan_ok = a_arr.dtype.kind in "fc"
        assert np.array_equal(a_arr, b_arr, equal_nan=nan_ok), f"{path}: {a_arr} != {b_arr}"
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        assert math.isnan(b), f"{path}: nan vs {b!r}"
    else:
        assert type(a) is type(b), f"{path}: {type(a).__name__} vs {type(b).__name__}"
        assert a == b, f"{path}: {a!r} != {b!r}"


def assert_same_step(s1: Sequence[Any], s2: Sequence[Any], where: str) -> None:
    """Two ``(obs, reward, terminated, truncated, info)`` tuples are identical."""
    assert len(s1) == len(s2) == 5
    for name, x, y in zip(("obs", "reward", "terminated", "truncated", "info"), s1, s2, strict=True):
        assert_same(x, y, f"{where}:{name}")


def run_episode(env: gym.Env, controller: Any, seed: int) -> tuple[list[int], dict[str, Any], bool]:
    """Run ``controller`` for one episode; the actions, the last info and ``terminated``."""
    obs, info = env.reset(seed=seed)
    controller.reset(seed)
    actions: list[int] = []
    while True:
        action = controller.act(obs, info)
        assert env.action_space.contains(action), f"{controller.name} chose {action!r}"
        actions.append(int(action))
        obs, _reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return actions, info, terminated
