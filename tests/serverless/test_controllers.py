"""Controllers of ServerlessAutoscale-v0: registry, keep-alive policies, and the oracle's dominance."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import servegym  # noqa: F401 - registers the ids
from servegym import baselines
from servegym.baselines.serverless import HybridHistogram
from servegym.envs.serverless_scenarios import SERVERLESS_PRESETS
from servegym.experiments.compare import check_controllers, make_controller, run_episode

ENV_ID = "servegym/ServerlessAutoscale-v0"
AUTOSCALE_ID = "servegym/Autoscale-v0"
ORACLE = "serverless-next-window-oracle"
MODE = baselines.SERVERLESS_ACTION_MODES
HEURISTICS = [name for name in MODE if name != ORACLE]


def test_registry_lists_every_serverless_controller_and_shared_names():
    assert set(baselines.list(ENV_ID)) == set(MODE)
    for shared in ("kpa", "hpa", "static-mean", "static-peak", "capacity-planner"):
        assert baselines.env_ids(shared) == (AUTOSCALE_ID, ENV_ID)
        assert shared in baselines.list(AUTOSCALE_ID)
        assert baselines.describe(shared)[0] == AUTOSCALE_ID
    assert baselines.env_ids("hybrid-histogram") == (ENV_ID,)
    check_controllers(ENV_ID, ["kpa", "hybrid-histogram"])
    with pytest.raises(ValueError, match="is a controller for servegym/Autoscale-v0, not"):
        check_controllers(ENV_ID, ["apa"])


@pytest.mark.parametrize("name", HEURISTICS)
def test_each_heuristic_runs_an_episode_with_valid_actions(name):
    env = gym.make(ENV_ID, scenario="bursty", action_mode=MODE[name], episode_s=300)
    controller = make_controller(name, env)
    _, info = env.reset(seed=1)
    controller.reset(1)
    done = False
    while not done:
        action = controller.act(None, info)
        assert info["action_mask"][action], (name, action)
        _, _, _, done, info = env.step(action)
    assert info["episode_kpis"]["completed"] > 0


@pytest.mark.parametrize("name", ["keep-alive-lambda", "hybrid-histogram", "knative-default", ORACLE])
def test_a_controller_in_the_wrong_action_mode_says_which_it_needs(name):
    env = gym.make(ENV_ID, action_mode="delta" if MODE[name] != "target" else "keep-alive")
    _, info = env.reset(seed=0)
    with pytest.raises(ValueError, match="controls action_mode"):
        make_controller(name, env).act(None, info)


def test_fixed_keep_alive_picks_its_menu_entries():
    env = gym.make(ENV_ID, action_mode="keep-alive")
    _, info = env.reset(seed=0)
    for name, minutes in (("keep-alive-lambda", 10), ("keep-alive-azure", 20)):
        action = baselines.make(name).act(None, info)
        assert env.unwrapped.keep_alive_for(action) == (0.0, 60.0 * minutes)


def test_hybrid_histogram_windows_follow_the_paper():
    hh = HybridHistogram()
    hh.reset()
    assert hh.windows() == (0.0, 4 * 3600.0)  # nothing seen: uncertain, keep the whole range
    hh.bins[4] = 50  # idle times of 4-5 minutes (a 5-minute timer): a certain pattern
    hh.bins[0] = 1
    pre, keep = hh.windows()
    assert pre == pytest.approx(4 * 60 * 0.9) and keep == pytest.approx(5 * 60 * 1.1)
    hh.bins[:] = 1  # flat over the range: CV 0, uncertain
    assert hh.windows() == (0.0, 4 * 3600.0)
    hh.bins[:] = 0
    hh.bins[2] = 1
    hh.out_of_range = [5 * 3600.0, 6 * 3600.0, 7 * 3600.0]  # most idle times beyond 4 h: forecast
    pre, keep = hh.windows()
    assert pre == pytest.approx(0.85 * 8 * 3600.0) and keep == pytest.approx(0.3 * 8 * 3600.0)


def test_hybrid_histogram_learns_a_timer_and_pre_warms():
    # one invocation per firing (with a batch, later invocations of a firing see idle times near 0,
    # so the 5th-percentile head is bin 0 and the policy does not pre-warm, as in dslab)
    env = gym.make(ENV_ID, scenario="timer", timer_batch=1, action_mode="keep-alive", episode_s=3600)
    hh = baselines.make("hybrid-histogram")
    _, info = env.reset(seed=0)
    hh.reset(0)
    done = False
    while not done:
        _, _, _, done, info = env.step(hh.act(None, info))
    pre, keep = hh.windows()
    assert pre == pytest.approx(4 * 60 * 0.9) and keep == pytest.approx(5 * 60 * 1.1)
    assert info["episode_kpis"]["cold_start_requests"] <= 2  # pre-warmed in time after learning


def _returns(scenario: str, seed: int, episode_s: float) -> dict[str, float]:
    out = {}
    for name, mode in MODE.items():
        env = gym.make(ENV_ID, scenario=scenario, action_mode=mode, episode_s=episode_s)
        out[name] = run_episode(env, make_controller(name, env), seed)["return"]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(SERVERLESS_PRESETS))
def test_oracle_scores_at_least_every_heuristic_on_every_preset(scenario):
    for seed in range(3):
        returns = _returns(scenario, seed, 600.0)
        oracle = returns.pop(ORACLE)
        best = max(returns, key=returns.get)
        assert oracle >= returns[best] - 1e-9, (scenario, seed, best, returns[best], oracle)


def test_oracle_scores_at_least_every_heuristic_on_a_short_episode():
    returns = _returns("flash-crowd", 0, 300.0)
    oracle = returns.pop(ORACLE)
    assert oracle >= max(returns.values())
    assert np.isfinite(oracle)
