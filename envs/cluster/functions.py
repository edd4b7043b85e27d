"""A serverless function's execution times and cold starts, as lognormals fitted to published numbers.

Execution times (Azure Functions 2019, Shahrad et al., "Serverless in the Wild", ATC'20, §3.5 and
Fig. 7; no cold start included): across functions the *average* execution time is lognormal with
log mean -0.38 and sigma 2.36 (seconds, MLE fit in the paper); 50% of functions have a maximum
below ~3 s, 75% below 10 s and 90% below 60 s. A preset takes the function at one quantile of the
functions: its mean execution time from the fit, and the spread of its own executions from the
paper's maximum at the same quantile, read as that function's P99 (an assumption: the paper gives
no within-function percentiles). ``azure-p25`` uses the median's spread (the paper gives no
maximum at the 25th percentile).

Cold starts: lognormal with 5th / 95th percentiles 0.25 s / 3 s (the FaaS range of the reference,
../shared/reference/autoscaling_mec.md E1; A6: AWS Lambda Node.js init 242 ms with a tiny package
to 3,184 ms with a large one), so a median of 0.87 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

AZURE_2019_MEAN_LOG_MU, AZURE_2019_MEAN_LOG_SIGMA = -0.38, 2.36  # per-function average, seconds
AZURE_2019_MAX_S = {0.50: 3.0, 0.75: 10.0, 0.90: 60.0}  # functions' maximum at these quantiles
COLD_START_P5_S, COLD_START_P95_S = 0.25, 3.0


@dataclass(frozen=True)
class Lognormal:
    """A lognormal of seconds given by the mean and the sigma of its log."""

    mean_s: float
    sigma: float

    def __post_init__(self) -> None:
        for name, low in (("mean_s", 0.0), ("sigma", -1.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > low):
                raise ValueError(f"lognormal: {name} must be a finite number > {low:g}, got {value!r}")
        if self.sigma > 5.0:
            raise ValueError(f"lognormal: sigma must be at most 5, got {self.sigma!r}")

    @property
    def mu(self) -> float:
        return math.log(self.mean_s) - 0.5 * self.sigma**2

    def quantile(self, q: float) -> float:
        return math.exp(self.mu + self.sigma * float(norm.ppf(q)))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.sigma == 0.0:
            return np.full(n, self.mean_s)
        return rng.lognormal(self.mu, self.sigma, n)

    @classmethod
    def from_quantiles(cls, q_low: float, low_s: float, q_high: float, high_s: float) -> Lognormal:
        """The lognormal through two quantiles."""
        if not (0 < q_low < q_high < 1 and 0 < low_s < high_s):
            raise ValueError(
                f"lognormal: need 0 < q_low < q_high < 1 and 0 < low < high, got "
                f"({q_low}, {low_s}), ({q_high}, {high_s})"
            )
        z_low, z_high = float(norm.ppf(q_low)), float(norm.ppf(q_high))
        sigma = (math.log(high_s) - math.log(low_s)) / (z_high - z_low)
        mu = math.log(low_s) - sigma * z_low
        return cls(math.exp(mu + 0.5 * sigma**2), sigma)


def spread_for(mean_s: float, p99_s: float) -> float:
    """The sigma of a lognormal with this mean and P99 (the smaller root; P99/mean must exceed 1)."""
    ratio = p99_s / mean_s
    if ratio <= 1.0:
        raise ValueError(f"a P99 of {p99_s:g} s must exceed the mean {mean_s:g} s")
    z = float(norm.ppf(0.99))
    return brentq(lambda s: z * s - 0.5 * s * s - math.log(ratio), 1e-9, z)  # increasing on (0, z)


def _azure_mean_s(quantile: float) -> float:
    return math.exp(AZURE_2019_MEAN_LOG_MU + AZURE_2019_MEAN_LOG_SIGMA * float(norm.ppf(quantile)))


def azure_function(quantile: float) -> Lognormal:
    """Execution times of the function at ``quantile`` of Azure Functions 2019's functions: the
    fit's mean, and the spread the paper's maximum gives at the nearest tabulated quantile (the
    median's below it)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
    at = min(AZURE_2019_MAX_S, key=lambda q: abs(q - max(quantile, 0.5)))
    return Lognormal(_azure_mean_s(quantile), spread_for(_azure_mean_s(at), AZURE_2019_MAX_S[at]))


DURATION_PRESETS: dict[str, float] = {"azure-p25": 0.25, "azure-median": 0.50, "azure-p75": 0.75}
"""Execution-time presets: the function at this quantile of Azure Functions 2019's functions."""


def duration_preset(name: str) -> Lognormal:
    if name not in DURATION_PRESETS:
        raise ValueError(f"unknown duration preset {name!r}; presets: {sorted(DURATION_PRESETS)}")
    return azure_function(DURATION_PRESETS[name])


def cold_start(p5_s: float = COLD_START_P5_S, p95_s: float = COLD_START_P95_S) -> Lognormal:
    """Cold-start durations through the given 5th and 95th percentiles."""
    return Lognormal.from_quantiles(0.05, p5_s, 0.95, p95_s)
