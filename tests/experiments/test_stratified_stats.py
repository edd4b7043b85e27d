"""Stratified bootstrap, probability of improvement and the verdicts the reports print."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servegym.experiments.stats import (
    Estimate,
    Verdict,
    bootstrap_ci,
    probability_of_improvement,
    stratified_bootstrap_ci,
)


def test_one_stratum_is_the_plain_bootstrap() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0]
    for statistic in ("mean", "iqm"):
        assert stratified_bootstrap_ci([values], statistic) == bootstrap_ci(values, statistic)


def test_stratification_keeps_the_difference_between_scenarios_out_of_the_ci() -> None:
    rng = np.random.default_rng(3)
    easy, hard = rng.normal(100.0, 1.0, 5), rng.normal(0.0, 1.0, 5)
    stratified = stratified_bootstrap_ci([easy, hard])
    pooled = bootstrap_ci(np.concatenate([easy, hard]))
    assert stratified.value == pytest.approx(pooled.value)
    # resampling within scenarios never draws 7 easy runs and 3 hard ones: a much narrower CI
    assert (stratified.high - stratified.low) < 0.2 * (pooled.high - pooled.low)
    assert stratified.low <= stratified.value <= stratified.high


def test_strata_of_one_run_and_constant_strata() -> None:
    mixed = stratified_bootstrap_ci([[1.0, 2.0, 3.0], [5.0]])
    assert mixed.value == pytest.approx(2.75) and mixed.low < mixed.high
    constant = stratified_bootstrap_ci([[1.0], [2.0], [3.0]])
    assert constant.low == constant.high == constant.value == 2.0  # no run varies within a stratum
    assert not stratified_bootstrap_ci([[4.0]]).has_ci
    with pytest.raises(ValueError, match="finite numbers"):
        stratified_bootstrap_ci([[1.0, math.inf]])


def test_probability_of_improvement() -> None:
    assert probability_of_improvement([[3, 4, 5]], [[0, 1, 2]]).value == 1.0
    assert probability_of_improvement([[3, 4, 5]], [[0, 1, 2]], higher_is_better=False).value == 0.0
    assert probability_of_improvement([[1, 1]], [[1, 1]]).value == 0.5  # ties count half
    x, y = [[1.0, 4.0, 2.0], [7.0, 3.0]], [[2.0, 3.0], [5.0, 6.0, 1.0]]
    forward, backward = probability_of_improvement(x, y), probability_of_improvement(y, x)
    assert forward.value + backward.value == pytest.approx(1.0)
    # averaged over strata: stratum 1 gives 2.5/6 (one tie), stratum 2 gives 4/6
    assert forward.value == pytest.approx((2.5 / 6 + 4 / 6) / 2)
    assert 0.0 <= forward.low <= forward.value <= forward.high <= 1.0
    with pytest.raises(ValueError, match="same strata"):
        probability_of_improvement([[1.0]], [[1.0], [2.0]])


def test_relative_verdicts_print_points_of_percent_and_the_probability() -> None:
    v = Verdict(
        "ppo",
        "the best heuristic (per scenario)",
        Estimate(-10.37, -16.07, -5.77, 6),
        Estimate(-3e-15, -3.85, 3.85, 6),
        "return over 3 held-out scenarios, in % of the best heuristic",
        statistic="IQM",
        relative=True,
        improvement=Estimate(0.08, 0.0, 0.33, 6),
    )
    assert v.difference_pct == pytest.approx(-10.37)
    assert v.text() == (
        "verdict: ppo is 10.4% behind the best heuristic (per scenario) on IQM return over 3 held-out "
        "scenarios, in % of the best heuristic (-10.4% [-16.1%, -5.8%] vs +0.0% [-3.9%, +3.9%]); "
        "P(improvement) 0.08 [0.00, 0.33]; the 95% bootstrap CIs do not overlap: not noise"
    )
