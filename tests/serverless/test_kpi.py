"""ServerlessAutoscale-v0's primary KPI is minus the return (the reward rule it shares with
Autoscale-v0)."""

from __future__ import annotations

import numpy as np
import pytest

from servegym.envs.serverless import ServerlessAutoscaleEnv


def test_the_primary_kpi_is_minus_the_return():
    env = ServerlessAutoscaleEnv("bursty", preference=0.3, episode_s=600)
    env.reset(seed=4)
    rng, total, done = np.random.default_rng(1), 0.0, False
    while not done:
        _, reward, _, done, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
        total += reward
    kpis = info["episode_kpis"]
    assert env.PRIMARY_KPI == "weighted_cost" and env.PRIMARY_KPI_GOAL == "min"
    assert kpis["weighted_cost"] == pytest.approx(-total, rel=1e-9)
    assert kpis["weighted_cost"] == pytest.approx(0.3 * kpis["cost_term"] + 0.7 * kpis["slo_term"])
