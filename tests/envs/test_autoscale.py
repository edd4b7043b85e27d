"""Autoscale-v0 beyond the conformance suite: actions and masks, rewards, scenarios, bad input,
every heuristic, and the oracle as an upper bound."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import servegym  # noqa: F401 - registers the ids
from servegym import baselines
from servegym.envs.autoscale import AUTOSCALE_PRESETS, AutoscaleEnv, AutoscaleScenario, action_for_target

ENV_ID = "servegym/Autoscale-v0"
TRACE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "traces" / "azure_llm_2023_conv.csv"


def _episode(env: gym.Env, controller, seed: int) -> tuple[float, dict]:
    obs, info = env.reset(seed=seed)
    controller.reset(seed)
    total = 0.0
    while True:
        obs, reward, terminated, truncated, info = env.step(controller.act(obs, info))
        total += reward
        if terminated or truncated:
            return total, info["episode_kpis"]


def test_every_autoscaler_is_registered_and_runs():
    names = baselines.list(ENV_ID)
    expected = {
        "static-mean",
        "static-peak",
        "hpa",
        "kpa",
        "keda-queue",
        "apa",
        "llumnix",
        "capacity-planner",
    }
    assert expected | {"next-window-oracle"} <= set(names)
    env = gym.make(ENV_ID, episode_s=600)
    for name in names:
        controller = baselines.make(name, **({"env": env} if "oracle" in name else {}))
        total, kpis = _episode(env, controller, 0)
        assert np.isfinite(total) and kpis["duration_s"] == pytest.approx(600.0)
        assert 0.0 <= kpis["slo_attainment"] <= 1.0 and kpis["cost_usd"] > 0


def test_delta_actions_change_the_count_and_bounds_clamp_and_mask():
    env = AutoscaleEnv(max_replicas=6, min_replicas=2, initial_replicas=2, max_step=2)
    env.reset(seed=0)
    assert env.action_space.n == 5
    np.testing.assert_array_equal(env.action_masks(), [False, False, True, True, True])
    env.step(4)  # +2
    assert env.pool.active == 4
    env.step(0)  # -2
    assert env.pool.active == 2
    env.step(0)  # masked: clamped at min_replicas
    assert env.pool.active == 2


def test_target_actions_set_the_count():
    env = AutoscaleEnv(action_mode="target", max_replicas=8, min_replicas=1)
    _, info = env.reset(seed=1)
    assert env.action_space.n == 9 and not info["action_mask"][0] and info["action_mask"][1:].all()
    env.step(5)
    assert env.pool.active == 5
    assert action_for_target(env._info({}), 7) == 7


def test_reward_is_the_preference_weighted_vector():
    env = AutoscaleEnv(preference=0.3, episode_s=300)
    env.reset(seed=2)
    _, reward, _, _, info = env.step(env.action_for(8))
    cost, slo = info["reward_vec"]
    assert info["reward_terms"] == {"cost": cost, "slo": slo}
    assert reward == pytest.approx(0.3 * cost + 0.7 * slo)
    assert -1.0 <= cost < 0.0 and slo <= 0.0


def test_the_primary_kpi_is_minus_the_return_and_its_terms_add_up():
    env = AutoscaleEnv("llama3-8b-a100-flash-crowd", preference=0.4, episode_s=600)
    env.reset(seed=5)
    rng, total, sums, done = np.random.default_rng(0), 0.0, np.zeros(2), False
    while not done:
        _, reward, _, done, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
        total += reward
        sums += info["reward_vec"]
    kpis = info["episode_kpis"]
    assert kpis[env.PRIMARY_KPI] == pytest.approx(-total, rel=1e-9)
    assert (kpis["cost_term"], kpis["slo_term"]) == pytest.approx(tuple(-sums), rel=1e-9)
    assert kpis["weighted_cost"] == pytest.approx(0.4 * kpis["cost_term"] + 0.6 * kpis["slo_term"])


def test_a_random_scenario_draws_a_training_preset_per_episode():
    from servegym.envs.autoscale_scenarios import TRAINING_PRESETS

    env = AutoscaleEnv("random", episode_s=600)
    arrivals = set()
    for seed in range(8):
        _, info = env.reset(seed=seed)
        sc = info["scenario"]
        assert any(sc == AutoscaleEnv(p, episode_s=600).scenario for p in TRAINING_PRESETS)
        arrivals.add(sc.arrivals)
        assert info["metrics"]["replica_capacity_rps"] == sc.capacity_rps
    assert len(arrivals) >= 2
    _, first = env.reset(seed=3)
    _, again = env.reset(seed=3)
    assert first["scenario"] == again["scenario"]


def test_random_preference_is_drawn_per_episode_and_observed():
    env = AutoscaleEnv(preference="random", episode_s=300)
    seen = set()
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        w = info["metrics"]["preference"]
        assert obs[-1] == pytest.approx(w) and info["reward_weights"]["cost"] == w
        seen.add(round(w, 6))
    assert len(seen) == 5


@pytest.mark.parametrize("preset", sorted(AUTOSCALE_PRESETS))
def test_presets_build_and_size_traffic_in_replicas(preset):
    env = AutoscaleEnv(preset, episode_s=600)
    env.reset(seed=3)
    sc = env.scenario
    assert sc.capacity_rps > 0 and sc.peak_rate() >= sc.mean_rate
    arrivals = len(env._arrival_times) / (sc.episode_s + sc.decision_interval_s)
    assert 0.3 * sc.mean_rate < arrivals < 3.0 * sc.mean_rate


@pytest.mark.skipif(not TRACE.exists(), reason="shared Azure trace not available")
def test_trace_replay_scenario():
    env = AutoscaleEnv(arrivals="trace", trace_path=str(TRACE), mean_load=4.0, episode_s=900)
    first = env.reset(seed=0)[0]
    assert not np.array_equal(first, env.reset(seed=1)[0])  # another offset and rate per episode
    _, kpis = _episode(env, baselines.make("capacity-planner"), 0)
    assert kpis["requests"] > 0.5 * env.scenario.mean_rate * 900


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mean_load": 0.0}, "mean_load must be"),
        ({"min_replicas": 5, "max_replicas": 4}, "min_replicas must be at most"),
        ({"arrivals": "weekly"}, "arrivals must be one of"),
        ({"arrivals": "trace"}, "needs trace_path"),
        ({"decision_interval_s": 2.5}, "whole number of seconds"),
        ({"lengths": "novels"}, "novels"),
        ({"cold_start_tier": "tape"}, "tier must be one of"),
        ({"device": "l4", "max_num_seqs": 64}, "gpu_price_per_hour"),
        ({"replicas": 3}, "unknown autoscale scenario field"),
        ({"fidelity": "exact"}, "fidelity must be one of"),
        ({"action_mode": "absolute"}, "action_mode must be one of"),
        ({"preference": 1.5}, "preference must be"),
    ],
)
def test_bad_input_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **kwargs)


def test_unknown_preset_lists_presets_and_malformed_trace_is_refused(tmp_path):
    with pytest.raises(ValueError, match="presets"):
        gym.make(ENV_ID, scenario="llama-on-a-toaster")
    bad = tmp_path / "trace.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,abc,10\n")
    with pytest.raises(ValueError, match=r"trace\.csv"):
        env = gym.make(ENV_ID, arrivals="trace", trace_path=str(bad))
        env.reset(seed=0)


def test_scenario_object_is_accepted():
    env = AutoscaleEnv(AutoscaleScenario(mean_load=2.0, max_replicas=4, episode_s=300))
    assert env.scenario_name == "custom"
    env.reset(seed=0)
    assert env.step(env.action_for(3))[0] in env.observation_space


@pytest.mark.slow
def test_engine_fidelity_runs_the_same_decisions():
    fast, engine = (gym.make(ENV_ID, episode_s=300, fidelity=f) for f in ("fast", "engine"))
    planner = baselines.make("capacity-planner")
    (r_fast, k_fast), (r_engine, k_engine) = _episode(fast, planner, 4), _episode(engine, planner, 4)
    assert k_engine["requests"] == k_fast["requests"]
    assert k_engine["mean_replicas"] == pytest.approx(k_fast["mean_replicas"], rel=0.1)
    assert r_engine == pytest.approx(r_fast, rel=0.25)


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(AUTOSCALE_PRESETS))
def test_oracle_is_an_upper_bound_on_every_heuristic(preset):
    """Paired over seeds: the oracle's mean return is at least the best heuristic's, within the
    paired differences' 95% interval."""
    seeds = range(3)
    returns: dict[str, list[float]] = {}
    for name in baselines.list(ENV_ID):
        for seed in seeds:
            env = gym.make(ENV_ID, scenario=preset, episode_s=1800)
            controller = baselines.make(name, **({"env": env} if "oracle" in name else {}))
            returns.setdefault(name, []).append(_episode(env, controller, seed)[0])
    oracle = np.array(returns.pop("next-window-oracle"))
    best = max(returns, key=lambda n: np.mean(returns[n]))
    diff = oracle - np.array(returns[best])
    half_width = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
    assert diff.mean() + half_width >= 0.0, (best, returns[best], oracle.tolist())


def test_planner_mode_at_0_9_is_the_capacity_planner_exactly():
    from servegym.envs.autoscale import PLANNER_HEADROOMS
    from servegym.experiments.compare import run_episode

    class Constant:
        name = "constant"

        def reset(self, seed=None):
            pass

        def act(self, obs, info):
            assert info["action_mask"].all()
            return PLANNER_HEADROOMS.index(0.9)

    kwargs = dict(scenario="llama3-8b-a100-flash-crowd", episode_s=900)
    planner = run_episode(AutoscaleEnv(action_mode="planner", **kwargs), Constant(), 7)
    reference = run_episode(
        AutoscaleEnv(action_mode="target", **kwargs), baselines.make("capacity-planner"), 7
    )
    assert planner == reference
    env = AutoscaleEnv(action_mode="planner", **kwargs)
    assert env.action_space.n == len(PLANNER_HEADROOMS) and "0.5 x capacity" in env.get_action_meanings()[0]
