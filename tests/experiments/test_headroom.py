"""The headroom table: best heuristic vs oracle on the primary KPI, and return/KPI rank correlation."""

from __future__ import annotations

import json

import pytest

from servegym.experiments.headroom import main, preset_headroom


def test_a_preset_row_compares_the_best_heuristic_with_the_oracle():
    row = preset_headroom("servegym/ChunkedPrefill-v0", "llama3-8b-a100-code", range(2), horizon_s=10)
    assert row.kpi == "goodput_requests_per_s" and row.oracle == "LookaheadOracle"
    assert "oracle" not in row.best_heuristic.lower()
    heuristics = {n: v for n, v in row.means.items() if "oracle" not in n.lower()}
    assert row.heuristic_kpi == max(heuristics.values())
    assert row.oracle_kpi == row.means["LookaheadOracle"] >= row.heuristic_kpi
    assert row.headroom_pct == pytest.approx(100 * (row.oracle_kpi / row.heuristic_kpi - 1))
    assert row.spearman_means == pytest.approx(1.0) and row.spearman_episodes == pytest.approx(1.0)
    assert "code" in row.phenomenon


def test_the_command_writes_markdown_and_json(tmp_path, capsys):
    out = tmp_path / "headroom.md"
    argv = ["--env", "servegym/SpecDecode-v0", "--presets", "llama2-7b-68m-tight-slo", "--seeds", "2"]
    assert main([*argv, "--horizon", "5", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| `llama2-7b-68m-tight-slo` |" in text and "headroom %" in text and "rho (means)" in text
    assert "python -m servegym.experiments.headroom --env servegym/SpecDecode-v0" in text
    rows = json.loads(out.with_suffix(".json").read_text())
    assert rows[0]["preset"] == "llama2-7b-68m-tight-slo" and rows[0]["seeds"] == [0, 1]
    assert "headroom" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "servegym/SpecDecode-v0", "--presets", "nope"], "unknown presets"),
        (["--env", "servegym/SpecDecode-v0", "--seeds", "0"], "--seeds must be >= 1"),
    ],
)
def test_bad_arguments_are_refused(argv, message):
    with pytest.raises(ValueError, match=message):
        main(argv)


def test_the_module_reports_bad_arguments_in_one_line():
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "servegym.experiments.headroom",
            "--env",
            "servegym/SpecDecode-v0",
            "--presets",
            "x",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown presets ['x']") and "Traceback" not in result.stderr


def test_a_kpi_to_minimise_takes_the_lowest_heuristic_and_reports_the_reduction():
    row = preset_headroom("servegym/Autoscale-v0", "llama3-8b-a100-flash-crowd", range(2), episode_s=600.0)
    assert row.kpi == "weighted_cost" and row.goal == "min" and row.oracle == "NextWindowOracle"
    heuristics = {n: v for n, v in row.means.items() if "oracle" not in n.lower()}
    assert row.heuristic_kpi == min(heuristics.values())
    assert row.oracle_kpi <= row.heuristic_kpi
    assert row.headroom_pct == pytest.approx(100 * (1 - row.oracle_kpi / row.heuristic_kpi))
    # the return is minus the KPI: a better return is a better KPI
    assert row.spearman_means == pytest.approx(1.0) and row.spearman_episodes == pytest.approx(1.0)
    assert "flash crowd" in row.phenomenon
