"""LatencyModel: hand-checked kernel times, monotonicity, iteration aggregates, consistency."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from servegym.hardware import IterationBatch, LatencyModel, Measurement, get_device, get_model, save_profile
from servegym.hardware.kernels import ELEMENTWISE_OPS, GEMM_OPS, gemm_cost, gemm_shape

TOKEN_OPS = (*GEMM_OPS, *ELEMENTWISE_OPS, "lm_head", "kv_write")
MODELS = ("Llama-2-7B", "Llama-3-8B", "Mixtral-8x7B", "phi-2", "Llama-2-70B")
DEVICES = ("a100", "h100", "l4")
TPS = (1, 2, 4)
CASES = list(itertools.product(MODELS, DEVICES, TPS))
TOKENS = np.unique(np.geomspace(1, 16384, 41).round()).astype(int)


def _ids(case):
    return "-".join(map(str, case))


@pytest.fixture(scope="module")
def models():
    """LatencyModels built once per (model, device, tp)."""
    return {case: LatencyModel(case[0], case[1], tp=case[2]) for case in CASES}


# ---- hand-computed kernel times ------------------------------------------------------------

EFF = {
    "p": 2.0,
    "gemm.eta_c": 0.5,
    "gemm.eta_b": 0.8,
    "gemm.t0_s": 4e-6,
    "elem.eta_b": 1.0,
    "elem.add.rho": 0.5,
    "elem.add.t0_s": 2e-6,
    "attn.eta_c": 0.4,
    "attn.eta_b": 0.6,
    "attn.gamma": 1.0,
    "attn.prefill_t0_s": 10e-6,
    "attn.decode_t0_s": 7e-6,
    "ar.nvswitch.n2.alpha_s": 30e-6,
    "ar.nvswitch.n2.bw_eff": 0.6,
    "cpu.c0_s": 1e-3,
    "cpu.c1_s": 10e-6,
}


@pytest.fixture(scope="module")
def hand_lm():
    dev = get_device("a100").with_efficiency(EFF)
    return LatencyModel("Llama-2-7B", dev, tp=2)


def test_gemm_op_time_hand_computed(hand_lm):
    peak, bw = 312e12, 2.039e12
    m, n, k = 512, (16 + 2 * 16) * 128, 4096  # Llama-2-7B at tp=2: 16 q and 16 kv heads per rank
    flops, byts = 2 * m * n * k, 2 * (m * k + k * n + m * n)
    tc, tb = flops / (0.5 * peak), byts / (0.8 * bw)
    expected = 4e-6 + (tc**2 + tb**2) ** 0.5
    assert hand_lm.op_time("attn_pre_proj", 512) == pytest.approx(expected, rel=1e-12)


def test_elementwise_op_time_hand_computed(hand_lm):
    m = 300
    byts = 2 * 3 * m * 4096
    assert hand_lm.op_time("add", m) == pytest.approx(2e-6 + byts / (0.5 * 1.0 * 2.039e12), rel=1e-12)


def test_attention_times_hand_computed(hand_lm):
    d, hq, hkv, b, p = 128, 16, 16, 2, 2.0
    fc, fb = 1 / (0.4 * 312e12), 1 / (0.6 * 2.039e12)
    # one 100-token chunk after 50 cached tokens
    flops = 4 * d * hq * (100 * 50) + 4 * d * hq * 100 * 100
    byts = 2 * (50 + 100) * hkv * d * b + 2 * 100 * hq * d * b
    expected = 10e-6 + ((flops * fc) ** p + (byts * fb) ** p) ** (1 / p)
    assert hand_lm.attention_prefill_time(100 * 50, 100 * 100, 100, 50) == pytest.approx(expected)
    # 8 decodes with 1000 tokens of context each
    flops = 4 * d * hq * 8000
    byts = 2 * 8000 * hkv * d * b + 2 * 8 * hq * d * b
    expected = 7e-6 + ((flops * fc) ** p + (byts * fb) ** p) ** (1 / p)
    assert hand_lm.attention_decode_time(8, 8000) == pytest.approx(expected)


def test_all_reduce_and_cpu_overhead_hand_computed(hand_lm):
    size = 8e6
    link = 600e9 / 2  # one direction of the bidirectional NVLink figure
    expected = 30e-6 + 2 * (2 - 1) / 2 * size / (0.6 * link)
    assert hand_lm.topology == "nvswitch"
    assert hand_lm.all_reduce_time(size) == pytest.approx(expected)
    assert hand_lm.all_reduce_time(size, num_gpus=1) == 0.0
    assert hand_lm.cpu_overhead_time(10) == pytest.approx(1e-3 + 10 * 10e-6)


def test_cpu_overhead_can_be_left_out():
    with_cpu = LatencyModel("Llama-3-8B", "a100")
    without = LatencyModel("Llama-3-8B", "a100", cpu_overhead=False)
    diff = with_cpu.decode_time(16, 512) - without.decode_time(16, 512)
    assert diff == pytest.approx(with_cpu.cpu_overhead_time(16))
    assert without.cpu_overhead_time(16) == 0.0


def test_unknown_op_and_bad_tp():
    lm = LatencyModel("Llama-3-8B", "a100")
    with pytest.raises(ValueError, match=r"unknown operator 'attn_softmax'.*mlp_up_proj"):
        lm.op_time("attn_softmax", 8)
    with pytest.raises(ValueError, match="tp=3 must divide num_heads"):
        LatencyModel("Llama-3-8B", "a100", tp=3)
    with pytest.raises(ValueError, match="LatencyModel: tp must be positive"):
        LatencyModel("Llama-3-8B", "a100", tp=0)


def test_predict_matches_op_time_and_attention():
    lm = LatencyModel("Llama-3-8B", "a100", tp=2)
    dims = lm.dims
    for op in ("attn_pre_proj", "mlp_down_proj", "input_layernorm", "attn_rope"):
        meas = Measurement(op=op, seconds=1.0, dims=dims, tp=2, num_tokens=777)
        assert lm.predict(meas) == pytest.approx(float(lm.op_time(op, 777)), rel=1e-9)
    pre = Measurement(
        op="attn_prefill", seconds=1.0, dims=dims, prefill_chunk=256, kv_context=1024, batch_size=1
    )
    expected = lm.attention_prefill_time(256 * 1024, 256 * 256, 256, 1024)
    assert lm.predict(pre) == pytest.approx(expected, rel=1e-9)
    dec = Measurement(op="attn_decode", seconds=1.0, dims=dims, batch_size=8, kv_context=500)
    assert lm.predict(dec) == pytest.approx(lm.attention_decode_time(8, 4000), rel=1e-9)


def test_op_time_array_matches_scalars():
    lm = LatencyModel("Mixtral-8x7B", "h100", tp=2)
    for op in ("mlp_up_proj", "attn_post_proj", "mlp_act"):
        arr = lm.op_time(op, TOKENS)
        for i in (0, 7, len(TOKENS) - 1):
            assert arr[i] == pytest.approx(float(lm.op_time(op, int(TOKENS[i]))), rel=1e-12)


def test_dense_gemm_is_at_least_the_roofline():
    """No GEMM runs faster than its pure compute or pure memory time at 100% efficiency."""
    lm = LatencyModel("Llama-2-7B", "a100")
    for op in GEMM_OPS:
        n, k = gemm_shape(op, lm.dims)
        flops, byts = gemm_cost(TOKENS.astype(float), n, k)
        bound = np.maximum(flops / 312e12, byts / 2.039e12)
        assert np.all(lm.op_time(op, TOKENS) >= bound)


# ---- monotonicity --------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_op_time_never_faster_with_more_tokens(models, case):
    lm = models[case]
    for op in TOKEN_OPS:
        t = np.asarray(lm.op_time(op, TOKENS))
        assert np.all(t > 0), op
        assert np.all(np.diff(t) >= 0), f"{op} gets faster with more tokens on {case}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_prefill_and_decode_never_faster_with_more_work(models, case):
    lm = models[case]
    prompts = [1, 2, 3, 16, 100, 511, 512, 2048, 8191, 8192, 8193, 20000]
    t = np.array([lm.prefill_time(n) for n in prompts])
    assert np.all(np.diff(t) >= 0), f"prefill not monotone: {t}"
    assert t[-1] > t[0]
    batches = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    t = np.array([lm.decode_time(b, 1024) for b in batches])
    assert np.all(np.diff(t) >= 0), f"decode not monotone in batch: {t}"
    contexts = [1, 16, 128, 1024, 4096, 16384, 32768]
    t = np.array([lm.decode_time(16, c) for c in contexts])
    assert np.all(np.diff(t) >= 0), f"decode not monotone in context: {t}"
    assert t[-1] > t[0]


def _random_batch(rng: np.random.Generator) -> IterationBatch:
    b = IterationBatch()
    for _ in range(int(rng.integers(0, 3))):
        b.add_prefill(int(rng.integers(1, 2048)), int(rng.integers(0, 4096)), bool(rng.integers(0, 2)))
    for _ in range(int(rng.integers(0, 64))):
        b.add_decode(int(rng.integers(1, 8192)))
    return b


@pytest.mark.parametrize("case", CASES[::4], ids=_ids)
def test_iteration_never_faster_when_work_is_added(models, case):
    lm = models[case]
    rng = np.random.default_rng(7)
    for _ in range(30):
        base = _random_batch(rng)
        t0 = lm.iteration_time(base)
        more_prefill = replace(base).add_prefill(int(rng.integers(1, 1024)), int(rng.integers(0, 2048)))
        more_decode = replace(base).add_decode(int(rng.integers(1, 8192)))
        longer = replace(base, decode_context=base.decode_context + 1000) if base.decode_seqs else base
        assert lm.iteration_time(more_prefill) >= t0
        assert lm.iteration_time(more_decode) >= t0
        assert lm.iteration_time(longer) >= t0


def test_more_tensor_parallelism_speeds_up_a_big_prefill():
    t = [LatencyModel("Llama-2-70B", "a100", tp=tp).prefill_time(4096) for tp in (2, 4, 8)]
    assert t[0] > t[1] > t[2]


def test_faster_device_is_faster():
    for model in ("Llama-3-8B", "Mixtral-8x7B"):
        l4, a100, h100 = (LatencyModel(model, d) for d in ("l4", "a100", "h100"))
        assert l4.prefill_time(2048) > a100.prefill_time(2048) > h100.prefill_time(2048)
        assert l4.decode_time(8, 1024) > a100.decode_time(8, 1024) > h100.decode_time(8, 1024)


# ---- iteration aggregates ------------------------------------------------------------------


def test_iteration_batch_aggregates():
    b = IterationBatch()
    assert b.add_prefill(100, 50) is b
    b.add_prefill(30, 0, completes=False)
    b.add_decode(1000).add_decode(24)
    assert b.prefill_seqs == 2
    assert b.prefill_tokens == 130
    assert b.prefill_chunk_context == 100 * 50 + 30 * 0
    assert b.prefill_chunk_sq == 100**2 + 30**2
    assert b.prefill_context == 50
    assert b.sampled_prefills == 1
    assert b.decode_seqs == 2
    assert b.decode_context == 1024
    assert b.num_tokens == 132
    assert b.num_seqs == 4
    assert b.sampled_rows == 3


def test_empty_iteration_costs_nothing():
    lm = LatencyModel("Llama-3-8B", "a100", tp=2)
    assert lm.iteration_time(IterationBatch()) == 0.0
    assert lm.decode_time(0, 1024) == 0.0


def test_prefill_and_decode_time_are_iterations():
    lm = LatencyModel("Llama-3-8B", "a100")
    assert lm.prefill_time(300) == lm.iteration_time(IterationBatch().add_prefill(300, 0))
    b = IterationBatch()
    for _ in range(5):
        b.add_decode(700)
    assert lm.decode_time(5, 700) == pytest.approx(lm.iteration_time(b))


@pytest.mark.parametrize("case", [("Llama-3-8B", "a100", 1), ("Mixtral-8x7B", "h100", 2), ("phi-2", "l4", 4)])
def test_breakdown_sums_to_iteration_time(case):
    lm = LatencyModel(*case[:2], tp=case[2])
    b = IterationBatch().add_prefill(512, 1024).add_prefill(64, 0, completes=False)
    for ctx in (300, 800, 2000):
        b.add_decode(ctx)
    parts = lm.iteration_breakdown(b)
    assert sum(parts.values()) == pytest.approx(lm.iteration_time(b), rel=1e-9)
    assert parts["attention"] > 0 and parts["cpu_overhead"] > 0
    assert ("all_reduce" in parts) == (case[2] > 1)
    assert lm.iteration_breakdown(IterationBatch()) == {}


def test_parallel_block_model_has_no_post_attention_layernorm():
    parts = LatencyModel("phi-2", "a100").iteration_breakdown(IterationBatch().add_prefill(128, 0))
    assert "post_attention_layernorm" not in parts
    parts = LatencyModel("Llama-3-8B", "a100").iteration_breakdown(IterationBatch().add_prefill(128, 0))
    assert parts["post_attention_layernorm"] > 0


def test_speculative_verification_cost():
    lm = LatencyModel("Llama-3-8B", "a100")
    batch, ctx, k = 32, 1024, 4
    plain = lm.decode_time(batch, ctx)
    spec = lm.iteration_time(IterationBatch(decode_seqs=batch, decode_context=batch * ctx, spec_tokens=k))
    separate = sum(lm.decode_time(batch, ctx + i) for i in range(k + 1))
    assert plain < spec < separate
    assert IterationBatch(decode_seqs=batch, spec_tokens=k).num_tokens == batch * (k + 1)


def test_latency_model_accepts_profile_path_string(tmp_path):
    dev = get_device("a100").with_efficiency({"gemm.eta_c": 0.3, "cpu.c0_s": 5e-3}, source="test")
    path = save_profile(dev, tmp_path / "prof.yaml")
    lm = LatencyModel("Llama-3-8B", str(path))
    assert lm.device == dev
    assert lm.cpu_overhead_time(0) == 5e-3
    assert lm.prefill_time(4096) > LatencyModel("Llama-3-8B", "a100").prefill_time(4096)


def test_latency_model_accepts_profile_pathlib_path(tmp_path):
    path = save_profile(get_device("a100"), tmp_path / "prof.yaml")
    lm = LatencyModel(get_model("Llama-3-8B"), path)
    assert lm.device.name == "A100-80GB"
