"""Speculative decoding: the acceptance formula, the sampler, and the engine's draft counters."""

from __future__ import annotations

import numpy as np
import pytest

from servegym.envs.serving import (
    ACCEPTANCE_PRESETS,
    EngineConfig,
    ServingEngine,
    expected_tokens_per_step,
    sample_accepted,
)
from servegym.envs.serving.speculation import acceptance_preset, drift_multiplier
from servegym.workloads import Requests

from ._helpers import check_completed, run_checked


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 0.7, 0.9, 0.99])
@pytest.mark.parametrize("k", [0, 1, 3, 5, 8])
def test_expected_tokens_per_step_formula(alpha, k):
    expected = (1 - alpha ** (k + 1)) / (1 - alpha)
    assert expected_tokens_per_step(alpha, k) == pytest.approx(expected, rel=1e-12)
    assert expected_tokens_per_step(alpha, k) == pytest.approx(sum(alpha**j for j in range(k + 1)))


@pytest.mark.parametrize("k", [0, 1, 4, 8])
def test_expected_tokens_per_step_at_full_acceptance(k):
    assert expected_tokens_per_step(1.0, k) == k + 1
    assert isinstance(expected_tokens_per_step(1.0, k), float)


def test_expected_tokens_per_step_vectorised():
    alpha = np.array([0.0, 0.5, 0.9, 1.0])
    out = expected_tokens_per_step(alpha, 3)
    assert isinstance(out, np.ndarray) and out.shape == (4,)
    np.testing.assert_allclose(out, [1.0, 1.875, (1 - 0.9**4) / 0.1, 4.0])
    assert np.all(np.diff(out) > 0)


@pytest.mark.parametrize("alpha", [0.5, 0.7, 0.9])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_sample_accepted_matches_the_formula(alpha, k):
    rng = np.random.default_rng(12345 + k)
    accepted = sample_accepted(rng, np.full(200_000, alpha), k)
    assert accepted.dtype == np.int64
    assert accepted.min() >= 0 and accepted.max() == k
    mean = float((accepted + 1).mean())
    assert mean == pytest.approx(expected_tokens_per_step(alpha, k), rel=0.01)
    # The distribution too: P(accepted >= j) = alpha^j for j <= k.
    for j in range(1, k + 1):
        assert float((accepted >= j).mean()) == pytest.approx(alpha**j, abs=0.005)


def test_sample_accepted_edges():
    rng = np.random.default_rng(0)
    assert sample_accepted(rng, np.full(10, 0.9), 0).tolist() == [0] * 10
    assert sample_accepted(rng, np.array([]), 3).tolist() == []
    assert sample_accepted(rng, np.full(1000, 1.0), 4).tolist() == [4] * 1000
    assert sample_accepted(rng, np.zeros(1000), 4).tolist() == [0] * 1000


def test_acceptance_presets():
    for name, preset in ACCEPTANCE_PRESETS.items():
        assert acceptance_preset(name.upper()) is preset
        assert 0 < preset.mean < 1 and preset.source
    assert (
        ACCEPTANCE_PRESETS["code"].mean
        > ACCEPTANCE_PRESETS["chat"].mean
        > ACCEPTANCE_PRESETS["weak-draft"].mean
    )


def test_drift_multiplier_is_piecewise_constant():
    drift = ((10.0, 0.5), (20.0, 0.8))
    assert [drift_multiplier(drift, t) for t in (0.0, 9.99, 10.0, 15.0, 20.0, 1e6)] == [
        1.0,
        1.0,
        0.5,
        0.5,
        0.8,
        0.8,
    ]
    assert drift_multiplier((), 5.0) == 1.0


def _requests(n: int = 24, seed: int = 0) -> Requests:
    rng = np.random.default_rng(seed)
    return Requests(np.sort(rng.uniform(0, 2.0, n)), rng.integers(20, 400, n), rng.integers(20, 200, n))


def _run(seed: int = 0, **fields) -> ServingEngine:
    config = EngineConfig(model="Llama-68M", device="a100", **fields)
    engine = ServingEngine(config, _requests(seed=seed), np.random.default_rng(seed))
    run_checked(engine)
    check_completed(engine)
    return engine


def test_ngram_without_matches_drafts_nothing():
    engine = _run(draft="ngram", ngram_hit_rate=0.0, spec_tokens=4)
    tot = engine.totals()
    assert tot.drafted == tot.accepted == tot.verify_steps == 0
    assert tot.drafted_at_position.sum() == 0 and tot.draft_s == 0.0
    plain = _run()
    # Without matches every step is a plain decode step: the same number of steps and times.
    assert tot.decode_steps == plain.totals().decode_steps
    np.testing.assert_allclose(engine.requests.finished_s, plain.requests.finished_s, rtol=1e-12)


@pytest.mark.parametrize("draft", ["ngram", "Llama-68M"])
def test_spec_tokens_zero_leaves_acceptance_counters_at_zero(draft):
    tot = _run(draft=draft, spec_tokens=0).totals()
    assert tot.drafted == tot.accepted == tot.verify_steps == 0
    assert tot.draft_s == 0.0
    assert not tot.accepted_at_position.any() and not tot.drafted_at_position.any()


@pytest.mark.parametrize("draft", ["ngram", "Llama-68M"])
def test_speculation_counters_are_consistent(draft):
    k = 4
    engine = _run(draft=draft, spec_tokens=k, ngram_hit_rate=0.5, acceptance="code")
    tot = engine.totals()
    assert 0 < tot.accepted <= tot.drafted
    assert tot.drafted == k * tot.verify_steps
    assert tot.drafted_at_position[:k].sum() == tot.drafted
    assert tot.accepted_at_position[:k].sum() == tot.accepted
    assert not tot.drafted_at_position[k:].any()
    # Acceptance by position never rises (a draft is accepted only after all before it).
    assert np.all(np.diff(tot.accepted_at_position[:k]) <= 0)
    assert (tot.draft_s > 0) == (draft != "ngram")
    # Fewer decode steps than tokens: speculation emitted several tokens per step.
    assert tot.decode_tokens > tot.decode_steps
    if draft == "ngram":
        assert tot.verify_steps == pytest.approx(0.5 * tot.decode_steps, rel=0.1)
    else:
        assert tot.verify_steps == tot.decode_steps


def test_measured_acceptance_follows_the_request_rates():
    k = 3
    engine = _run(draft="Llama-68M", spec_tokens=k, acceptance="summarization")
    tot = engine.totals()
    # E[accepted] / k over the requests' alpha, weighted by their verification steps (roughly by output).
    alpha = engine.requests.alpha
    assert np.all((alpha > 0) & (alpha < 1))
    per_request = (expected_tokens_per_step(alpha, k) - 1) / k
    weights = engine.requests.output_tokens / expected_tokens_per_step(alpha, k)
    predicted = float((per_request * weights).sum() / weights.sum())
    assert tot.accepted / tot.drafted == pytest.approx(predicted, abs=0.05)


def test_acceptance_drift_lowers_the_measured_acceptance():
    base = _run(draft="Llama-68M", spec_tokens=3, acceptance="code").totals()
    drifted = _run(
        draft="Llama-68M", spec_tokens=3, acceptance="code", acceptance_drift=((0.0, 0.5),)
    ).totals()
    rate, lowered = base.accepted / base.drafted, drifted.accepted / drifted.drafted
    assert lowered < rate - 0.2
    raised = _run(
        draft="Llama-68M", spec_tokens=3, acceptance="weak-draft", acceptance_drift=((0.0, 2.0),)
    ).totals()
    weak = _run(draft="Llama-68M", spec_tokens=3, acceptance="weak-draft").totals()
    assert raised.accepted / raised.drafted > weak.accepted / weak.drafted + 0.2
    assert raised.accepted <= raised.drafted  # the multiplied rate is capped at 1


def test_drift_after_the_run_changes_nothing():
    a = _run(draft="ngram", spec_tokens=2, ngram_hit_rate=1.0)
    b = _run(draft="ngram", spec_tokens=2, ngram_hit_rate=1.0, acceptance_drift=((1e6, 0.1),))
    np.testing.assert_array_equal(a.requests.finished_s, b.requests.finished_s)
    assert a.totals().accepted == b.totals().accepted


def test_requests_without_a_draft_have_no_acceptance_rate():
    engine = ServingEngine(EngineConfig(model="Llama-68M"), _requests(), np.random.default_rng(0))
    assert not engine.requests.alpha.any()


def test_draft_model_proposes_nothing_past_its_context():
    config = EngineConfig(model="Llama-3.2-1B", max_model_len=4096, draft="Llama-68M", spec_tokens=3)
    assert config.context_limit() > 2048  # Llama-68M's context
    long = ServingEngine(config, Requests([0.0], [2100], [20]), np.random.default_rng(0))
    run_checked(long)
    check_completed(long)
    assert long.totals().drafted == 0 and long.totals().draft_s == 0.0
    short = ServingEngine(config, Requests([0.0], [100], [20]), np.random.default_rng(0))
    run_checked(short)
    assert short.totals().drafted > 0
