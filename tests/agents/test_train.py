"""Training smoke runs: every env id, every algorithm, run directory, KPI scalars, resume."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from servegym.agents.bundle import read_zip_metadata
from servegym.agents.hyperparams import load_hyperparams
from servegym.agents.train import parse_key_values, train
from servegym.registration import ENVS

from .conftest import SHORT, TINY


@pytest.mark.parametrize("env_id", sorted(ENVS))
def test_ppo_trains_on_every_env_id(trained, env_id: str) -> None:
    run = trained(env_id, "ppo")
    assert run.timesteps >= 512
    meta = read_zip_metadata(run.model_path)
    assert meta.env_id == env_id and meta.algo == "ppo" and meta.normalization is not None
    # the run's env arguments and those its hyperparameters train with (e.g. a decision interval)
    assert meta.env_kwargs == {**load_hyperparams("ppo", env_id).env_kwargs, **SHORT[env_id]}
    config = yaml.safe_load((run.out / "config.yml").read_text())
    assert config["env_id"] == env_id and config["hyperparams"]["n_steps"] == 64
    assert config["versions"]["stable_baselines3"]
    assert (run.out / "vecnormalize.pkl").exists() and run.best_model_path is not None
    assert read_zip_metadata(run.best_model_path).env_id == env_id
    with np.load(run.out / "evaluations.npz") as data:
        assert len(data["timesteps"]) == 2 and np.all(np.isfinite(data["results"]))
    checkpoints = sorted((run.out / "checkpoints").glob("step_*/model.zip"))
    assert checkpoints and read_zip_metadata(checkpoints[-1]).env_id == env_id


def test_tensorboard_has_the_env_kpis(trained) -> None:
    run = trained("servegym/MecOffload-v0", "ppo")
    events = EventAccumulator(str(next(run.tensorboard_dir.iterdir()))).Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "kpi/delay_mean_s",
        "kpi/energy_per_task_j",
        "eval/mean_reward",
        "eval_kpi/deadline_miss_ratio",
    } <= tags


@pytest.mark.parametrize("algo", ["a2c", "dqn", "qrdqn", "trpo", "maskable_ppo", "ppo_lstm"])
def test_every_discrete_algorithm_trains(trained, algo: str) -> None:
    run = trained("servegym/MecOffload-v0", algo)
    assert zipfile.is_zipfile(run.model_path) and read_zip_metadata(run.model_path).algo == algo


def test_resume_continues_from_the_newest_checkpoint(tmp_path) -> None:
    kwargs = dict(n_envs=2, out=tmp_path, hyperparams=TINY["ppo"], eval_freq=0, checkpoint_freq=128)
    first = train("servegym/MecOffload-v0", "ppo", timesteps=256, **kwargs)
    assert first.timesteps == 256
    resumed = train("servegym/MecOffload-v0", "ppo", timesteps=512, resume=True, **kwargs)
    assert resumed.timesteps == 512
    with pytest.raises(ValueError, match="was a run with algo='ppo', not 'a2c'"):
        train("servegym/MecOffload-v0", "a2c", timesteps=512, resume=True, out=tmp_path)
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train("servegym/MecOffload-v0", "ppo", timesteps=512, resume=True, out=tmp_path / "empty")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env_id": "servegym/Nope-v0"}, "unknown env id 'servegym/Nope-v0'; servegym's ids"),
        ({"scenario": "no-such-preset"}, "no-such-preset"),
        ({"algo": "sac"}, "sac needs a continuous"),
        ({"n_envs": 0}, "must be >= 1"),
        ({"hyperparams": {"n_steps": "abc"}}, None),
    ],
)
def test_bad_training_input_fails_before_writing(tmp_path, kwargs: dict, message: str | None) -> None:
    args = {"env_id": "servegym/MecOffload-v0", "timesteps": 64, "out": tmp_path / "run", **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        train(**args)
    if message:
        assert not (tmp_path / "run").exists()


def test_key_value_pairs_follow_rl_zoo3() -> None:
    assert parse_key_values(["load:0.9", "scenario:far-cell", "n:3"], "--env-kwargs") == {
        "load": 0.9,
        "scenario": "far-cell",
        "n": 3,
    }
    with pytest.raises(ValueError, match="--env-kwargs: expected key:value, got 'load'"):
        parse_key_values(["load"], "--env-kwargs")
