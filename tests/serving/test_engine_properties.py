"""Property tests of the serving engine over random small scenarios.

Random models, devices, policies, knobs, KV-cache sizes (down to a few requests' worth, so
that preemptions happen), request sets (some longer than max_model_len) and speculation, with
the knobs changed at random while running. After every step: request conservation, KV-block
accounting and a monotone clock; at the end: every accepted request finished with exactly its
output, consistent timestamps and token totals, and rejections exactly for the too-long ones.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from servegym.envs.serving import ACCEPTANCE_PRESETS, EngineConfig, ServingEngine, kv_capacity_blocks
from servegym.envs.serving.engine import FINISHED, REJECTED
from servegym.workloads import Requests

from ._helpers import admissible, check_completed, run_checked, tight_config, utilization_for_blocks

MODELS = ["Llama-68M", "Llama-3.2-1B", "Llama-3-8B"]
DEVICES = ["a100", "l4", "h100"]
PROPERTY_SETTINGS = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@st.composite
def configs(draw) -> EngineConfig:
    model = draw(st.sampled_from(MODELS))
    device = draw(st.sampled_from(DEVICES))
    policy = draw(st.sampled_from(["decode_first", "prefill_first"]))
    token_budget = draw(st.integers(16, 4096))
    max_num_seqs = draw(st.one_of(st.integers(1, 64), st.integers(16, 64)))
    max_model_len = draw(st.sampled_from([0, 512, 1024, 2048]))
    draft = draw(st.sampled_from([None, None, "ngram", "Llama-68M"]))
    spec_tokens = draw(st.integers(0, 8)) if draft else 0
    acceptance = draw(st.sampled_from(sorted(ACCEPTANCE_PRESETS)))
    ngram_hit_rate = draw(st.floats(0.0, 1.0))
    limit = max_model_len or EngineConfig(model=model).context_limit()
    # KV cache: the default 0.9 of memory, or 1-3 requests of max_model_len (preemptions).
    tight = draw(st.integers(0, 2)) > 0
    if tight:
        blocks = draw(st.floats(1.05, 3.0)) * math.ceil(limit / 16)
        utilization = utilization_for_blocks(
            model, device, blocks, token_budget=token_budget, max_num_seqs=max_num_seqs, draft=draft
        )
        assume(0 < utilization <= 1)
    else:
        utilization = 0.9
    config = EngineConfig(
        model=model,
        device=device,
        policy=policy,
        token_budget=token_budget,
        max_num_seqs=max_num_seqs,
        gpu_memory_utilization=utilization,
        max_model_len=max_model_len,
        draft=draft,
        spec_tokens=spec_tokens,
        acceptance=acceptance,
        ngram_hit_rate=ngram_hit_rate,
    )
    try:
        kv_capacity_blocks(config)
    except ValueError:
        assume(False)  # e.g. Llama-3-8B on an L4 with too little memory for one request
    assume(admissible(config))
    return config


@st.composite
def request_sets(draw) -> Requests:
    if draw(st.booleans()):  # a burst: many requests at once (KV pressure, preemptions)
        n = draw(st.integers(8, 40))
        gap = st.floats(0.0, 0.02)
    else:
        n = draw(st.integers(1, 40))
        gap = st.one_of(st.just(0.0), st.floats(0.0, 0.05), st.floats(0.0, 2.0))
    gaps = draw(st.lists(gap, min_size=n, max_size=n))
    prompts = draw(st.lists(st.integers(1, 1500), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    start = draw(st.floats(0.0, 5.0))
    return Requests(start + np.cumsum(gaps), np.array(prompts), np.array(outputs))


@settings(max_examples=40, **PROPERTY_SETTINGS)
@given(
    config=configs(),
    requests=request_sets(),
    seed=st.integers(0, 2**32 - 1),
    knob_every=st.integers(1, 8),
    change_knobs=st.booleans(),
)
def test_engine_invariants(config, requests, seed, knob_every, change_knobs):
    engine = ServingEngine(config, requests, np.random.default_rng(seed))
    knob_rng = np.random.default_rng(seed + 1) if change_knobs else None
    run_checked(engine, knob_rng, knob_every)
    check_completed(engine)
    _events(engine)


def _events(engine: ServingEngine) -> None:
    """What the example exercised (shown by --hypothesis-show-statistics)."""
    tot = engine.totals()
    event("preempted" if tot.preemptions else "no preemption")
    event("rejected some" if tot.rejected else "rejected none")
    event("drafted" if tot.drafted else "no drafts")
    event(f"policy {engine.config.policy}")


@pytest.mark.slow
@settings(max_examples=100, **PROPERTY_SETTINGS)
@given(
    config=configs(),
    requests=request_sets(),
    seed=st.integers(0, 2**32 - 1),
    knob_every=st.integers(1, 8),
)
def test_engine_invariants_many(config, requests, seed, knob_every):
    engine = ServingEngine(config, requests, np.random.default_rng(seed))
    run_checked(engine, np.random.default_rng(seed + 1), knob_every)
    check_completed(engine)
    _events(engine)


# -- scenarios the random search must not miss ---------------------------------------------------


def _burst(n: int, prompt: int, output: int, seed: int = 0) -> Requests:
    rng = np.random.default_rng(seed)
    return Requests(
        np.sort(rng.uniform(0, 0.5, n)),
        rng.integers(max(1, prompt // 2), prompt + 1, n),
        rng.integers(max(1, output // 2), output + 1, n),
    )


@pytest.mark.parametrize("policy", ["decode_first", "prefill_first"])
@pytest.mark.parametrize("draft", [None, "ngram", "Llama-68M"])
def test_tight_kv_cache_preempts_and_still_completes(policy, draft):
    config = tight_config(
        "Llama-68M", "l4", blocks=150, policy=policy, draft=draft, spec_tokens=4 if draft else 0
    )
    engine = ServingEngine(config, _burst(24, 600, 250), np.random.default_rng(1))
    run_checked(engine, np.random.default_rng(2), knob_every=3)
    check_completed(engine)
    assert engine.totals().preemptions > 0
    assert engine.requests.preemptions.max() >= 1


def test_llama3_8b_on_l4_preempts_at_max_model_len_2048():
    config = EngineConfig(model="Llama-3-8B", device="l4", max_model_len=2048, max_num_seqs=64)
    assert kv_capacity_blocks(config) * 16 < 40 * 1800  # fewer KV tokens than the burst needs
    engine = ServingEngine(config, _burst(40, 1500, 300), np.random.default_rng(0))
    run_checked(engine)
    check_completed(engine)
    assert engine.totals().preemptions > 0


def test_too_long_requests_are_rejected_at_arrival():
    config = EngineConfig(model="Llama-68M", max_model_len=512)
    requests = Requests([0.0, 0.1, 0.2, 0.3], [500, 400, 12, 511], [12, 112, 500, 2])
    engine = ServingEngine(config, requests, np.random.default_rng(0))
    run_checked(engine)
    check_completed(engine)
    assert engine.requests.status.tolist() == [FINISHED, FINISHED, FINISHED, REJECTED]
    assert engine.rejected == {"prompt + output longer than max_model_len": 1}


# -- determinism and clones -----------------------------------------------------------------------


def _spec_scenario(seed: int) -> ServingEngine:
    config = tight_config("Llama-68M", "l4", blocks=300, draft="ngram", spec_tokens=3, ngram_hit_rate=0.5)
    engine = ServingEngine(config, _burst(30, 800, 200, seed=7), np.random.default_rng(seed))
    knobs = np.random.default_rng(seed + 100)
    steps = 0
    while not engine.done:
        if steps % 4 == 0:
            engine.token_budget = int(knobs.integers(16, 1024))
            engine.spec_tokens = int(knobs.integers(0, 9))
        engine.step()
        steps += 1
    return engine


def _snapshot(engine: ServingEngine) -> dict:
    tot = engine.totals()
    return {
        "first_t": engine.requests.first_token_s.copy(),
        "finish_t": engine.requests.finished_s.copy(),
        "sched_t": engine.requests.scheduled_s.copy(),
        "preemptions": engine.requests.preemptions.copy(),
        "totals": tot.as_dict(),
        "gaps": tot.gaps.counts.copy(),
        "accepted_at_position": tot.accepted_at_position.copy(),
        "now": engine.now,
    }


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert a[key] == b[key], key


def test_same_seed_same_run():
    a, b = _spec_scenario(3), _spec_scenario(3)
    _assert_same(_snapshot(a), _snapshot(b))
    assert a.totals().drafted > 0 and a.totals().preemptions > 0


def test_different_seed_different_speculation():
    a, b = _spec_scenario(3), _spec_scenario(4)
    assert a.totals().accepted != b.totals().accepted or not np.array_equal(
        a.requests.finished_s, b.requests.finished_s
    )


def test_clone_is_independent_and_replays_the_original():
    config = tight_config("Llama-68M", "l4", blocks=300, draft="Llama-68M", spec_tokens=2)
    engine = ServingEngine(config, _burst(30, 800, 200, seed=5), np.random.default_rng(0))
    for _ in range(300):
        engine.step()
    assert engine.num_running > 0
    before = _snapshot(engine)
    state = (
        engine.counts(),
        engine.free_blocks,
        list(engine.waiting),
        engine.requests.generated.copy(),
        engine.requests.status.copy(),
        engine.rng.bit_generator.state,
    )
    twin = engine.clone()
    twin.token_budget = 64
    twin.run_to_completion()
    assert twin.done and not engine.done
    _assert_same(before, _snapshot(engine))
    assert state[0] == engine.counts()
    assert state[1] == engine.free_blocks
    assert state[2] == list(engine.waiting)
    np.testing.assert_array_equal(state[3], engine.requests.generated)
    np.testing.assert_array_equal(state[4], engine.requests.status)
    assert state[5] == engine.rng.bit_generator.state
    # A clone left with the same knobs continues exactly as the original does.
    same = engine.clone()
    same.run_to_completion()
    engine.run_to_completion()
    _assert_same(_snapshot(engine), _snapshot(same))
    check_completed(engine)


def test_windows_add_up_to_totals():
    config = tight_config("Llama-68M", "l4", blocks=200, draft="ngram", spec_tokens=2)
    engine = ServingEngine(config, _burst(20, 600, 150), np.random.default_rng(0))
    windows = []
    while not engine.done:
        engine.run_until(engine.now + 0.05)
        windows.append(engine.take_window())
    total = engine.totals()
    for name in ("decode_tokens", "first_tokens", "prefill_tokens", "finished", "preemptions", "drafted"):
        assert sum(getattr(w, name) for w in windows) == getattr(total, name), name
    assert sum(w.gaps.total for w in windows) == total.gaps.total
    assert total.max_iteration_s == max(w.max_iteration_s for w in windows)
    assert all(b.start_s >= a.start_s for a, b in itertools.pairwise(windows))
    check_completed(engine)
