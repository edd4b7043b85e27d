"""The oracles are upper bounds: over several presets and seeds, each lookahead oracle's return
is at least every heuristic's (per seed, so its mean is at least the best heuristic's mean), and
the best static budget is at least every fixed budget. Short horizons keep this affordable."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from servegym import baselines
from servegym.baselines.chunk import FixedBudget
from servegym.envs.chunked_prefill import BUDGET_MENU
from servegym.experiments.compare import run_episode

from ._helpers import CHUNK_ID, SPEC_ID

SEEDS = (0, 1)
CASES = [
    (CHUNK_ID, "lookahead-oracle", "llama3-8b-a100-code", 30.0),
    (CHUNK_ID, "lookahead-oracle", "llama3-8b-a100-bursty", 30.0),
    (CHUNK_ID, "lookahead-oracle", "llama2-70b-a100x4-code", 30.0),
    (SPEC_ID, "spec-lookahead-oracle", "llama2-7b-68m-mixed-domains", 15.0),
    (SPEC_ID, "spec-lookahead-oracle", "llama2-7b-68m-tight-slo", 15.0),
]


@pytest.mark.slow
@pytest.mark.parametrize(("env_id", "oracle", "preset", "horizon_s"), CASES)
def test_lookahead_oracle_is_an_upper_bound_on_the_heuristics(env_id, oracle, preset, horizon_s):
    env = gym.make(env_id, scenario=preset, horizon_s=horizon_s)
    controller = baselines.make(oracle, env=env, replan_every=4)
    heuristics = {name: [] for name in baselines.heuristics(env_id)}
    oracle_returns = []
    for seed in SEEDS:
        for name, returns in heuristics.items():
            returns.append(run_episode(env, baselines.make(name), seed)["return"])
        oracle_returns.append(run_episode(env, controller, seed)["return"])
        # the episode it played is the incumbent it planned (the simulator is exact)
        assert oracle_returns[-1] == pytest.approx(controller.plan.total, abs=1e-9)
        assert controller.plan.total >= max(controller.base_returns.values()) - 1e-9
    best = max(heuristics, key=lambda n: np.mean(heuristics[n]))
    for name, returns in heuristics.items():
        assert all(o >= h - 1e-9 for o, h in zip(oracle_returns, returns, strict=True)), (name, returns)
    assert np.mean(oracle_returns) >= np.mean(heuristics[best]) - 1e-9
    assert np.mean(oracle_returns) > 0


@pytest.mark.parametrize("preset", ["llama3-8b-a100-code", "llama2-70b-a100x4-code"])
def test_best_static_oracle_is_an_upper_bound_on_fixed_budgets(preset):
    env = gym.make(CHUNK_ID, scenario=preset, horizon_s=20)
    oracle = baselines.make("best-static-oracle", env=env)
    best = run_episode(env, oracle, 3)["return"]
    for budget in BUDGET_MENU:
        assert best >= run_episode(env, FixedBudget(budget), 3)["return"] - 1e-9


def test_lookahead_oracle_replans_and_improves_on_its_start():
    """On a preset with headroom, the roll-outs find episodes better than every base controller."""
    env = gym.make(CHUNK_ID, scenario="llama3-8b-a100-code", horizon_s=40)
    oracle = baselines.make("lookahead-oracle", env=env, replan_every=4)
    total = run_episode(env, oracle, 0)["return"]
    assert oracle.improvements > 0
    assert total > max(oracle.base_returns.values())
    assert {"constant 0", "constant 10", "PressureRule"} <= set(oracle.base_returns)
