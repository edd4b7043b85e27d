"""The shipped rl_zoo3-format hyperparameter files and the safe reader of their string values."""

from __future__ import annotations

import pytest
import torch.nn as nn

import servegym  # noqa: F401
from servegym.agents.algos import ALGOS, check_action_space, resolve_algo
from servegym.agents.hyperparams import LinearSchedule, load_hyperparams, parse_entry, read_value
from servegym.cli.agents import ALGO_NAMES
from servegym.registration import ENVS


@pytest.mark.parametrize("algo", sorted(ALGOS))
@pytest.mark.parametrize("env_id", sorted(ENVS))
def test_every_shipped_file_has_an_entry_for_every_env(algo: str, env_id: str) -> None:
    hp = load_hyperparams(algo, env_id)
    assert hp.n_envs >= 1 and hp.n_timesteps >= 1 and hp.policy
    assert env_id in hp.source or "default" not in hp.source or hp.source.endswith(f"[{env_id}]")


def test_entries_are_split_into_zoo_keys_and_algorithm_kwargs() -> None:
    hp = load_hyperparams("ppo", "servegym/MecOffload-v0")
    assert hp.normalize == {"norm_obs": True, "norm_reward": False}
    assert hp.policy_kwargs == {"net_arch": {"pi": [128, 128], "vf": [128, 128]}}
    assert "normalize" not in hp.algo_kwargs and hp.algo_kwargs["gamma"] == 0.5
    assert hp.model_kwargs()["policy_kwargs"] == hp.policy_kwargs


def test_string_values_are_read_without_eval() -> None:
    value = read_value("dict(net_arch=[64, 64], activation_fn=nn.ReLU, ortho_init=False)", "x")
    assert value == {"net_arch": [64, 64], "activation_fn": nn.ReLU, "ortho_init": False}
    assert read_value("{'norm_obs': True, 'clip_obs': -1.5}", "x") == {"norm_obs": True, "clip_obs": -1.5}
    for code in (
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "dict(a=print(1))",
        "[x for x in ()]",
    ):
        with pytest.raises(ValueError, match="only literals"):
            read_value(code, "ppo.yml[env].policy_kwargs")


def test_linear_schedules_decay_to_zero() -> None:
    hp = parse_entry({"learning_rate": "lin_0.001", "clip_range": 0.2}, "x")
    lr = hp.model_kwargs()["learning_rate"]
    assert isinstance(lr, LinearSchedule) and lr(1.0) == pytest.approx(1e-3) and lr(0.0) == 0.0
    assert hp.model_kwargs()["clip_range"] == 0.2


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"n_timesteps": "many"}, "n_timesteps: expected a positive integer"),
        ({"n_envs": 0}, "n_envs: expected a positive integer"),
        ({"env_wrapper": "x"}, "does not support the zoo key"),
        ({"normalize": "[1, 2]"}, "normalize: expected true/false or a dict"),
        ({"policy_kwargs": "dict(net_arch="}, "cannot read"),
    ],
)
def test_bad_entries_name_the_field(entry: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_entry(entry, "file.yml[env]")


def test_a_file_without_the_env_or_default_lists_its_entries(tmp_path) -> None:
    path = tmp_path / "ppo.yml"
    path.write_text("servegym/Other-v0:\n  n_timesteps: 10\n")
    with pytest.raises(ValueError, match=r"no entry for 'servegym/SpecDecode-v0'.*Other-v0"):
        load_hyperparams("ppo", "servegym/SpecDecode-v0", path)
    path.write_text("- not a mapping\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_hyperparams("ppo", "servegym/SpecDecode-v0", path)


def test_algorithm_names_aliases_and_action_space_checks() -> None:
    assert set(ALGO_NAMES) == set(ALGOS)  # the CLI's static list
    assert resolve_algo("RecurrentPPO") == "ppo_lstm" and resolve_algo("Maskable-PPO") == "maskable_ppo"
    with pytest.raises(ValueError, match="unknown algorithm 'ddpg2'"):
        resolve_algo("ddpg2")
    import gymnasium as gym

    with pytest.raises(ValueError, match=r"sac needs a continuous.*Use one of"):
        check_action_space("sac", gym.spaces.Discrete(3), "servegym/MecOffload-v0")
