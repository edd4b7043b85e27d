"""The latency model: operator times and O(1) serving-iteration times.

Every kernel's time is ``t0 + ((tc/eta_c)^p + (tb/eta_b)^p)^(1/p)`` with ``tc = FLOPs/peak``
and ``tb = bytes/bandwidth`` from the datasheet: a smooth roofline with a fixed time per kernel
(../shared/reference/latency_model.md, section 4). Elementwise kernels are bandwidth-only with
their own efficiency; attention has its own efficiencies and a fitted causal factor; all-reduce
is ``alpha + 2(N-1)/N * S / beta`` per node topology.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from .device import Device
from .kernels import (
    ELEMENTWISE_OPS,
    GEMM_OPS,
    KERNEL_TYPE,
    LAYER_OPS,
    LayerDims,
    attention_decode_cost,
    attention_prefill_cost,
    elementwise_bytes,
    gemm_cost,
    gemm_shape,
    pnorm,
    ring_all_reduce_bytes,
)
from .model_spec import ModelSpec
from .params import all_reduce_keys
from .validation import positive_int

if TYPE_CHECKING:
    from .measurements import Measurement


# ---- kernel time formulas shared by the model and the calibration ---------------------------


def gemm_time(flops, byts, device: Device, dtype: str = "fp16", params: dict | None = None):
    """Time of GEMM kernels with these FLOPs and bytes (scalars or arrays)."""
    par = ParamLookup(device, params)
    tc = flops / (par("gemm.eta_c") * device.peak(dtype))
    tb = byts / (par("gemm.eta_b") * device.mem_bandwidth)
    return par("gemm.t0_s") + pnorm(tc, tb, par("p"))


def elementwise_time(kernel_type: str, byts, device: Device, params: dict | None = None):
    """Time of a bandwidth-bound elementwise kernel moving ``byts`` bytes."""
    par = ParamLookup(device, params)
    bw = par(f"elem.{kernel_type}.rho") * par("elem.eta_b") * device.mem_bandwidth
    return par(f"elem.{kernel_type}.t0_s") + byts / bw


def all_reduce_params(device: Device, topology: str, num_gpus: int, params: dict | None = None):
    """(alpha seconds, beta bytes/s) of an all-reduce over ``num_gpus`` GPUs of a topology."""
    par = ParamLookup(device, params)
    alpha = bw_eff = None
    for prefix in all_reduce_keys(topology, num_gpus):
        if alpha is None and par.has(f"{prefix}.alpha_s"):
            alpha = par(f"{prefix}.alpha_s")
        if bw_eff is None and par.has(f"{prefix}.bw_eff"):
            bw_eff = par(f"{prefix}.bw_eff")
    link = device.link_bandwidth if device.link_bandwidth > 0 else 16e9  # PCIe 4 x16 fallback
    return float(alpha), float(bw_eff) * link


def all_reduce_time(size_bytes, num_gpus, device: Device, topology: str, params: dict | None = None):
    """Ring all-reduce time of ``size_bytes`` per rank; zero for one GPU."""
    if int(num_gpus) <= 1:
        return 0.0 * size_bytes
    alpha, beta = all_reduce_params(device, topology, int(num_gpus), params)
    return alpha + ring_all_reduce_bytes(size_bytes, num_gpus) / beta


class ParamLookup:
    """Parameter lookup: explicit overrides, then the device's fit, then the prior mean."""

    __slots__ = ("device", "override")

    def __init__(self, device: Device, override: dict | None) -> None:
        self.device = device
        self.override = override or {}

    def has(self, name: str) -> bool:
        from .params import default_prior

        return name in self.override or name in self.device.efficiency or name in default_prior().mean

    def __call__(self, name: str) -> float:
        if name in self.override:
            return self.override[name]
        return self.device.param(name)


# ---- iteration aggregates ------------------------------------------------------------------


@dataclass(slots=True)
class IterationBatch:
    """Aggregates of one serving iteration; everything the time of the iteration depends on.

    Prefill chunks: ``prefill_tokens = Σ chunk``, ``prefill_chunk_context = Σ chunk·cached``,
    ``prefill_chunk_sq = Σ chunk²``, ``prefill_context = Σ cached``. Decodes: one token per
    sequence, or ``spec_tokens + 1`` verification tokens under speculative decoding. By
    default every decode verifies ``spec_tokens`` drafts; with ``spec_seqs >= 0`` only that many
    of the ``decode_seqs`` do (e.g. n-gram proposals that found a match), and ``spec_context``
    is their share of ``decode_context``. ``sampled_prefills`` counts prefills whose prompt
    completes (they sample a token).
    """

    prefill_seqs: int = 0
    prefill_tokens: int = 0
    prefill_chunk_context: float = 0.0
    prefill_chunk_sq: float = 0.0
    prefill_context: float = 0.0
    sampled_prefills: int = 0
    decode_seqs: int = 0
    decode_context: float = 0.0
    spec_tokens: int = 0
    spec_seqs: int = -1
    spec_context: float = 0.0

    @property
    def verifying_seqs(self) -> int:
        """Decode sequences that verify ``spec_tokens`` drafts this iteration."""
        if self.spec_tokens <= 0:
            return 0
        return self.decode_seqs if self.spec_seqs < 0 else self.spec_seqs

    @property
    def num_tokens(self) -> int:
        return self.prefill_tokens + self.decode_seqs + self.verifying_seqs * self.spec_tokens

    @property
    def num_seqs(self) -> int:
        return self.prefill_seqs + self.decode_seqs

    @property
    def sampled_rows(self) -> int:
        return self.sampled_prefills + self.decode_seqs + self.verifying_seqs * self.spec_tokens

    def add_prefill(self, chunk: int, cached: int, completes: bool = True) -> IterationBatch:
        """Add one prefill chunk of ``chunk`` tokens after ``cached`` tokens of context."""
        self.prefill_seqs += 1
        self.prefill_tokens += chunk
        self.prefill_chunk_context += chunk * cached
        self.prefill_chunk_sq += chunk * chunk
        self.prefill_context += cached
        self.sampled_prefills += int(completes)
        return self

    def add_decode(self, context: int) -> IterationBatch:
        """Add one decoding sequence whose KV cache holds ``context`` tokens."""
        self.decode_seqs += 1
        self.decode_context += context
        return self


# ---- the model -----------------------------------------------------------------------------


class LatencyModel:
    """Predicts operator and iteration times of ``model`` on ``device`` at TP degree ``tp``.

    Times are in seconds and per tensor-parallel rank (ranks run in lockstep).
    ``cpu_overhead=False`` leaves out the per-iteration scheduler/CPU time. ``tile_tokens=128``
    pads each GEMM's token count to a multiple of 128 in its compute time, reproducing the
    tile-quantisation steps seen in Vidur's profiles (+26% from 256 to 272 tokens on an A100);
    it is off by default because a fixed tile makes the fit to those profiles worse overall
    (../shared/reference/latency_model.md 3, 4.1). ``dtype`` runs the model in another dtype
    than its catalog one (e.g. fp32 on a CPU profile measured in fp32).
    """

    def __init__(
        self,
        model: ModelSpec | str,
        device: Device | str,
        tp: int = 1,
        *,
        topology: str | None = None,
        cpu_overhead: bool = True,
        tile_tokens: int = 0,
        dtype: str | None = None,
    ) -> None:
        from dataclasses import replace

        from .catalog import get_device, get_model

        self.model = get_model(model)
        if dtype is not None and dtype != self.model.dtype:
            self.model = replace(self.model, dtype=dtype)
        self.device = get_device(device)
        self.tp = positive_int("LatencyModel", "tp", tp)
        self.dims: LayerDims = self.model.layer_dims(self.tp)
        self.topology = topology or self.device.default_topology
        self.cpu_overhead = cpu_overhead
        if not isinstance(tile_tokens, int) or tile_tokens < 0:
            raise ValueError(f"LatencyModel: tile_tokens must be an integer >= 0, got {tile_tokens!r}")
        self.tile_tokens = tile_tokens
        dev, dtype = self.device, self.model.dtype
        self._peak = dev.peak(dtype)
        par = ParamLookup(dev, None)
        self._p = par("p")
        self._attn_fc = 1.0 / (par("attn.eta_c") * self._peak)
        self._attn_fb = 1.0 / (par("attn.eta_b") * dev.mem_bandwidth)
        self._attn_gamma = par("attn.gamma")
        self._attn_t0_prefill = par("attn.prefill_t0_s")
        self._attn_t0_decode = par("attn.decode_t0_s")
        self._attn_t0_mixed = max(self._attn_t0_prefill, self._attn_t0_decode)
        self._cpu_c0 = par("cpu.c0_s") if cpu_overhead else 0.0
        self._cpu_c1 = par("cpu.c1_s") if cpu_overhead else 0.0
        if self.tp > 1:
            self._ar_alpha, self._ar_beta = all_reduce_params(dev, self.topology, self.tp)
        else:
            self._ar_alpha, self._ar_beta = 0.0, math.inf
        self._act_bytes_per_token = float(self.dims.hidden_size * self.dims.bytes_per_element)
        self._token_table: list[float] = []
        self._head_table: list[float] = []
        # Attention constants: seconds per unit of each aggregate (see kernels.attention_*_cost).
        d, b = self.dims.head_dim, self.dims.bytes_per_element
        hq, hkv = self.dims.q_heads_per_rank, self.dims.kv_heads_per_rank
        self._inv_p = 1.0 / self._p
        self._attn = (
            4.0 * d * hq * self._attn_fc,  # compute per (query token x context token)
            4.0 * d * hq * self._attn_fc * self._attn_gamma,  # compute per chunk^2 (causal factor)
            2.0 * hkv * d * b * self._attn_fb,  # memory per K/V token read
            2.0 * hq * d * b * self._attn_fb,  # memory per query token (Q read, O written)
            2.0 * hq * d * b * self._attn_fb,  # memory per decode sequence (Q read, O written)
        )

    def __repr__(self) -> str:
        return f"LatencyModel({self.model.name!r}, {self.device.name!r}, tp={self.tp})"

    # -- operators ---------------------------------------------------------------------------
    def op_time(self, op: str, num_tokens):
        """Time of one token-level operator (Vidur names, or ``lm_head``/``kv_write``)."""
        dims, dev = self.dims, self.device
        m = np.asarray(num_tokens, dtype=float) if not np.isscalar(num_tokens) else float(num_tokens)
        if op in GEMM_OPS or op == "lm_head":
            if self.model.is_moe and op in ("mlp_up_proj", "mlp_down_proj"):
                return self._moe_time(op, m)
            n, k = gemm_shape(op, dims)
            flops, byts = gemm_cost(m, n, k, dims.bytes_per_element)
            if self.tile_tokens:  # compute runs on whole row tiles: M padded to the tile
                tile = self.tile_tokens  # (below one tile, cuBLAS picks skinny kernels: no padding)
                padded = np.where(m >= tile, np.ceil(m / tile) * tile, m)
                flops = flops * padded / np.maximum(m, 1)
            return gemm_time(flops, byts, dev, self.model.dtype)
        if op in KERNEL_TYPE:
            return elementwise_time(KERNEL_TYPE[op], elementwise_bytes(op, m, dims), dev)
        raise ValueError(
            f"unknown operator {op!r}; token-level operators are "
            f"{sorted((*GEMM_OPS, *ELEMENTWISE_OPS, 'lm_head', 'kv_write'))}"
        )

    def _moe_time(self, op: str, m):
        """Grouped expert GEMMs: expected activated experts' weights are read once."""
        dims, model = self.dims, self.model
        e, k = model.num_experts, model.experts_per_token
        n, kk = gemm_shape(op, dims)
        activated = e * (1.0 - (1.0 - k / e) ** m)
        flops = 2.0 * m * k * n * kk
        byts = dims.bytes_per_element * (activated * n * kk + m * k * (n + kk))
        par = ParamLookup(self.device, None)
        params = {"gemm.eta_c": par("gemm.eta_c") * par("moe.eta_c_scale")}
        t = gemm_time(flops, byts, self.device, model.dtype, params)
        if op == "mlp_up_proj":  # the router
            router = gemm_cost(m, e, dims.hidden_size, dims.bytes_per_element)
            t = t + gemm_time(*router, self.device, model.dtype)
        return t

    def attention_prefill_time(self, sum_chunk_context, sum_chunk_sq, sum_chunk, sum_context):
        """One prefill attention kernel over chunks with their cached context (per layer)."""
        fr, fs, byts = attention_prefill_cost(
            sum_chunk_context, sum_chunk_sq, sum_chunk, sum_context, self.dims
        )
        tc = (fr + self._attn_gamma * fs) * self._attn_fc
        tb = byts * self._attn_fb
        return self._attn_t0_prefill + pnorm(tc, tb, self._p)

    def attention_decode_time(self, num_seqs, sum_context):
        """One decode attention kernel over ``num_seqs`` sequences (per layer)."""
        flops, byts = attention_decode_cost(num_seqs, sum_context, self.dims)
        return self._attn_t0_decode + pnorm(flops * self._attn_fc, byts * self._attn_fb, self._p)

    def all_reduce_time(self, size_bytes, num_gpus: int | None = None):
        """All-reduce of ``size_bytes`` over ``num_gpus`` (default: the TP degree)."""
        n = self.tp if num_gpus is None else num_gpus
        return all_reduce_time(size_bytes, n, self.device, self.topology)

    def cpu_overhead_time(self, batch_size):
        """Per-iteration scheduler/sampler/CPU time for ``batch_size`` sequences."""
        return self._cpu_c0 + self._cpu_c1 * batch_size

    def layer_time(self, num_tokens):
        """Sum of the per-layer token-level operators (Vidur's layer set, no attention/comm)."""
        total = 0.0
        for op in self._layer_ops:
            total = total + self.op_time(op, num_tokens)
        return total

    @cached_property
    def _layer_ops(self) -> tuple[str, ...]:
        ops = (*LAYER_OPS, "kv_write")
        if self.model.parallel_block:
            ops = tuple(op for op in ops if op != "post_attention_layernorm")
        return ops

    def _token_time(self, num_tokens: int) -> float:
        """Everything that depends only on the token count, from a table built on first use.

        All layers' token-level operators (incl. KV-cache write and the two TP all-reduces per
        layer), the embedding and the final norm.
        """
        table = self._token_table
        if num_tokens >= len(table):
            size = max(8192, 2 * num_tokens + 1)
            m = np.arange(size, dtype=float)
            per_layer = self.layer_time(m)
            if self.tp > 1:
                per_layer = per_layer + 2.0 * self.all_reduce_time(m * self._act_bytes_per_token)
            t = (
                self.model.num_layers * per_layer
                + self.op_time("emb", m)
                + self.op_time("input_layernorm", m)
            )
            t[0] = 0.0
            self._token_table = table = t.tolist()
        return table[num_tokens]

    def _head_time(self, rows: int) -> float:
        """LM head on the sampled rows (and the gather of vocabulary shards under TP)."""
        table = self._head_table
        if rows >= len(table):
            r = np.arange(max(1024, 2 * rows + 1), dtype=float)
            t = self.op_time("lm_head", r)
            if self.tp > 1:
                t = t + 0.5 * self.all_reduce_time(r * self.dims.vocab_size * self.dims.bytes_per_element)
            t[0] = 0.0
            self._head_table = table = t.tolist()
        return table[rows]

    # -- a whole iteration -------------------------------------------------------------------
    def iteration_time(self, batch: IterationBatch) -> float:
        """Seconds of one forward pass of the batch, plus CPU overhead. O(1) in the batch."""
        decodes = batch.decode_seqs
        k = batch.spec_tokens
        drafts = 0 if k <= 0 else k * (decodes if batch.spec_seqs < 0 else batch.spec_seqs)
        tokens = batch.prefill_tokens + decodes + drafts
        if tokens <= 0:
            return 0.0
        t = self._token_time(tokens) + self._head_time(batch.sampled_prefills + decodes + drafts)
        t += self.model.num_layers * self._attention_time(batch)
        return t + self._cpu_c0 + self._cpu_c1 * (batch.prefill_seqs + decodes)

    def _attention_time(self, b: IterationBatch) -> float:
        """Per-layer attention with constants folded at construction. Prefill chunks and k+1-token
        verifications are prefill-style work; single-token decodes are decode work; a batch with
        both runs them in one varlen kernel (vLLM V1's FlashAttention call), so it pays one fixed
        time (the larger of the two) - piggybacked decodes then cost almost nothing (Sarathi)."""
        a = self._attn
        p, inv_p = self._p, self._inv_p
        t = 0.0
        q_ctx, q_sq, q, ctx = b.prefill_chunk_context, b.prefill_chunk_sq, b.prefill_tokens, b.prefill_context
        n, dctx = b.decode_seqs, b.decode_context
        if n and b.spec_tokens > 0:  # verification of k+1 tokens: a small prefill
            nv, vctx = (n, dctx) if b.spec_seqs < 0 else (b.spec_seqs, b.spec_context)
            v = b.spec_tokens + 1
            q_ctx += v * vctx
            q_sq += nv * v * v
            q += nv * v
            ctx += vctx
            n, dctx = n - nv, dctx - vctx
        if q > 0 and n:  # one varlen kernel for chunks and decodes (vLLM V1 / FlashAttention)
            tc = a[0] * (q_ctx + dctx) + a[1] * q_sq
            tb = a[2] * (ctx + q + dctx) + a[3] * q + a[4] * n
            return self._attn_t0_mixed + (tc**p + tb**p) ** inv_p
        if n:
            tc = a[0] * dctx
            tb = a[2] * dctx + a[4] * n
            t += self._attn_t0_decode + (tc**p + tb**p) ** inv_p
        if q > 0:
            tc = a[0] * q_ctx + a[1] * q_sq
            tb = a[2] * (ctx + q) + a[3] * q
            t += self._attn_t0_prefill + (tc**p + tb**p) ** inv_p
        return t

    def iteration_breakdown(self, batch: IterationBatch) -> dict[str, float]:
        """The iteration time split into named parts (seconds, summed over layers)."""
        tokens, layers = batch.num_tokens, self.model.num_layers
        if tokens <= 0:
            return {}
        parts = {op: layers * float(self.op_time(op, tokens)) for op in self._layer_ops}
        parts["attention"] = layers * self._attention_time(batch)
        if self.tp > 1:
            parts["all_reduce"] = (
                layers * 2.0 * float(self.all_reduce_time(tokens * self._act_bytes_per_token))
            )
        parts["emb"] = float(self.op_time("emb", tokens))
        parts["final_norm"] = float(self.op_time("input_layernorm", tokens))
        rows = batch.sampled_rows
        parts["lm_head"] = float(self.op_time("lm_head", rows)) if rows else 0.0
        if self.tp > 1 and rows:
            parts["lm_head"] += 0.5 * self.all_reduce_time(
                rows * self.dims.vocab_size * self.dims.bytes_per_element
            )
        parts["cpu_overhead"] = self.cpu_overhead_time(batch.num_seqs)
        return parts

    def prefill_time(self, prompt_tokens: int) -> float:
        """Time of one whole-prompt prefill iteration (no other requests in the batch)."""
        return self.iteration_time(IterationBatch().add_prefill(prompt_tokens, 0))

    def decode_time(self, batch_size: int, context: int) -> float:
        """Time of a decode iteration of ``batch_size`` sequences with ``context`` tokens each."""
        b = IterationBatch(decode_seqs=batch_size, decode_context=float(batch_size) * context)
        return self.iteration_time(b)

    # -- measurements ------------------------------------------------------------------------
    def predict(self, measurement: Measurement) -> float:
        """The model's estimate of exactly the quantity a measurement records."""
        from .features import predict_measurements

        return float(predict_measurements([measurement], self.device)[0])

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "device": self.device.name,
            "tp": self.tp,
            "topology": self.topology,
        }
