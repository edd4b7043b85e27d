"""Scenarios of Autoscale-v0: the replica type, the traffic over an episode, the SLOs and limits.

Traffic is given in replicas: ``mean_load`` is the mean arrival rate divided by one replica's
capacity at the SLOs (from its service curves), so a scenario means the same thing on any model
and GPU. Arrival shapes follow the reference's fits (../shared/reference/autoscaling_mec.md C2):
a diurnal cycle compressed into the episode, the 2-state MMPP fitted to the Azure LLM 2023
conversation trace (4.60 / 6.86 req/s, sojourns 201 / 138 s), the on/off MMPP of the code trace
(0.054 / 6.37 req/s, 50 / 34 s), a flash crowd, and trace replay. Each episode draws a rate scale
and a phase, so no two episodes are the same day.
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
    PiecewiseRate,
    Poisson,
    Workload,
    length_preset,
    read_trace,
)

from .cluster import ColdStart, ReplicaSpec, service_curves
from .cluster.service_curves import ServiceCurves
from .serving import EngineConfig
from .serving.capacity import mean_lengths

ARRIVALS = ("poisson", "diurnal", "mmpp-conv", "mmpp-code", "flash-crowd", "trace")
CONV_MMPP = (4.60, 6.86, 201.0, 138.0)  # rate low/high (req/s), mean sojourn low/high (s): reference C2
CODE_MMPP = (0.054, 6.37, 50.2, 33.7)


@dataclass(frozen=True)
class AutoscaleScenario:
    """Everything an Autoscale-v0 episode is built from (every field is a ``gym.make`` kwarg)."""

    model: str = "Llama-3-8B"
    device: str = "a100"
    tp: int = 1
    lengths: str = "azure-conv"
    ttft_slo_s: float = 2.0
    tpot_slo_s: float = 0.1
    tbt_slo_s: float = 0.1
    max_num_seqs: int = 128
    token_budget: int = 512
    arrivals: str = "diurnal"
    mean_load: float = 5.0  # mean arrival rate / one replica's capacity
    amplitude: float = 0.6  # diurnal: peak/mean - 1
    spike: float = 4.0  # flash crowd: rate multiple during the spike
    spike_s: float = 300.0
    trace_path: str = ""  # arrivals="trace": an Azure LLM or Vidur-format CSV
    rate_jitter: float = 0.2  # each episode's rate is scaled by U(1 - j, 1 + j)
    episode_s: float = 3600.0
    decision_interval_s: float = 15.0
    min_replicas: int = 1
    max_replicas: int = 16
    initial_replicas: int = 0  # 0: enough for the first minute's traffic
    cold_start_tier: str = "ssd"
    container_start_s: float = 5.0
    engine_init_s: float = 20.0
    warm_pool: int = 0
    gpu_price_per_hour: float = 0.0  # 0: the device catalog's
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"autoscale scenario: {name} must be {expected}, got {getattr(self, name)!r}")

        if self.arrivals not in ARRIVALS:
            raise bad("arrivals", f"one of {ARRIVALS}")
        if self.arrivals == "trace" and not self.trace_path:
            raise ValueError(
                "autoscale scenario: arrivals='trace' needs trace_path (an Azure LLM or Vidur CSV)"
            )
        for name, lo, hi in (
            ("mean_load", 0.01, 1000.0),
            ("amplitude", 0.0, 1.0),
            ("spike", 1.0, 100.0),
            ("spike_s", 1.0, 1e5),
            ("rate_jitter", 0.0, 0.9),
            ("episode_s", 60.0, 1e6),
            ("decision_interval_s", 1.0, 3600.0),
            ("ttft_slo_s", 1e-3, 1e4),
            ("tpot_slo_s", 1e-4, 1e3),
            ("tbt_slo_s", 1e-4, 1e3),
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi):
                raise bad(name, f"a number in [{lo:g}, {hi:g}]")
        if float(self.decision_interval_s) != round(self.decision_interval_s):
            raise bad("decision_interval_s", "a whole number of seconds")
        for name in ("min_replicas", "max_replicas", "initial_replicas", "warm_pool"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise bad(name, "an integer >= 0")
        if not 1 <= self.max_replicas <= 256:
            raise bad("max_replicas", "an integer in 1..256")
        if self.arrivals == "flash-crowd" and self.spike_s >= self.episode_s:
            raise bad("spike_s", f"shorter than episode_s={self.episode_s}")
        if self.min_replicas > self.max_replicas:
            raise bad("min_replicas", f"at most max_replicas={self.max_replicas}")
        if self.initial_replicas > self.max_replicas:
            raise bad("initial_replicas", f"at most max_replicas={self.max_replicas}")
        length_preset(self.lengths)  # raises with the list of presets
        _ = self.replica  # validates the engine, cold start and price

    def __deepcopy__(self, memo: dict) -> AutoscaleScenario:
        return self  # frozen; derived parts are immutable

    @cached_property
    def replica(self) -> ReplicaSpec:
        engine = EngineConfig(
            model=self.model,
            device=self.device,
            tp=self.tp,
            token_budget=self.token_budget,
            max_num_seqs=self.max_num_seqs,
            tbt_slo_s=self.tbt_slo_s,
            ttft_slo_s=self.ttft_slo_s,
            tpot_slo_s=self.tpot_slo_s,
        )
        cold = ColdStart(self.cold_start_tier, self.container_start_s, self.engine_init_s)
        return ReplicaSpec(engine, length_preset(self.lengths), cold, self.gpu_price_per_hour)

    @cached_property
    def curves(self) -> ServiceCurves:
        return service_curves(self.replica)

    @cached_property
    def mean_lengths(self) -> tuple[float, float]:
        """Mean prompt and output tokens of the requests (the profiled mix)."""
        return mean_lengths(self.replica.lengths, self.replica.engine.context_limit())

    @property
    def capacity_rps(self) -> float:
        """One replica's capacity at the SLOs (requests/s)."""
        return self.curves.capacity_rps

    @property
    def mean_rate(self) -> float:
        return self.mean_load * self.capacity_rps

    @cached_property
    def _trace(self):
        return read_trace(self.trace_path)

    def arrival_process(self, rng: np.random.Generator) -> ArrivalProcess:
        """This episode's arrivals: the scenario's shape at a jittered rate and random phase."""
        scale = float(rng.uniform(1.0 - self.rate_jitter, 1.0 + self.rate_jitter))
        rate = self.mean_rate * scale
        phase = float(rng.uniform(0.0, self.episode_s))
        if self.arrivals == "poisson":
            return Poisson(rate)
        if self.arrivals == "diurnal":  # one day compressed into the episode
            return Diurnal(rate, self.amplitude, self.episode_s, phase)
        if self.arrivals in ("mmpp-conv", "mmpp-code"):
            low, high, s_low, s_high = CONV_MMPP if self.arrivals == "mmpp-conv" else CODE_MMPP
            fitted = MMPP2(low, high, s_low, s_high)
            return fitted.scaled(rate / fitted.mean_rate)
        if self.arrivals == "flash-crowd":
            start = float(rng.uniform(0.2, 0.7)) * (self.episode_s - self.spike_s)
            base = rate * self.episode_s / (self.episode_s + (self.spike - 1.0) * self.spike_s)
            return PiecewiseRate(
                (0.0, start, start + self.spike_s, self.episode_s + 1.0),
                (base, base * self.spike, base),
                repeat=False,
            )
        raise ValueError("a trace's arrivals come with its lengths: use workload()")

    def workload(self, rng: np.random.Generator) -> Workload:
        """This episode's requests; a trace is replayed, looping, at the rate the load asks for from
        a random offset, each request with its recorded lengths."""
        if self.arrivals != "trace":
            return Workload(self.arrival_process(rng), length_preset(self.lengths))
        trace = self._trace
        span = max(float(trace.arrival_s[-1] - trace.arrival_s[0]), 1e-9)
        scale = float(rng.uniform(1.0 - self.rate_jitter, 1.0 + self.rate_jitter))
        rate_scale = self.mean_rate * scale / (len(trace.arrival_s) / span)
        offset = float(rng.uniform(float(trace.arrival_s[0]), float(trace.arrival_s[0]) + 0.5 * span))
        workload = Workload.from_trace(trace, rate_scale=rate_scale, start_s=offset)
        looping = replace(workload.arrivals, loop=True)
        return Workload(looping, workload.lengths, paired=True)

    def peak_rate(self) -> float:
        """The traffic's peak rate as an operator would plan for it (no jitter)."""
        rate = self.mean_rate
        if self.arrivals == "diurnal":
            return rate * (1.0 + self.amplitude)
        if self.arrivals in ("mmpp-conv", "mmpp-code"):
            low, high, s_low, s_high = CONV_MMPP if self.arrivals == "mmpp-conv" else CODE_MMPP
            return rate * high / MMPP2(low, high, s_low, s_high).mean_rate
        if self.arrivals == "flash-crowd":
            return rate * self.spike * self.episode_s / (self.episode_s + (self.spike - 1.0) * self.spike_s)
        return rate * 2.0  # Poisson or a trace: twice the mean

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}


AUTOSCALE_PRESETS: dict[str, dict[str, Any]] = {
    # Llama-3-8B on A100-80GB, Azure conversation lengths, 2 s TTFT / 0.1 s TPOT SLOs.
    "llama3-8b-a100-diurnal": dict(arrivals="diurnal", mean_load=5.0, amplitude=0.6),
    "llama3-8b-a100-mmpp": dict(arrivals="mmpp-conv", mean_load=6.0),
    "llama3-8b-a100-bursty": dict(arrivals="mmpp-code", lengths="azure-code", mean_load=3.0, ttft_slo_s=4.0),
    "llama3-8b-a100-flash-crowd": dict(arrivals="flash-crowd", mean_load=3.0, spike=4.0, spike_s=300.0),
    # A 70B model on 4 GPUs: a cold start of about two minutes (140 GB from SSD).
    "llama2-70b-a100x4-diurnal": dict(
        model="Llama-2-70B",
        tp=4,
        arrivals="diurnal",
        mean_load=4.0,
        amplitude=0.5,
        ttft_slo_s=5.0,
        tpot_slo_s=0.2,
        tbt_slo_s=0.2,
        max_replicas=8,
    ),
    # Other hardware, faster weights (S3 streamer), the conversation MMPP.
    "qwen2.5-7b-h100-mmpp": dict(
        model="Qwen2.5-7B",
        device="h100-sxm",
        arrivals="mmpp-conv",
        mean_load=6.0,
        cold_start_tier="s3-streamer",
    ),
}
"""Named scenarios; each exercises a phenomenon: a daily cycle, MMPP burstiness, on/off bursts,
a flash crowd, a slow cold start, other hardware."""
AUTOSCALE_PHENOMENA: dict[str, str] = {
    "llama3-8b-a100-diurnal": "a daily cycle (±60% of the mean) compressed into the episode",
    "llama3-8b-a100-mmpp": "MMPP burstiness fitted to the Azure LLM conversation trace",
    "llama3-8b-a100-bursty": "on/off bursts of the Azure LLM code trace, long code prompts",
    "llama3-8b-a100-flash-crowd": "a flash crowd: 4x the base rate for 5 minutes",
    "llama2-70b-a100x4-diurnal": "a slow cold start (140 GB of weights from SSD) under a daily cycle",
    "qwen2.5-7b-h100-mmpp": "other hardware (H100) and fast weight loading (S3 streamer), MMPP load",
}
"""The phenomenon each preset exercises (headroom tables)."""
TRAINING_PRESETS = ("llama3-8b-a100-diurnal", "llama3-8b-a100-mmpp", "llama3-8b-a100-flash-crowd")
HELD_OUT_PRESETS = ("llama3-8b-a100-bursty", "llama2-70b-a100x4-diurnal", "qwen2.5-7b-h100-mmpp")


def resolve_autoscale_scenario(
    scenario: str | AutoscaleScenario, overrides: Mapping[str, Any]
) -> AutoscaleScenario:
    """A preset by name (or a given scenario) with keyword overrides applied and validated."""
    known = {f.name for f in fields(AutoscaleScenario)} - {"extra"}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown autoscale scenario field(s) {sorted(unknown)}; fields: {sorted(known)}")
    if isinstance(scenario, AutoscaleScenario):
        base = scenario
    elif scenario in AUTOSCALE_PRESETS:
        base = AutoscaleScenario(**AUTOSCALE_PRESETS[scenario])
    else:
        raise ValueError(f"unknown Autoscale scenario {scenario!r}; presets: {sorted(AUTOSCALE_PRESETS)}")
    return replace(base, **overrides) if overrides else base
