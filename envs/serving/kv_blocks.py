"""The paged KV cache: its size in blocks, and the block rules of admission and growth.

Capacity follows vLLM's profile of free memory: memory x ``gpu_memory_utilization`` - weights/TP
- an activation reserve, in blocks of ``block_size`` tokens. A request is admitted only when its
whole prefill target's blocks are free beyond a watermark (Sarathi/Vidur's rule), and a
decoding request takes a new block whenever its KV slots are full.
"""

from __future__ import annotations

import math

from numba import njit

from servegym.hardware import ModelSpec

from .config import EngineConfig
from .state import C_BLOCK_SIZE, C_WATERMARK, S_FREE_BLOCKS

WATERMARK_FRACTION = 0.01  # free blocks kept back at admission (Vidur's watermark_blocks_fraction)


def watermark_blocks(capacity_blocks: int) -> int:
    return int(WATERMARK_FRACTION * capacity_blocks)


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
    """KV blocks per GPU: ``config.kv_capacity_blocks`` if set, else (memory x utilisation -
    weights/tp - activations) / block bytes. One ``max_model_len`` request must fit next to the
    admission watermark."""
    model, device = config.model, config.device
    weights = model.weight_bytes / config.tp
    draft = config.draft_latency_model()
    if draft is not None:
        weights += draft.model.weight_bytes
    reserve = activation_reserve_bytes(model, config.tp, max(config.token_budget, config.max_num_seqs))
    if config.kv_capacity_blocks:
        blocks = config.kv_capacity_blocks
        needed = math.ceil(config.context_limit() / config.block_size) + watermark_blocks(blocks)
        if blocks < needed:
            raise ValueError(
                f"engine config: kv_capacity_blocks={blocks} holds fewer than one request of "
                f"max_model_len={config.context_limit()} tokens plus the admission watermark "
                f"({needed} blocks of {config.block_size} tokens)"
            )
        return blocks
    usable = device.mem_capacity * config.gpu_memory_utilization
    kv_per_token = model.kv_bytes_per_token / config.tp
    if draft is not None:
        kv_per_token += draft.model.kv_bytes_per_token
    free = usable - weights - reserve
    blocks = int(free // (kv_per_token * config.block_size)) if free > 0 else 0
    needed = math.ceil(config.context_limit() / config.block_size) + watermark_blocks(blocks)
    if blocks < needed:
        raise ValueError(
            f"engine config: the KV cache holds {blocks * config.block_size} tokens on {device.name} "
            f"(memory {device.mem_capacity / 1e9:.0f} GB x {config.gpu_memory_utilization} minus "
            f"{weights / 1e9:.1f} GB of weights and {reserve / 1e9:.1f} GB of activations), fewer than one "
            f"request of max_model_len={config.context_limit()} tokens; raise tp, gpu_memory_utilization, "
            "or lower max_model_len"
        )
    return blocks


@njit(cache=True)
def blocks_for(tokens, block_size):  # pragma: no cover - compiled
    return -(-tokens // block_size)


@njit(cache=True)
def fits_past_watermark(state, cfg, tokens) -> bool:  # pragma: no cover - compiled
    """Whether ``tokens`` of new KV fit in the free blocks beyond the admission watermark."""
    return blocks_for(tokens, cfg.ints[C_BLOCK_SIZE]) <= state.scalars[S_FREE_BLOCKS] - cfg.ints[C_WATERMARK]


@njit(cache=True)
def allocate(state, blocks) -> None:  # pragma: no cover - compiled
    state.scalars[S_FREE_BLOCKS] -= blocks


@njit(cache=True)
def release_slots(state, cfg, slots) -> None:  # pragma: no cover - compiled
    """Free the blocks behind ``slots`` KV token slots (a multiple of the block size)."""
    state.scalars[S_FREE_BLOCKS] += slots // cfg.ints[C_BLOCK_SIZE]
