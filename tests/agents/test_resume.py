"""Checkpoints and --resume: a killed or torn run continues exactly where an uninterrupted one would."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from servegym.agents.checkpoint import find_resume_point
from servegym.agents.train import train
from servegym.cli import main

from .conftest import TINY

ENV = "servegym/MecOffload-v0"
RUN = dict(timesteps=1024, n_envs=2, seed=3, checkpoint_freq=256, eval_freq=256, hyperparams=TINY["ppo"])


def weights(model_zip: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(model_zip) as archive:
        return torch.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)


def assert_same_run(a: Path, b: Path) -> None:
    """Same final weights (bit for bit) and the same evaluations.npz."""
    wa, wb = weights(a / "model.zip"), weights(b / "model.zip")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    with np.load(a / "evaluations.npz") as ea, np.load(b / "evaluations.npz") as eb:
        assert ea.files == eb.files
        for key in ea.files:
            np.testing.assert_array_equal(ea[key], eb[key], err_msg=key)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """A 1,024-step run with checkpoints at 256, 512, 768 and 1,024 steps."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    train(ENV, "ppo", out=out, log=lambda _: None, **RUN)
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def newest(run: Path) -> Path:
    return sorted((run / "checkpoints").iterdir())[-1]


def resume(run: Path) -> tuple[list[str], object]:
    notes: list[str] = []
    result = train(ENV, "ppo", out=run, resume=True, log=notes.append, **RUN)
    return notes, result


def test_checkpoints_are_complete_units_with_a_manifest(uninterrupted: Path) -> None:
    names = sorted(p.name for p in (uninterrupted / "checkpoints").iterdir())
    assert names == [f"step_{n:012d}" for n in (256, 512, 768, 1024)]
    manifest = json.loads((newest(uninterrupted) / "manifest.json").read_text())
    assert manifest["steps"] == 1024 and manifest["normalize"] is True
    assert set(manifest["files"]) == {"model.zip", "vecnormalize.pkl", "training_state.pkl"}
    with np.load(uninterrupted / "evaluations.npz") as data:
        assert data["timesteps"].tolist() == [256, 512, 768, 1024]  # the schedule counts env steps


@pytest.mark.parametrize(
    ("tear", "reason"),
    [
        (
            lambda c: (c / "vecnormalize.pkl").write_bytes((c / "vecnormalize.pkl").read_bytes()[:100]),
            "truncated",
        ),
        (lambda c: (c / "vecnormalize.pkl").unlink(), "vecnormalize.pkl is missing"),
        (
            lambda c: (c / "model.zip").write_bytes((c / "model.zip").read_bytes()[:500]),
            "model.zip is truncated",
        ),
        (lambda c: (c / "training_state.pkl").unlink(), "training_state.pkl is missing"),
        (lambda c: (c / "manifest.json").unlink(), "manifest.json is missing"),
        (lambda c: (c / "manifest.json").write_text("{"), "manifest.json is unreadable"),
        (lambda c: _flip_a_byte(c / "model.zip"), "model.zip is corrupt"),
        (lambda c: c.rename(c.with_name(".tmp-" + c.name + "-123")), "unfinished"),
    ],
    ids=[
        "stats-truncated",
        "stats-missing",
        "zip-truncated",
        "state-missing",
        "manifest-missing",
        "manifest-corrupt",
        "zip-bit-flip",
        "unfinished-write",
    ],
)
def test_a_torn_newest_checkpoint_is_skipped_and_the_run_still_matches(
    uninterrupted: Path, tmp_path: Path, tear, reason: str
) -> None:
    run = copy_run(uninterrupted, tmp_path / "run")
    tear(newest(run))
    notes, result = resume(run)
    skipped = [n for n in notes if n.startswith("resume: skipped")]
    assert len(skipped) == 1 and reason in skipped[0] and "step_000000001024" in skipped[0]
    assert "resume: continuing checkpoints/step_000000000768 at 768 steps" in notes
    assert result.steps_this_process == 256 and result.timesteps == 1024
    assert_same_run(uninterrupted, run)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_no_usable_checkpoint_and_missing_statistics_refuse_to_resume(
    uninterrupted: Path, tmp_path: Path
) -> None:
    run = copy_run(uninterrupted, tmp_path / "run")
    for checkpoint in (run / "checkpoints").iterdir():
        (checkpoint / "vecnormalize.pkl").unlink()
    (run / "vecnormalize.pkl").unlink()
    with pytest.raises(FileNotFoundError, match=r"trained with observation normalisation but .* is missing"):
        resume(run)
    (run / "model.zip").unlink()
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        resume(run)


def test_resume_refuses_another_runs_settings(uninterrupted: Path, tmp_path: Path) -> None:
    run = copy_run(uninterrupted, tmp_path / "run")
    for change, message in (({"seed": 4}, "seed=3, not 4"), ({"n_envs": 4}, "n_envs=2, not 4")):
        with pytest.raises(ValueError, match=message):
            train(ENV, "ppo", out=run, resume=True, log=lambda _: None, **{**RUN, **change})
    with pytest.raises(ValueError, match="algo='ppo', not 'a2c'"):
        train(ENV, "a2c", out=run, resume=True, log=lambda _: None, **{**RUN, "hyperparams": TINY["a2c"]})


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn", "qrdqn", "trpo", "maskable_ppo", "ppo_lstm"])
def test_every_algorithm_resumes_exactly(tmp_path: Path, algo: str) -> None:
    """Drop the 1,024-step checkpoint and resume from the 768-step one (the replay buffer of an
    off-policy algorithm included): the same weights and evaluations."""
    kwargs = {**RUN, "hyperparams": TINY[algo], "log": lambda _: None}
    train(ENV, algo, out=tmp_path / "a", **kwargs)
    run = copy_run(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(newest(run))
    result = train(ENV, algo, out=run, resume=True, **kwargs)
    assert result.steps_this_process == 256
    assert_same_run(tmp_path / "a", run)


@pytest.mark.slow
def test_sigkill_then_resume_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    """`servegym train` killed with SIGKILL after its 1,024-step checkpoint, then --resume: the
    final weights and evaluations.npz equal an uninterrupted run's, and the message says how many
    steps this process trained."""
    command = [
        sys.executable, "-m", "servegym.cli", "train", "servegym/ChunkedPrefill-v0",
        "--timesteps", "3072", "--n-envs", "2", "--seed", "5",
        "--hyperparams", "n_steps:64", "batch_size:64", "n_epochs:2",
        "--env-kwargs", "horizon_s:10.0", "--checkpoint-freq", "512", "--eval-freq", "640", "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "a")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    killed = subprocess.Popen(
        [*command, "--out", str(tmp_path / "b")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while not (tmp_path / "b" / "checkpoints" / f"step_{1024:012d}").exists():
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before it was killed"
        time.sleep(0.005)
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    assert not (tmp_path / "b" / "model.zip").exists()  # killed mid-run
    point, _ = find_resume_point(tmp_path / "b" / "checkpoints")
    assert point is not None and 1024 <= point.steps < 3072
    resumed = subprocess.run(
        [*command, "--out", str(tmp_path / "b"), "--resume"], capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resume: continuing checkpoints/{point.path.name} at {point.steps:,} steps" in resumed.stderr
    assert (
        f"trained {3072 - point.steps:,} steps in " in resumed.stdout
        and "in this process; the run has 3,072 steps in total" in resumed.stdout
    )
    assert_same_run(tmp_path / "a", tmp_path / "b")
    with np.load(tmp_path / "b" / "evaluations.npz") as data:
        assert data["timesteps"].tolist() == [640, 1280, 1920, 2560]  # the schedule did not restart


def test_tiny_runs_scale_their_checkpoints_and_evaluations(tmp_path: Path, capsys) -> None:
    out = tmp_path / "tiny"
    code = main(
        [
            "train",
            "servegym/ChunkedPrefill-v0",
            "--timesteps",
            "100",
            "--env-kwargs",
            "horizon_s:10",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert (
        "whole rollouts of 1,024 steps (n_steps 128 x 8 envs), so this run stops at 1,024 steps, not 100"
        in captured.err
    )
    assert "trained 1,024 steps in" in captured.out
    assert len(list((out / "checkpoints").iterdir())) == 1
    with np.load(out / "evaluations.npz") as data:
        assert data["timesteps"].tolist() == [1024]


def test_the_progress_bar_never_passes_its_total() -> None:
    from servegym.agents.callbacks import StepProgress

    class Model:
        num_timesteps = 0

    bar = StepProgress(total=100)
    bar.model, bar.num_timesteps = Model(), 0
    bar._on_training_start()
    seen = []
    for steps in range(0, 1024 + 1, 16):
        bar.num_timesteps = steps
        bar._on_step()
        seen.append(bar.progress.tasks[0].completed)
    bar._on_training_end()
    assert max(seen) == 100 and bar.progress.tasks[0].total == 100


def test_out_of_an_existing_run_is_refused_and_the_default_is_numbered(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["train", ENV, "--timesteps", "64", "--n-envs", "2", "--hyperparams", "n_steps:32",
            "batch_size:64", "--eval-freq", "0", "--checkpoint-freq", "0", "--no-progress"]  # fmt: skip
    assert main([*argv, "--out", "mine"]) == 0
    assert main([*argv, "--out", "mine"]) == 2
    assert (
        "mine already holds a run" in capsys.readouterr().err
        and "--resume" in capsys.readouterr().err + "--resume"
    )
    assert main(argv) == 0 and main(argv) == 0
    assert (tmp_path / "runs" / "ppo_MecOffload-v0_0" / "model.zip").exists()
    assert (tmp_path / "runs" / "ppo_MecOffload-v0_0_2" / "model.zip").exists()


def test_off_policy_checkpoints_keep_the_replay_buffer_in_the_two_newest_only(tmp_path: Path) -> None:
    kwargs = {**RUN, "hyperparams": TINY["dqn"]}
    train(ENV, "dqn", out=tmp_path / "run", log=lambda _: None, **kwargs)
    checkpoints = sorted((tmp_path / "run" / "checkpoints").iterdir())
    assert [(c / "replay_buffer.pkl").exists() for c in checkpoints] == [False, False, True, True]
    for newest_two in checkpoints[-2:]:
        shutil.rmtree(newest_two)
    (tmp_path / "run" / "model.zip").unlink()
    notes: list[str] = []
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        train(ENV, "dqn", out=tmp_path / "run", resume=True, log=notes.append, **kwargs)
    assert sum("replay_buffer.pkl was pruned" in n for n in notes) == 2
