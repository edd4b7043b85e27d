"""Configuration of one LLM serving instance, resolved once into the objects the engine runs on."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property

from servegym.hardware import ALL_REDUCE_TOPOLOGIES, Device, LatencyModel, ModelSpec, get_device, get_model

POLICIES = ("decode_first", "prefill_first")


@dataclass(frozen=True)
class EngineConfig:
    """Everything fixed about a serving instance; the two knobs may change at run time.

    ``policy``: ``decode_first`` is Sarathi-Serve / vLLM V1 hybrid batching (running decodes,
    then ongoing prefill chunks, then new prompts, within ``token_budget``); ``prefill_first``
    is vLLM V0 / Orca (whole new prompts run alone whenever one can be admitted; decodes stall).
    ``draft``: ``None`` (no speculation possible), a catalog model name (draft model), or
    ``"ngram"`` (prompt lookup: no draft cost, proposals only on a match with probability
    ``ngram_hit_rate``). ``acceptance``: a preset name from ``speculation.ACCEPTANCE_PRESETS``.
    ``all_reduce_topology``: the node's GPU interconnect for tensor parallelism (one of
    ``ALL_REDUCE_TOPOLOGIES``; default: the device's). ``kv_capacity_blocks``: the KV cache size
    in blocks, overriding the estimate from memory (0: estimate).

    Names are resolved once: after construction ``model`` is a ``ModelSpec`` and ``device`` a
    ``Device``, and the latency models are built on first use and kept.
    """

    model: str | ModelSpec = "Llama-3-8B"
    device: str | Device = "a100"
    tp: int = 1
    policy: str = "decode_first"
    token_budget: int = 512
    max_num_seqs: int = 128
    block_size: int = 16
    gpu_memory_utilization: float = 0.9
    max_model_len: int = 0  # 0: the model's max_context
    spec_tokens: int = 0
    draft: str | None = None
    ngram_hit_rate: float = 0.6
    acceptance: str = "chat"
    acceptance_drift: tuple[tuple[float, float], ...] = ()  # (time_s, multiplier of alpha) steps
    tbt_slo_s: float = 0.1
    ttft_slo_s: float = 2.0
    tpot_slo_s: float = 0.1
    cpu_overhead: bool = True
    tile_tokens: int = 0  # >0: GEMM compute padded to token tiles (see LatencyModel)
    max_spec_tokens: int = 8
    all_reduce_topology: str | None = None
    kv_capacity_blocks: int = 0
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", get_model(self.model))
        object.__setattr__(self, "device", get_device(self.device))

        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"engine config: {name} must be {expected}, got {getattr(self, name)!r}")

        if self.policy not in POLICIES:
            raise bad("policy", f"one of {POLICIES}")
        if not isinstance(self.tile_tokens, int) or self.tile_tokens < 0:
            raise bad("tile_tokens", "an integer >= 0 (0: off)")
        for name in ("tp", "token_budget", "max_num_seqs", "block_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise bad(name, "an integer >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise bad("gpu_memory_utilization", "in (0, 1]")
        if not isinstance(self.max_model_len, int) or self.max_model_len < 0:
            raise bad("max_model_len", "an integer >= 0 (0: the model's context length)")
        model_context = self.model.max_context
        if self.max_model_len > model_context:
            raise bad("max_model_len", f"at most the model's context length {model_context}")
        if not isinstance(self.max_spec_tokens, int) or not 0 <= self.max_spec_tokens <= 32:
            raise bad("max_spec_tokens", "an integer in 0..32")
        if not isinstance(self.spec_tokens, int) or not 0 <= self.spec_tokens <= self.max_spec_tokens:
            raise bad("spec_tokens", f"an integer in 0..{self.max_spec_tokens}")
        if self.spec_tokens > 0 and self.draft is None:
            raise ValueError("engine config: spec_tokens > 0 needs a draft ('ngram' or a draft model name)")
        if not 0 <= self.ngram_hit_rate <= 1:
            raise bad("ngram_hit_rate", "in [0, 1]")
        for name in ("tbt_slo_s", "ttft_slo_s", "tpot_slo_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise bad(name, "a positive number of seconds")
        times = [t for t, _ in self.acceptance_drift]
        if any(b < a for a, b in itertools.pairwise(times)) or any(
            not (m > 0 and math.isfinite(m)) for _, m in self.acceptance_drift
        ):
            raise bad("acceptance_drift", "(time_s, multiplier > 0) pairs in increasing time")
        if self.all_reduce_topology is not None and self.all_reduce_topology not in ALL_REDUCE_TOPOLOGIES:
            raise bad("all_reduce_topology", f"None (the device's) or one of {ALL_REDUCE_TOPOLOGIES}")
        if not isinstance(self.kv_capacity_blocks, int) or self.kv_capacity_blocks < 0:
            raise bad("kv_capacity_blocks", "an integer >= 0 (0: estimated from memory)")
        if self.draft is not None and self.draft.lower() != "ngram":
            get_model(self.draft)  # an unknown draft model fails here, naming the catalog

    def __deepcopy__(self, memo: dict) -> EngineConfig:
        return self  # frozen; the resolved model, device and latency models are never mutated

    # -- resolved pieces (built once per configuration) ------------------------------------------
    def model_spec(self) -> ModelSpec:
        return self.model

    def device_spec(self) -> Device:
        return self.device

    def context_limit(self) -> int:
        return self.max_model_len or self.model.max_context

    def latency_model(self) -> LatencyModel:
        return self._latency_model

    def draft_latency_model(self) -> LatencyModel | None:
        return self._draft_latency_model

    @cached_property
    def _latency_model(self) -> LatencyModel:
        return LatencyModel(
            self.model,
            self.device,
            tp=self.tp,
            topology=self.all_reduce_topology,
            cpu_overhead=self.cpu_overhead,
            tile_tokens=self.tile_tokens,
        )

    @cached_property
    def _draft_latency_model(self) -> LatencyModel | None:
        if self.draft is None or self.draft.lower() == "ngram":
            return None
        # The draft runs on the same GPUs, unsharded; each draft pass is a full model-runner step
        # (input preparation and sampling included), so it pays the per-iteration CPU overhead
        # as vLLM's draft-model proposer does.
        return LatencyModel(get_model(self.draft), self.device, tp=1, cpu_overhead=True)

    @cached_property
    def capacity_blocks(self) -> int:
        """KV blocks per GPU (see ``kv_blocks.kv_capacity_blocks``)."""
        from .kv_blocks import kv_capacity_blocks

        return kv_capacity_blocks(self)
