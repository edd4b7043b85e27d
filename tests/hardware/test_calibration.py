"""Calibration: recovery of known parameters, zero-shot behaviour, accuracy on real data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from servegym.hardware import (
    GENERIC_PRIOR,
    Measurement,
    MeasurementSet,
    Prior,
    calibrate,
    default_prior,
    get_device,
    get_model,
    learn_prior,
)
from servegym.hardware.accuracy import evaluate, format_table, stratified_draw
from servegym.hardware.calibration import free_parameters, prior_for
from servegym.hardware.features import FeatureTable

# Known efficiencies, each at least 25% away from the generic prior's mean.
TRUTH = {
    "p": GENERIC_PRIOR.mean["p"],  # p is not fitted
    "gemm.eta_c": 0.5,
    "gemm.eta_b": 0.6,
    "gemm.t0_s": 9e-6,
    "elem.eta_b": 1.0,
    "elem.norm.rho": 0.6,
    "elem.norm.t0_s": 6e-6,
    "elem.act.rho": 0.7,
    "elem.act.t0_s": 2e-6,
    "attn.eta_c": 0.5,
    "attn.eta_b": 0.55,
    "attn.gamma": 0.7,
    "attn.prefill_t0_s": 35e-6,
    "attn.decode_t0_s": 8e-6,
    "ar.nvswitch.n2.alpha_s": 35e-6,
    "ar.nvswitch.n2.bw_eff": 0.75,
    "ar.nvswitch.n4.alpha_s": 60e-6,
    "ar.nvswitch.n4.bw_eff": 0.3,
    "cpu.c0_s": 2.5e-3,
    "cpu.c1_s": 60e-6,
}
TOKENS = (1, 2, 8, 32, 128, 512, 2048, 8192)


def _synthetic_records() -> list[Measurement]:
    recs: list[Measurement] = []
    ops = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj", "input_layernorm", "mlp_act")
    for name, tp in (
        ("Llama-2-7B", 1),
        ("Llama-3-8B", 2),
        ("Llama-2-70B", 4),
        ("phi-2", 1),
        ("Llama-68M", 1),
    ):
        dims = get_model(name).layer_dims(tp)
        for op in ops:
            for m in TOKENS:
                recs.append(Measurement(op=op, seconds=1.0, model=name, dims=dims, tp=tp, num_tokens=m))
    dims = get_model("Llama-3-8B").layer_dims(1)
    for q in (16, 64, 256, 1024, 4096):
        for kv in (0, 512, 4096):
            recs.append(
                Measurement(
                    op="attn_prefill", seconds=1.0, dims=dims, prefill_chunk=q, kv_context=kv, batch_size=1
                )
            )
    for b in (1, 4, 16, 64, 256):
        for kv in (16, 256, 4096):
            recs.append(Measurement(op="attn_decode", seconds=1.0, dims=dims, batch_size=b, kv_context=kv))
    for n in (2, 4):
        for size in 2.0 ** np.arange(10, 31, 2):
            recs.append(
                Measurement(
                    op="all_reduce", seconds=1.0, size_bytes=float(size), num_gpus=n, topology="nvswitch"
                )
            )
    for b in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        recs.append(Measurement(op="cpu_overhead", seconds=1.0, batch_size=b))
    return recs


@pytest.fixture(scope="module")
def recovered():
    truth = get_device("a100").with_efficiency(TRUTH)
    recs = _synthetic_records()
    seconds = FeatureTable(recs).predict(truth)
    noise = np.random.default_rng(20240611).lognormal(0.0, 0.03, size=len(recs))
    recs = [replace(r, seconds=float(s)) for r, s in zip(recs, seconds * noise, strict=True)]
    start = get_device("a100").with_efficiency({})  # datasheet only
    return calibrate(start, MeasurementSet(recs), GENERIC_PRIOR), recs


def test_truth_is_far_from_the_prior():
    for name, value in TRUTH.items():
        if name in ("p", "elem.eta_b"):
            continue
        mean, _ = prior_for(name, GENERIC_PRIOR)
        assert abs(np.log(value / mean)) > np.log(1.25), name


@pytest.mark.parametrize(
    "name",
    [
        "gemm.eta_c",
        "gemm.eta_b",
        "gemm.t0_s",
        "attn.eta_c",
        "attn.eta_b",
        "attn.gamma",
        "attn.prefill_t0_s",
        "attn.decode_t0_s",
        "ar.nvswitch.n2.alpha_s",
        "ar.nvswitch.n2.bw_eff",
        "ar.nvswitch.n4.alpha_s",
        "ar.nvswitch.n4.bw_eff",
        "cpu.c0_s",
        "cpu.c1_s",
        "elem.norm.t0_s",
        "elem.act.t0_s",
    ],
)
def test_calibration_recovers_known_parameters(recovered, name):
    fitted, _ = recovered
    assert fitted.efficiency[name] == pytest.approx(TRUTH[name], rel=0.10)


def test_elementwise_bandwidth_recovered_as_a_product(recovered):
    """rho and the device-level elem.eta_b are only identified together."""
    fitted, _ = recovered
    eff = fitted.efficiency
    for ktype in ("norm", "act"):
        got = eff[f"elem.{ktype}.rho"] * eff["elem.eta_b"]
        assert got == pytest.approx(TRUTH[f"elem.{ktype}.rho"] * TRUTH["elem.eta_b"], rel=0.10)


def test_calibration_provenance(recovered):
    fitted, recs = recovered
    prov = fitted.provenance
    assert prov["measurements"] == {
        "gemm": 160,
        "elementwise": 80,
        "attention": 30,
        "all_reduce": 22,
        "cpu_overhead": 9,
    }
    assert sum(prov["measurements"].values()) == len(recs)
    assert set(prov["fitted_parameters"]) == set(free_parameters(recs))
    assert "p" not in prov["fitted_parameters"]
    assert fitted.efficiency["p"] == GENERIC_PRIOR.mean["p"]
    assert all(v < 0.05 for v in prov["in_sample_mape"].values()), prov["in_sample_mape"]
    assert prov["prior"] == GENERIC_PRIOR.provenance["source"]
    assert fitted.name == "A100-80GB"


def test_free_parameters_per_group():
    dims = get_model("Llama-3-8B").layer_dims(1)
    assert free_parameters([]) == []
    assert free_parameters([Measurement(op="gemm", seconds=1, m=1, n=1, k=1)]) == [
        "gemm.eta_c",
        "gemm.eta_b",
        "gemm.t0_s",
    ]
    assert free_parameters([Measurement(op="attn_decode", seconds=1, dims=dims, batch_size=1)]) == [
        "attn.eta_c",
        "attn.eta_b",
        "attn.decode_t0_s",
    ]
    ar = Measurement(op="all_reduce", seconds=1, size_bytes=1.0, num_gpus=8, num_nodes=2, topology="nvswitch")
    assert free_parameters([ar]) == ["ar.nvswitch-2nodes.n8.alpha_s", "ar.nvswitch-2nodes.n8.bw_eff"]


def test_prior_for_walks_all_reduce_names():
    assert prior_for("ar.nvlink-x.n2.alpha_s", GENERIC_PRIOR) == (20e-6, 0.8)  # falls back to ar.*
    prior = Prior(
        mean={**GENERIC_PRIOR.mean, "ar.nvlink-x.bw_eff": 0.9},
        sigma={**GENERIC_PRIOR.sigma, "ar.nvlink-x.bw_eff": 0.2},
    )
    assert prior_for("ar.nvlink-x.n4.bw_eff", prior) == (0.9, 0.2)


@pytest.mark.parametrize("prior", [GENERIC_PRIOR, None], ids=["generic", "default"])
@pytest.mark.parametrize("device", ["l40s", "h100"])  # devices without a shipped fit
def test_zero_measurements_give_prior_means(device, prior):
    fitted = calibrate(device, [], prior)
    expected = (prior or default_prior()).mean
    assert fitted.efficiency == pytest.approx(dict(expected), rel=1e-5)
    assert fitted.provenance["measurements"] == {}
    assert fitted.provenance["fitted_parameters"] == []
    assert fitted.name == get_device(device).name


def test_zero_measurements_keep_a_devices_own_fit():
    dev = get_device("l40s").with_efficiency({"gemm.eta_c": 0.33})
    assert calibrate(dev, [], GENERIC_PRIOR).efficiency["gemm.eta_c"] == 0.33


def test_prior_validation():
    with pytest.raises(ValueError, match="prior mean of 'x' must be a positive number"):
        Prior(mean={"x": -1.0}, sigma={"x": 0.1})
    with pytest.raises(ValueError, match="prior has a mean but no sigma for 'x'"):
        Prior(mean={"x": 1.0}, sigma={})
    with pytest.raises(ValueError, match="a prior needs 'mean' and 'sigma' mappings"):
        Prior.from_dict({"mean": {}})
    assert Prior.from_dict(GENERIC_PRIOR.to_dict()) == GENERIC_PRIOR


def test_learn_prior_geometric_mean_and_spread():
    a = get_device("a100").with_efficiency({"gemm.eta_c": 0.4, "ar.nvswitch.n2.bw_eff": 0.5})
    b = get_device("h100").with_efficiency({"gemm.eta_c": 0.9, "ar.nvswitch.n4.bw_eff": 0.8})
    prior = learn_prior([a, b], GENERIC_PRIOR)
    assert prior.mean["gemm.eta_c"] == pytest.approx(0.6, rel=1e-5)
    assert prior.sigma["gemm.eta_c"] == pytest.approx(np.std(np.log([0.4, 0.9]), ddof=1))
    assert prior.mean["ar.nvswitch.bw_eff"] == pytest.approx(np.sqrt(0.5 * 0.8), rel=1e-5)
    assert prior.mean["attn.gamma"] == GENERIC_PRIOR.mean["attn.gamma"]
    single = learn_prior([a], GENERIC_PRIOR)
    assert single.sigma["gemm.eta_c"] == GENERIC_PRIOR.sigma["gemm.eta_c"]
    with pytest.raises(ValueError, match="at least one calibrated device"):
        learn_prior([], GENERIC_PRIOR)


# ---- few-sample accuracy on the real A100 GEMMs --------------------------------------------


@pytest.fixture(scope="module")
def gemm_subset(a100_gemm_records):
    return a100_gemm_records[::3]


def test_ten_samples_give_under_ten_percent_gemm_mape(gemm_subset):
    device = get_device("a100").with_efficiency({})
    scores = evaluate(device, gemm_subset, k=10, seeds=3, prior=GENERIC_PRIOR)
    assert scores["gemm"].mape < 0.10
    assert scores["gemm"].n_scored >= len(gemm_subset) - 10
    assert "layer (sum of per-layer ops)" in scores
    text = format_table({"k=10": scores})
    assert "gemm" in text and "MAPE" in text


def test_ten_samples_fix_a_wrong_prior(gemm_subset):
    """From a prior off by 2-4x, zero-shot is bad; ten samples bring GEMMs under 10%."""
    wrong = Prior(
        mean={**GENERIC_PRIOR.mean, "gemm.eta_c": 0.25, "gemm.eta_b": 0.3, "gemm.t0_s": 20e-6},
        sigma={**GENERIC_PRIOR.sigma, "gemm.eta_c": 1.0, "gemm.eta_b": 1.0, "gemm.t0_s": 1.0},
    )
    device = get_device("a100").with_efficiency({})
    zero_shot = evaluate(device, gemm_subset, k=0, prior=wrong)["gemm"].mape
    few_shot = evaluate(device, gemm_subset, k=10, seeds=3, prior=wrong)["gemm"].mape
    assert zero_shot > 0.5
    assert few_shot < 0.10


def test_stratified_draw_covers_sizes():
    rng = np.random.default_rng(0)
    records = list(range(100))
    keys = np.arange(100.0)
    drawn = stratified_draw(records, keys, 10, rng)
    assert len(drawn) == 10
    assert [d // 10 for d in sorted(drawn)] == list(range(10))  # one from each decile
    assert stratified_draw(records[:5], keys[:5], 10, rng) == records[:5]
    assert stratified_draw(records, keys, 0, rng) == []
