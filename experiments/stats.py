"""Summary statistics over episodes or seeds: mean and IQM with 95% bootstrap CIs, and verdicts.

Bootstrap intervals come from ``scipy.stats.bootstrap`` (percentile method, a fixed seed, so a
table prints the same numbers twice). The IQM is the mean of the middle 50% of values
(``scipy.stats.trim_mean(x, 0.25)``), as rliable reports it. A verdict compares a candidate with
a baseline: the difference in percent and whether it is within noise, decided by whether the two
95% CIs of the mean overlap (a conservative test).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
RESAMPLES = 10_000


@dataclass(frozen=True)
class Estimate:
    """A statistic with its bootstrap CI; ``low``/``high`` are NaN with fewer than 2 values."""

    value: float
    low: float
    high: float
    n: int

    @property
    def has_ci(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def overlaps(self, other: Estimate) -> bool:
        return self.low <= other.high and other.low <= self.high


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean after dropping the lowest and highest 25%."""
    return sps.trim_mean(values, 0.25, axis=axis)


STATISTICS = {"mean": np.mean, "iqm": iqm}


def bootstrap_ci(
    values: Sequence[float],
    statistic: str = "mean",
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """``statistic`` ("mean" or "iqm") of ``values`` with a percentile-bootstrap CI."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose one of {sorted(STATISTICS)}")
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"need a non-empty list of finite numbers, got {values!r}")
    fn = STATISTICS[statistic]
    point = float(fn(x))
    if len(x) < 2:
        return Estimate(point, math.nan, math.nan, 1)
    if np.all(x == x[0]):  # no spread: every resample gives the same value
        return Estimate(point, point, point, len(x))
    result = sps.bootstrap(
        (x,),
        fn,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return Estimate(point, float(ci.low), float(ci.high), len(x))


@dataclass(frozen=True)
class Verdict:
    candidate: str
    baseline: str
    candidate_estimate: Estimate
    baseline_estimate: Estimate
    metric: str
    higher_is_better: bool = True

    @property
    def difference_pct(self) -> float:
        """(candidate - baseline) / |baseline| in percent, signed so that + means better."""
        base = self.baseline_estimate.value
        if base == 0:
            return math.nan
        diff = (self.candidate_estimate.value - base) / abs(base) * 100.0
        return diff if self.higher_is_better else -diff

    @property
    def within_noise(self) -> bool | None:
        """True if the CIs overlap, False if not, None without CIs (fewer than 2 values each)."""
        a, b = self.candidate_estimate, self.baseline_estimate
        if not (a.has_ci and b.has_ci):
            return None
        return a.overlaps(b)

    def text(self) -> str:
        a, b = self.candidate_estimate, self.baseline_estimate
        pct = self.difference_pct
        if a.value == b.value:
            standing = "ties with"
        elif math.isnan(pct):
            standing = "is ahead of" if (a.value > b.value) == self.higher_is_better else "is behind"
        else:
            standing = f"is {abs(pct):.1f}% {'ahead of' if pct > 0 else 'behind'}"
        line = f"verdict: {self.candidate} {standing} {self.baseline} on mean {self.metric}"
        line += f" ({_fmt(a)} vs {_fmt(b)}"
        noise = self.within_noise
        if noise is None:
            return line + "); one value each, so no confidence interval: use more episodes or seeds"
        if noise:
            return line + f"); the {CONFIDENCE:.0%} bootstrap CIs overlap: within noise"
        return line + f"); the {CONFIDENCE:.0%} bootstrap CIs do not overlap: not noise"


def verdict(
    candidate: str,
    candidate_values: Sequence[float],
    baseline: str,
    baseline_values: Sequence[float],
    metric: str = "return",
    higher_is_better: bool = True,
) -> Verdict:
    """``candidate`` against ``baseline`` on the mean of ``metric`` with 95% bootstrap CIs."""
    return Verdict(
        candidate,
        baseline,
        bootstrap_ci(candidate_values),
        bootstrap_ci(baseline_values),
        metric,
        higher_is_better,
    )


def _fmt(e: Estimate) -> str:
    if not e.has_ci:
        return f"{e.value:.4g}"
    return f"{e.value:.4g} [{e.low:.4g}, {e.high:.4g}]"
