"""``servegym bench`` and ``servegym report`` from the command line, and the smoke suite (CI)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from servegym.cli.main import main

from .conftest import tiny_suite_text


def test_bench_lists_and_checks_suites(write_suite, tmp_path, capsys) -> None:
    assert main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("smoke", "chunked-prefill", "spec-decode", "mec"))
    assert main(["bench", "smoke", "--dry-run", "--out", str(tmp_path / "r")]) == 0
    assert "suite smoke: 32 cells (0 done), 4 training runs (0 done)" in capsys.readouterr().err
    assert main(["bench", "smoke", "--dry-run", "--seeds", "1", "--envs", "servegym/MecOffload-v0"]) == 0
    assert "suite smoke: 8 cells" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench"], "name a suite"),
        (["bench", "no-such-suite"], "unknown suite 'no-such-suite'"),
        (["bench", "smoke", "--episodes", "0", "--dry-run"], "--episodes must be >= 1"),
        (["bench", "smoke", "--workers", "0"], "--workers must be >= 1"),
    ],
)
def test_bench_refuses_bad_input_in_one_line(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("servegym bench: error: ") and message in err and "Traceback" not in err


def test_bench_names_the_line_of_a_bad_suite(write_suite, capsys) -> None:
    path = write_suite(tiny_suite_text().replace("episodes: 2", "episodez: 2"))
    assert main(["bench", str(path)]) == 2
    assert f"servegym bench: error: {path}:3: episodez: unknown key 'episodez'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_smoke_suite_runs_and_reports(tmp_path) -> None:
    out = tmp_path / "smoke"
    cli = [sys.executable, "-m", "servegym.cli"]
    bench = subprocess.run(
        [*cli, "bench", "smoke", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert bench.returncode == 0, bench.stderr
    assert "32 cells: 0 already done, 32 ran, 0 failed; 4 policies trained" in bench.stdout
    assert "expected 32 cells, have 32" in bench.stdout
    report = subprocess.run([*cli, "report", str(out)], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert "**Cells: expected 32, have 32** (32 ok, 0 failed, 0 missing)." in report.stdout
    assert "learned verdict: ppo is" in report.stdout and "learned verdict: maskable-ppo is" in report.stdout
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == [
        "ChunkedPrefill-v0_decisions.png",
        "ChunkedPrefill-v0_latency_cdf.png",
        "ChunkedPrefill-v0_learning_curves.png",
        "MecOffload-v0_decisions.png",
        "MecOffload-v0_latency_cdf.png",
        "MecOffload-v0_learning_curves.png",
        "MecOffload-v0_pareto_delay_mean_s_energy_per_task_j.png",
    ]
