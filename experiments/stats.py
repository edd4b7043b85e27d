"""Summary statistics over episodes or runs: mean and IQM with 95% bootstrap CIs, the probability
of improvement, and verdicts.

Bootstrap intervals come from ``scipy.stats.bootstrap`` (percentile method, a fixed seed, so a
table prints the same numbers twice). The IQM is the mean of the middle 50% of values
(``scipy.stats.trim_mean(x, 0.25)``), as rliable reports it. Values grouped in strata (one group
per scenario) are resampled within each stratum, rliable's stratified bootstrap; a plain list of
values is one stratum. The probability of improvement P(X > Y) is the Mann-Whitney statistic
(ties count half) per stratum, averaged over strata (Agarwal et al., NeurIPS 2021). A verdict
compares a candidate with a baseline: the difference in percent and whether it is within noise,
decided by whether the two 95% CIs overlap (a conservative test).
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
    return stratified_bootstrap_ci([values], statistic, confidence, resamples, seed)


def stratified_bootstrap_ci(
    strata: Sequence[Sequence[float]],
    statistic: str = "mean",
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """``statistic`` of all values pooled, with a CI from resampling each stratum on its own."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose one of {sorted(STATISTICS)}")
    groups = [_finite(values) for values in strata]
    if not groups:
        raise ValueError("need at least one stratum of values")
    fn = STATISTICS[statistic]
    pooled = np.concatenate(groups)
    point = float(fn(pooled))
    if len(pooled) < 2:
        return Estimate(point, math.nan, math.nan, len(pooled))
    if all(np.all(g == g[0]) for g in groups):  # no spread inside any stratum: every resample agrees
        return Estimate(point, point, point, len(pooled))

    def pooled_statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return fn(np.concatenate(samples, axis=axis), axis=axis)

    ci = _bootstrap(groups, pooled_statistic, confidence, resamples, seed)
    return Estimate(point, ci[0], ci[1], len(pooled))


def probability_of_improvement(
    candidate: Sequence[Sequence[float]],
    baseline: Sequence[Sequence[float]],
    higher_is_better: bool = True,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """P(a candidate run beats a baseline run), per stratum (ties count half), averaged over the
    strata; ``candidate[k]`` and ``baseline[k]`` are the runs of stratum ``k``. The CI resamples
    each stratum's runs of both, independently."""
    if len(candidate) != len(baseline) or not candidate:
        raise ValueError(f"need the same strata for both, got {len(candidate)} and {len(baseline)}")
    xs, ys = [_finite(v) for v in candidate], [_finite(v) for v in baseline]
    sign = 1.0 if higher_is_better else -1.0
    k = len(xs)

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        total = 0.0
        for x, y in zip(samples[:k], samples[k:], strict=True):
            x, y = sign * np.moveaxis(x, axis, -1), sign * np.moveaxis(y, axis, -1)
            wins = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
            ties = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
            total = total + wins + 0.5 * ties
        return total / k

    point = float(statistic(*xs, *ys))
    n = sum(len(x) for x in xs)
    if all(len(x) < 2 and len(y) < 2 for x, y in zip(xs, ys, strict=True)):
        return Estimate(point, math.nan, math.nan, n)
    if all(np.all(g == g[0]) for g in xs + ys):
        return Estimate(point, point, point, n)
    low, high = _bootstrap(xs + ys, statistic, confidence, resamples, seed)
    return Estimate(point, low, high, n)


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"need a non-empty list of finite numbers, got {values!r}")
    return x


def _bootstrap(
    samples: Sequence[np.ndarray], statistic, confidence: float, resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile CI; each sample is resampled on its own (a one-value sample stays as it is)."""
    varying = [i for i, x in enumerate(samples) if len(x) > 1]

    def full_statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        batch = np.moveaxis(resampled[0], axis, -1).shape[:-1]
        parts = {i: np.moveaxis(x, axis, -1) for i, x in zip(varying, resampled, strict=True)}
        full = [parts[i] if i in parts else np.broadcast_to(x, (*batch, 1)) for i, x in enumerate(samples)]
        return statistic(*full, axis=-1)

    result = sps.bootstrap(
        tuple(samples[i] for i in varying),
        full_statistic,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        vectorized=True,
        paired=False,
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Verdict:
    """A candidate against a baseline on one statistic of one metric.

    ``relative``: the estimates are already percent differences from the baseline's reference
    (scores normalised per scenario), so the difference is ``candidate - baseline`` in points.
    ``improvement``: P(a candidate run beats a baseline run), shown when given.
    """

    candidate: str
    baseline: str
    candidate_estimate: Estimate
    baseline_estimate: Estimate
    metric: str
    higher_is_better: bool = True
    statistic: str = "mean"
    relative: bool = False
    improvement: Estimate | None = None

    @property
    def difference_pct(self) -> float:
        """(candidate - baseline) / |baseline| in percent, signed so that + means better."""
        a, base = self.candidate_estimate.value, self.baseline_estimate.value
        if self.relative:
            return a - base  # already in percent, signed by the normalisation
        if base == 0:
            return math.nan
        diff = (a - base) / abs(base) * 100.0
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
        better = (a.value > b.value) == (self.higher_is_better or self.relative)
        if a.value == b.value:
            standing = "ties with"
        elif math.isnan(pct):
            standing = "is ahead of" if better else "is behind"
        else:
            standing = f"is {abs(pct):.1f}% {'ahead of' if pct > 0 else 'behind'}"
        unit, spec = ("%", "+.1f") if self.relative else ("", ".4g")
        line = f"verdict: {self.candidate} {standing} {self.baseline} on {self.statistic} {self.metric}"
        line += f" ({format_estimate(a, spec, unit)} vs {format_estimate(b, spec, unit)})"
        if self.improvement is not None:
            line += f"; P(improvement) {format_estimate(self.improvement, '.2f')}"
        noise = self.within_noise
        if noise is None:
            return line + "; one value each, so no confidence interval: use more episodes or seeds"
        if noise:
            return line + f"; the {CONFIDENCE:.0%} bootstrap CIs overlap: within noise"
        return line + f"; the {CONFIDENCE:.0%} bootstrap CIs do not overlap: not noise"


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


def format_estimate(e: Estimate, spec: str = ".4g", unit: str = "") -> str:
    """``value [low, high]`` (just the value without a CI, or when the CI is the value itself)."""
    value, low, high = (_unsigned_zero(x) for x in (e.value, e.low, e.high))
    if not e.has_ci or low == high == value:
        return f"{value:{spec}}{unit}"
    return f"{value:{spec}}{unit} [{low:{spec}}{unit}, {high:{spec}}{unit}]"


def _unsigned_zero(x: float) -> float:
    """Rounding noise around zero (a mean of differences from itself) printed as 0."""
    return 0.0 if abs(x) < 1e-9 else x
