"""What is particular to ChunkedPrefill-v0 and SpecDecode-v0 beyond the conformance suite every
id passes (tests/test_envs.py): spaces, info contents, reward weights, rendering, episode ends,
randomised scenarios, spec JSON, custom scenarios."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env as gym_check_env

from servegym.envs.chunked_prefill import BUDGET_MENU, ChunkedPrefillEnv
from servegym.envs.spec_decode import K_MAX, SpecDecodeEnv

from ._helpers import CHUNK_ID, ENV_IDS, SPEC_ID, assert_same, assert_same_step, make_short

ACTIONS = {CHUNK_ID: len(BUDGET_MENU), SPEC_ID: K_MAX + 1}
OBS_DIM = {CHUNK_ID: 20, SPEC_ID: 27}
INFO_KEYS = {"metrics", "reward_terms", "scenario", "action_mask"}


def _user_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [f"{w.category.__name__}: {w.message}" for w in record if issubclass(w.category, UserWarning)]


# -- env checkers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env_random_scenario(env_id):
    """tests/test_envs.py checks the default scenario; domain randomisation passes too."""
    for kwargs in ({"scenario": "random"},):
        env = make_short(env_id, **kwargs)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            gym_check_env(env.unwrapped)
        assert _user_warnings(record) == [], kwargs


# -- spaces, masks, info, reward, render ----------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_and_action_masks(env_id):
    env = make_short(env_id)
    n = ACTIONS[env_id]
    assert env.action_space == gym.spaces.Discrete(n)
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box)
    assert space.shape == (OBS_DIM[env_id],) and space.dtype == np.float32
    assert np.all(space.low == 0) and np.all(np.isfinite(space.high)) and np.all(space.high > 0)
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs in space
    mask = env.unwrapped.action_masks()
    assert mask.shape == (n,) and mask.dtype == np.bool_ and mask.all()
    np.testing.assert_array_equal(info["action_mask"], mask)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_info_contents_and_reward_is_weighted_sum(env_id):
    env = make_short(env_id)
    obs, info = env.reset(seed=1)
    assert INFO_KEYS <= set(info)
    assert info["reward_terms"] == {}
    np.testing.assert_array_equal(obs, env.unwrapped.encode(info["metrics"]))
    rng = np.random.default_rng(1)
    weights = env.unwrapped.reward_weights
    for _ in range(15):
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(ACTIONS[env_id])))
        assert INFO_KEYS <= set(info)
        assert set(info["reward_terms"]) == set(weights)
        expected = sum(weights[name] * value for name, value in info["reward_terms"].items())
        assert isinstance(reward, float)
        assert reward == pytest.approx(expected, rel=1e-12, abs=1e-12)
        # The observation is the pure encoder applied to the reported metrics.
        np.testing.assert_array_equal(obs, env.unwrapped.encode(info["metrics"]))
        assert info["scenario"] is env.unwrapped.scenario
        assert info["scenario"].horizon_s == 20.0
        assert not terminated and not truncated


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_custom_reward_weights_change_the_sum(env_id):
    defaults = make_short(env_id).unwrapped.reward_weights
    name = sorted(defaults)[0]
    env = make_short(env_id, reward_weights={name: 0.0})
    assert env.unwrapped.reward_weights == {**defaults, name: 0.0}
    env.reset(seed=0)
    for action in (1, 2, 3):
        _, reward, _, _, info = env.step(action)
        terms = info["reward_terms"]
        assert reward == pytest.approx(sum(defaults[k] * v for k, v in terms.items() if k != name), abs=1e-12)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_ansi_returns_a_string(env_id):
    env = make_short(env_id, render_mode="ansi")
    env.reset(seed=0)
    env.step(2)
    text = env.render()
    assert isinstance(text, str) and "time_s=" in text
    assert ("budget=" if env_id == CHUNK_ID else "spec_tokens=") in text
    plain = make_short(env_id)
    plain.reset(seed=0)
    assert plain.render() is None  # no render mode: nothing


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_episode_end_gives_episode_kpis(env_id):
    env = make_short(env_id, horizon_s=8)
    env.reset(seed=0)
    for steps in range(1, 2000):  # noqa: B007
        _, _, terminated, truncated, info = env.step(1)
        if terminated or truncated:
            break
        assert "episode_kpis" not in info
    assert truncated and not terminated
    kpis = info["episode_kpis"]
    for key in ("e2e_mean_s", "tbt_p99_s", "ttft_p99_s", "duration_s", "requests_finished"):
        assert key in kpis
    assert kpis["duration_s"] >= 8.0
    assert steps < env.spec.max_episode_steps  # the env's own horizon ends the episode


def test_queue_explosion_terminates_with_episode_kpis():
    env = ChunkedPrefillEnv("llama3-8b-a100-chat-strict", load=5.0, horizon_s=120)
    env.reset(seed=0)
    for _ in range(1000):
        _, _, terminated, truncated, info = env.step(0)
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert info["metrics"]["oldest_wait_s"] > 30.0
    assert "episode_kpis" in info and info["episode_kpis"]["duration_s"] < 120


# -- determinism, pickling ------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["random"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_two_envs_same_seed_same_actions_are_identical(env_id, scenario):
    kwargs = {} if scenario is None else {"scenario": scenario}
    env1, env2 = make_short(env_id, horizon_s=6, **kwargs), make_short(env_id, horizon_s=6, **kwargs)
    rng = np.random.default_rng(7)
    for episode, seed in enumerate((11, 12)):
        r1, r2 = env1.reset(seed=seed), env2.reset(seed=seed)
        for i, (x, y) in enumerate(zip(r1, r2, strict=True)):
            assert_same(x, y, f"reset {episode}[{i}]")
        for t in range(400):
            action = int(rng.integers(ACTIONS[env_id]))
            s1, s2 = env1.step(action), env2.step(action)
            assert_same_step(s1, s2, f"episode {episode} step {t}")
            if s1[2] or s1[3]:
                assert "episode_kpis" in s1[4]
                break
        else:
            pytest.fail("episode did not end")


def test_off_menu_token_budget_is_rejected():
    with pytest.raises(ValueError, match="token_budget must be one of the menu"):
        ChunkedPrefillEnv(horizon_s=10, token_budget=500)


def test_reset_restores_the_starting_budget():
    env = ChunkedPrefillEnv(horizon_s=10, token_budget=1024)
    obs0, info0 = env.reset(seed=0)
    env.step(len(BUDGET_MENU) - 1)
    obs1, info1 = env.reset(seed=0)
    assert info1["metrics"]["budget"] == info0["metrics"]["budget"] == 1024
    np.testing.assert_array_equal(obs0, obs1)
    assert info1["metrics"]["budget"] == env.engine.token_budget


# -- spec, vectorisation, custom scenario ---------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spec_json_round_trip(env_id):
    env = make_short(env_id)
    restored = EnvSpec.from_json(env.spec.to_json())
    assert restored == env.spec
    assert restored.kwargs == {"horizon_s": 20.0}


def test_scenario_object_is_accepted():
    from servegym.envs.scenarios import ServingScenario

    scenario = ServingScenario(model="Llama-2-7B", draft="ngram", load=0.5, horizon_s=5.0)
    for cls in (ChunkedPrefillEnv, SpecDecodeEnv):
        env = cls(scenario=scenario)
        assert env.scenario_name == "custom" and env.scenario == scenario
        obs, _ = env.reset(seed=0)
        assert obs in env.observation_space
        assert env.step(1)[0] in env.observation_space
