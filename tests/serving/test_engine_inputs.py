"""Bad input to the engine, its config and the workloads: a ValueError naming the problem."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from servegym.envs.serving import EngineConfig, ServingEngine, kv_capacity_blocks
from servegym.envs.serving.speculation import acceptance_preset
from servegym.workloads import GammaArrivals, LognormalLengths, Poisson, Requests, Workload, length_preset

SMALL = {"model": "Llama-68M"}


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"policy": "fifo"}, r"policy must be one of \('decode_first', 'prefill_first'\), got 'fifo'"),
        ({"token_budget": 0}, r"token_budget must be an integer >= 1, got 0"),
        ({"token_budget": 16.0}, r"token_budget must be an integer >= 1"),
        ({"tp": 0}, r"tp must be an integer >= 1, got 0"),
        ({"max_num_seqs": 0}, r"max_num_seqs must be an integer >= 1, got 0"),
        ({"block_size": -16}, r"block_size must be an integer >= 1"),
        ({"gpu_memory_utilization": 0}, r"gpu_memory_utilization must be in \(0, 1\], got 0"),
        ({"gpu_memory_utilization": 1.5}, r"gpu_memory_utilization must be in \(0, 1\], got 1.5"),
        ({"gpu_memory_utilization": float("nan")}, r"gpu_memory_utilization must be in \(0, 1\]"),
        ({"max_model_len": -1}, r"max_model_len must be an integer >= 0"),
        ({"spec_tokens": 2}, r"spec_tokens > 0 needs a draft"),
        ({"spec_tokens": 9, "draft": "ngram"}, r"spec_tokens must be an integer in 0\.\.8, got 9"),
        (
            {"spec_tokens": 3, "draft": "ngram", "max_spec_tokens": 2},
            r"spec_tokens must be an integer in 0\.\.2",
        ),
        ({"spec_tokens": -1, "draft": "ngram"}, r"spec_tokens must be an integer in 0\.\.8, got -1"),
        ({"max_spec_tokens": 33}, r"max_spec_tokens must be an integer in 0\.\.32"),
        ({"ngram_hit_rate": 1.5}, r"ngram_hit_rate must be in \[0, 1\]"),
        ({"tbt_slo_s": -0.1}, r"tbt_slo_s must be a positive number of seconds, got -0.1"),
        ({"ttft_slo_s": 0}, r"ttft_slo_s must be a positive number of seconds, got 0"),
        ({"tpot_slo_s": float("inf")}, r"tpot_slo_s must be a positive number of seconds"),
        ({"acceptance_drift": ((10.0, 0.5), (5.0, 0.8))}, r"acceptance_drift must be .* increasing time"),
        ({"acceptance_drift": ((1.0, 0.0),)}, r"acceptance_drift must be \(time_s, multiplier > 0\)"),
        ({"tile_tokens": -1}, r"tile_tokens must be an integer >= 0"),
    ],
)
def test_engine_config_rejects(fields, match):
    with pytest.raises(ValueError, match=match):
        EngineConfig(**{**SMALL, **fields})


def test_engine_config_accepts_edge_values():
    EngineConfig(**SMALL, gpu_memory_utilization=1.0, token_budget=1, max_num_seqs=1)
    EngineConfig(**SMALL, draft="ngram", spec_tokens=8, acceptance_drift=((0.0, 0.5), (0.0, 2.0)))
    EngineConfig(**SMALL, max_spec_tokens=0)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"model": "Llama-2-70B", "device": "l4", "tp": 1}, r"fewer than one request of max_model_len=4096"),
        ({"model": "Llama-3-8B", "device": "l4", "gpu_memory_utilization": 0.5}, r"max_model_len=8192"),
        (
            {"model": "Llama-3-8B", "device": "l4", "gpu_memory_utilization": 0.9, "draft": "Llama-3-8B"},
            r"KV cache holds 0 tokens",
        ),
    ],
)
def test_kv_cache_too_small_for_one_request(fields, match):
    config = EngineConfig(**fields)
    with pytest.raises(ValueError, match=match) as info:
        kv_capacity_blocks(config)
    assert "raise tp, gpu_memory_utilization, or lower max_model_len" in str(info.value)
    with pytest.raises(ValueError, match="max_model_len"):
        ServingEngine(config, Requests([0.0], [1], [1]), np.random.default_rng(0))


def test_more_tensor_parallelism_makes_room():
    small = EngineConfig(model="Llama-3-8B", device="a100", tp=1)
    large = EngineConfig(model="Llama-3-8B", device="a100", tp=2)
    assert kv_capacity_blocks(large) > 2 * kv_capacity_blocks(small)
    assert kv_capacity_blocks(
        EngineConfig(model="Llama-3-8B", gpu_memory_utilization=0.5)
    ) < kv_capacity_blocks(small)


def test_unknown_names():
    with pytest.raises(ValueError, match=r"unknown acceptance preset 'poetry'; available: \['chat', 'code'"):
        acceptance_preset("poetry")
    config = EngineConfig(**SMALL, draft="ngram", spec_tokens=2, acceptance="poetry")
    with pytest.raises(ValueError, match="unknown acceptance preset 'poetry'"):
        ServingEngine(config, Requests([0.0], [1], [1]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="Llama-9000"):
        EngineConfig(model="Llama-9000").model_spec()
    with pytest.raises(ValueError, match="tpu-v0"):
        EngineConfig(**SMALL, device="tpu-v0").device_spec()


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        (
            ([0.0, 2.0, 1.0, 3.0], [5] * 4, [5] * 4),
            r"arrival_s must be sorted; arrival_s\[2\] < arrival_s\[1\]",
        ),
        (([0.0, 1.0, 2.0, 3.0, 2.5], [5] * 5, [5] * 5), r"arrival_s\[4\] < arrival_s\[3\]"),
        (([-1.0, 0.0], [5, 5], [5, 5]), r"arrival_s\[0\] must be >= 0, got -1.0"),
        (([0.0, np.inf], [5, 5], [5, 5]), r"arrival_s\[1\] must be finite"),
        (([0.0, 1.0], [5, 0], [5, 5]), r"prompt_tokens\[1\] must be >= 1, got 0"),
        (([0.0, 1.0], [5, 5], [0, 5]), r"output_tokens\[0\] must be >= 1, got 0"),
        (([0.0, 1.0], [5, 2.5], [5, 5]), r"prompt_tokens\[1\] must be an integer token count"),
        (([0.0, 1.0], [5, 5, 5], [5, 5]), r"must have the same length, got 2, 3, 2"),
        (([0.0, 1.0], [5, 5], [5]), r"must have the same length, got 2, 2, 1"),
    ],
)
def test_engine_rejects_bad_requests(arrays, match):
    arrival, prompt, output = (np.asarray(a) for a in arrays)
    requests = SimpleNamespace(arrival_s=arrival, prompt_tokens=prompt, output_tokens=output)
    with pytest.raises(ValueError, match=match):
        ServingEngine(EngineConfig(**SMALL), requests, np.random.default_rng(0))


def test_engine_rejects_an_object_without_request_arrays():
    with pytest.raises(ValueError, match="requests need arrival_s, prompt_tokens and output_tokens"):
        ServingEngine(EngineConfig(**SMALL), SimpleNamespace(arrival_s=[0.0]), np.random.default_rng(0))


def test_requests_class_rejects_bad_arrays():
    with pytest.raises(ValueError, match=r"arrival_s\[2\] < arrival_s\[1\]"):
        Requests([0.0, 2.0, 1.0], [5, 5, 5], [5, 5, 5])
    with pytest.raises(ValueError, match=r"Requests.prompt_tokens\[0\] must be >= 1, got 0"):
        Requests([0.0], [0], [5])
    with pytest.raises(ValueError, match="same length, got 2, 2, 1"):
        Requests([0.0, 1.0], [5, 5], [5])


def test_knob_setters_validate():
    engine = ServingEngine(EngineConfig(**SMALL), Requests([0.0], [5], [5]), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"token_budget must be an integer >= 1, got 0"):
        engine.token_budget = 0
    with pytest.raises(ValueError, match=r"token_budget must be an integer >= 1, got 12.5"):
        engine.token_budget = 12.5
    with pytest.raises(ValueError, match=r"spec_tokens must be an integer in 0\.\.8, got -1"):
        engine.spec_tokens = -1
    with pytest.raises(ValueError, match="spec_tokens > 0 needs a draft"):
        engine.spec_tokens = 2
    assert engine.token_budget == 512 and engine.spec_tokens == 0  # unchanged by the failures
    engine.token_budget = np.int64(64)
    assert engine.token_budget == 64 and type(engine.token_budget) is int
    spec = ServingEngine(
        EngineConfig(**SMALL, draft="ngram"), Requests([0.0], [5], [5]), np.random.default_rng(0)
    )
    with pytest.raises(ValueError, match=r"spec_tokens must be an integer in 0\.\.8, got 9"):
        spec.spec_tokens = 9
    spec.spec_tokens = 8
    assert spec.spec_tokens == 8


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Poisson(0.0), r"Poisson.rate must be > 0"),
        (lambda: Poisson(-1.0), r"Poisson.rate must be > 0 and finite, got -1.0"),
        (lambda: Poisson(float("nan")), r"Poisson.rate must be finite"),
        (lambda: GammaArrivals(-2.0, 1.0), r"GammaArrivals.rate must be > 0"),
        (lambda: GammaArrivals(2.0, 0.0), r"GammaArrivals.cv must be > 0"),
        (lambda: length_preset("tweets"), r"unknown length preset 'tweets'; available: azure-conv"),
        (
            lambda: LognormalLengths(100.0, 50.0, 10.0, 20.0),
            r"LognormalLengths.prompt_p90 must be >= prompt_median",
        ),
        (lambda: LognormalLengths(100.0, 200.0, -1.0, 20.0), r"LognormalLengths.output_median must be > 0"),
        (
            lambda: Workload(Poisson(1.0), length_preset("azure-conv")).sample(
                np.random.default_rng(0), -5.0
            ),
            r"horizon_s must be >= 0",
        ),
        (lambda: Workload(Poisson(1.0), "azure-conv"), r"Workload.lengths must be a LengthDistribution"),
        (lambda: Poisson(1.0).scaled(0.0), r"factor"),
    ],
)
def test_workload_bad_input_names_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()
