"""Bootstrap statistics, verdict lines and the comparison tables the CLI prints."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servegym.experiments.compare import EpisodeResult, compare, format_table, table_rows
from servegym.experiments.stats import bootstrap_ci, iqm, verdict


def test_bootstrap_intervals_cover_the_mean_and_iqm_trims_outliers() -> None:
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(200):
        est = bootstrap_ci(rng.normal(10.0, 2.0, 30), resamples=2000, seed=int(rng.integers(1 << 30)))
        covered += est.low <= 10.0 <= est.high
    assert 0.88 <= covered / 200 <= 0.99  # nominal 95% (percentile intervals run a little narrow)
    assert iqm(np.array([1.0, 2, 3, 4, 5, 6, 7, 1000])) == pytest.approx(4.5)
    assert bootstrap_ci([1.0, 2, 3, 4, 5, 6, 7, 1000], "iqm").value == pytest.approx(4.5)
    single = bootstrap_ci([3.0])
    assert single.value == 3.0 and not single.has_ci
    assert bootstrap_ci([2.0, 2.0, 2.0]).low == bootstrap_ci([2.0, 2.0, 2.0]).high == 2.0
    assert bootstrap_ci([1.0, 5.0, 2.0], seed=7) == bootstrap_ci([1.0, 5.0, 2.0], seed=7)
    with pytest.raises(ValueError, match="finite numbers"):
        bootstrap_ci([1.0, math.nan])
    with pytest.raises(ValueError, match="unknown statistic 'median'"):
        bootstrap_ci([1.0, 2.0], "median")


def test_verdicts_say_the_difference_and_whether_it_is_noise() -> None:
    behind = verdict("PPO", [-5.1, -5.3, -5.0, -5.4, -5.2], "GreedyWeighted", [-4.1, -4.2, -4.0, -4.3, -4.15])
    assert behind.difference_pct == pytest.approx(-25.3, abs=0.1) and behind.within_noise is False
    assert behind.text().startswith("verdict: PPO is 25.3% behind GreedyWeighted on mean return (-5.2 [")
    assert behind.text().endswith("the 95% bootstrap CIs do not overlap: not noise")
    close = verdict("PPO", [2623.7, 2700.0, 2550.0], "BatchSizeTable", [2804.6, 2700.0, 2900.0])
    assert (
        close.within_noise is True and "6.3% behind" in close.text() and close.text().endswith("within noise")
    )
    ahead = verdict("A", [2.0, 2.1, 2.2], "B", [1.0, 1.1, 1.2])
    assert "is 90.9% ahead of B" in ahead.text()
    lower = verdict("A", [1.0, 1.1], "B", [2.0, 2.1], metric="delay", higher_is_better=False)
    assert lower.difference_pct > 0 and "ahead of B on mean delay" in lower.text()
    assert "no confidence interval" in verdict("A", [1.0], "B", [2.0]).text()


def _results(spec: dict[str, list[float]]) -> list[EpisodeResult]:
    return [
        EpisodeResult(n, s, {"return": r, "delay_mean_s": r / 10})
        for n, rs in spec.items()
        for s, r in enumerate(rs)
    ]


def test_tables_mark_the_best_collapse_twins_and_keep_one_row_order() -> None:
    results = _results(
        {
            "LookaheadOracle": [9.0, 9.5],
            "Fixed(512)": [5.0, 6.0],
            "Fixed(512) [sarathi]": [5.0, 6.0],
            "Slack": [4.0, 4.5],
        }
    )
    rows = table_rows(results)
    assert [r.names for r in rows] == [["Fixed(512)", "Fixed(512) [sarathi]"], ["Slack"], ["LookaheadOracle"]]
    text = format_table(results, title="demo")
    lines = text.splitlines()
    assert lines[0] == "demo" and "delay mean (s)" in lines[2]
    assert lines[4].split()[:2] == ["Fixed(512),", "Fixed(512)"] and lines[6].split()[0] == "★"
    assert "controllers with identical episodes share a row" in text
    assert lines[-1].startswith(
        "verdict: LookaheadOracle is 68.2% ahead of Fixed(512), Fixed(512) [sarathi] (the best heuristic)"
    )
    policy = _results({"model.zip (ppo)": [5.0, 6.0]}) + results
    text = format_table(policy, policy="model.zip (ppo)")
    assert "model.zip (ppo)" in text.splitlines()[2]  # the policy's row first, never merged with a twin
    assert "verdict: model.zip (ppo) ties with Fixed(512), Fixed(512) [sarathi] (the best heuristic)" in text


def test_tables_keep_their_alignment_when_a_number_gains_a_digit() -> None:
    text = format_table(_results({"A": [9.0, 9.0], "B": [12345.678, 12345.678]}))
    lines = [line for line in text.splitlines() if line.strip().startswith(("A", "B", "★"))]
    ends = {line.index("±") for line in lines}
    assert len(ends) == 1


def test_compare_on_an_env_collapses_engine_defaults_with_the_same_budget() -> None:
    results = compare(
        "servegym/ChunkedPrefill-v0",
        ["sglang-default", "vllm-h100-default", "sarathi-default"],
        [0],
        horizon_s=5.0,
    )
    names = [r.names for r in table_rows(results)]
    assert ["Fixed(8192) [sglang]", "Fixed(8192) [vllm-h100]"] in names and ["Fixed(512) [sarathi]"] in names
