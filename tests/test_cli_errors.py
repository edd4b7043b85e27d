"""Bad command lines end with one line on stderr naming what was wrong, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from servegym.cli import main


@pytest.mark.parametrize(
    ("argv", "messages"),
    [
        (
            ["compare", "--env", "servegym/Nope-v0"],
            [
                "unknown env id 'servegym/Nope-v0'",
                "servegym's ids: servegym/Autoscale-v0, servegym/ChunkedPrefill-v0",
            ],
        ),
        (["compare", "--env", "ChunkedPrefill-v0"], ["did you mean 'servegym/ChunkedPrefill-v0'?"]),
        (["simulate", "--env", "servegym/SpecDecod-v0"], ["did you mean 'servegym/SpecDecode-v0'?"]),
        (["train", "chunkedprefill-v0"], ["did you mean 'servegym/ChunkedPrefill-v0'?"]),
        (
            ["compare", "--env", "servegym/ChunkedPrefill-v0", "--controllers", "smartspec"],
            [
                "'smartspec' is a controller for servegym/SpecDecode-v0, not servegym/ChunkedPrefill-v0",
                "controllers for servegym/ChunkedPrefill-v0: best-static-oracle, fastgen-default",
            ],
        ),
        (
            ["train", "servegym/ChunkedPrefill-v0", "--hyperparams", "n_stepz:5"],
            [
                "--hyperparams: ppo has no hyperparameter 'n_stepz'; did you mean 'n_steps'?",
                "valid keys: batch_size",
            ],
        ),
        (
            ["train", "servegym/ChunkedPrefill-v0", "--hyperparams", "seed:5"],
            ["'seed' is set by servegym train (use --seed)"],
        ),
        (["train", "servegym/ChunkedPrefill-v0", "--n-envs", "0"], ["--n-envs must be >= 1, got 0"]),
        (["train", "servegym/ChunkedPrefill-v0", "--timesteps", "-5"], ["--timesteps must be >= 1, got -5"]),
        (["train", "servegym/ChunkedPrefill-v0", "--eval-freq", "-1"], ["--eval-freq must be >= 0"]),
        (["quickstart", "--timesteps", "-100"], ["--timesteps must be >= 1, got -100"]),
        (["quickstart", "--env", "MecOffload"], ["did you mean 'servegym/MecOffload-v0'?"]),
        (["train", "servegym/ChunkedPrefill-v0", "--resume", "--out", "nowhere"], ["cannot resume"]),
    ],
)
def test_bad_input_is_one_line_on_stderr(tmp_path, monkeypatch, capsys, argv, messages) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    for message in messages:
        assert message in captured.err
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "training" not in captured.out  # nothing claims to start before the input is checked
    assert not (tmp_path / "runs").exists()


def test_a_bad_port_is_refused_before_serving(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "servegym.cli", "serve-policy", str(tmp_path / "p.npz"), "--port", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "argument --port: a port is 0-65535, got -1" in done.stderr and "serving" not in done.stdout
