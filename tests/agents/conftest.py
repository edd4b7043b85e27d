"""Tiny training runs shared by the agent tests (trained once per test session and worker)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from servegym.agents.train import TrainResult, train

SHORT = {  # env kwargs that make episodes short, so tiny runs still finish episodes
    "servegym/ChunkedPrefill-v0": {"horizon_s": 10.0},
    "servegym/SpecDecode-v0": {"horizon_s": 3.0},
    "servegym/MecOffload-v0": {},
    "servegym/DnnSplit-v0": {},
    "servegym/Autoscale-v0": {"episode_s": 300.0},
    "servegym/ServerlessAutoscale-v0": {"episode_s": 120.0},
}
TINY = {  # hyperparameters small enough for one or two quick updates
    "ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
    "maskable_ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
    "ppo_lstm": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
    "a2c": {"n_steps": 8},
    "trpo": {"n_steps": 64, "batch_size": 64},
    "dqn": {"learning_starts": 64, "buffer_size": 2000, "batch_size": 32},
    "qrdqn": {"learning_starts": 64, "buffer_size": 2000, "batch_size": 32},
}


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., TrainResult]:
    """``trained(env_id, algo)``: a run of a few hundred steps, cached for the session."""
    cache: dict[tuple[str, str], TrainResult] = {}

    def get(env_id: str = "servegym/MecOffload-v0", algo: str = "ppo", timesteps: int = 512) -> TrainResult:
        key = (env_id, algo)
        if key not in cache:
            out = Path(tmp_path_factory.mktemp(algo)) / env_id.split("/")[-1]
            cache[key] = train(
                env_id,
                algo,
                timesteps=timesteps,
                n_envs=2,
                seed=0,
                out=out,
                env_kwargs=SHORT[env_id],
                hyperparams=TINY[algo],
                eval_freq=timesteps // 2,
                checkpoint_freq=timesteps // 2,
            )
        return cache[key]

    return get
