"""The heuristic and oracle controllers of servegym.baselines: registry, protocol, validity."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from servegym import baselines
from servegym.baselines.chunk import ENGINE_DEFAULTS
from servegym.controller import Controller
from servegym.envs.chunked_prefill import BUDGET_MENU
from servegym.envs.spec_decode import K_MAX

from ._helpers import CHUNK_ID, SPEC_ID, assert_same_step, run_episode

CHUNK_NAMES = {
    "fixed-budget",
    "sarathi-default",
    "vllm-a100-default",
    "vllm-h100-default",
    "sglang-default",
    "fastgen-default",
    "sarathi-static",
    "slack-feedback",
    "pressure-rule",
    "best-static-oracle",
    "lookahead-oracle",
}
SPEC_NAMES = {
    "fixed-k",
    "disable-by-batch-size",
    "batch-size-table",
    "smartspec",
    "sglang-ema",
    "spec-lookahead-oracle",
}
ORACLES = ("best-static-oracle", "lookahead-oracle", "spec-lookahead-oracle")
# New serving controllers get tested too (MEC controllers are tested in tests/mec).
ALL_NAMES = sorted(set(baselines.list(CHUNK_ID)) | set(baselines.list(SPEC_ID)) | CHUNK_NAMES | SPEC_NAMES)
HEURISTICS = [name for name in ALL_NAMES if "oracle" not in name]


def _env_for(name: str, horizon_s: float) -> gym.Env:
    return gym.make(baselines.describe(name)[0], horizon_s=horizon_s)


def _make(name: str, env: gym.Env):
    return baselines.make(name, env=env) if "oracle" in name else baselines.make(name)


# -- registry -------------------------------------------------------------------------------------
def test_list_covers_the_expected_names():
    names = baselines.list()
    assert names == sorted(names) and len(set(names)) == len(names)
    assert set(names) >= CHUNK_NAMES | SPEC_NAMES
    assert set(baselines.list(CHUNK_ID)) >= CHUNK_NAMES
    assert set(baselines.list(SPEC_ID)) >= SPEC_NAMES
    assert set(baselines.list(CHUNK_ID)) | set(baselines.list(SPEC_ID)) <= set(names)
    assert not set(baselines.list(CHUNK_ID)) & set(baselines.list(SPEC_ID))
    assert baselines.list("servegym/NoSuchEnv-v0") == []


@pytest.mark.parametrize("name", ALL_NAMES)
def test_describe(name):
    env_id, text = baselines.describe(name)
    assert env_id in (CHUNK_ID, SPEC_ID)
    if name in CHUNK_NAMES | SPEC_NAMES:
        assert env_id == (CHUNK_ID if name in CHUNK_NAMES else SPEC_ID)
    assert isinstance(text, str) and text
    assert ("oracle" in text) == ("oracle" in name)


def test_describe_accepts_what_make_accepts():
    assert baselines.describe("SmartSpec") == baselines.describe("smartspec")
    with pytest.raises(ValueError, match="unknown controller"):
        baselines.describe("no-such-controller")


def test_make_is_case_and_underscore_insensitive():
    assert isinstance(baselines.make("SmartSpec"), baselines.SmartSpecGreedy)
    assert isinstance(baselines.make(" sarathi_static "), baselines.SarathiStatic)
    assert baselines.make("FIXED-K", k=5).k == 5


def test_make_unknown_name_lists_available():
    with pytest.raises(ValueError, match="unknown controller 'no-such-controller'; available: ") as err:
        baselines.make("no-such-controller")
    for name in baselines.list():
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("fixed-k", {"bogus": 1}, "controller 'fixed-k': bad parameters"),
        ("fixed-k", {"k": K_MAX + 1}, "k must be in 0..8"),
        ("fixed-k", {"k": -1}, "k must be in 0..8"),
        ("fixed-budget", {"budget": 100}, "budget 100 is not in the menu"),
        ("slack-feedback", {"start_budget": 500}, "budget 500 is not in the menu"),
        ("sarathi-static", {"theta": 0}, r"theta must be in \(0, 1\]"),
        ("sarathi-static", {"theta": 1.5}, r"theta must be in \(0, 1\]"),
        ("sarathi-default", {"budget": 1024}, "controller 'sarathi-default': bad parameters"),
        ("lookahead-oracle", {}, "bad parameters"),
        ("lookahead-oracle", {"env": None, "replan_every": 0}, "need replan_every >= 1"),
        ("spec-lookahead-oracle", {"env": None, "verify": -1}, "verify >= 0"),
        ("best-static-oracle", {}, "bad parameters"),
        ("spec-lookahead-oracle", {}, "bad parameters"),
        ("smartspec", {"k": 3}, "bad parameters"),
    ],
)
def test_make_bad_params_raise_value_error(name, params, message):
    with pytest.raises(ValueError, match=message):
        baselines.make(name, **params)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("disable-by-batch-size", {"k": 99}),
        ("batch-size-table", {"refresh": 0}),
        ("sglang-ema", {"every": 0}),
    ],
)
def test_make_rejects_out_of_range_params(name, params):
    with pytest.raises(ValueError):
        baselines.make(name, **params)


# -- protocol and behaviour ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_controller_implements_the_protocol(name):
    controller = _make(name, env=_env_for(name, 5))
    assert isinstance(controller, Controller)
    assert isinstance(controller.name, str) and controller.name


@pytest.mark.parametrize("name", HEURISTICS)
def test_heuristic_runs_an_episode_with_valid_actions(name):
    env = _env_for(name, horizon_s=10)
    controller = baselines.make(name)
    actions, info, _ = run_episode(env, controller, seed=0)
    assert len(actions) >= 10 and "episode_kpis" in info
    assert all(0 <= a < env.action_space.n for a in actions)
    # reset() forgets the episode: the same seed gives the same decisions.
    again, _, _ = run_episode(env, controller, seed=0)
    assert again == actions


@pytest.mark.parametrize("name", ORACLES)
def test_oracle_runs_without_disturbing_the_env(name):
    """Oracles simulate on copies: replaying their actions in a fresh env gives the same episode."""
    horizon = 2.0 if name != "spec-lookahead-oracle" else 5.0
    env = _env_for(name, horizon)
    controller = baselines.make(name, env=env)
    obs, info = env.reset(seed=3)
    controller.reset(3)
    replay = _env_for(name, horizon)
    replay.reset(seed=3)
    for t in range(500):
        action = controller.act(obs, info)
        assert env.action_space.contains(action)
        step = env.step(action)
        assert_same_step(step, replay.step(action), f"{name} step {t}")
        obs, _, terminated, truncated, info = step
        if terminated or truncated:
            break
    assert "episode_kpis" in info
    if name == "best-static-oracle":
        assert sorted(controller.returns) == list(range(len(BUDGET_MENU)))
        assert controller.index == max(controller.returns, key=controller.returns.get)


def test_best_static_oracle_return_matches_its_fixed_budget():
    env = _env_for("best-static-oracle", 2.0)
    oracle = baselines.make("best-static-oracle", env=env)
    obs, info = env.reset(seed=4)
    action = oracle.act(obs, info)
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(action)
        total += reward
        done = terminated or truncated
    assert total == pytest.approx(oracle.returns[action])
    assert total >= max(oracle.returns.values()) - 1e-12


@pytest.mark.parametrize(
    ("name", "budget"),
    [
        ("sarathi-default", 512),
        ("vllm-a100-default", 2048),
        ("vllm-h100-default", 8192),
        ("sglang-default", 8192),
        ("fastgen-default", 768),
        ("fixed-budget", 512),
    ],
)
def test_engine_default_budgets(name, budget):
    env = _env_for(name, 5)
    obs, info = env.reset(seed=0)
    controller = baselines.make(name)
    action = controller.act(obs, info)
    assert BUDGET_MENU[action] == budget
    assert controller.name.startswith(f"Fixed({budget})")
    _, _, _, _, info = env.step(action)
    assert info["metrics"]["budget"] == budget
    assert env.unwrapped.engine.token_budget == budget


def test_engine_defaults_table():
    assert ENGINE_DEFAULTS == {
        "sarathi": 512,
        "vllm-a100": 2048,
        "vllm-h100": 8192,
        "sglang": 8192,
        "fastgen": 768,
    }
    assert all(f"{engine}-default" in baselines.list(CHUNK_ID) for engine in ENGINE_DEFAULTS)


@pytest.mark.parametrize("k", range(K_MAX + 1))
def test_fixed_k_sets_the_speculation_length(k):
    env = gym.make(SPEC_ID, horizon_s=5)
    obs, info = env.reset(seed=0)
    controller = baselines.make("fixed-k", k=k)
    assert controller.act(obs, info) == k and controller.name == f"Fixed({k})"
    _, _, _, _, info = env.step(controller.act(obs, info))
    assert info["metrics"]["spec_tokens"] == k == env.unwrapped.engine.spec_tokens


def _sarathi_budget(tbt_slo_s: float) -> int:
    env = gym.make(CHUNK_ID, scenario="llama3-8b-a100-chat-strict", tbt_slo_s=tbt_slo_s, horizon_s=5)
    obs, info = env.reset(seed=0)
    controller = baselines.make("sarathi-static")
    controller.reset(0)
    return BUDGET_MENU[controller.act(obs, info)]


def test_sarathi_static_picks_a_smaller_budget_for_a_stricter_slo():
    budgets = [_sarathi_budget(slo) for slo in (0.05, 0.1, 0.2, 0.5)]
    assert budgets == sorted(budgets), budgets
    assert budgets[0] < budgets[-1], budgets
    assert _sarathi_budget(0.05) < _sarathi_budget(0.5)


def test_sarathi_static_is_fixed_for_the_episode_and_resets():
    env = gym.make(CHUNK_ID, horizon_s=5)
    controller = baselines.make("sarathi-static")
    actions, _, _ = run_episode(env, controller, seed=0)
    assert len(set(actions)) == 1
    controller.reset()
    assert controller.index is None


def test_disable_by_batch_size_switches_off_for_big_batches():
    controller = baselines.make("disable-by-batch-size", k=4, threshold=8)
    obs = np.zeros(21, dtype=np.float32)
    assert controller.act(obs, {"metrics": {"running": 7.0}}) == 4
    assert controller.act(obs, {"metrics": {"running": 8.0}}) == 0
