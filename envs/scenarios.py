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
from servegym.workloads import GammaArrivals, LognormalLengths, Poisson, Workload, length_preset

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
        """Mean prompt and output tokens (by sampling the distribution with a fixed seed)."""
        return self._mean_lengths

    @cached_property
    def _mean_lengths(self) -> tuple[float, float]:
        return mean_lengths(self.length_distribution(), self.engine_config().context_limit())

    def capacity_rps(self) -> float:
        """Estimated requests/s within the TBT SLO (``estimate_capacity``)."""
        return self._capacity_rps

    @cached_property
    def _capacity_rps(self) -> float:
        p, o = self.mean_lengths()
        config = self.engine_config()
        return estimate_capacity(config.latency_model(), p, o, self.tbt_slo_s, self.max_num_seqs)

    def workload(self) -> Workload:
        rate = self.load * self.capacity_rps()
        arrivals = Poisson(rate) if self.arrival_cv == 1.0 else GammaArrivals(rate, self.arrival_cv)
        return Workload(arrivals, self.length_distribution())

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}


_CUSTOM_SHORT = dict(lengths="custom", prompt_median=200, prompt_p90=600, output_median=200, output_p90=500)

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
}


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
    changes: dict[str, Any] = {
        "load": float(rng.uniform(0.3, 1.2)),
        "arrival_cv": float(rng.choice([1.0, 1.0, 2.0, 3.0])),
        "tbt_slo_s": base.tbt_slo_s * slo_scale,
        "tpot_slo_s": base.tpot_slo_s * slo_scale,
    }
    changes.update(overrides)
    return dataclasses.replace(base, **changes)
