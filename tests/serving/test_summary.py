"""Episode KPIs (summarize), the capacity search and the token-gap histogram."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servegym.envs.serving import EngineConfig, LogHistogram, ServingEngine
from servegym.envs.serving.engine import FINISHED
from servegym.envs.serving.summary import capacity_search, summarize
from servegym.workloads import Poisson, Requests, Workload, length_preset

KEYS = {
    "duration_s",
    "requests_arrived",
    "requests_waiting",
    "requests_running",
    "requests_finished",
    "requests_rejected",
    "iterations",
    "throughput_tokens_per_s",
    "output_tokens_per_s",
    "requests_per_s",
    "ttft_p50_s",
    "ttft_p90_s",
    "ttft_p99_s",
    "tpot_mean_s",
    "tpot_p99_s",
    "e2e_mean_s",
    "e2e_p99_s",
    "tbt_p50_s",
    "tbt_p99_s",
    "tbt_slo_miss_fraction",
    "scheduling_delay_p50_s",
    "scheduling_delay_p99_s",
    "slo_attainment",
    "goodput_requests_per_s",
    "preemptions",
    "mean_batch_size",
    "busy_fraction",
    "acceptance_rate",
}


def _workload(rate: float) -> Workload:
    return Workload(Poisson(rate), length_preset("azure-conv"))


def _completed(rate: float = 3.0, seed: int = 0, **fields) -> ServingEngine:
    fields = {"model": "Llama-3.2-1B", "device": "l4", "max_model_len": 4096, **fields}
    rng = np.random.default_rng(seed)
    engine = ServingEngine(EngineConfig(**fields), _workload(rate).sample(rng, 20.0), rng)
    engine.run_to_completion()
    return engine


@pytest.fixture(scope="module")
def spec_run() -> ServingEngine:
    return _completed(draft="ngram", spec_tokens=3)


def test_summary_keys_present_and_finite(spec_run):
    s = summarize(spec_run)
    assert KEYS <= set(s)
    bad = {k: v for k, v in s.items() if not (isinstance(v, float) and math.isfinite(v))}
    assert not bad


def test_summary_values_are_consistent(spec_run):
    engine, s = spec_run, summarize(spec_run)
    n = engine.n
    assert s["requests_arrived"] == n == s["requests_finished"] + s["requests_rejected"]
    assert s["requests_waiting"] == s["requests_running"] == 0
    assert s["duration_s"] == engine.now > 0
    assert 0.0 <= s["slo_attainment"] <= 1.0
    assert 0.0 <= s["goodput_requests_per_s"] <= s["requests_per_s"]
    assert s["goodput_requests_per_s"] == pytest.approx(s["slo_attainment"] * s["requests_per_s"])
    assert s["requests_per_s"] == pytest.approx(s["requests_finished"] / engine.now)
    finished = engine.requests.status == FINISHED
    assert s["output_tokens_per_s"] * engine.now == pytest.approx(
        engine.requests.output_tokens[finished].sum()
    )
    assert s["throughput_tokens_per_s"] > s["output_tokens_per_s"]
    assert s["ttft_p50_s"] <= s["ttft_p90_s"] <= s["ttft_p99_s"]
    assert s["tbt_p50_s"] <= s["tbt_p99_s"]
    assert s["scheduling_delay_p50_s"] <= s["scheduling_delay_p99_s"]
    assert 0.0 <= s["tbt_slo_miss_fraction"] <= 1.0
    assert 0.0 < s["busy_fraction"] <= 1.0 + 1e-9
    assert s["mean_batch_size"] >= 1.0
    assert s["iterations"] == engine.iterations
    tot = engine.totals()
    assert s["acceptance_rate"] == tot.accepted / tot.drafted
    ttft = engine.requests.first_token_s[finished] - engine.requests.arrival_s[finished]
    assert s["ttft_p50_s"] == pytest.approx(np.quantile(ttft, 0.5))
    e2e = engine.requests.finished_s[finished] - engine.requests.arrival_s[finished]
    assert s["e2e_mean_s"] == pytest.approx(e2e.mean())
    assert s["e2e_mean_s"] >= float(ttft.mean())
    multi = finished & (engine.requests.output_tokens > 1)
    tpot = (engine.requests.finished_s[multi] - engine.requests.first_token_s[multi]) / (
        engine.requests.output_tokens[multi] - 1
    )
    assert s["tpot_mean_s"] == pytest.approx(tpot.mean())
    # TBT quantiles are bin upper edges: within one 6% bin above the exact TPOT-like gaps.
    assert s["tbt_p50_s"] > 0


def test_slo_attainment_follows_the_slos():
    loose = summarize(_completed(ttft_slo_s=1e3, tpot_slo_s=1e3))
    assert loose["slo_attainment"] == 1.0
    assert loose["goodput_requests_per_s"] == pytest.approx(loose["requests_per_s"])
    strict = summarize(_completed(ttft_slo_s=1e-6))
    assert strict["slo_attainment"] == 0.0 and strict["goodput_requests_per_s"] == 0.0
    # A TTFT SLO at the median TTFT leaves about half the requests good.
    middle = summarize(_completed(ttft_slo_s=loose["ttft_p50_s"], tpot_slo_s=1e3))
    assert 0.3 <= middle["slo_attainment"] <= 0.7


def test_rejections_are_counted():
    rng = np.random.default_rng(0)
    engine = ServingEngine(
        EngineConfig(model="Llama-68M", max_model_len=256),
        Requests([0.0, 0.5, 1.0], [100, 300, 50], [10, 10, 10]),
        rng,
    )
    engine.run_to_completion()
    s = summarize(engine)
    assert (s["requests_arrived"], s["requests_finished"], s["requests_rejected"]) == (3, 2, 1)
    assert s["requests_per_s"] == pytest.approx(2 / engine.now)


def test_summary_before_anything_ran():
    engine = ServingEngine(
        EngineConfig(model="Llama-68M"), Requests([1.0], [10], [10]), np.random.default_rng(0)
    )
    s = summarize(engine)
    assert KEYS <= set(s)
    assert s["requests_arrived"] == 0 and s["requests_per_s"] == 0.0
    assert (
        math.isnan(s["ttft_p50_s"]) and math.isnan(s["slo_attainment"]) and math.isnan(s["acceptance_rate"])
    )


def test_summary_midway_counts_running_and_waiting():
    engine = ServingEngine(
        EngineConfig(model="Llama-68M", max_num_seqs=2),
        Requests(np.zeros(5), [50] * 5, [40] * 5),
        np.random.default_rng(0),
    )
    for _ in range(3):
        engine.step()
    s = summarize(engine)
    assert (s["requests_arrived"], s["requests_running"], s["requests_waiting"]) == (5, 2, 3)
    assert s["scheduling_delay_p99_s"] == pytest.approx(engine.now)  # waiting ones: delay so far


# -- capacity search --------------------------------------------------------------------------------


def _make_requests(rate: float, rng: np.random.Generator) -> Requests:
    return _workload(rate).sample(rng, 20.0)


@pytest.fixture(scope="module")
def capacity():
    config = EngineConfig(model="Llama-3.2-1B", device="l4", tbt_slo_s=0.05)
    return config, capacity_search(config, _make_requests, low_rps=0.5, high_rps=200.0, iterations=4, seed=3)


def test_capacity_search_brackets_the_capacity(capacity):
    config, result = capacity
    trials = {rate: ok for rate, ok, _, _ in result.trials}
    assert len(result.trials) == 2 + 4
    assert 0.5 < result.capacity_rps < 200.0
    assert trials[result.capacity_rps] is True
    failed_above = [rate for rate, ok in trials.items() if not ok and rate > result.capacity_rps]
    assert failed_above, result.trials
    # Bisection: no passing rate above the capacity, no failing rate below it.
    assert all(ok for rate, ok in trials.items() if rate < result.capacity_rps)
    assert not any(ok for rate, ok in trials.items() if rate > result.capacity_rps)
    for rate, ok, tbt_p99, delay in result.trials:
        assert ok == (tbt_p99 <= config.tbt_slo_s and delay <= 2.0), rate


def test_capacity_trial_reproduces(capacity):
    config, result = capacity
    rng = np.random.default_rng(3)
    engine = ServingEngine(config, _make_requests(result.capacity_rps, rng), rng)
    engine.run_to_completion()
    s = summarize(engine)
    _, _, tbt_p99, delay = next(t for t in result.trials if t[0] == result.capacity_rps)
    assert (s["tbt_p99_s"], s["scheduling_delay_p50_s"]) == (tbt_p99, delay)
    assert s["tbt_p99_s"] <= config.tbt_slo_s and s["scheduling_delay_p50_s"] <= 2.0


def test_capacity_search_bounds():
    config = EngineConfig(model="Llama-3.2-1B", device="l4")
    none = capacity_search(config, _make_requests, tbt_slo_s=1e-6, low_rps=0.5, high_rps=4.0, iterations=3)
    assert none.capacity_rps == 0.0 and len(none.trials) == 1 and not none.trials[0][1]
    everything = capacity_search(
        config, _make_requests, tbt_slo_s=10.0, scheduling_delay_slo_s=1e3, low_rps=0.1, high_rps=0.5
    )
    assert everything.capacity_rps == 0.5 and [t[1] for t in everything.trials] == [True, True]
    for low, high in ((0.0, 1.0), (2.0, 1.0), (-1.0, 1.0)):
        with pytest.raises(ValueError, match="need 0 < low_rps < high_rps"):
            capacity_search(config, _make_requests, low_rps=low, high_rps=high)


# -- the gap histogram ------------------------------------------------------------------------------

values = st.floats(1e-7, 1e5, allow_nan=False)


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(values, min_size=1, max_size=40), st.integers(1, 5))
def test_histogram_single_and_array_adds_agree(xs, count):
    a, b = LogHistogram(), LogHistogram()
    for x in xs:
        a.add_one(x, count)
    b.add(np.repeat(np.array(xs), count))
    np.testing.assert_array_equal(a.counts, b.counts)
    assert a.total == b.total == count * len(xs)
    for q in (0.0, 0.5, 0.9, 1.0):
        assert a.quantile(q) == b.quantile(q)


def test_histogram_bin_edges_exactly():
    h = LogHistogram()
    edges = h.edges
    for x in (*edges[::37], edges[-1], edges[0]):
        one, arr = LogHistogram(), LogHistogram()
        one.add_one(float(x))
        arr.add(np.array([x]))
        np.testing.assert_array_equal(one.counts, arr.counts)


def test_histogram_quantiles_within_one_bin():
    rng = np.random.default_rng(0)
    xs = rng.lognormal(np.log(0.02), 0.8, 20_000)
    h = LogHistogram()
    h.add(xs[:10_000])
    for x in xs[10_000:]:
        h.add_one(float(x))
    step = 10 ** (1 / LogHistogram.PER_DECADE)
    for q in (0.1, 0.5, 0.9, 0.99):
        exact = float(np.quantile(xs, q))
        assert exact <= h.quantile(q) * (1 + 1e-9) <= exact * step * step
    assert h.fraction_above(0.02) == pytest.approx(float((xs > 0.02).mean()), abs=0.02)
    other = LogHistogram()
    other.add(np.array([1e3, 2e3]))
    h.merge(other)
    assert h.total == 20_002 and h.quantile(1.0) >= 2e3
    h.reset()
    assert h.total == 0 and h.quantile(0.5) == 0.0 and h.fraction_above(0.1) == 0.0
    assert not h.counts.any()
