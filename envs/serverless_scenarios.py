"""Scenarios of ServerlessAutoscale-v0: the function, its containers, the traffic, the SLO and limits.

Traffic is given in containers: ``mean_load`` is the mean arrival rate divided by one container's
capacity (``min(container_concurrency, parallelism)`` requests at once, each taking the function's
mean execution time), unless ``rate_rps`` sets the rate. Shapes: Poisson, a diurnal cycle
compressed into the episode, the two 2-state MMPPs fitted in the reference (C2: the on/off code
trace, 0.054 / 6.37 req/s with sojourns 50 / 34 s, and the conversation trace, 4.60 / 6.86 req/s,
201 / 138 s), a flash crowd, a timer trigger, and Azure Functions 2019 per-minute counts read
from the user's file (a Poisson process at each minute's recorded rate). Every episode draws a
rate scale in ``[1 - rate_jitter, 1 + rate_jitter]`` and a random start (phase, or start minute).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any

import numpy as np

from servegym.workloads import (
    MMPP2,
    ArrivalProcess,
    Diurnal,
    Periodic,
    PiecewiseRate,
    Poisson,
    read_azure_functions_minute_counts,
)

from .cluster.functions import DURATION_PRESETS, Lognormal, cold_start, duration_preset

ARRIVALS = ("poisson", "diurnal", "bursty", "mmpp", "flash-crowd", "timer", "azure-functions")
BURSTY_MMPP = (0.054, 6.37, 50.2, 33.7)  # rate low/high (req/s), mean sojourn low/high (s): reference C2
CONV_MMPP = (4.60, 6.86, 201.0, 138.0)
LAMBDA_PRICE_PER_GB_S = 0.0000166667  # AWS Lambda, x86, per GB-second (aws.amazon.com/lambda/pricing)


@dataclass(frozen=True)
class ServerlessScenario:
    """Everything a ServerlessAutoscale-v0 episode is built from (every field is a ``gym.make`` kwarg)."""

    arrivals: str = "diurnal"
    mean_load: float = 6.0  # mean arrival rate / one container's capacity
    rate_rps: float = 0.0  # > 0: the mean arrival rate itself (overrides mean_load)
    amplitude: float = 0.6  # diurnal: peak/mean - 1
    spike: float = 4.0  # flash crowd: rate multiple during the spike
    spike_s: float = 300.0
    timer_period_s: float = 300.0  # timer: one firing every period, timer_batch invocations each
    timer_batch: int = 4
    timer_jitter_s: float = 1.0
    counts_path: str = ""  # arrivals="azure-functions": invocations_per_function_md.anon.dNN.csv
    function: str = ""  # its HashFunction ("" sums every row)
    trace_scale: float = 0.0  # > 0: the recorded rate times this; 0: scaled to the mean load
    rate_jitter: float = 0.2
    duration: str = "azure-median"  # execution-time preset (DURATION_PRESETS)
    duration_mean_s: float = 0.0  # > 0: a lognormal of this mean instead of the preset ...
    duration_sigma: float = 0.76  # ... with this log-sigma
    cold_start_p5_s: float = 0.25
    cold_start_p95_s: float = 3.0
    container_concurrency: int = 10
    parallelism: int = 0  # requests a container runs at full speed (0: container_concurrency)
    slo_s: float = 4.0
    cold_start_penalty: float = 1.0  # a request that waited for a cold start counts as this many SLO misses
    episode_s: float = 3600.0
    decision_interval_s: float = 2.0
    min_replicas: int = 0
    max_replicas: int = 16
    initial_replicas: int = 0  # 0: enough for the first minute's traffic
    price_per_container_hour: float = 3600.0 * LAMBDA_PRICE_PER_GB_S  # a 1 GB container at Lambda's rate
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"serverless scenario: {name} must be {expected}, got {getattr(self, name)!r}")

        if self.arrivals not in ARRIVALS:
            raise bad("arrivals", f"one of {ARRIVALS}")
        if self.arrivals == "azure-functions" and not self.counts_path:
            raise ValueError(
                "serverless scenario: arrivals='azure-functions' needs counts_path (an Azure Functions "
                "2019 invocations_per_function_md.anon.dNN.csv)"
            )
        for name, lo, hi in (
            ("mean_load", 1e-4, 1000.0),
            ("rate_rps", 0.0, 1e5),
            ("amplitude", 0.0, 1.0),
            ("spike", 1.0, 100.0),
            ("spike_s", 1.0, 1e5),
            ("timer_period_s", 1.0, 86400.0),
            ("timer_jitter_s", 0.0, 3600.0),
            ("trace_scale", 0.0, 1e4),
            ("rate_jitter", 0.0, 0.9),
            ("duration_mean_s", 0.0, 3600.0),
            ("duration_sigma", 0.0, 5.0),
            ("slo_s", 1e-3, 1e5),
            ("cold_start_penalty", 0.0, 1e4),
            ("episode_s", 60.0, 1e6),
            ("decision_interval_s", 1.0, 3600.0),
            ("price_per_container_hour", 0.0, 1e4),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not (
                isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi
            ):
                raise bad(name, f"a number in [{lo:g}, {hi:g}]")
        if float(self.decision_interval_s) != round(self.decision_interval_s):
            raise bad("decision_interval_s", "a whole number of seconds")
        for name, low in (
            ("timer_batch", 1),
            ("container_concurrency", 1),
            ("parallelism", 0),
            ("min_replicas", 0),
            ("max_replicas", 1),
            ("initial_replicas", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise bad(name, f"an integer >= {low}")
        if self.container_concurrency > 1000:
            raise bad("container_concurrency", "an integer in 1..1000")
        if self.parallelism > self.container_concurrency:
            raise bad("parallelism", f"at most container_concurrency={self.container_concurrency} (0: equal)")
        if self.max_replicas > 256:
            raise bad("max_replicas", "an integer in 1..256")
        if self.min_replicas > self.max_replicas:
            raise bad("min_replicas", f"at most max_replicas={self.max_replicas}")
        if self.initial_replicas > self.max_replicas:
            raise bad("initial_replicas", f"at most max_replicas={self.max_replicas}")
        if self.timer_jitter_s >= self.timer_period_s:
            raise bad("timer_jitter_s", f"less than timer_period_s={self.timer_period_s:g}")
        if self.duration not in DURATION_PRESETS:
            raise bad("duration", f"one of {sorted(DURATION_PRESETS)}")
        _ = self.execution, self.cold_start  # validates both distributions
        if self.arrivals == "azure-functions":
            _ = self._minute_counts  # reads and checks the file now, naming it on error

    def __deepcopy__(self, memo: dict) -> ServerlessScenario:
        return self  # frozen; derived parts are immutable

    # -- the function and its containers ---------------------------------------------------------
    @cached_property
    def execution(self) -> Lognormal:
        """Execution times (without cold start) of the function's requests."""
        if self.duration_mean_s > 0:
            return Lognormal(float(self.duration_mean_s), float(self.duration_sigma))
        return duration_preset(self.duration)

    @cached_property
    def cold_start(self) -> Lognormal:
        return cold_start(self.cold_start_p5_s, self.cold_start_p95_s)

    @property
    def full_speed_requests(self) -> int:
        return min(self.container_concurrency, self.parallelism or self.container_concurrency)

    @property
    def capacity_rps(self) -> float:
        """Requests/s one container serves with all its full-speed slots busy."""
        return self.full_speed_requests / self.execution.mean_s

    # -- traffic -----------------------------------------------------------------------------------
    @cached_property
    def _minute_counts(self) -> np.ndarray:
        counts = read_azure_functions_minute_counts(self.counts_path, self.function or None)
        if counts.sum() == 0:
            raise ValueError(f"{self.counts_path}: every per-minute count is 0 (no invocations to replay)")
        return counts

    @property
    def mean_rate(self) -> float:
        """The traffic's mean arrival rate (req/s) before the episode's jitter."""
        if self.arrivals == "timer":
            return self.timer_batch / self.timer_period_s
        if self.arrivals == "azure-functions" and self.trace_scale > 0:
            counts = self._minute_counts
            return float(counts.sum()) / (60.0 * len(counts)) * self.trace_scale
        return self.rate_rps if self.rate_rps > 0 else self.mean_load * self.capacity_rps

    def peak_rate(self) -> float:
        """The traffic's peak rate as an operator would plan for it (no jitter)."""
        rate = self.mean_rate
        if self.arrivals == "diurnal":
            return rate * (1.0 + self.amplitude)
        if self.arrivals in ("bursty", "mmpp"):
            low, high, s_low, s_high = BURSTY_MMPP if self.arrivals == "bursty" else CONV_MMPP
            return rate * high / MMPP2(low, high, s_low, s_high).mean_rate
        if self.arrivals == "flash-crowd":
            return rate * self.spike * self.episode_s / (self.episode_s + (self.spike - 1.0) * self.spike_s)
        if self.arrivals == "timer":  # a batch within the jitter, or within a second
            return self.timer_batch / max(self.timer_jitter_s, 1.0)
        if self.arrivals == "azure-functions":
            counts = self._minute_counts
            return float(counts.max()) / 60.0 * rate / (float(counts.sum()) / (60.0 * len(counts)))
        return rate * 2.0  # Poisson: twice the mean

    def arrival_process(self, rng: np.random.Generator) -> ArrivalProcess:
        """This episode's arrivals (synthetic shapes): the scenario's shape at a jittered rate and a
        random phase."""
        rate = self.mean_rate * float(rng.uniform(1.0 - self.rate_jitter, 1.0 + self.rate_jitter))
        phase = float(rng.uniform(0.0, self.episode_s))
        if self.arrivals == "poisson":
            return Poisson(rate)
        if self.arrivals == "diurnal":
            return Diurnal(rate, self.amplitude, self.episode_s, phase)
        if self.arrivals in ("bursty", "mmpp"):
            low, high, s_low, s_high = BURSTY_MMPP if self.arrivals == "bursty" else CONV_MMPP
            fitted = MMPP2(low, high, s_low, s_high)
            return fitted.scaled(rate / fitted.mean_rate)
        if self.arrivals == "flash-crowd":
            start = float(rng.uniform(0.2, 0.7)) * self.episode_s
            base = rate * self.episode_s / (self.episode_s + (self.spike - 1.0) * self.spike_s)
            return PiecewiseRate(
                (0.0, start, start + self.spike_s, self.episode_s + 3600.0),
                (base, base * self.spike, base),
                repeat=False,
            )
        if self.arrivals == "timer":
            period = self.timer_period_s * self.mean_rate / rate
            return Periodic(period, phase % period, min(self.timer_jitter_s, 0.99 * period), self.timer_batch)
        raise ValueError("Azure Functions counts are expanded by sample_arrivals()")

    def sample_arrivals(self, rng: np.random.Generator, horizon_s: float) -> np.ndarray:
        """Sorted arrival times of one episode over ``[0, horizon_s)``."""
        if self.arrivals != "azure-functions":
            return self.arrival_process(rng).sample(rng, horizon_s)
        counts = self._minute_counts.astype(np.float64)
        scale = float(rng.uniform(1.0 - self.rate_jitter, 1.0 + self.rate_jitter))
        if self.trace_scale > 0:
            scale *= self.trace_scale
        else:
            scale *= self.mean_rate / (counts.sum() / (60.0 * len(counts)))
        minutes = math.ceil(horizon_s / 60.0)
        first = int(rng.integers(len(counts)))  # a random start minute; the day wraps around
        window = counts[(first + np.arange(minutes)) % len(counts)] * scale
        n = rng.poisson(window)  # a Poisson process at each minute's rate
        times = np.repeat(60.0 * np.arange(minutes), n) + 60.0 * rng.random(int(n.sum()))
        times.sort()
        return times[times < horizon_s]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}


SERVERLESS_PRESETS: dict[str, dict[str, Any]] = {
    # Training: the median Azure function (mean 0.68 s), 10 requests per container, 4 s SLO.
    "diurnal": dict(arrivals="diurnal", mean_load=6.0, amplitude=0.6),
    "bursty": dict(arrivals="bursty", mean_load=3.0),
    "flash-crowd": dict(arrivals="flash-crowd", mean_load=3.0, spike=4.0, spike_s=300.0),
    "timer": dict(arrivals="timer", timer_period_s=300.0, timer_batch=4),
    # Held out: other burstiness and other functions.
    "diurnal-cpu-bound": dict(
        arrivals="diurnal", mean_load=4.0, amplitude=0.8, duration="azure-p75", parallelism=4, slo_s=15.0
    ),
    "mmpp-short": dict(arrivals="mmpp", mean_load=2.0, duration="azure-p25", slo_s=1.0),
    "sparse": dict(arrivals="poisson", rate_rps=1.0 / 90.0, duration="azure-p75", slo_s=15.0),
}
"""Named scenarios; each exercises a phenomenon: a daily cycle, on/off bursts, a flash crowd,
a timer trigger; held out: a CPU-bound long function, a short function under MMPP, sparse calls."""
TRAINING_PRESETS = ("diurnal", "bursty", "flash-crowd", "timer")
HELD_OUT_PRESETS = ("diurnal-cpu-bound", "mmpp-short", "sparse")


def resolve_serverless_scenario(
    scenario: str | ServerlessScenario, overrides: Mapping[str, Any]
) -> ServerlessScenario:
    """A preset by name (or a given scenario) with keyword overrides applied and validated."""
    known = {f.name for f in fields(ServerlessScenario)} - {"extra"}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown serverless scenario field(s) {sorted(unknown)}; fields: {sorted(known)}")
    if isinstance(scenario, ServerlessScenario):
        base = scenario
    elif scenario in SERVERLESS_PRESETS:
        base = ServerlessScenario(**SERVERLESS_PRESETS[scenario])
    else:
        raise ValueError(
            f"unknown ServerlessAutoscale scenario {scenario!r}; presets: {sorted(SERVERLESS_PRESETS)}"
        )
    return replace(base, **overrides) if overrides else base
