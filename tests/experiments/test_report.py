"""servegym report: every expected cell counted, failures marked, bad files named, figures drawn."""

from __future__ import annotations

import shutil

import pytest

from servegym import baselines
from servegym.cli.main import main
from servegym.experiments.plan import make_plan
from servegym.experiments.report import write_report
from servegym.experiments.results import ResultsError, Store, read_table
from servegym.experiments.runner import run_suite
from servegym.experiments.suite import load_suite

from .conftest import SerialBackend, tiny_suite_text
from .test_runner import CHUNK, Exploding


@pytest.fixture
def results(write_suite, tmp_path):
    """A finished tiny run (serial, heuristics only)."""
    suite = load_suite(write_suite(tiny_suite_text()))
    out = tmp_path / "results"
    run_suite(suite, out, SerialBackend(), progress=False, log=lambda m: None)
    return suite, out


def test_the_report_counts_expected_and_present_cells(results) -> None:
    suite, out = results
    missing = next(c for c in make_plan(suite).cells if c.controller.label == "sarathi-static")
    Store(out).cell_file(missing).unlink()
    report = write_report(out, figures=False)
    text = report.markdown
    assert "**Cells: expected 8, have 7** (7 ok, 0 failed, 1 missing)." in text
    assert f"- **missing:** {missing.scenario} / sarathi-static / seed {missing.seed}" in text
    assert "Cells: expected 8, have 7 (7 ok, 0 failed, 1 missing)." in text
    assert "- 2 seeds: fewer than 5" in text  # too few seeds is said, not hidden
    assert (out / "report.md").read_text() == text


def test_failed_cells_are_marked_and_verdicts_are_honest(write_suite, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(baselines._REGISTRY, "slack-feedback", (CHUNK, Exploding, "raises"))
    suite = load_suite(write_suite(tiny_suite_text()))
    out = tmp_path / "results"
    run_suite(suite, out, SerialBackend(), progress=False, log=lambda m: None)
    text = write_report(out, figures=False).markdown
    assert "**Cells: expected 8, have 8** (4 ok, 4 failed, 0 missing)." in text
    assert "- **failed:** qwen2.5-7b-h100-bursty / slack-feedback / seed 0: RuntimeError: boom" in text
    assert "| slack-feedback | heuristic | n/a | n/a | n/a |" in text  # no numbers invented


def test_the_report_has_ci_tables_a_headline_and_figures(results) -> None:
    _, out = results
    report = write_report(out)
    text = report.markdown
    assert "## Headline: held-out scenarios" in text
    assert "### Held-out scenarios (qwen2.5-7b-h100-bursty)" in text
    assert "### llama3-8b-a100-chat-strict (training)" in text
    row = next(line for line in text.splitlines() if line.startswith("| sarathi-static"))
    assert "[" in row and "]" in row  # estimates carry CIs
    names = {p.name for p in report.figures}
    assert names == {"ChunkedPrefill-v0_latency_cdf.png", "ChunkedPrefill-v0_decisions.png"}
    assert all(p.stat().st_size > 10_000 for p in report.figures)
    # a committed results folder (merged tables only, no cells) reports the same tables
    committed = out.parent / "committed"
    committed.mkdir()
    for name in ("suite.json", "suite.yaml", "episodes.csv", "traces.json", "curves.json"):
        shutil.copy(out / name, committed / name)
    again = write_report(committed, figures=False).markdown
    tables = text.split("## servegym")[1].split("Figures:")[0]
    assert again.split("## servegym")[1].startswith(tables)


def test_a_metric_the_env_does_not_report_is_an_error_in_the_report(write_suite, tmp_path) -> None:
    text = tiny_suite_text().replace("ttft_p99_s: min", "ttft_p99: min")
    suite = load_suite(write_suite(text))
    out = tmp_path / "results"
    run_suite(suite, out, SerialBackend(), progress=False, log=lambda m: None)
    report = write_report(out, figures=False)
    assert len(report.problems) == 1
    assert "metric 'ttft_p99' is not a KPI this env reports" in report.problems[0]
    assert ":14: envs[0].metrics.secondary.ttft_p99: " in report.problems[0]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda t: t.replace(",status,", ",state,", 1),
            r"episodes.csv:1: not a servegym results table: missing column\(s\) status",
        ),
        (
            lambda t: t.replace(",ok,", ",ok,x", 1),
            r"episodes.csv:2: column 'return': expected a number, got 'x",
        ),
        (lambda t: t + "tiny,too,few\n", r"episodes.csv:18: 3 fields, the header has"),
        (lambda t: t + t.splitlines()[1] + "\n", r"episodes.csv:18: the same episode as line 2"),
        (lambda t: "", r"episodes.csv: empty file"),
    ],
)
def test_a_damaged_table_is_refused_naming_the_line(results, capsys, damage, message) -> None:
    _, out = results
    shutil.rmtree(out / "cells")  # the table itself is the source now
    table = out / "episodes.csv"
    table.write_text(damage(table.read_text()))
    with pytest.raises(ResultsError, match=message):
        read_table(table)
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("servegym report: error: ") and "episodes.csv" in err


def test_report_on_a_folder_that_is_not_results(tmp_path, capsys) -> None:
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "has no suite.json" in capsys.readouterr().err
