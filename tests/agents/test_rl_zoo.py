"""rl_zoo3 trains servegym envs with zero glue: --gym-packages servegym and the shipped YAML."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from servegym.agents.controller import LearnedController
from servegym.agents.hyperparams import default_file


@pytest.mark.slow
def test_rl_zoo3_trains_spec_decode_and_the_result_loads(tmp_path) -> None:
    pytest.importorskip("rl_zoo3")
    command = [
        sys.executable,
        "-m",
        "rl_zoo3.train",
        "--algo",
        "ppo",
        "--env",
        "servegym/SpecDecode-v0",
        "--gym-packages",
        "servegym",
        "--conf-file",
        str(default_file("ppo")),
        "-f",
        str(tmp_path),
        "-n",
        "2048",
        "--seed",
        "1",
        "--eval-freq",
        "-1",
        "--env-kwargs",
        "horizon_s:3.0",
        "--hyperparams",
        "n_steps:256",
        "n_envs:2",
        "--log-interval",
        "-1",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "ppo" / "servegym-SpecDecode-v0_1"
    model = run / "servegym-SpecDecode-v0.zip"
    stats = run / "servegym-SpecDecode-v0" / "vecnormalize.pkl"
    assert model.exists() and stats.exists()
    with pytest.raises(ValueError, match="--trust-pickle"):  # its zip and pickle load only by unpickling
        LearnedController.load(model, env_id="servegym/SpecDecode-v0", vecnormalize=stats)
    controller = LearnedController.load(
        model, env_id="servegym/SpecDecode-v0", vecnormalize=stats, trust_pickle=True
    )
    assert controller.metadata.normalization is not None
    action = controller.act(np.zeros(controller.obs_size, dtype=np.float32))
    assert 0 <= action < controller.metadata.n_actions
