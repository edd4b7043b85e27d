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
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numba import njit

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
from .params import ALL_REDUCE_TOPOLOGIES, all_reduce_keys
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


# ---- the compiled iteration-time rule ------------------------------------------------------

(
    C_ATTN_QK, C_ATTN_SQ, C_ATTN_KV, C_ATTN_Q, C_ATTN_SEQ, C_P, C_INV_P, C_T0_PREFILL, C_T0_DECODE,
    C_T0_MIXED, C_CPU_C0, C_CPU_C1, C_LAYERS,
) = range(13)  # fmt: skip
N_CONSTANTS = 13


class LatencyTables(NamedTuple):
    """A latency model in the form compiled simulators read: per-token-count tables and constants."""

    token_s: np.ndarray  # token-count-only time of an iteration of n tokens (index n)
    head_s: np.ndarray  # LM head (and vocabulary gather) on n sampled rows
    constants: np.ndarray  # attention, CPU-overhead and layer constants (C_* indices)


@njit(cache=True)
def attention_seconds(
    c, q_ctx, q_sq, q, ctx, n, dctx, spec_tokens, spec_seqs, spec_context
) -> float:  # pragma: no cover - compiled
    """Per-layer attention. Prefill chunks and k+1-token verifications are prefill-style work;
    single-token decodes are decode work; a batch with both runs them in one varlen kernel
    (vLLM V1's FlashAttention call), so it pays one fixed time (the larger of the two) -
    piggybacked decodes then cost almost nothing (Sarathi)."""
    p, inv_p = c[C_P], c[C_INV_P]
    t = 0.0
    if n and spec_tokens > 0:  # verification of k+1 tokens: a small prefill
        if spec_seqs < 0:
            nv, vctx = n, dctx
        else:
            nv, vctx = spec_seqs, spec_context
        v = spec_tokens + 1
        q_ctx += v * vctx
        q_sq += nv * v * v
        q += nv * v
        ctx += vctx
        n, dctx = n - nv, dctx - vctx
    if q > 0 and n:  # one varlen kernel for chunks and decodes (vLLM V1 / FlashAttention)
        tc = c[C_ATTN_QK] * (q_ctx + dctx) + c[C_ATTN_SQ] * q_sq
        tb = c[C_ATTN_KV] * (ctx + q + dctx) + c[C_ATTN_Q] * q + c[C_ATTN_SEQ] * n
        return c[C_T0_MIXED] + (tc**p + tb**p) ** inv_p
    if n:
        tc = c[C_ATTN_QK] * dctx
        tb = c[C_ATTN_KV] * dctx + c[C_ATTN_SEQ] * n
        t += c[C_T0_DECODE] + (tc**p + tb**p) ** inv_p
    if q > 0:
        tc = c[C_ATTN_QK] * q_ctx + c[C_ATTN_SQ] * q_sq
        tb = c[C_ATTN_KV] * (ctx + q) + c[C_ATTN_Q] * q
        t += c[C_T0_PREFILL] + (tc**p + tb**p) ** inv_p
    return t


@njit(cache=True)
def iteration_seconds(
    tables,
    prefill_seqs,
    prefill_tokens,
    prefill_chunk_context,
    prefill_chunk_sq,
    prefill_context,
    sampled_prefills,
    decode_seqs,
    decode_context,
    spec_tokens,
    spec_seqs,
    spec_context,
) -> float:  # pragma: no cover - compiled
    """Seconds of one forward pass from the batch aggregates (see ``IterationBatch``), plus CPU
    overhead. The tables must cover the batch's token count (``LatencyModel.ensure_tables``)."""
    c = tables.constants
    k = spec_tokens
    if k <= 0:
        drafts = 0
    elif spec_seqs < 0:
        drafts = k * decode_seqs
    else:
        drafts = k * spec_seqs
    tokens = prefill_tokens + decode_seqs + drafts
    if tokens <= 0:
        return 0.0
    t = tables.token_s[tokens] + tables.head_s[sampled_prefills + decode_seqs + drafts]
    t += c[C_LAYERS] * attention_seconds(
        c,
        prefill_chunk_context,
        prefill_chunk_sq,
        prefill_tokens,
        prefill_context,
        decode_seqs,
        decode_context,
        spec_tokens,
        spec_seqs,
        spec_context,
    )
    return t + c[C_CPU_C0] + c[C_CPU_C1] * (prefill_seqs + decode_seqs)


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
        if self.topology not in ALL_REDUCE_TOPOLOGIES and not ParamLookup(self.device, None).has(
            f"ar.{self.topology}.alpha_s"
        ):
            raise ValueError(
                f"LatencyModel: topology must be one of {ALL_REDUCE_TOPOLOGIES} or one the device's "
                f"profile has all-reduce parameters for, got {topology!r}"
            )
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
        # Attention constants: seconds per unit of each aggregate (see kernels.attention_*_cost).
        d, b = self.dims.head_dim, self.dims.bytes_per_element
        hq, hkv = self.dims.q_heads_per_rank, self.dims.kv_heads_per_rank
        constants = np.zeros(N_CONSTANTS)
        constants[C_ATTN_QK] = 4.0 * d * hq * self._attn_fc  # compute per (query token x context token)
        constants[C_ATTN_SQ] = 4.0 * d * hq * self._attn_fc * self._attn_gamma  # per chunk^2 (causal)
        constants[C_ATTN_KV] = 2.0 * hkv * d * b * self._attn_fb  # memory per K/V token read
        constants[C_ATTN_Q] = 2.0 * hq * d * b * self._attn_fb  # memory per query token (Q read, O written)
        constants[C_ATTN_SEQ] = 2.0 * hq * d * b * self._attn_fb  # memory per decode sequence
        constants[C_P] = self._p
        constants[C_INV_P] = 1.0 / self._p
        constants[C_T0_PREFILL] = self._attn_t0_prefill
        constants[C_T0_DECODE] = self._attn_t0_decode
        constants[C_T0_MIXED] = self._attn_t0_mixed
        constants[C_CPU_C0] = self._cpu_c0
        constants[C_CPU_C1] = self._cpu_c1
        constants[C_LAYERS] = self.model.num_layers
        self._constants = constants
        self._token_table = self._head_table = np.zeros(0)
        self.ensure_tables(0)

    def __deepcopy__(self, memo: dict) -> LatencyModel:
        return self  # immutable once built (the tables only grow): clones of a simulator share it

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

    def ensure_tables(self, num_tokens: int) -> None:
        """Extend the per-token-count tables to cover iterations of up to ``num_tokens`` tokens.

        The token table holds everything that depends only on the token count: all layers'
        token-level operators (incl. KV-cache write and the two TP all-reduces per layer), the
        embedding and the final norm. The head table holds the LM head on the sampled rows (and
        the gather of vocabulary shards under TP). Both are built on first use and doubled.
        """
        if num_tokens < len(self._token_table):
            return
        size = max(8192, 2 * num_tokens + 1)
        m = np.arange(size, dtype=float)
        per_layer = self.layer_time(m)
        if self.tp > 1:
            per_layer = per_layer + 2.0 * self.all_reduce_time(m * self._act_bytes_per_token)
        t = self.model.num_layers * per_layer + self.op_time("emb", m) + self.op_time("input_layernorm", m)
        t[0] = 0.0
        h = self.op_time("lm_head", m)
        if self.tp > 1:
            h = h + 0.5 * self.all_reduce_time(m * self.dims.vocab_size * self.dims.bytes_per_element)
        h[0] = 0.0
        self._token_table, self._head_table = t, h
        self._tables = LatencyTables(t, h, self._constants)

    @property
    def tables(self) -> LatencyTables:
        """What the compiled iteration-time rule reads (tables sized by ``ensure_tables``)."""
        return self._tables

    # -- a whole iteration -------------------------------------------------------------------
    def iteration_time(self, batch: IterationBatch) -> float:
        """Seconds of one forward pass of the batch, plus CPU overhead. O(1) in the batch."""
        self.ensure_tables(batch.num_tokens)
        return iteration_seconds(
            self._tables,
            batch.prefill_seqs,
            batch.prefill_tokens,
            batch.prefill_chunk_context,
            batch.prefill_chunk_sq,
            batch.prefill_context,
            batch.sampled_prefills,
            batch.decode_seqs,
            batch.decode_context,
            batch.spec_tokens,
            batch.spec_seqs,
            batch.spec_context,
        )

    def _attention_time(self, b: IterationBatch) -> float:
        return attention_seconds(
            self._constants,
            b.prefill_chunk_context,
            b.prefill_chunk_sq,
            b.prefill_tokens,
            b.prefill_context,
            b.decode_seqs,
            b.decode_context,
            b.spec_tokens,
            b.spec_seqs,
            b.spec_context,
        )

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
