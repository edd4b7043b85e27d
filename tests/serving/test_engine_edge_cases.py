"""Edge cases of the engine's scheduling: admission at the KV-cache limit, tiny token budgets
under speculation, preemption by recompute, and what ``step()`` reports.

Several of these cases were bugs found while writing the suite (a hang at the KV limit and with
a budget smaller than k + 1, a recompute one token short, idle time missing from the step
result); they are fixed and these tests keep them fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from servegym.envs.serving import EngineConfig, ServingEngine, kv_capacity_blocks
from servegym.envs.serving.engine import WATERMARK_FRACTION
from servegym.workloads import Requests

from ._helpers import check_completed, check_state, raw_requests, run_checked, tight_config


def _run_bounded(engine: ServingEngine, max_steps: int) -> bool:
    for _ in range(max_steps):
        if engine.done:
            return True
        engine.step()
    return engine.done


def test_cache_without_room_for_the_watermark_is_a_config_error():
    """128 blocks hold one 2048-token request but not also the 1% admission watermark: such a
    request could never be admitted, so the configuration is refused up front."""
    with pytest.raises(ValueError, match="fewer than one request of max_model_len=2048"):
        tight_config("Llama-68M", "l4", blocks=128)  # 128 blocks = 2048 tokens = max_context


def test_just_enough_cache_plus_watermark_admits_the_longest_request():
    blocks = 128 + math.ceil(WATERMARK_FRACTION * 130)
    config = tight_config("Llama-68M", "l4", blocks=blocks)
    engine = ServingEngine(config, Requests([0.0, 0.0], [2040, 2000], [8, 40]), np.random.default_rng(0))
    run_checked(engine)
    check_completed(engine)


@pytest.mark.parametrize("draft", ["ngram", "Llama-68M"])
def test_tiny_budget_with_speculation_still_decodes(draft):
    config = EngineConfig(model="Llama-68M", draft=draft, ngram_hit_rate=1.0, spec_tokens=8)
    engine = ServingEngine(config, Requests([0.0], [10], [5]), np.random.default_rng(0))
    engine.token_budget = 4  # both knobs valid on their own
    assert _run_bounded(engine, 2000), f"stuck: {engine.running_view()}"


def test_budget_caps_decodes_oldest_first():
    config = EngineConfig(model="Llama-68M", token_budget=512)
    engine = ServingEngine(
        config, Requests(np.zeros(6), np.full(6, 20), np.full(6, 50)), np.random.default_rng(0)
    )
    engine.step()  # all six prefill in one iteration
    assert engine.num_decoding == 6
    engine.token_budget = 4
    result = engine.step()
    assert result.decode_seqs == 4
    view = engine.running_view()
    assert view["generated"].tolist() == [2, 2, 2, 2, 1, 1]  # admission order: the oldest ran
    run_checked(engine)
    check_completed(engine)


def test_resumed_request_holds_the_kv_of_all_its_tokens():
    config = tight_config("Llama-68M", "l4", blocks=200)
    n = 8
    engine = ServingEngine(
        config, Requests(np.zeros(n), np.full(n, 300), np.full(n, 300)), np.random.default_rng(0)
    )
    checked = 0
    while not engine.done:
        engine.step()
        view = engine.running_view()
        ids = view["id"]
        resumed = view["decoding"] & (engine.requests.preemptions[ids] > 0)
        expected = engine.requests.prompt_tokens[ids] + view["generated"] - 1
        np.testing.assert_array_equal(view["kv"][resumed], expected[resumed])
        checked += int(resumed.sum())
    assert checked > 0 and engine.totals().preemptions > 0


def test_preemption_picks_the_last_admitted_and_requeues_it_first():
    config = tight_config("Llama-68M", "l4", blocks=100, max_model_len=1024)
    engine = ServingEngine(
        config, Requests(np.zeros(3), [500, 500, 500], [400, 400, 400]), np.random.default_rng(0)
    )
    while engine.totals().preemptions == 0:
        engine.step()
        check_state(engine)
    assert engine.requests.preemptions.tolist() == [0, 0, 1] or engine.requests.preemptions.tolist() == [
        0,
        1,
        0,
    ]
    victim = int(np.argmax(engine.requests.preemptions))
    assert engine.waiting[0] == victim
    assert victim == max(engine.running_view()["id"].max(), victim)  # no younger request survived
    run_checked(engine)
    check_completed(engine)


def test_step_result_reports_idle_time_before_an_iteration():
    engine = ServingEngine(
        EngineConfig(model="Llama-68M"), Requests([1.0], [10], [3]), np.random.default_rng(0)
    )
    before = engine.now
    result = engine.step()
    assert result.prefill_tokens == 10
    assert engine.now - before == pytest.approx(result.duration_s + result.idle_s)


def test_idle_step_jumps_to_the_next_arrival_but_not_past_the_limit():
    engine = ServingEngine(
        EngineConfig(model="Llama-68M"), Requests([5.0], [10], [3]), np.random.default_rng(0)
    )
    result = engine.step(t_limit=2.0)
    assert result.idle_s == pytest.approx(2.0) and engine.now == 2.0 and result.duration_s == 0
    engine.run_until(4.0)
    assert engine.now == 4.0 and engine.counts()["arrived"] == 0
    engine.run_until(100.0)
    assert engine.done and engine.requests.first_token_s[0] > 5.0
    assert engine.step().duration_s == 0.0  # done: stepping is a no-op
    assert engine.now < 100.0


def test_empty_request_set():
    engine = ServingEngine(
        EngineConfig(model="Llama-68M"), raw_requests([], [], []), np.random.default_rng(0)
    )
    assert engine.done
    engine.run_to_completion()
    assert engine.now == 0.0 and engine.counts()["arrived"] == 0


def test_max_num_seqs_limits_the_batch():
    config = EngineConfig(model="Llama-68M", max_num_seqs=3)
    engine = ServingEngine(
        config, Requests(np.zeros(10), np.full(10, 50), np.full(10, 20)), np.random.default_rng(0)
    )
    peak = 0
    while not engine.done:
        result = engine.step()
        peak = max(peak, engine.num_running, result.decode_seqs + result.prefill_seqs)
    assert peak == 3
    check_completed(engine)


def test_prefill_first_stalls_decodes_while_prompts_wait():
    config = EngineConfig(model="Llama-68M", policy="prefill_first", token_budget=64)
    engine = ServingEngine(
        config, Requests([0.0, 0.001, 0.001], [40, 200, 30], [30, 5, 5]), np.random.default_rng(0)
    )
    first = engine.step()
    assert (first.prefill_seqs, first.decode_seqs) == (1, 0)
    second = engine.step()  # a whole 200-token prompt runs alone although it exceeds the budget
    assert (second.prefill_seqs, second.prefill_tokens, second.decode_seqs) == (1, 200, 0)
    third = engine.step()
    assert (third.prefill_seqs, third.prefill_tokens, third.decode_seqs) == (1, 30, 0)
    assert engine.step().decode_seqs == 3


def test_decode_first_chunks_long_prompts_within_the_budget():
    config = EngineConfig(model="Llama-68M", token_budget=64)
    engine = ServingEngine(config, Requests([0.0], [200], [3]), np.random.default_rng(0))
    chunks = [engine.step().prefill_tokens for _ in range(4)]
    assert chunks == [64, 64, 64, 8]
    assert not math.isnan(engine.requests.first_token_s[0])


def test_max_model_len_above_the_model_context_is_refused():
    with pytest.raises(ValueError, match="max_model_len"):
        kv_capacity_blocks(EngineConfig(model="Llama-68M", max_model_len=100_000))
