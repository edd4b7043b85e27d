"""The MEC roll-out oracles are upper bounds on every heuristic, and their roll-outs are exact."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

import servegym  # noqa: F401  (registers the ids)
from servegym import baselines
from servegym.envs.edge import rules
from servegym.experiments.compare import run_episode

MEC_ID = "servegym/MecOffload-v0"
SPLIT_ID = "servegym/DnnSplit-v0"
ORACLES = {MEC_ID: "mec-lookahead-oracle", SPLIT_ID: "split-lookahead-oracle"}


def _costs(env_id: str, preset: str, seeds) -> dict[str, np.ndarray]:
    """Per controller (heuristics and the oracle): cost_per_task per seed."""
    env = gym.make(env_id, scenario=preset)
    out = {}
    for name in [*baselines.heuristics(env_id), ORACLES[env_id]]:
        controller = baselines.make(name, **({"env": env} if "oracle" in name else {}))
        out[name] = np.array([run_episode(env, controller, s)["cost_per_task"] for s in seeds])
    return out


def _assert_upper_bound(costs: dict[str, np.ndarray], oracle: str) -> None:
    best = min((n for n in costs if n != oracle), key=lambda n: costs[n].mean())
    # per seed (fortified roll-out from every heuristic: never worse on any episode), so on the mean
    for name, c in costs.items():
        assert np.all(costs[oracle] <= c + 1e-9), (name, costs[oracle], c)
    assert costs[oracle].mean() <= costs[best].mean() + 1e-12


@pytest.mark.parametrize("env_id", [MEC_ID, SPLIT_ID])
def test_oracle_is_an_upper_bound_on_a_congested_preset(env_id):
    costs = _costs(env_id, "camera-fleet", range(2))
    _assert_upper_bound(costs, ORACLES[env_id])
    best = min(baselines.heuristics(env_id), key=lambda n: costs[n].mean())
    assert costs[ORACLES[env_id]].mean() < 0.95 * costs[best].mean()  # it finds what greedy misses


@pytest.mark.slow
@pytest.mark.parametrize("env_id", [MEC_ID, SPLIT_ID])
@pytest.mark.parametrize(
    "preset", ["default", "far-cell", "camera-fleet-busy", "camera-fleet-far", "camera-fleet-mixed"]
)
def test_oracle_is_an_upper_bound_over_presets_and_seeds(env_id, preset):
    _assert_upper_bound(_costs(env_id, preset, range(4)), ORACLES[env_id])


@pytest.mark.parametrize("env_id", [MEC_ID, SPLIT_ID])
def test_tiled_rollouts_replay_the_env_exactly(env_id):
    """A copy of the system (``tile``) stepped with the env's actions gives the env's costs."""
    env = gym.make(env_id, scenario="camera-fleet")
    obs, info = env.reset(seed=3)
    core = env.unwrapped
    tiled = core.system.tile(0, 3)
    split = env_id == SPLIT_ID
    greedy = baselines.make("neurosurgeon-weighted" if split else "greedy-weighted")
    rng = np.random.default_rng(0)
    costs, replay = [], []
    done = False
    while not done:
        a = greedy.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(a)
        costs.append(-reward)
        actions = np.full(3, a, dtype=np.int64)
        if split:
            tiled.apply_split(actions, rng)
            tiled.observe()
        else:
            tiled.step(actions, rng)
        replay.append(tiled.result[:, rules.R_COST].copy())
        done = terminated or truncated
    np.testing.assert_array_equal(np.array(replay), np.repeat(np.array(costs)[:, None], 3, axis=1))


def test_oracle_does_not_touch_the_env_it_controls():
    env = gym.make(MEC_ID, scenario="camera-fleet")
    oracle = baselines.make("mec-lookahead-oracle", env=env)
    obs, info = env.reset(seed=1)
    oracle.reset(1)
    before = copy.deepcopy(env.unwrapped.system.__getstate__())
    oracle.act(obs, info)
    after = env.unwrapped.system.__getstate__()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, after[key], err_msg=key)
    assert oracle.base_costs and oracle.name == "MecRolloutOracle"


def test_oracles_stay_out_of_the_heuristics():
    assert not any("oracle" in n for n in baselines.heuristics(MEC_ID) + baselines.heuristics(SPLIT_ID))
    assert "neurosurgeon-weighted" in baselines.heuristics(SPLIT_ID)
