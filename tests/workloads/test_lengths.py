"""Length distributions: lognormal fit, copula correlation, presets, empirical resampling."""

from __future__ import annotations

import numpy as np
import pytest

from servegym.workloads import LENGTH_PRESETS, EmpiricalLengths, LognormalLengths, length_preset

N = 200_000


def _check_fit(x: np.ndarray, median: float, p90: float) -> None:
    assert np.median(x) == pytest.approx(median, rel=0.03)
    assert np.quantile(x, 0.9) == pytest.approx(p90, rel=0.03)


def test_lognormal_median_and_p90_recovered() -> None:
    dist = LognormalLengths(800, 3000, 250, 900)
    p, o = dist.sample(np.random.default_rng(0), N)
    _check_fit(p, 800, 3000)
    _check_fit(o, 250, 900)


@pytest.mark.parametrize("name", ["azure-conv", "sharegpt", "arxiv-summarization"])
def test_preset_quantiles_recovered(name: str) -> None:
    dist = length_preset(name)
    p, o = dist.sample(np.random.default_rng(1), N)
    _check_fit(p, dist.prompt_median, dist.prompt_p90)
    _check_fit(o, dist.output_median, dist.output_p90)


@pytest.mark.parametrize("rho", [-0.5, 0.0, 0.6])
def test_correlation_recovered(rho: float) -> None:
    dist = LognormalLengths(1000, 3000, 200, 600, correlation=rho)
    p, o = dist.sample(np.random.default_rng(2), N)
    assert np.corrcoef(np.log(p), np.log(o))[0, 1] == pytest.approx(rho, abs=0.02)


@pytest.mark.parametrize("name", LENGTH_PRESETS)
def test_presets_within_bounds(name: str) -> None:
    dist = length_preset(name)
    assert dist.source and dist.max_prompt and dist.max_output
    p, o = dist.sample(np.random.default_rng(3), 50_000)
    assert p.dtype == np.int64 and o.dtype == np.int64
    assert p.shape == o.shape == (50_000,)
    assert p.min() >= 1 and o.min() >= 1
    assert p.max() <= dist.max_prompt and o.max() <= dist.max_output


def test_preset_values_and_names() -> None:
    conv = length_preset("Azure-Conv")
    assert (conv.prompt_median, conv.prompt_p90, conv.output_median, conv.output_p90) == (
        1020,
        2735,
        129,
        424,
    )
    assert (conv.max_prompt, conv.max_output) == (14050, 1000)
    code = length_preset(" AZURE_CODE ")
    assert (code.prompt_median, code.prompt_p90, code.output_median, code.output_p90) == (1469, 5188, 13, 55)
    assert (code.max_prompt, code.max_output) == (7437, 1899)
    assert length_preset("sharegpt").prompt_median == 1730
    arxiv = length_preset("arxiv-summarization")
    assert (arxiv.prompt_median, arxiv.prompt_p90, arxiv.output_median, arxiv.output_p90) == (
        2730,
        3702,
        167,
        372,
    )


def test_unknown_preset_lists_names() -> None:
    with pytest.raises(ValueError, match=r"unknown length preset 'nope'; available: azure-conv, azure-code"):
        length_preset("nope")


def test_clipping_to_max() -> None:
    dist = LognormalLengths(100, 400, 100, 400, max_prompt=120, max_output=50)
    p, o = dist.sample(np.random.default_rng(4), 10_000)
    assert p.max() == 120 and o.max() == 50
    assert np.mean(o == 50) > 0.5


def test_lengths_at_least_one() -> None:
    p, o = LognormalLengths(1, 30, 1, 30).sample(np.random.default_rng(5), 10_000)
    assert p.min() == 1 and o.min() == 1


def test_lognormal_determinism() -> None:
    dist = length_preset("azure-code")
    a = dist.sample(np.random.default_rng(9), 1000)
    b = dist.sample(np.random.default_rng(9), 1000)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_empirical_resamples_pairs_jointly() -> None:
    prompts = np.arange(1, 101)
    outputs = prompts * 7 + 3
    dist = EmpiricalLengths(prompts, outputs)
    p, o = dist.sample(np.random.default_rng(6), 20_000)
    np.testing.assert_array_equal(o, p * 7 + 3)
    assert np.unique(p).size == 100
    a = dist.sample(np.random.default_rng(6), 20_000)
    np.testing.assert_array_equal(a[0], p)


def test_empirical_clipping() -> None:
    dist = EmpiricalLengths([10, 5000], [3, 900], max_prompt=4096, max_output=500)
    p, o = dist.sample(np.random.default_rng(0), 100)
    assert set(p.tolist()) <= {10, 4096} and set(o.tolist()) <= {3, 500}


def test_sample_zero() -> None:
    p, o = length_preset("sharegpt").sample(np.random.default_rng(0), 0)
    assert p.shape == o.shape == (0,)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LognormalLengths(100, 50, 10, 20), r"prompt_p90 must be >= prompt_median = 100, got 50"),
        (lambda: LognormalLengths(100, 200, 0, 20), r"output_median must be > 0"),
        (lambda: LognormalLengths(100, 200, 10, 20, correlation=1.5), r"correlation must be in \[-1, 1\]"),
        (lambda: LognormalLengths(100, 200, 10, 20, max_prompt=0), r"max_prompt must be an integer >= 1"),
        (lambda: LognormalLengths(100, 200, 10, 20, max_output=2.5), r"max_output must be an integer >= 1"),
        (lambda: EmpiricalLengths([1, 2], [1]), r"same length, got 2 and 1"),
        (lambda: EmpiricalLengths([], []), r"prompts must not be empty"),
        (lambda: EmpiricalLengths([1, 0], [1, 1]), r"prompts\[1\] must be >= 1, got 0"),
        (lambda: EmpiricalLengths([1, 2], [1.5, 1]), r"outputs\[0\] must be an integer token count"),
        (
            lambda: length_preset("azure-conv").sample(np.random.default_rng(0), -1),
            r"n must be an integer >= 0",
        ),
        (lambda: length_preset("azure-conv").sample(np.random.default_rng(0), 2.5), r"n must be an integer"),
    ],
)
def test_bad_arguments(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()
