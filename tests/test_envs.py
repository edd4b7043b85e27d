"""The conformance suite every registered env id passes (after MiniGrid's tests/test_envs.py).

Parametrised over ``servegym.registration.ENVS``, so an env registered later is covered without
editing this file: the Gymnasium and SB3 checkers, seeded determinism of whole steps (info
included), pickling and deep copies mid-episode, random masked actions, the observation encoder
applied to the reported metrics, the reward as the weighted sum of its named terms, render
modes, episode ends with KPIs, and ``gym.make_vec``.
"""

from __future__ import annotations

import copy
import math
import pickle
import warnings
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from servegym.registration import ENVS

ENV_IDS = sorted(ENVS)
FUZZ_STEPS = 3000


def _user_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    """User warnings, except the documented one-per-env notice that a masked action was rejected
    (the checkers draw unmasked random actions)."""
    return [
        f"{w.category.__name__}: {w.message}"
        for w in record
        if issubclass(w.category, UserWarning) and "is masked" not in str(w.message)
    ]


def _valid_action(env: gym.Env, rng: np.random.Generator) -> int:
    mask = env.unwrapped.action_masks()
    return int(rng.choice(np.flatnonzero(mask)))


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Deep equality of observations and infos: arrays by value and dtype, NaN equal to NaN,
    objects (e.g. a scenario) by equality."""
    if isinstance(a, Mapping):
        assert isinstance(b, Mapping) and set(a) == set(b), f"{path}: keys {sorted(set(a) ^ set(b))}"
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, f"{path}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), f"{path}: {a} != {b}"
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), f"{path}: nan vs {b!r}"
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"


def _rollout(env: gym.Env, seed: int, steps: int) -> list[tuple]:
    """Seeded masked-random steps, resetting at episode ends; every step's full tuple."""
    rng = np.random.default_rng(seed)
    out: list[tuple] = [env.reset(seed=seed)]
    for _ in range(steps):
        step = env.step(_valid_action(env, rng))
        out.append(step)
        if step[2] or step[3]:
            out.append(env.reset(seed=int(rng.integers(1 << 30))))
    return out


# -- checkers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_checker(env_id):
    for kwargs in [{}] + [{"render_mode": mode} for mode in gym.make(env_id).metadata["render_modes"]]:
        env = gym.make(env_id, **kwargs)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            gym_check_env(env.unwrapped)
        assert _user_warnings(record) == [], kwargs


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_checker(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        sb3_check_env(env.unwrapped, warn=True)
    assert _user_warnings(record) == []


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_and_steps_emit_no_warnings(env_id):
    """gym.make's passive checker and the env itself stay quiet on valid use."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        env = gym.make(env_id)
        _rollout(env, 0, 50)
        env.close()
    assert [str(w.message) for w in record] == []


# -- determinism, copies ----------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_steps_info_included(env_id):
    a, b = _rollout(gym.make(env_id), 3, 400), _rollout(gym.make(env_id), 3, 400)
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        assert_same(x, y, f"step {t}")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_seed_replays_within_one_env(env_id):
    env = gym.make(env_id)
    first = _rollout(env, 5, 30)
    again = _rollout(env, 5, 30)
    assert_same(first, again)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_copies_mid_episode_continue_identically(env_id, how):
    env = gym.make(env_id)
    rng = np.random.default_rng(11)
    env.reset(seed=11)
    for _ in range(5):
        env.step(_valid_action(env, rng))
    twin = pickle.loads(pickle.dumps(env)) if how == "pickle" else copy.deepcopy(env)
    assert twin.unwrapped is not env.unwrapped
    for t in range(40):
        action = _valid_action(env, rng)
        s1, s2 = env.step(action), twin.step(action)
        assert_same(s1, s2, f"step {t}")
        if s1[2] or s1[3]:
            break


# -- every step -------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_random_masked_actions_keep_every_contract(env_id):
    env = gym.make(env_id)
    core = env.unwrapped
    n_actions = env.action_space.n
    steps = _rollout(env, 7, FUZZ_STEPS)
    episodes = 0
    for step in steps:
        if len(step) == 2:  # a reset
            obs, info, reward, terms = step[0], step[1], None, None
        else:
            obs, reward, terminated, truncated, info = step
            assert isinstance(reward, float) and math.isfinite(reward)
            assert isinstance(terminated, bool) and isinstance(truncated, bool)
            terms = info["reward_terms"]
            weights = info.get("reward_weights", getattr(core, "reward_weights", None))
            assert set(terms) == set(weights), (terms, weights)
            expected = sum(weights[k] * v for k, v in terms.items())
            assert reward == pytest.approx(expected, rel=1e-9, abs=1e-12)
            if terminated or truncated:
                episodes += 1
                assert isinstance(info["episode_kpis"], Mapping) and info["episode_kpis"]
        assert obs in env.observation_space
        mask = info["action_mask"]
        assert mask.shape == (n_actions,) and mask.dtype == np.bool_ and mask.any()
        # The observation is the pure encoder applied to the metrics a live system reports.
        np.testing.assert_array_equal(core.observation_from_metrics(info["metrics"]), obs)
        for name, value in info["metrics"].items():  # numbers (scalars or arrays), as a live system sends
            value = np.asarray(value)
            assert value.dtype.kind in "biuf", (name, value)
    np.testing.assert_array_equal(core.action_masks(), steps[-1][-1]["action_mask"])
    assert episodes >= 1, f"no episode ended in {FUZZ_STEPS} steps"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_an_episode_ends_within_its_step_limit_with_kpis(env_id):
    env = gym.make(env_id)
    rng = np.random.default_rng(2)
    env.reset(seed=2)
    limit = env.spec.max_episode_steps
    for steps in range(1, limit + 1):  # noqa: B007 - the count is checked below
        _, _, terminated, truncated, info = env.step(_valid_action(env, rng))
        if terminated or truncated:
            break
    assert terminated or truncated, f"no end within {limit} steps"
    assert steps < limit, "the env's own horizon, not the safety limit, should end the episode"
    assert "episode_kpis" in info


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_out_of_range_actions_raise_a_clear_error(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(env.action_space.n)


# -- render, vector envs ------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_modes(env_id):
    modes = gym.make(env_id).metadata["render_modes"]
    for mode in modes:
        env = gym.make(env_id, render_mode=mode)
        env.reset(seed=0)
        env.step(_valid_action(env, np.random.default_rng(0)))
        frame = env.render()
        if mode == "ansi":
            assert isinstance(frame, str) and frame
        elif mode == "rgb_array":
            assert isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.dtype == np.uint8
    env = gym.make(env_id)
    env.reset(seed=0)
    assert env.render() is None  # no render mode: nothing


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_vec(env_id):
    modes = ["sync"] + (["vector_entry_point"] if gym.spec(env_id).vector_entry_point else [])
    single = gym.make(env_id)
    for mode in modes:
        envs = gym.make_vec(env_id, num_envs=3, vectorization_mode=mode)
        obs, info = envs.reset(seed=0)
        assert obs.shape == (3, *single.observation_space.shape), mode
        assert info["action_mask"].shape == (3, single.action_space.n), mode
        rng = np.random.default_rng(0)
        for _ in range(5):
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in info["action_mask"]])
            obs, reward, _, _, info = envs.step(actions)
            assert obs.shape == (3, *single.observation_space.shape) and reward.shape == (3,), mode
            assert np.all(np.isfinite(reward)), mode
        assert envs.single_action_space == single.action_space, mode
        envs.close()
