"""The agent commands end to end: train, evaluate, export, quickstart."""

from __future__ import annotations

import re

import pytest

from servegym.cli import main


def test_train_evaluate_export_from_the_command_line(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "servegym/MecOffload-v0",
            "--timesteps",
            "256",
            "--n-envs",
            "2",
            "--out",
            str(out),
            "--hyperparams",
            "n_steps:64",
            "batch_size:64",
            "--eval-freq",
            "128",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"model:       {out / 'model.zip'}" in printed and "tensorboard --logdir" in printed
    assert main(["evaluate", str(out / "model.zip"), "--episodes", "1", "--scenario", "far-cell"]) == 0
    table = capsys.readouterr().out
    assert "scenario far-cell" in table and "model.zip (ppo)" in table and "★ best mean return" in table
    assert "verdict: model.zip (ppo) is" in table and "(the best heuristic) on mean return" in table
    assert (
        main(
            [
                "export",
                str(out / "model.zip"),
                "--onnx",
                str(tmp_path / "p.onnx"),
                "--numpy",
                str(tmp_path / "p.npz"),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.count("same action as SB3 on 100.0% of 1000") == 2
    assert main(["evaluate", str(tmp_path / "p.onnx"), "--episodes", "1"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "servegym/Nope-v0"], "unknown env id"),
        (["train", "servegym/MecOffload-v0", "--algo", "sac", "--timesteps", "8"], "sac needs a continuous"),
        (["train", "servegym/MecOffload-v0", "--env-kwargs", "num_edges"], "expected key:value"),
        (["export", "missing.zip", "--onnx", "x.onnx"], "does not exist"),
        (["evaluate", "model.pt"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_on_stderr(tmp_path, capsys, monkeypatch, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_quickstart_trains_and_prints_the_comparison(tmp_path, capsys) -> None:
    out = tmp_path / "qs"
    assert (
        main(["quickstart", "--timesteps", "2048", "--episodes", "1", "--out", str(out), "--no-progress"])
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        "training maskable_ppo on servegym/DnnSplit-v0" in printed
        and "scenario camera-fleet-varied" in printed
        and "(maskable_ppo)" in printed
        and "★ best mean return" in printed
        and "SplitRolloutOracle" in printed
        and "verdict: best_model.zip (maskable_ppo) is" in printed
        and f"tensorboard --logdir {out / 'tb'}" in printed
    )


@pytest.mark.slow
def test_quickstart_on_autoscale_shows_the_oracle_and_the_headroom_captured(tmp_path, capsys) -> None:
    out = tmp_path / "qs"
    argv = ["quickstart", "--env", "servegym/Autoscale-v0", "--timesteps", "1024", "--episodes", "2"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "training maskable_ppo on servegym/Autoscale-v0 for 1,024 steps" in printed
    assert "NextWindowOracle" in printed and "(maskable_ppo)" in printed
    assert "verdict: best_model.zip (maskable_ppo) is" in printed
    assert re.search(
        r"headroom: NextWindowOracle -?[\d.]+, .+ it captures -?\d+% of the oracle's headroom", printed
    )
