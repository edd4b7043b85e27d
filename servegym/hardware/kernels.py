"""FLOP and byte counts of the kernels of one tensor-parallel rank.

Every function works on Python scalars and on numpy arrays alike, so the latency model
(scalar, per iteration) and the calibration (vectorised over measurements) share one
definition of the work each operator does. ``b`` is bytes per element.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Operator names follow Vidur's profiler so that measurements map one to one.
GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
ELEMENTWISE_OPS = (
    "input_layernorm",
    "post_attention_layernorm",
    "attn_rope",
    "mlp_act",
    "add",
    "emb",
)
ATTENTION_OPS = ("attn_prefill", "attn_decode")
LAYER_OPS = (
    "input_layernorm",
    "attn_pre_proj",
    "attn_rope",
    "attn_post_proj",
    "post_attention_layernorm",
    "mlp_up_proj",
    "mlp_act",
    "mlp_down_proj",
    "add",
)
"""Operators that run once per transformer layer (Vidur's per-layer set; ``emb`` runs once)."""

# Elementwise operator -> kernel type (whose efficiency is a property of the implementation).
KERNEL_TYPE = {
    "input_layernorm": "norm",
    "post_attention_layernorm": "norm",
    "attn_rope": "rope",
    "mlp_act": "act",
    "add": "add",
    "emb": "emb",
    "kv_write": "kv_write",
}
KERNEL_TYPES = ("norm", "rope", "act", "add", "emb", "kv_write")


@dataclass(frozen=True)
class LayerDims:
    """Per-rank dimensions of one transformer layer (what an operator's cost depends on)."""

    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    ffn_size: int
    gated_mlp: bool
    vocab_size: int
    tp: int = 1
    bytes_per_element: int = 2

    @property
    def q_heads_per_rank(self) -> float:
        return self.num_heads / self.tp

    @property
    def kv_heads_per_rank(self) -> float:
        # KV heads are replicated when tp exceeds their number (vLLM's rule).
        return max(self.num_kv_heads / self.tp, 1.0)


def gemm_shape(op: str, dims: LayerDims) -> tuple[float, float]:
    """(N, K) of the per-rank weight of a GEMM operator; M is the token count."""
    h, d, t = dims.hidden_size, dims.head_dim, dims.tp
    if op == "attn_pre_proj":
        return (dims.q_heads_per_rank + 2 * dims.kv_heads_per_rank) * d, h
    if op == "attn_post_proj":
        return h, dims.q_heads_per_rank * d
    if op == "mlp_up_proj":
        return dims.ffn_size * (2 if dims.gated_mlp else 1) / t, h
    if op == "mlp_down_proj":
        return h, dims.ffn_size / t
    if op == "lm_head":
        return dims.vocab_size / t, h
    raise ValueError(f"not a GEMM operator: {op!r}")


def gemm_cost(m, n, k, b: int = 2):
    """FLOPs and DRAM bytes of an (m x k) @ (k x n) GEMM: read A and W, write C."""
    return 2.0 * m * n * k, b * (m * k + k * n + m * n)


def elementwise_bytes(op: str, m, dims: LayerDims):
    """DRAM bytes moved by an elementwise operator on ``m`` tokens."""
    b, h, d = dims.bytes_per_element, dims.hidden_size, dims.head_dim
    if op in ("input_layernorm", "post_attention_layernorm"):
        return b * (2.0 * m * h + h)  # read x, write y, read the weight
    if op == "attn_rope":
        return b * 2.0 * m * (dims.q_heads_per_rank + dims.kv_heads_per_rank) * d
    if op == "mlp_act":
        f = dims.ffn_size / dims.tp
        return b * (3.0 if dims.gated_mlp else 2.0) * m * f
    if op == "add":
        return b * 3.0 * m * h
    if op == "emb":
        return b * 2.0 * m * h  # gather rows, write activations
    if op == "kv_write":
        return b * 4.0 * m * dims.kv_heads_per_rank * d  # read and write K and V
    raise ValueError(f"not an elementwise operator: {op!r}")


def attention_prefill_cost(sum_q_kv, sum_q_sq, sum_q, sum_kv, dims: LayerDims):
    """Attention of prefill chunks against their cached context.

    Returns (FLOPs of the rectangle against the cache, FLOPs of the chunk-square part, bytes).
    The square part is scaled by the fitted causal factor gamma in the latency model.
    """
    d, b = dims.head_dim, dims.bytes_per_element
    hq, hkv = dims.q_heads_per_rank, dims.kv_heads_per_rank
    flops_rect = 4.0 * d * hq * sum_q_kv
    flops_square = 4.0 * d * hq * sum_q_sq
    kv_bytes = 2.0 * (sum_kv + sum_q) * hkv * d * b
    qo_bytes = 2.0 * sum_q * hq * d * b
    return flops_rect, flops_square, kv_bytes + qo_bytes


def attention_decode_cost(num_seqs, sum_kv, dims: LayerDims):
    """Attention of single-token decodes (FLOPs, bytes): memory-bound on the KV cache."""
    d, b = dims.head_dim, dims.bytes_per_element
    hq, hkv = dims.q_heads_per_rank, dims.kv_heads_per_rank
    flops = 4.0 * d * hq * sum_kv
    byts = 2.0 * sum_kv * hkv * d * b + 2.0 * num_seqs * hq * d * b
    return flops, byts


def pnorm(a, b, p: float):
    """Smooth maximum ((a^p + b^p)^(1/p)) of two non-negative times."""
    return (a**p + b**p) ** (1.0 / p)


def ring_all_reduce_bytes(size_bytes, num_gpus):
    """Bytes each rank sends in a ring all-reduce of ``size_bytes``: 2(N-1)/N * S."""
    n = np.asarray(num_gpus, dtype=float) if not np.isscalar(num_gpus) else float(num_gpus)
    return 2.0 * (n - 1.0) / n * size_bytes
