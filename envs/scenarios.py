"""Scenarios of the serving-control environments: named presets, overrides, randomisation.

A scenario fixes the instance (model, device, TP), the workload (length distribution, arrival
burstiness, load as a fraction of the instance's estimated capacity), the SLOs and, for
speculation, the draft and the acceptance process. Capacity is estimated analytically from the
latency model (:func:`estimate_capacity`), so a load of 1.0 means "about as much as this
instance can serve within the TBT SLO".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any

import numpy as np

from servegym.hardware import LatencyModel
from servegym.workloads import (
    MMPP2,
    ArrivalProcess,
    Diurnal,
    GammaArrivals,
    LognormalLengths,
    PiecewiseRate,
    Poisson,
    ShiftingMix,
    Workload,
    length_preset,
)

from .serving.capacity import estimate_capacity, mean_lengths
from .serving.config import EngineConfig


@dataclass(frozen=True)
class ServingScenario:
    """Everything an episode of a serving-control env is built from (all fields overridable).

    Derived pieces (the engine configuration with its latency models, mean lengths, the
    capacity estimate) are computed once per scenario object and kept; heuristics get them from
    ``info["scenario"]``, which is this object.
    """

    model: str = "Llama-3-8B"
    device: str = "a100"
    tp: int = 1
    lengths: str = "azure-conv"  # a length preset, or "custom" with the four numbers below
    prompt_median: float = 0.0
    prompt_p90: float = 0.0
    output_median: float = 0.0
    output_p90: float = 0.0
    load: float = 0.7  # arrival rate / estimated capacity
    arrival_cv: float = 1.0  # 1: Poisson; > 1: Gamma inter-arrivals, burstier
    tbt_slo_s: float = 0.1
    ttft_slo_s: float = 2.0
    tpot_slo_s: float = 0.1
    horizon_s: float = 300.0
    max_num_seqs: int = 128
    gpu_memory_utilization: float = 0.9
    max_model_len: int = 0
    token_budget: int = 512
    draft: str | None = None
    acceptance: str = "chat"
    acceptance_drift: tuple[tuple[float, float], ...] = ()
    ngram_hit_rate: float = 0.6
    spec_tokens: int = 0
    tile_tokens: int = 0
    # Non-stationary load (at most one pattern; the mean rate stays load x capacity):
    burst_factor: float = 1.0  # > 1: bursts (2-state MMPP) at this multiple of the mean rate
    burst_s: float = 15.0  # mean length of a burst
    calm_s: float = 60.0  # mean time between bursts
    diurnal_amplitude: float = 0.0  # > 0: rate x (1 - A cos(2 pi t / period)): starts at its lowest
    diurnal_period_s: float = 300.0
    rate_steps: tuple[tuple[float, float], ...] = ()  # (time_s, relative rate) steps, mean 1 over the horizon
    # A prompt-length mix that shifts: (time_s, share of `long_lengths` requests) steps.
    long_share_steps: tuple[tuple[float, float], ...] = ()
    long_lengths: str = "arxiv-summarization"
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        checks = {
            "load": (0.0, 10.0),
            "arrival_cv": (0.05, 20.0),
            "horizon_s": (1.0, 1e6),
        }
        for name, (lo, hi) in checks.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and lo < value <= hi):
                raise ValueError(f"scenario: {name} must be in ({lo}, {hi}], got {value!r}")
        patterns = [
            name
            for name, on in (
                ("burst_factor", self.burst_factor != 1.0),
                ("diurnal_amplitude", self.diurnal_amplitude != 0.0),
                ("rate_steps", bool(self.rate_steps)),
            )
            if on
        ]
        if len(patterns) > 1:
            raise ValueError(f"scenario: use one load pattern at a time, got {patterns}")
        if patterns and self.arrival_cv != 1.0:
            raise ValueError(f"scenario: {patterns[0]} modulates Poisson arrivals; arrival_cv must be 1.0")
        if self.burst_factor != 1.0:
            high_share = self.burst_s / (self.burst_s + self.calm_s)
            if not (self.burst_s > 0 and self.calm_s > 0 and 1.0 < self.burst_factor <= 1.0 / high_share):
                raise ValueError(
                    f"scenario: bursts need burst_s > 0, calm_s > 0 and 1 < burst_factor <= "
                    f"(burst_s + calm_s) / burst_s (the calm rate would be negative), got "
                    f"burst_factor={self.burst_factor!r}, burst_s={self.burst_s!r}, calm_s={self.calm_s!r}"
                )
        if not (0.0 <= self.diurnal_amplitude <= 1.0 and self.diurnal_period_s > 0):
            raise ValueError(
                f"scenario: diurnal_amplitude must be in [0, 1] and diurnal_period_s > 0, got "
                f"{self.diurnal_amplitude!r}, {self.diurnal_period_s!r}"
            )
        for name in ("rate_steps", "long_share_steps"):
            steps = getattr(self, name)
            times = [t for t, _ in steps]
            if times != sorted(times) or any(not (v >= 0 and np.isfinite(v)) for _, v in steps):
                raise ValueError(f"scenario: {name} must be (time_s, value >= 0) pairs in increasing time")
        if self.rate_steps and not self._rate_profile_mean() > 0:
            raise ValueError("scenario: rate_steps must give a positive rate somewhere in the horizon")
        if any(share > 1 for _, share in self.long_share_steps):
            raise ValueError("scenario: long_share_steps shares must be in [0, 1]")
        length_preset(self.long_lengths)
        if self.lengths == "custom":
            for name in ("prompt_median", "prompt_p90", "output_median", "output_p90"):
                if getattr(self, name) <= 0:
                    raise ValueError(f"scenario: lengths='custom' needs {name} > 0")
        else:
            length_preset(self.lengths)  # raises with the list of presets
        self.engine_config()  # validates the instance fields (and the KV cache)

    def __deepcopy__(self, memo: dict) -> ServingScenario:
        return self  # frozen, and its cached parts are immutable: copies (SB3 copies infos) share it

    def length_distribution(self) -> LognormalLengths:
        if self.lengths != "custom":
            return length_preset(self.lengths)
        limit = self.max_model_len or 4096
        return LognormalLengths(
            prompt_median=self.prompt_median,
            prompt_p90=self.prompt_p90,
            output_median=self.output_median,
            output_p90=self.output_p90,
            max_prompt=limit // 2,
            max_output=limit // 2,
            source="custom scenario lengths",
        )

    def engine_config(self) -> EngineConfig:
        return self._engine_config

    def latency_model(self) -> LatencyModel:
        """The target model's latency model on the scenario's device and TP."""
        return self._engine_config.latency_model()

    def draft_latency_model(self) -> LatencyModel | None:
        return self._engine_config.draft_latency_model()

    @cached_property
    def _engine_config(self) -> EngineConfig:
        return EngineConfig(
            model=self.model,
            device=self.device,
            tp=self.tp,
            policy="decode_first",
            token_budget=self.token_budget,
            max_num_seqs=self.max_num_seqs,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_model_len=self.max_model_len,
            spec_tokens=self.spec_tokens,
            draft=self.draft,
            ngram_hit_rate=self.ngram_hit_rate,
            acceptance=self.acceptance,
            acceptance_drift=tuple(tuple(x) for x in self.acceptance_drift),
            tbt_slo_s=self.tbt_slo_s,
            ttft_slo_s=self.ttft_slo_s,
            tpot_slo_s=self.tpot_slo_s,
            tile_tokens=self.tile_tokens,
        )

    def mean_lengths(self) -> tuple[float, float]:
        """Mean prompt and output tokens (by sampling the distribution with a fixed seed; with
        ``long_share_steps``, the mix averaged over the horizon)."""
        return self._mean_lengths

    @cached_property
    def _mean_lengths(self) -> tuple[float, float]:
        limit = self.engine_config().context_limit()
        base = np.array(mean_lengths(self.length_distribution(), limit))
        if not self.long_share_steps:
            return float(base[0]), float(base[1])
        share = self._long_share_mean()
        mixed = (1.0 - share) * base + share * np.array(mean_lengths(length_preset(self.long_lengths), limit))
        return float(mixed[0]), float(mixed[1])

    def _long_share_mean(self) -> float:
        """The long-document share of arrivals averaged over the horizon."""
        times = np.array([min(t, self.horizon_s) for t, _ in self.long_share_steps])
        shares = np.array([v for _, v in self.long_share_steps])
        widths = np.diff([*times, self.horizon_s])
        return float(np.dot(np.clip(widths, 0, None), shares) / self.horizon_s)

    def capacity_rps(self) -> float:
        """Estimated requests/s within the TBT SLO (``estimate_capacity``)."""
        return self._capacity_rps

    @cached_property
    def _capacity_rps(self) -> float:
        p, o = self.mean_lengths()
        config = self.engine_config()
        return estimate_capacity(config.latency_model(), p, o, self.tbt_slo_s, self.max_num_seqs)

    def offered_rate(self) -> float:
        """The mean arrival rate (req/s): load x estimated capacity, whatever the pattern."""
        return self.load * self.capacity_rps()

    def _rate_profile_mean(self) -> float:
        edges = [t for t, _ in self.rate_steps if t < self.horizon_s]
        values = [v for t, v in self.rate_steps if t < self.horizon_s]
        widths = np.diff([*edges, self.horizon_s])
        return float(np.dot(widths, values) / self.horizon_s) if edges and edges[0] <= 0 else 0.0

    def arrivals(self) -> ArrivalProcess:
        """The arrival process: Poisson or Gamma, or Poisson modulated by bursts, a diurnal
        cycle or rate steps, always with mean rate ``offered_rate()``."""
        rate = self.offered_rate()
        if self.burst_factor != 1.0:
            high_share = self.burst_s / (self.burst_s + self.calm_s)
            high = self.burst_factor * rate
            low = (rate - high_share * high) / (1.0 - high_share)
            return MMPP2(low, high, self.calm_s, self.burst_s)
        if self.diurnal_amplitude:
            period = self.diurnal_period_s
            return Diurnal(rate, self.diurnal_amplitude, period, phase_s=period / 2)
        if self.rate_steps:
            scale = rate / self._rate_profile_mean()
            edges = [t for t, _ in self.rate_steps if t < self.horizon_s]
            values = [scale * v for t, v in self.rate_steps if t < self.horizon_s]
            return PiecewiseRate((*edges, self.horizon_s), values, repeat=False)
        return Poisson(rate) if self.arrival_cv == 1.0 else GammaArrivals(rate, self.arrival_cv)

    def workload(self) -> Workload | ShiftingMix:
        """What ``reset`` samples the episode's requests from."""
        if self.long_share_steps:
            return ShiftingMix(
                self.arrivals(), self.length_distribution(), length_preset(self.long_lengths),
                self.long_share_steps,
            )  # fmt: skip
        return Workload(self.arrivals(), self.length_distribution())

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}


_CUSTOM_SHORT = dict(lengths="custom", prompt_median=200, prompt_p90=600, output_median=200, output_p90=500)
# A fast-streaming tier: DistServe-style tight TTFT (its chatbot SLOs are 0.25-0.4 s, chunk_spec.md
# A.4) and ~67 tokens/s per stream, which a 7B target on an A100 meets only by speculating.
_FAST_STREAMING = dict(ttft_slo_s=0.3, tpot_slo_s=0.015)

CHUNK_PRESETS: dict[str, dict[str, Any]] = {
    # Sarathi-Serve's strict/relaxed TBT SLOs (chunk_spec.md A.2): 7B-class 0.1 / 0.5 s.
    "llama3-8b-a100-chat-strict": dict(load=0.7, tbt_slo_s=0.1),
    "llama3-8b-a100-chat-relaxed": dict(load=0.9, tbt_slo_s=0.5, ttft_slo_s=4.0),
    "llama3-8b-a100-lowload": dict(load=0.3, tbt_slo_s=0.1),
    "mistral-7b-a100-summarization": dict(
        model="Mistral-7B", lengths="arxiv-summarization", load=0.8, tbt_slo_s=0.1, ttft_slo_s=5.0
    ),
    "llama2-70b-a100x4-code": dict(model="Llama-2-70B", tp=4, lengths="azure-code", load=1.0, tbt_slo_s=0.2),
    "qwen2.5-7b-h100-bursty": dict(model="Qwen2.5-7B", device="h100-sxm", load=0.8, arrival_cv=3.0),
    "llama3-8b-l4-overload": dict(
        device="l4", load=1.2, tbt_slo_s=0.2, max_model_len=8192, gpu_memory_utilization=0.95
    ),
    # Where the budget decides attainment (issue 13): near capacity, non-stationary load, a
    # shifting prompt mix and KV pressure.
    "llama3-8b-a100-near-capacity": dict(load=0.9),
    "llama3-8b-a100-code": dict(lengths="azure-code", load=0.9),
    "llama3-8b-a100-bursty": dict(load=0.7, burst_factor=2.0, burst_s=10.0, calm_s=40.0, ttft_slo_s=1.0),
    "llama3-8b-a100-diurnal": dict(load=0.7, diurnal_amplitude=0.5, diurnal_period_s=300.0),
    "llama3-8b-a100-doc-shift": dict(
        load=0.8, long_share_steps=((0.0, 0.0), (60.0, 0.5), (120.0, 0.0), (180.0, 0.5), (240.0, 0.0))
    ),
    "llama2-7b-a100-40gb-kv-pressure": dict(
        model="Llama-2-7B", device="a100-40gb", lengths="sharegpt", load=0.9
    ),
}

SPEC_PRESETS: dict[str, dict[str, Any]] = {
    # Drafts share the target's tokenizer: Llama-68M for Llama-2, Llama-3.2-1B for Llama-3.
    "llama2-7b-68m-lowload-chat": dict(model="Llama-2-7B", draft="Llama-68M", load=0.3, max_num_seqs=64),
    "llama2-7b-68m-highload-short": dict(
        model="Llama-2-7B", draft="Llama-68M", load=1.0, max_num_seqs=128, **_CUSTOM_SHORT
    ),
    "llama3-8b-1b-code": dict(draft="Llama-3.2-1B", acceptance="code", lengths="azure-code", load=0.6),
    "llama2-7b-68m-longctx": dict(
        model="Llama-2-7B",
        draft="Llama-68M",
        lengths="arxiv-summarization",
        load=0.8,
        tbt_slo_s=0.2,
        ttft_slo_s=5.0,
        tpot_slo_s=0.2,
    ),
    "llama3-8b-ngram-summarization": dict(
        draft="ngram",
        ngram_hit_rate=0.7,
        acceptance="summarization",
        lengths="arxiv-summarization",
        load=0.5,
        ttft_slo_s=5.0,
    ),
    "llama2-7b-68m-drift": dict(
        model="Llama-2-7B", draft="Llama-68M", load=0.6, acceptance_drift=((100.0, 0.6), (200.0, 1.15))
    ),
    "llama3-8b-1b-overload": dict(draft="Llama-3.2-1B", load=1.2, acceptance="weak-draft"),
    # Big batches of short contexts on a GQA model: verification is compute-bound, so long
    # fixed speculation hurts (chunk_spec.md D.3 item 10; reference's computed H100 illustration).
    "llama3-8b-1b-h100-highload-short": dict(
        device="h100-sxm", draft="Llama-3.2-1B", load=0.9, max_num_seqs=256, **_CUSTOM_SHORT
    ),
    # Where k decides attainment (issue 13): SLOs tight enough that speculation is needed, a
    # mix of acceptance across requests, load that cycles and acceptance that drifts.
    "llama2-7b-68m-mixed-domains": dict(
        model="Llama-2-7B",
        draft="Llama-68M",
        acceptance="mixed-domains",
        load=0.6,
        max_num_seqs=64,
        **_FAST_STREAMING,
    ),
    "llama2-7b-68m-tight-slo": dict(
        model="Llama-2-7B", draft="Llama-68M", load=0.9, max_num_seqs=64, ttft_slo_s=0.3, tpot_slo_s=0.03
    ),
    "llama2-7b-68m-diurnal": dict(
        model="Llama-2-7B",
        draft="Llama-68M",
        load=0.6,
        max_num_seqs=64,
        diurnal_amplitude=0.6,
        **_FAST_STREAMING,
    ),
    "llama2-7b-68m-drift-tight": dict(
        model="Llama-2-7B",
        draft="Llama-68M",
        load=0.6,
        max_num_seqs=64,
        acceptance_drift=((100.0, 0.6), (200.0, 1.15)),
        **_FAST_STREAMING,
    ),
}

PRESET_PHENOMENA: dict[str, str] = {
    "llama3-8b-a100-chat-strict": "chat at 70% load, Sarathi's strict 0.1 s TBT",
    "llama3-8b-a100-chat-relaxed": "chat at 90% load, relaxed 0.5 s TBT",
    "llama3-8b-a100-lowload": "chat at 30% load",
    "mistral-7b-a100-summarization": "long prompts (arXiv summarisation)",
    "llama2-70b-a100x4-code": "70B on 4 GPUs, code prompts at capacity",
    "qwen2.5-7b-h100-bursty": "Gamma arrivals, CV 3",
    "llama3-8b-l4-overload": "a small GPU at 120% load",
    "llama3-8b-a100-near-capacity": "chat at 90% load: the TPOT SLO caps the budget",
    "llama3-8b-a100-code": "code at 90% load: long prompts, ~13-token outputs; TTFT and TPOT pull apart",
    "llama3-8b-a100-bursty": "load bursts (2x the mean for ~10 s every ~50 s), 1 s TTFT",
    "llama3-8b-a100-diurnal": "a diurnal load cycle, 35% to 105% of capacity",
    "llama3-8b-a100-doc-shift": "prompt mix shifting between chat and long documents every 60 s",
    "llama2-7b-a100-40gb-kv-pressure": "KV cache near capacity (MHA KV, long outputs)",
    "llama2-7b-68m-lowload-chat": "chat at 30% load, loose SLOs",
    "llama2-7b-68m-highload-short": "short contexts at capacity: verification compute-bound",
    "llama3-8b-1b-code": "code: high acceptance",
    "llama2-7b-68m-longctx": "long contexts: KV-read-bound verification",
    "llama3-8b-ngram-summarization": "n-gram prompt lookup",
    "llama2-7b-68m-drift": "acceptance drift (x0.6, then x1.15), loose SLOs",
    "llama3-8b-1b-overload": "weak draft at 120% load",
    "llama3-8b-1b-h100-highload-short": "big batches of short contexts on H100",
    "llama2-7b-68m-mixed-domains": "draft/target mismatch: acceptance spread over requests, fast SLOs",
    "llama2-7b-68m-tight-slo": "90% load, tight TTFT: drafts compete with prefills for budget and compute",
    "llama2-7b-68m-diurnal": "a diurnal load cycle under fast-streaming SLOs",
    "llama2-7b-68m-drift-tight": "acceptance drift under fast-streaming SLOs",
}
"""What each preset exercises (the headroom tables print it)."""


def resolve_scenario(
    presets: Mapping[str, Mapping[str, Any]],
    scenario: str | ServingScenario,
    overrides: Mapping[str, Any],
    kind: str,
) -> ServingScenario:
    """A preset by name (or a given scenario) with keyword overrides applied and validated."""
    if isinstance(scenario, ServingScenario):
        base = scenario
    else:
        if scenario not in presets:
            raise ValueError(f"unknown {kind} scenario {scenario!r}; presets: {sorted(presets)} or 'random'")
        base = ServingScenario(**presets[scenario])
    _check_fields(overrides)
    return replace(base, **overrides) if overrides else base


def _check_fields(overrides: Mapping[str, Any]) -> None:
    known = {f.name for f in fields(ServingScenario)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown scenario field(s) {sorted(unknown)}; fields: {sorted(known - {'extra'})}")


def random_scenario(
    presets: Mapping[str, Mapping[str, Any]], rng: np.random.Generator, overrides: Mapping[str, Any]
) -> ServingScenario:
    """Domain randomisation: a random preset with randomised load, burstiness and SLO scale."""
    _check_fields(overrides)
    name = sorted(presets)[int(rng.integers(len(presets)))]
    base = ServingScenario(**presets[name])
    slo_scale = float(rng.choice([0.5, 1.0, 2.0, 5.0]))
    cv = float(rng.choice([1.0, 1.0, 2.0, 3.0]))
    patterned = base.burst_factor != 1.0 or base.diurnal_amplitude != 0.0 or bool(base.rate_steps)
    changes: dict[str, Any] = {
        "load": float(rng.uniform(0.3, 1.2)),
        "arrival_cv": 1.0 if patterned else cv,  # load patterns modulate Poisson arrivals
        "tbt_slo_s": base.tbt_slo_s * slo_scale,
        "tpot_slo_s": base.tpot_slo_s * slo_scale,
    }
    changes.update(overrides)
    return dataclasses.replace(base, **changes)
