"""The engine's pieces on their own: the compiled random stream and sums, the configuration
fields that replace attribute surgery (topology, KV capacity), requests submitted while running,
and clones."""

from __future__ import annotations

import copy
import itertools
import pickle

import numpy as np
import pytest
from numba import njit

from servegym.envs.serving import EngineConfig, ServingEngine, kv_capacity_blocks
from servegym.envs.serving.execution import pairwise_sum
from servegym.envs.serving.pcg64 import next_double, state_array, write_state
from servegym.envs.serving.summary import summarize
from servegym.workloads import Poisson, Workload, length_preset


@njit(cache=True)
def _draw(state, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = next_double(state)
    return out


@pytest.mark.parametrize("seed", [0, 7, 2**40 + 3])
def test_compiled_pcg64_is_numpys_stream(seed):
    rng = np.random.default_rng(seed)
    rng.random(5)
    state = state_array(rng)
    np.testing.assert_array_equal(_draw(state, 20_000), rng.random(20_000))
    other = np.random.default_rng()
    write_state(other, state)
    assert other.random() == rng.random()


def test_engine_refuses_other_bit_generators():
    with pytest.raises(ValueError, match="PCG64"):
        ServingEngine(EngineConfig(), _requests(1.0, 5.0), np.random.Generator(np.random.MT19937(0)))


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 127, 128, 129, 300, 1025, 40_000])
def test_pairwise_sum_is_numpys_sum(n):
    values = np.random.default_rng(n).random(n) * 10.0 ** np.random.default_rng(n + 1).uniform(-4, 4, n)
    assert pairwise_sum(values, 0, n) == values.sum()
    if n > 3:
        assert pairwise_sum(values, 3, n - 3) == values[3:].sum()


def _requests(rate: float, horizon_s: float, seed: int = 0):
    return Workload(Poisson(rate), length_preset("azure-conv")).sample(np.random.default_rng(seed), horizon_s)


def test_kv_capacity_override_sets_the_cache_and_is_validated():
    config = EngineConfig(kv_capacity_blocks=900)
    assert kv_capacity_blocks(config) == 900
    engine = ServingEngine(config, _requests(4.0, 20.0), np.random.default_rng(0))
    assert engine.capacity_blocks == engine.free_blocks == 900
    engine.run_to_completion()
    assert engine.free_blocks == 900
    with pytest.raises(ValueError, match="kv_capacity_blocks"):
        EngineConfig(kv_capacity_blocks=-1)
    with pytest.raises(ValueError, match="kv_capacity_blocks=10 holds fewer than one request"):
        kv_capacity_blocks(EngineConfig(kv_capacity_blocks=10))


def test_all_reduce_topology_changes_tensor_parallel_times():
    nvswitch = EngineConfig(model="Llama-2-70B", tp=4, all_reduce_topology="nvswitch")
    pairwise = EngineConfig(model="Llama-2-70B", tp=4, all_reduce_topology="pairwise_nvlink")
    assert nvswitch.latency_model().topology == "nvswitch"
    assert pairwise.latency_model().topology == "pairwise_nvlink"
    assert pairwise.latency_model().decode_time(32, 1000) != nvswitch.latency_model().decode_time(32, 1000)
    with pytest.raises(ValueError, match="all_reduce_topology"):
        EngineConfig(all_reduce_topology="infiniband-magic")


def test_config_resolves_names_once():
    config = EngineConfig(model="llama-3-8b", device="A100", draft="Llama-3.2-1B")
    assert config.model.name == "Llama-3-8B" and config.device.name.lower().startswith("a100")
    assert config.latency_model() is config.latency_model()
    assert config.draft_latency_model() is config.draft_latency_model()
    with pytest.raises(ValueError, match="Llama-9000"):
        EngineConfig(draft="Llama-9000")


def test_submitted_requests_run_like_requests_known_from_the_start():
    requests = _requests(5.0, 60.0, seed=3)
    whole = ServingEngine(EngineConfig(), requests, np.random.default_rng(1))
    whole.run_to_completion()
    empty = Workload(Poisson(5.0), length_preset("azure-conv")).sample(np.random.default_rng(3), 0.0)
    parts = ServingEngine(EngineConfig(), empty, np.random.default_rng(1))
    cut = np.searchsorted(requests.arrival_s, [0.0, 20.0, 40.0, np.inf])
    for lo, hi in itertools.pairwise(cut):  # hand each third over before it arrives
        parts.submit(requests.arrival_s[lo:hi], requests.prompt_tokens[lo:hi], requests.output_tokens[lo:hi])
        parts.run_until(float(requests.arrival_s[hi - 1]) if hi < len(requests) else np.inf)
    parts.run_to_completion()
    assert parts.n == whole.n
    np.testing.assert_array_equal(parts.requests.finished_s, whole.requests.finished_s)
    np.testing.assert_equal(summarize(parts), summarize(whole))


def test_submit_checks_order_and_grows_past_its_capacity():
    engine = ServingEngine(EngineConfig(), _requests(2.0, 5.0), np.random.default_rng(0))
    last = float(engine.requests.arrival_s[-1])
    with pytest.raises(ValueError, match="must not precede"):
        engine.submit([last - 1.0], [10], [10])
    times = last + np.arange(1, 101) * 0.01
    ids = engine.submit(times, np.full(100, 50), np.full(100, 5))
    assert ids[0] == engine.n - 100 and engine.n == len(times) + len(_requests(2.0, 5.0))
    engine.run_to_completion()
    assert engine.counts()["finished"] == engine.n


def test_clone_deepcopy_and_pickle_are_independent_and_replay():
    engine = ServingEngine(
        EngineConfig(draft="ngram", spec_tokens=3), _requests(6.0, 30.0), np.random.default_rng(2)
    )
    engine.run_until(10.0)
    copies = [engine.clone(), copy.deepcopy(engine), pickle.loads(pickle.dumps(engine))]
    engine.run_to_completion()
    for twin in copies:
        assert twin.now < engine.now
        twin.run_to_completion()
        np.testing.assert_equal(summarize(twin), summarize(engine))
        np.testing.assert_array_equal(twin.requests.finished_s, engine.requests.finished_s)
