"""Bad constructor arguments and actions fail early with messages that say what is allowed."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

from servegym.envs.chunked_prefill import ChunkedPrefillEnv
from servegym.envs.scenarios import CHUNK_PRESETS, SPEC_PRESETS, ServingScenario
from servegym.envs.spec_decode import SpecDecodeEnv

from ._helpers import CHUNK_ID, ENV_IDS, SPEC_ID

PRESETS = {CHUNK_ID: CHUNK_PRESETS, SPEC_ID: SPEC_PRESETS}
CLASSES = {CHUNK_ID: ChunkedPrefillEnv, SPEC_ID: SpecDecodeEnv}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_scenario_lists_presets(env_id):
    with pytest.raises(ValueError, match=r"unknown \w+ scenario 'no-such-preset'") as err:
        gym.make(env_id, scenario="no-such-preset")
    message = str(err.value)
    for name in PRESETS[env_id]:
        assert name in message
    assert "'random'" in message


def test_chunk_preset_is_not_a_spec_preset():
    with pytest.raises(ValueError, match="unknown SpecDecode scenario 'llama3-8b-a100-chat-strict'"):
        SpecDecodeEnv(scenario="llama3-8b-a100-chat-strict")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_override_field_lists_fields(env_id):
    with pytest.raises(ValueError, match=re.escape("unknown scenario field(s) ['bogus']")) as err:
        gym.make(env_id, bogus=1)
    for field in ("load", "tbt_slo_s", "horizon_s", "model"):
        assert f"'{field}'" in str(err.value)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_override_field_with_random_scenario(env_id):
    with pytest.raises(ValueError, match="unknown scenario field"):
        CLASSES[env_id](scenario="random", bogus=1)


@pytest.mark.parametrize("scenario", [None, "random"])
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"load": -1}, "load must be in"),
        ({"load": 0}, "load must be in"),
        ({"horizon_s": 0.5}, "horizon_s must be in"),
        ({"arrival_cv": 0}, "arrival_cv must be in"),
        ({"tbt_slo_s": 0}, "tbt_slo_s must be a positive number"),
        ({"max_num_seqs": 0}, "max_num_seqs must be an integer >= 1"),
        ({"lengths": "no-such-lengths"}, "no-such-lengths"),
        ({"model": "No-Such-Model"}, "No-Such-Model"),
    ],
)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_invalid_override_value(env_id, override, message, scenario):
    with pytest.raises(ValueError, match=message):
        CLASSES[env_id](scenario=scenario, **override)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_or_negative_reward_weight(env_id):
    cls = CLASSES[env_id]
    with pytest.raises(ValueError, match="unknown reward weight 'nope'; terms: ") as err:
        cls(reward_weights={"nope": 1.0})
    for term in cls.REWARD_WEIGHTS:
        assert term in str(err.value)
    term = sorted(cls.REWARD_WEIGHTS)[0]
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"reward weight '{term}' must be finite and >= 0"):
            cls(reward_weights={term: bad})


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_out_of_range_actions_raise(env_id):
    env = CLASSES[env_id](horizon_s=10)
    env.reset(seed=0)
    n = env.action_space.n
    for action in (99, -1, n, 1.5, "1", np.array([0, 1])):
        with pytest.raises(ValueError, match=re.escape(f"outside the action space Discrete({n})")):
            env.step(action)
    # Integer-like actions are fine: numpy scalars, 0-d and 1-element arrays (SB3's predict).
    for action in (np.int64(1), np.array(2), np.array([n - 1]), 0):
        obs, *_ = env.step(action)
        assert obs in env.observation_space


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_out_of_range_action_through_gym_make(env_id):
    env = gym.make(env_id, horizon_s=10)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(99)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_before_reset_raises(env_id):
    env = CLASSES[env_id](horizon_s=10)
    with pytest.raises(RuntimeError, match=r"step\(\) called before reset\(\)"):
        env.step(0)


def test_spec_decode_needs_a_draft():
    with pytest.raises(ValueError, match="SpecDecode scenarios need a draft"):
        SpecDecodeEnv(draft=None)
    with pytest.raises(ValueError, match="need a draft"):
        SpecDecodeEnv(scenario=ServingScenario())
    with pytest.raises(ValueError, match="need a draft"):
        gym.make(SPEC_ID, scenario="random", draft=None)


def test_decision_period_arguments_are_checked():
    for bad in (0, 0.001, 61, "1"):
        with pytest.raises(ValueError, match="control_interval_s must be in"):
            ChunkedPrefillEnv(control_interval_s=bad)
    for bad in (0, 21, 2.5):
        with pytest.raises(ValueError, match=re.escape("decision_iterations must be an integer in 1..20")):
            SpecDecodeEnv(decision_iterations=bad)
