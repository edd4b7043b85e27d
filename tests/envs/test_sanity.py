"""The issue's sanity claims about the heuristics, checked on 120 s episodes with a fixed seed
(episode KPIs from ``info["episode_kpis"]``)."""

from __future__ import annotations

import dataclasses
import functools
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from servegym import baselines
from servegym.envs.serving.engine import ServingEngine
from servegym.envs.serving.summary import summarize

from ._helpers import CHUNK_ID, SPEC_ID, run_episode

HORIZON_S = 120.0
SEED = 0
pytestmark = pytest.mark.slow


@functools.cache
def _spec_kpis(scenario: str, controller: str, **params: int) -> dict[str, float]:
    env = gym.make(SPEC_ID, scenario=scenario, horizon_s=HORIZON_S)
    _, info, _ = run_episode(env, baselines.make(controller, **params), seed=SEED)
    return info["episode_kpis"]


def test_smartspec_beats_no_speculation_at_low_load():
    scenario = "llama2-7b-68m-lowload-chat"
    smart = _spec_kpis(scenario, "smartspec")["e2e_mean_s"]
    k0 = _spec_kpis(scenario, "fixed-k", k=0)["e2e_mean_s"]
    assert smart < k0, f"SmartSpec e2e {smart:.3f} s vs k=0 {k0:.3f} s"


def test_smartspec_is_safe_and_fixed_5_hurts_at_high_load_short_context():
    scenario = "llama3-8b-1b-h100-highload-short"
    k0 = _spec_kpis(scenario, "fixed-k", k=0)["e2e_mean_s"]
    smart = _spec_kpis(scenario, "smartspec")["e2e_mean_s"]
    k5 = _spec_kpis(scenario, "fixed-k", k=5)["e2e_mean_s"]
    assert smart <= 1.10 * k0, f"SmartSpec e2e {smart:.3f} s vs k=0 {k0:.3f} s"
    assert k5 >= 1.20 * k0, f"Fixed(5) e2e {k5:.3f} s vs k=0 {k0:.3f} s"


def test_sarathi_static_has_lower_p99_tbt_than_prefill_first_at_strict_slo():
    env = gym.make(CHUNK_ID, scenario="llama3-8b-a100-chat-strict", horizon_s=HORIZON_S)
    env.reset(seed=SEED)
    engine = env.unwrapped.engine
    requests = SimpleNamespace(
        arrival_s=engine.requests.arrival_s.copy(),
        prompt_tokens=engine.requests.prompt_tokens.copy(),
        output_tokens=engine.requests.output_tokens.copy(),
    )
    assert len(requests.arrival_s) > 100
    _, info, terminated = run_episode(env, baselines.make("sarathi-static"), seed=SEED)
    assert not terminated
    sarathi = info["episode_kpis"]

    scenario = env.unwrapped.scenario
    config = dataclasses.replace(scenario.engine_config(), policy="prefill_first", token_budget=8192)
    baseline = ServingEngine(config, requests, np.random.default_rng(SEED))
    baseline.run_until(scenario.horizon_s)
    prefill_first = summarize(baseline)
    assert prefill_first["duration_s"] == pytest.approx(sarathi["duration_s"], abs=1.0)
    assert sarathi["tbt_p99_s"] < prefill_first["tbt_p99_s"], (
        sarathi["tbt_p99_s"],
        prefill_first["tbt_p99_s"],
    )
