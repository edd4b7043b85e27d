"""Scenario presets, domain randomisation and random-action fuzzing of both environments."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from servegym.envs.scenarios import CHUNK_PRESETS, SPEC_PRESETS, ServingScenario

from ._helpers import CHUNK_ID, ENV_IDS, SPEC_ID, make_short

PRESETS = {CHUNK_ID: CHUNK_PRESETS, SPEC_ID: SPEC_PRESETS}
ALL_PRESETS = [(env_id, name) for env_id in ENV_IDS for name in sorted(PRESETS[env_id])]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_preset_menu_is_broad(env_id):
    presets = PRESETS[env_id]
    assert len(presets) >= 6
    loads = [ServingScenario(**fields).load for fields in presets.values()]
    assert min(loads) <= 0.3 and max(loads) >= 1.2
    models = {ServingScenario(**fields).model for fields in presets.values()}
    assert len(models) >= 2


def test_default_scenarios_are_presets():
    assert make_short(CHUNK_ID).unwrapped.scenario_name in CHUNK_PRESETS
    assert make_short(SPEC_ID).unwrapped.scenario_name in SPEC_PRESETS


@pytest.mark.parametrize(("env_id", "name"), ALL_PRESETS)
def test_each_preset_constructs_resets_and_steps(env_id, name):
    env = gym.make(env_id, scenario=name, horizon_s=10)
    unwrapped = env.unwrapped
    assert unwrapped.scenario_name == name
    expected = ServingScenario(**PRESETS[env_id][name])
    for field, value in PRESETS[env_id][name].items():
        assert getattr(unwrapped.scenario, field) == getattr(expected, field) == value
    assert unwrapped.scenario.horizon_s == 10
    assert unwrapped._capacity > 0 and np.isfinite(unwrapped._capacity)
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space
    assert info["scenario"].load == expected.load
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, reward, terminated, _, info = env.step(int(rng.integers(env.action_space.n)))
        assert obs in env.observation_space and np.isfinite(reward)
        assert not terminated


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_random_scenario_varies_per_reset_and_keeps_overrides(env_id):
    env = make_short(env_id, scenario="random", horizon_s=7, max_num_seqs=32)
    seen = set()
    for seed in range(12):
        _, info = env.reset(seed=seed)
        sc = info["scenario"]
        assert sc.horizon_s == 7 and sc.max_num_seqs == 32  # overrides win
        assert 0.3 <= sc.load <= 1.2
        assert sc.arrival_cv in (1.0, 2.0, 3.0)
        seen.add((sc.model, sc.device, sc.lengths, round(sc.load, 6)))
        assert info["capacity_rps"] == env.unwrapped.scenario.capacity_rps()
    assert len(seen) >= 10
    assert env.unwrapped.scenario_name == "random"


# -- fuzzing -----------------------------------------------------------------------------------------
def _fuzz(env_id: str, seed: int, steps: int, horizon_s: float = 20.0) -> int:
    """Random actions over random scenarios, resetting at episode ends; returns the episodes."""
    env = gym.make(env_id, scenario="random", horizon_s=horizon_s)
    space = env.observation_space
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    assert obs in space
    episodes = 0
    for t in range(steps):
        action = int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, info = env.step(action)
        where = f"{env_id} seed {seed} step {t}: scenario {info['scenario']}"
        assert obs.dtype == np.float32 and np.all(np.isfinite(obs)), where
        assert obs in space, where
        assert isinstance(reward, float) and np.isfinite(reward), where
        assert all(np.isfinite(v) for v in info["reward_terms"].values()), where
        assert not (terminated and truncated)
        if terminated or truncated:
            assert "episode_kpis" in info, where
            episodes += 1
            obs, info = env.reset(seed=int(rng.integers(2**31)))
            assert obs in space
    return episodes


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_fuzz_random_actions_fast(env_id):
    """250 steps per env (500 in total) on short episodes so that several resets happen."""
    assert _fuzz(env_id, seed=100, steps=250, horizon_s=8) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_fuzz_random_actions_10k(env_id, seed):
    """2,500 steps x 2 seeds x 2 envs = 10,000 random-action steps over random scenarios."""
    assert _fuzz(env_id, seed=seed, steps=2500) >= 10


# -- load patterns and the shifting prompt mix ----------------------------------------------------
def test_every_preset_names_its_phenomenon():
    from servegym.envs.scenarios import PRESET_PHENOMENA

    assert set(PRESET_PHENOMENA) == set(CHUNK_PRESETS) | set(SPEC_PRESETS)
    assert all(text for text in PRESET_PHENOMENA.values())


@pytest.mark.parametrize(
    "fields",
    [
        dict(burst_factor=2.0, burst_s=10.0, calm_s=40.0),
        dict(diurnal_amplitude=0.6, diurnal_period_s=100.0),
        dict(rate_steps=((0.0, 0.5), (50.0, 2.0), (100.0, 1.0))),
    ],
)
def test_load_patterns_keep_the_offered_mean_rate(fields):
    sc = ServingScenario(load=0.7, horizon_s=200.0, **fields)
    arrivals = sc.arrivals()
    counts = [len(arrivals.sample(np.random.default_rng(s), sc.horizon_s)) for s in range(40)]
    assert np.mean(counts) / sc.horizon_s == pytest.approx(sc.offered_rate(), rel=0.06)


def test_rate_steps_shape_the_rate_over_time():
    sc = ServingScenario(load=0.7, horizon_s=200.0, rate_steps=((0.0, 1.0), (100.0, 3.0)))
    times = sc.arrivals().sample(np.random.default_rng(0), sc.horizon_s)
    assert np.count_nonzero(times >= 100) > 2.3 * np.count_nonzero(times < 100)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(burst_factor=2.0, diurnal_amplitude=0.5), "one load pattern at a time"),
        (dict(burst_factor=2.0, arrival_cv=2.0), "arrival_cv must be 1.0"),
        (dict(burst_factor=10.0, burst_s=15.0, calm_s=60.0), "burst_factor <="),
        (dict(diurnal_amplitude=1.5), "diurnal_amplitude must be in"),
        (dict(rate_steps=((10.0, 1.0), (0.0, 2.0))), "rate_steps must be"),
        (dict(rate_steps=((0.0, 0.0),)), "positive rate somewhere"),
        (dict(long_share_steps=((0.0, 1.5),)), "shares must be in"),
        (dict(long_lengths="nope"), "nope"),
    ],
)
def test_bad_load_patterns_name_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        ServingScenario(**fields)


def test_doc_shift_mixes_long_prompts_in_its_phases_and_in_its_capacity():
    steps = ((0.0, 0.0), (60.0, 0.5), (120.0, 0.0))
    sc = ServingScenario(horizon_s=180.0, long_share_steps=steps)
    requests = sc.workload().sample(np.random.default_rng(0), sc.horizon_s)
    t, p = requests.arrival_s, requests.prompt_tokens
    calm, shifted = p[(t < 60) | (t >= 120)], p[(t >= 60) & (t < 120)]
    assert np.median(shifted) > 1.4 * np.median(calm)
    plain = ServingScenario(horizon_s=180.0)
    assert sc.mean_lengths()[0] > plain.mean_lengths()[0]
    assert sc.capacity_rps() < plain.capacity_rps()
