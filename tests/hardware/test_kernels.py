"""FLOP and byte counts of kernels and model sizes, against hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from servegym.hardware import ModelSpec, get_model
from servegym.hardware.kernels import (
    LayerDims,
    attention_decode_cost,
    attention_prefill_cost,
    elementwise_bytes,
    gemm_cost,
    gemm_shape,
    pnorm,
    ring_all_reduce_bytes,
)

# A tiny layer whose counts are easy to work out by hand: per rank (tp=2) 2 query heads,
# 1 KV head, head_dim 2, ffn 8, bytes per element 2.
SMALL = LayerDims(
    hidden_size=8,
    num_heads=4,
    num_kv_heads=2,
    head_dim=2,
    ffn_size=16,
    gated_mlp=True,
    vocab_size=100,
    tp=2,
    bytes_per_element=2,
)


def test_gemm_cost_hand_computed():
    flops, byts = gemm_cost(3, 5, 7, 2)
    assert flops == 2 * 3 * 5 * 7  # one multiply and one add per MAC
    assert byts == 2 * (3 * 7 + 7 * 5 + 3 * 5)  # read A (m x k), W (k x n), write C (m x n)
    assert gemm_cost(3, 5, 7, 1)[1] == 3 * 7 + 7 * 5 + 3 * 5


def test_gemm_cost_vectorises_like_scalars():
    m = np.array([1, 16, 4096])
    flops, byts = gemm_cost(m, 12288, 4096)
    for i, mi in enumerate(m):
        f, b = gemm_cost(int(mi), 12288, 4096)
        assert flops[i] == f
        assert byts[i] == b


def test_gemm_shapes_llama2_70b_tp4_gqa():
    dims = get_model("Llama-2-70B").layer_dims(4)  # h 8192, 64 q heads, 8 kv heads, d 128
    assert gemm_shape("attn_pre_proj", dims) == ((64 + 2 * 8) * 128 / 4, 8192)
    assert gemm_shape("attn_pre_proj", dims)[0] == 2560
    assert gemm_shape("attn_post_proj", dims) == (8192, 64 * 128 / 4)
    assert gemm_shape("mlp_up_proj", dims) == (2 * 28672 / 4, 8192)  # gated: up and gate
    assert gemm_shape("mlp_down_proj", dims) == (8192, 28672 / 4)
    assert gemm_shape("lm_head", dims) == (32000 / 4, 8192)


def test_gemm_shapes_without_tp_and_without_gating():
    llama = get_model("Llama-2-7B").layer_dims(1)
    assert gemm_shape("attn_pre_proj", llama) == (3 * 4096, 4096)  # MHA: q, k, v
    assert gemm_shape("mlp_up_proj", llama) == (2 * 11008, 4096)
    phi = get_model("phi-2").layer_dims(1)  # gelu MLP: no gate projection
    assert gemm_shape("mlp_up_proj", phi) == (10240, 2560)
    assert gemm_shape("attn_post_proj", phi) == (2560, 32 * 80)


def test_kv_heads_are_replicated_when_tp_exceeds_them():
    dims = get_model("Llama-2-70B").layer_dims(16)  # 8 kv heads over 16 ranks: one per rank
    assert dims.kv_heads_per_rank == 1.0
    assert gemm_shape("attn_pre_proj", dims)[0] == (64 / 16 + 2 * 1) * 128


def test_gemm_shape_rejects_non_gemm_ops():
    with pytest.raises(ValueError, match="not a GEMM operator: 'add'"):
        gemm_shape("add", SMALL)


def test_elementwise_bytes_hand_computed():
    m, b, h = 3, 2, 8
    assert elementwise_bytes("input_layernorm", m, SMALL) == b * (2 * m * h + h) == 112
    assert elementwise_bytes("post_attention_layernorm", m, SMALL) == 112
    # rope on q (2 heads/rank) and k (1 head/rank) of head_dim 2: read and write
    assert elementwise_bytes("attn_rope", m, SMALL) == b * 2 * m * (2 + 1) * 2 == 72
    # gated activation on ffn/tp = 8 columns: read up and gate, write one
    assert elementwise_bytes("mlp_act", m, SMALL) == b * 3 * m * 8 == 144
    assert elementwise_bytes("add", m, SMALL) == b * 3 * m * h == 144
    assert elementwise_bytes("emb", m, SMALL) == b * 2 * m * h == 96
    assert elementwise_bytes("kv_write", m, SMALL) == b * 4 * m * 1 * 2 == 48
    ungated = LayerDims(8, 4, 2, 2, 16, False, 100, tp=2, bytes_per_element=2)
    assert elementwise_bytes("mlp_act", m, ungated) == b * 2 * m * 8 == 96


def test_elementwise_bytes_rejects_unknown_op():
    with pytest.raises(ValueError, match="not an elementwise operator: 'mlp_up_proj'"):
        elementwise_bytes("mlp_up_proj", 4, SMALL)


def test_attention_prefill_cost_hand_computed():
    # one chunk of 3 tokens after... aggregate sums: q*kv = 10, q^2 = 9, q = 3, kv = 10
    rect, square, byts = attention_prefill_cost(10, 9, 3, 10, SMALL)
    d, hq, hkv, b = 2, 2, 1, 2
    assert rect == 4 * d * hq * 10 == 160
    assert square == 4 * d * hq * 9 == 144
    kv_bytes = 2 * (10 + 3) * hkv * d * b  # K and V of cache + chunk
    qo_bytes = 2 * 3 * hq * d * b  # read Q, write O
    assert byts == kv_bytes + qo_bytes == 152


def test_attention_decode_cost_hand_computed():
    flops, byts = attention_decode_cost(4, 20, SMALL)
    assert flops == 4 * 2 * 2 * 20 == 320
    assert byts == 2 * 20 * 1 * 2 * 2 + 2 * 4 * 2 * 2 * 2 == 224


def test_pnorm_and_ring_bytes():
    assert pnorm(3.0, 4.0, 2.0) == pytest.approx(5.0)
    assert pnorm(7.0, 0.0, 1.5) == pytest.approx(7.0)
    assert pnorm(1.0, 1.0, 1.0) == pytest.approx(2.0)
    assert ring_all_reduce_bytes(100.0, 4) == pytest.approx(150.0)  # 2 (N-1)/N S
    assert ring_all_reduce_bytes(100.0, 2) == pytest.approx(100.0)
    np.testing.assert_allclose(ring_all_reduce_bytes(100.0, np.array([2, 4, 8])), [100.0, 150.0, 175.0])


def test_param_count_llama2_7b():
    m = get_model("Llama-2-7B")
    assert m.param_count == pytest.approx(6.74e9, rel=0.01)
    attn = 4096 * (32 + 2 * 32) * 128 + 32 * 128 * 4096
    mlp = 3 * 4096 * 11008
    assert m.param_count == 32 * (attn + mlp) + 2 * 32000 * 4096
    assert m.weight_bytes == 2 * m.param_count


def test_param_count_llama3_8b_and_mixtral():
    assert get_model("Llama-3-8B").param_count == pytest.approx(8.03e9, rel=0.01)
    mixtral = get_model("Mixtral-8x7B")
    assert mixtral.is_moe
    assert mixtral.param_count == pytest.approx(46.7e9, rel=0.01)


def test_kv_bytes_per_token():
    assert get_model("Llama-2-7B").kv_bytes_per_token == 2 * 32 * 32 * 128 * 2
    assert get_model("Llama-3-8B").kv_bytes_per_token == 2 * 32 * 8 * 128 * 2  # GQA: 8 kv heads


def test_layer_dims_per_rank():
    dims = get_model("Llama-3-8B").layer_dims(2)
    assert (dims.tp, dims.q_heads_per_rank, dims.kv_heads_per_rank) == (2, 16, 4)
    assert dims.bytes_per_element == 2
    with pytest.raises(ValueError, match="tp=3 must divide num_heads"):
        get_model("Llama-3-8B").layer_dims(3)
    with pytest.raises(ValueError, match="tp must be positive"):
        get_model("Llama-3-8B").layer_dims(0)


def test_model_spec_head_dim_default_and_moe_from_dict():
    m = ModelSpec(
        "tiny", num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2, ffn_size=128, vocab_size=10
    )
    assert m.head_dim == 16
    moe = ModelSpec.from_dict(
        {
            "name": "tiny-moe",
            "num_layers": 2,
            "hidden_size": 64,
            "num_heads": 4,
            "num_kv_heads": 4,
            "ffn_size": 128,
            "vocab_size": 10,
            "moe": {"num_experts": 4, "experts_per_token": 2},
        }
    )
    assert (moe.num_experts, moe.experts_per_token) == (4, 2)
    assert moe.param_count == 2 * (64 * 12 * 16 + 4 * 16 * 64 + 4 * 3 * 64 * 128 + 64 * 4) + 2 * 10 * 64


LLAMA2_7B_HF = {
    "_name_or_path": "meta-llama/Llama-2-7b-hf",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "hidden_act": "silu",
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}


def test_from_hf_config_matches_catalog():
    spec = ModelSpec.from_hf_config(LLAMA2_7B_HF)
    cat = get_model("Llama-2-7B")
    for f in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "ffn_size", "vocab_size"):
        assert getattr(spec, f) == getattr(cat, f), f
    assert spec.gated_mlp and spec.norm == "rmsnorm"
    assert spec.param_count == cat.param_count
    with pytest.raises(ValueError, match="missing field vocab_size"):
        ModelSpec.from_hf_config({k: v for k, v in LLAMA2_7B_HF.items() if k != "vocab_size"})


PHI2_HF = {
    "_name_or_path": "microsoft/phi-2",
    "model_type": "phi",
    "hidden_size": 2560,
    "intermediate_size": 10240,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "vocab_size": 51200,
    "hidden_act": "gelu_new",
    "layer_norm_eps": 1e-5,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}


def test_from_hf_config_phi2_dims():
    spec = ModelSpec.from_hf_config(PHI2_HF)
    assert not spec.gated_mlp
    assert spec.norm == "layernorm"
    assert spec.head_dim == 80


def test_from_hf_config_phi2_is_parallel_block():
    assert ModelSpec.from_hf_config(PHI2_HF).parallel_block == get_model("phi-2").parallel_block
