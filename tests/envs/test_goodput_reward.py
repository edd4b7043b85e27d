"""The serving envs' reward measures their primary KPI, goodput: the return is exactly
100 x goodput / offered rate, its terms add up, and the oracles' lean ``advance`` is ``step``."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

from servegym import baselines
from servegym.envs.serving.requests import FINISHED
from servegym.envs.serving.summary import good_mask, summarize

from ._helpers import CHUNK_ID, ENV_IDS, SPEC_ID

CASES = [
    (CHUNK_ID, "llama3-8b-a100-code", "pressure-rule"),
    (CHUNK_ID, "llama3-8b-a100-bursty", "sarathi-default"),
    (SPEC_ID, "llama2-7b-68m-mixed-domains", "smartspec"),
    (SPEC_ID, "llama2-7b-68m-tight-slo", "fixed-k"),
]


def _episode(env: gym.Env, controller, seed: int) -> tuple[float, list[dict], dict]:
    obs, info = env.reset(seed=seed)
    controller.reset(seed)
    total, terms, done = 0.0, [], False
    while not done:
        obs, reward, terminated, truncated, info = env.step(controller.act(obs, info))
        total += reward
        terms.append((reward, dict(info["reward_terms"])))
        done = terminated or truncated
    return total, terms, info


def _good_requests(engine) -> int:
    """Finished requests within both SLOs, counted from the request table at the end."""
    table, cfg = engine.requests, engine.config
    finished = np.flatnonzero(table.status == FINISHED)
    mask = good_mask(
        finished, table.arrival_s, table.first_token_s, table.finished_s, table.output_tokens,
        cfg.ttft_slo_s, cfg.tpot_slo_s,
    )  # fmt: skip
    return int(mask.sum())


@pytest.mark.parametrize(("env_id", "preset", "name"), CASES)
def test_return_is_100_x_goodput_over_offered_rate(env_id, preset, name):
    env = gym.make(env_id, scenario=preset, horizon_s=25)
    total, terms, info = _episode(env, baselines.make(name), seed=1)
    core = env.unwrapped
    sc = core.scenario
    kpis = info["episode_kpis"]
    good = _good_requests(core.engine)
    assert good == core.good_so_far() > 0
    assert kpis[core.PRIMARY_KPI] == pytest.approx(good / sc.horizon_s, rel=1e-12)
    assert total == pytest.approx(100.0 * kpis[core.PRIMARY_KPI] / sc.offered_rate(), rel=1e-9)
    # the summary's own count of good requests (over its duration) agrees
    summary = summarize(core.engine)
    assert summary["goodput_requests_per_s"] * summary["duration_s"] == pytest.approx(good, rel=1e-9)
    for reward, step_terms in terms:
        assert set(step_terms) == {"finished", "missed_slo"}
        assert step_terms["finished"] >= 0 >= step_terms["missed_slo"] >= -step_terms["finished"]
        assert reward == pytest.approx(step_terms["finished"] + step_terms["missed_slo"], abs=1e-12)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_a_better_return_is_a_better_kpi(env_id):
    """Over every heuristic on one preset and seed, return and KPI rank the controllers alike."""
    preset = "llama3-8b-a100-code" if env_id == CHUNK_ID else "llama2-7b-68m-mixed-domains"
    env = gym.make(env_id, scenario=preset, horizon_s=20)
    pairs = []
    for name in baselines.heuristics(env_id):
        total, _, info = _episode(env, baselines.make(name), seed=0)
        pairs.append((total, info["episode_kpis"]["goodput_requests_per_s"]))
    by_return = sorted(pairs)
    assert [k for _, k in by_return] == sorted(k for _, k in pairs)
    assert len({round(k, 9) for _, k in pairs}) > 1  # the controllers differ on this preset


def test_an_episode_that_ends_early_scores_zero_for_the_rest():
    env = gym.make(CHUNK_ID, scenario="llama3-8b-a100-chat-strict", load=5.0, horizon_s=120)
    total, _, info = _episode(env, baselines.make("fixed-budget", budget=128), seed=0)
    kpis = info["episode_kpis"]
    assert kpis["duration_s"] < 100  # the queue exploded
    good = env.unwrapped.good_so_far()
    assert kpis["goodput_requests_per_s"] == pytest.approx(good / 120.0)
    assert total == pytest.approx(100.0 * good / 120.0 / env.unwrapped.scenario.offered_rate())


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_advance_is_step_without_the_observation(env_id):
    env = gym.make(env_id, horizon_s=15)
    core = env.unwrapped
    env.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(10):
        core.step(int(rng.integers(core.action_space.n)))
    twin = copy.deepcopy(core)
    done = False
    while not done:
        action = int(rng.integers(core.action_space.n))
        _, reward, terminated, truncated, _ = core.step(action)
        reward_twin, done_twin = twin.advance(action)
        done = terminated or truncated
        assert (reward_twin, done_twin) == (reward, done)
    assert twin.good_so_far() == core.good_so_far()
    assert core.good_so_far() <= core.still_possible() <= core.engine.next_arrival


@pytest.mark.parametrize(
    ("env_id", "weights"), [(CHUNK_ID, {"missed_slo": 2.0}), (SPEC_ID, {"finished": 0.5})]
)
def test_reward_weights_reweigh_the_terms(env_id, weights):
    env = gym.make(env_id, horizon_s=10, reward_weights=weights)
    env.reset(seed=0)
    w = env.unwrapped.reward_weights
    for _ in range(30):
        _, reward, terminated, truncated, info = env.step(1)
        t = info["reward_terms"]
        assert reward == pytest.approx(w["finished"] * t["finished"] + w["missed_slo"] * t["missed_slo"])
        if terminated or truncated:
            break
