"""Workload sampling and trace replay into Requests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from servegym.workloads import (
    EmpiricalLengths,
    GammaArrivals,
    Poisson,
    Replay,
    Requests,
    Trace,
    Workload,
    length_preset,
    read_trace,
)

TRACE = Trace(
    arrival_s=[0.0, 1.0, 2.0, 4.0, 8.0, 9.0],
    prompt_tokens=[10, 20, 30, 40, 50, 60],
    output_tokens=[1, 2, 3, 4, 5, 6],
    source="tiny",
)


def test_synthetic_workload() -> None:
    w = Workload(GammaArrivals(5.0, 2.0), length_preset("azure-conv"))
    r = w.sample(np.random.default_rng(0), 600.0)
    assert isinstance(r, Requests) and len(r) == r.arrival_s.size == r.prompt_tokens.size
    assert len(r) == pytest.approx(3000, rel=0.15)
    assert r.prompt_tokens.dtype == np.int64 and r.output_tokens.min() >= 1
    assert r.output_tokens.max() <= 1000
    again = w.sample(np.random.default_rng(0), 600.0)
    np.testing.assert_array_equal(again.arrival_s, r.arrival_s)
    np.testing.assert_array_equal(again.prompt_tokens, r.prompt_tokens)
    assert w.scaled(2.0).mean_rate == pytest.approx(10.0)


def test_from_trace_replays_rows_with_their_lengths() -> None:
    w = Workload.from_trace(TRACE)
    r = w.sample(np.random.default_rng(0), 100.0)
    np.testing.assert_array_equal(r.arrival_s, TRACE.arrival_s)
    np.testing.assert_array_equal(r.prompt_tokens, TRACE.prompt_tokens)
    np.testing.assert_array_equal(r.output_tokens, TRACE.output_tokens)


def test_from_trace_rate_scale_and_start() -> None:
    w = Workload.from_trace(TRACE, rate_scale=2.0, start_s=2.0)
    r = w.sample(np.random.default_rng(0), 100.0)
    np.testing.assert_array_equal(r.arrival_s, [0.0, 1.0, 3.0, 3.5])
    np.testing.assert_array_equal(r.prompt_tokens, [30, 40, 50, 60])
    window = w.sample(np.random.default_rng(0), 2.0, start_s=1.0)
    np.testing.assert_array_equal(window.arrival_s, [1.0])
    np.testing.assert_array_equal(window.output_tokens, [4])


def test_from_real_trace(conv_path: Path) -> None:
    tr = read_trace(conv_path)
    r = Workload.from_trace(tr, rate_scale=2.0).sample(np.random.default_rng(0), 600.0)
    n = int(np.searchsorted(tr.arrival_s, 1200.0))
    assert len(r) == n
    np.testing.assert_allclose(r.arrival_s, tr.arrival_s[:n] / 2)
    np.testing.assert_array_equal(r.prompt_tokens, tr.prompt_tokens[:n])


def test_unpaired_replay_resamples_lengths() -> None:
    w = Workload(Replay(TRACE.arrival_s), length_preset("azure-code"))
    r = w.sample(np.random.default_rng(0), 100.0)
    np.testing.assert_array_equal(r.arrival_s, TRACE.arrival_s)
    assert len(r) == 6


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Requests([1.0, 0.0], [1, 1], [1, 1]), r"Requests.arrival_s must be sorted; arrival_s\[1\]"),
        (lambda: Requests([0.0, 1.0], [1, 1], [1, 0]), r"Requests.output_tokens\[1\] must be >= 1, got 0"),
        (lambda: Requests([0.0, 1.0], [1], [1, 1]), r"same length, got 2, 1, 2"),
        (lambda: Workload(Poisson(1.0), "azure-conv"), r"Workload.lengths must be a LengthDistribution"),
        (lambda: Workload(1.0, length_preset("sharegpt")), r"Workload.arrivals must be an ArrivalProcess"),
        (
            lambda: Workload(Poisson(1.0), length_preset("sharegpt"), paired=True),
            r"paired needs arrivals=Replay",
        ),
        (
            lambda: Workload(Replay([0.0, 1.0, 2.0]), EmpiricalLengths([1, 2], [1, 2]), paired=True),
            r"Replay has 3 timestamps but EmpiricalLengths has 2 pairs",
        ),
        (lambda: Workload.from_trace(TRACE, rate_scale=0.0), r"Replay.rate_scale must be > 0"),
        (
            lambda: Workload.from_trace(TRACE).sample(np.random.default_rng(0), -5.0),
            r"horizon_s must be >= 0",
        ),
    ],
)
def test_bad_arguments(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


# -- ShiftingMix ------------------------------------------------------------------------------------
def test_shifting_mix_draws_the_second_distribution_by_its_share_schedule():
    from servegym.workloads import Poisson, ShiftingMix, length_preset

    mix = ShiftingMix(
        Poisson(20.0), length_preset("azure-conv"), length_preset("arxiv-summarization"),
        ((0.0, 0.0), (50.0, 1.0), (100.0, 0.25)),
    )  # fmt: skip
    a = mix.sample(np.random.default_rng(3), 150.0)
    b = mix.sample(np.random.default_rng(3), 150.0)
    np.testing.assert_array_equal(a.prompt_tokens, b.prompt_tokens)  # seeded
    np.testing.assert_array_equal(mix.share_at(np.array([-1.0, 0.0, 49.9, 50.0, 120.0])), [0, 0, 0, 1, 0.25])
    t, p = a.arrival_s, a.prompt_tokens
    first, second, third = p[t < 50], p[(t >= 50) & (t < 100)], p[t >= 100]
    assert np.median(second) > 2 * np.median(first)  # arXiv prompts (median 2730) vs chat (1020)
    assert np.median(first) < np.median(third) < np.median(second)
    assert mix.mean_rate == 20.0


@pytest.mark.parametrize("steps", [(), ((5.0, 0.5), (1.0, 0.5)), ((0.0, 1.5),)])
def test_shifting_mix_rejects_bad_schedules(steps):
    from servegym.workloads import Poisson, ShiftingMix, length_preset

    with pytest.raises(ValueError, match=r"ShiftingMix\.share_steps"):
        ShiftingMix(Poisson(1.0), length_preset("azure-conv"), length_preset("azure-code"), steps)
