"""Configuration of one LLM serving instance and the KV-cache capacity it implies."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from servegym.hardware import Device, LatencyModel, ModelSpec, get_device, get_model

POLICIES = ("decode_first", "prefill_first")
WATERMARK_FRACTION = 0.01  # free blocks kept back at admission (Vidur's watermark_blocks_fraction)


@dataclass(frozen=True)
class EngineConfig:
    """Everything fixed about a serving instance; the two knobs may change at run time.

    ``policy``: ``decode_first`` is Sarathi-Serve / vLLM V1 hybrid batching (running decodes,
    then ongoing prefill chunks, then new prompts, within ``token_budget``); ``prefill_first``
    is vLLM V0 / Orca (whole new prompts run alone whenever one can be admitted; decodes stall).
    ``draft``: ``None`` (no speculation possible), a catalog model name (draft model), or
    ``"ngram"`` (prompt lookup: no draft cost, proposals only on a match with probability
    ``ngram_hit_rate``). ``acceptance``: a preset name from ``speculation.ACCEPTANCE_PRESETS``.
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
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
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
        model_context = self.model_spec().max_context
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

    # -- resolved pieces ---------------------------------------------------------------------
    def model_spec(self) -> ModelSpec:
        return get_model(self.model)

    def device_spec(self) -> Device:
        return get_device(self.device)

    def context_limit(self) -> int:
        return self.max_model_len or self.model_spec().max_context

    def latency_model(self) -> LatencyModel:
        return LatencyModel(
            self.model_spec(),
            self.device_spec(),
            tp=self.tp,
            cpu_overhead=self.cpu_overhead,
            tile_tokens=self.tile_tokens,
        )

    def draft_latency_model(self) -> LatencyModel | None:
        if self.draft is None or self.draft.lower() == "ngram":
            return None
        # The draft runs on the same GPUs, unsharded; each draft pass is a full model-runner step
        # (input preparation and sampling included), so it pays the per-iteration CPU overhead
        # as vLLM's draft-model proposer does.
        return LatencyModel(get_model(self.draft), self.device_spec(), tp=1, cpu_overhead=True)


def activation_reserve_bytes(model: ModelSpec, tp: int, max_tokens: int) -> float:
    """Peak activation memory of one forward pass of ``max_tokens`` tokens, per GPU.

    The widest live tensors (gated MLP input/output, QKV, residuals) plus 0.5 GiB for the
    runtime (CUDA context, graphs) - vLLM profiles this at start-up; this estimate stands in.
    """
    d = model.head_dim
    width = (
        (2 if model.gated_mlp else 1) * model.ffn_size / tp
        + (model.num_heads + 2 * model.num_kv_heads) * d / tp
        + 4 * model.hidden_size
    )
    return max_tokens * width * model.bytes_per_element + 0.5 * 2**30


def kv_capacity_blocks(config: EngineConfig) -> int:
    """KV blocks per GPU: (memory x utilisation - weights/tp - activations) / block bytes."""
    model, device = config.model_spec(), config.device_spec()
    usable = device.mem_capacity * config.gpu_memory_utilization
    weights = model.weight_bytes / config.tp
    draft = config.draft_latency_model()
    if draft is not None:
        weights += draft.model.weight_bytes
    reserve = activation_reserve_bytes(model, config.tp, max(config.token_budget, config.max_num_seqs))
    kv_per_token = model.kv_bytes_per_token / config.tp
    if draft is not None:
        kv_per_token += draft.model.kv_bytes_per_token
    free = usable - weights - reserve
    blocks = int(free // (kv_per_token * config.block_size)) if free > 0 else 0
    # One max_model_len request must fit next to the admission watermark the engine keeps free.
    needed = math.ceil(config.context_limit() / config.block_size) + int(WATERMARK_FRACTION * blocks)
    if blocks < needed:
        raise ValueError(
            f"engine config: the KV cache holds {blocks * config.block_size} tokens on {device.name} "
            f"(memory {device.mem_capacity / 1e9:.0f} GB x {config.gpu_memory_utilization} minus "
            f"{weights / 1e9:.1f} GB of weights and {reserve / 1e9:.1f} GB of activations), fewer than one "
            f"request of max_model_len={config.context_limit()} tokens; raise tp, gpu_memory_utilization, "
            "or lower max_model_len"
        )
    return blocks
