"""Arrival processes: rates, burstiness, schedules, replay, determinism and argument checks."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from servegym.workloads import MMPP2, Diurnal, GammaArrivals, PiecewiseRate, Poisson, Replay

PROCESSES = {
    "poisson": Poisson(5.0),
    "gamma-cv0.5": GammaArrivals(5.0, 0.5),
    "gamma-cv3": GammaArrivals(5.0, 3.0),
    # Fitted to the Azure 2023 conv trace (autoscaling_mec.md C2).
    "mmpp2": MMPP2(4.60, 6.86, 201.0, 138.0),
    "diurnal": Diurnal(5.0, 0.7, period_s=600.0, phase_s=123.0),
    "piecewise": PiecewiseRate([0.0, 100.0, 300.0, 600.0], [1.0, 8.0, 2.0]),
    "replay-loop": Replay(np.cumsum(np.full(1000, 0.2)), loop=True),
}


@pytest.mark.parametrize("name", list(PROCESSES))
def test_empirical_rate_matches_mean_rate(name: str) -> None:
    proc = PROCESSES[name]
    # A whole number of schedule periods (600 s) and many MMPP cycles (~340 s).
    horizon = 120_000.0
    t = proc.sample(np.random.default_rng(11), horizon)
    assert t.size / horizon == pytest.approx(proc.mean_rate, rel=0.03)


@pytest.mark.parametrize("name", list(PROCESSES))
def test_window_sorted_and_bounded(name: str) -> None:
    t = PROCESSES[name].sample(np.random.default_rng(3), 500.0, start_s=1000.0)
    assert t.dtype == np.float64
    assert t.size > 0
    assert np.all(np.diff(t) >= 0)
    assert t[0] >= 1000.0 and t[-1] < 1500.0


@pytest.mark.parametrize("name", list(PROCESSES))
def test_same_seed_same_arrays(name: str) -> None:
    proc = PROCESSES[name]
    a = proc.sample(np.random.default_rng(42), 2000.0)
    b = proc.sample(np.random.default_rng(42), 2000.0)
    np.testing.assert_array_equal(a, b)
    if name != "replay-loop":  # replay is deterministic by design
        c = proc.sample(np.random.default_rng(43), 2000.0)
        assert a.size != c.size or not np.array_equal(a, c)


@pytest.mark.parametrize("name", list(PROCESSES))
def test_scaled_multiplies_rate(name: str) -> None:
    proc = PROCESSES[name]
    s = proc.scaled(2.5)
    assert type(s) is type(proc)
    assert s.mean_rate == pytest.approx(2.5 * proc.mean_rate, rel=1e-12)
    horizon = 60_000.0
    n = s.sample(np.random.default_rng(5), horizon).size
    assert n / horizon == pytest.approx(s.mean_rate, rel=0.03)


def test_zero_horizon_is_empty() -> None:
    t = Poisson(3.0).sample(np.random.default_rng(0), 0.0)
    assert t.shape == (0,) and t.dtype == np.float64


def test_poisson_gaps_are_exponential() -> None:
    t = Poisson(10.0).sample(np.random.default_rng(1), 20_000.0)
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(0.1, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("cv", [0.3, 1.0, 2.0, 4.0])
def test_gamma_cv_recovered(cv: float) -> None:
    t = GammaArrivals(4.0, cv).sample(np.random.default_rng(7), 60_000.0)
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(0.25, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.05)


def test_gamma_starts_in_equilibrium() -> None:
    # For a stationary renewal process the mean count in any window is rate * length, even a
    # window of one mean gap right at the start (an ordinary renewal start gives ~3.8 here).
    proc = GammaArrivals(1.0, 3.0)
    counts = [proc.sample(np.random.default_rng(s), 1.0).size for s in range(6000)]
    assert np.mean(counts) == pytest.approx(1.0, abs=0.1)


def test_mmpp2_mean_rate_is_stationary_mixture() -> None:
    proc = MMPP2(rate_low=1.0, rate_high=9.0, mean_sojourn_low_s=30.0, mean_sojourn_high_s=10.0)
    assert proc.p_low == pytest.approx(0.75)
    assert proc.mean_rate == pytest.approx(0.75 * 1.0 + 0.25 * 9.0)
    horizon = 80_000.0
    t = proc.sample(np.random.default_rng(2), horizon)
    assert t.size / horizon == pytest.approx(proc.mean_rate, rel=0.03)
    # Modulation makes counts over-dispersed; a Poisson process has var/mean = 1.
    counts = np.bincount((t // 10.0).astype(np.int64), minlength=int(horizon // 10))
    assert counts.var() / counts.mean() > 5.0


def test_mmpp2_first_state_is_stationary() -> None:
    # Rate 0 in the low state: the fraction of short windows starting in "high" is 1 - p_low.
    proc = MMPP2(rate_low=0.0, rate_high=1000.0, mean_sojourn_low_s=30.0, mean_sojourn_high_s=10.0)
    busy = [proc.sample(np.random.default_rng(s), 0.01).size > 0 for s in range(3000)]
    assert np.mean(busy) == pytest.approx(0.25, abs=0.03)


def test_diurnal_peak_and_trough() -> None:
    proc = Diurnal(mean_rate=20.0, amplitude=0.8, period_s=100.0, phase_s=30.0)
    periods = 400
    t = proc.sample(np.random.default_rng(4), periods * 100.0)
    phase = np.mod(t - 30.0, 100.0)
    near_peak = np.sum((phase < 5.0) | (phase >= 95.0)) / (periods * 10.0)
    near_trough = np.sum(np.abs(phase - 50.0) < 5.0) / (periods * 10.0)
    avg_cos = math.sin(math.pi / 10) / (math.pi / 10)  # mean of cos over +-5 % of a period
    assert near_peak == pytest.approx(20.0 * (1 + 0.8 * avg_cos), rel=0.05)
    assert near_trough == pytest.approx(20.0 * (1 - 0.8 * avg_cos), rel=0.1)
    assert proc.rate_at(30.0) == pytest.approx(36.0)
    assert proc.rate_at(80.0) == pytest.approx(4.0)


def test_diurnal_zero_amplitude_is_poisson() -> None:
    t = Diurnal(8.0, 0.0, 60.0).sample(np.random.default_rng(0), 10_000.0)
    gaps = np.diff(t)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)


def test_piecewise_counts_per_segment() -> None:
    proc = PiecewiseRate([0.0, 100.0, 300.0, 600.0], [1.0, 8.0, 2.0])
    assert proc.mean_rate == pytest.approx((100 * 1 + 200 * 8 + 300 * 2) / 600)
    cycles = 100
    t = proc.sample(np.random.default_rng(9), cycles * 600.0)
    phase = np.mod(t, 600.0)
    counts = np.histogram(phase, bins=[0, 100, 300, 600])[0]
    np.testing.assert_allclose(counts, np.array([100, 1600, 600]) * cycles, rtol=0.05)
    np.testing.assert_array_equal(proc.rate_at([50.0, 650.0, 299.0, 300.0]), [1.0, 1.0, 8.0, 2.0])


def test_piecewise_without_repeat_is_zero_outside() -> None:
    proc = PiecewiseRate([10.0, 20.0], [50.0], repeat=False)
    t = proc.sample(np.random.default_rng(0), 100.0)
    assert t.size > 0 and t.min() >= 10.0 and t.max() < 20.0
    assert proc.rate_at(25.0) == 0.0 and proc.rate_at(5.0) == 0.0


def test_piecewise_windows_continue_schedule() -> None:
    proc = PiecewiseRate([0.0, 50.0, 100.0], [0.0, 20.0])
    t = proc.sample(np.random.default_rng(0), 100.0, start_s=1000.0)  # cycle 10
    assert t.size > 0 and np.all(np.mod(t, 100.0) >= 50.0)


def test_replay_scaling_and_offset() -> None:
    ts = np.array([0.0, 1.0, 2.0, 3.0, 5.0, 8.0])
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(Replay(ts).sample(rng, 100.0), ts)
    np.testing.assert_array_equal(Replay(ts, rate_scale=2.0).sample(rng, 100.0), ts / 2)
    # Offset 2: drop 0 and 1, shift the rest by -2.
    rep = Replay(ts, rate_scale=2.0, start_offset_s=2.0)
    np.testing.assert_array_equal(rep.sample(rng, 100.0), [0.0, 0.5, 1.5, 3.0])
    _, idx = rep.sample_with_index(rng, 100.0)
    np.testing.assert_array_equal(idx, [2, 3, 4, 5])
    # Windows are absolute replay time.
    np.testing.assert_array_equal(Replay(ts).sample(rng, 3.0, start_s=2.0), [2.0, 3.0])


def test_replay_loop() -> None:
    ts = np.array([0.0, 1.0, 3.0])  # period = 3 + mean gap 1.5 = 4.5
    rep = Replay(ts, loop=True)
    assert rep.period_s == pytest.approx(4.5)
    assert rep.mean_rate == pytest.approx(3 / 4.5)
    t, idx = rep.sample_with_index(np.random.default_rng(0), 10.0)
    np.testing.assert_allclose(t, [0.0, 1.0, 3.0, 4.5, 5.5, 7.5, 9.0])
    np.testing.assert_array_equal(idx, [0, 1, 2, 0, 1, 2, 0])
    assert Replay(ts).sample(np.random.default_rng(0), 10.0).size == 3  # no loop: ends


def test_sampling_is_fast() -> None:
    rng = np.random.default_rng(0)
    for proc in (
        Poisson(100.0),
        GammaArrivals(100.0, 3.0),
        MMPP2(50.0, 150.0, 20.0, 20.0),
        Diurnal(100.0, 0.5, 60.0),
    ):
        t0 = time.perf_counter()
        t = proc.sample(rng, 1000.0)  # ~1e5 arrivals
        assert time.perf_counter() - t0 < 0.5
        assert t.size > 80_000


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Poisson(0.0), r"Poisson.rate must be > 0 and finite, got 0.0"),
        (lambda: Poisson(-1), r"Poisson.rate must be > 0"),
        (lambda: Poisson(float("nan")), r"Poisson.rate must be finite"),
        (lambda: Poisson(float("inf")), r"Poisson.rate must be finite"),
        (lambda: Poisson("5"), r"Poisson.rate must be a real number"),
        (lambda: GammaArrivals(1.0, 0.0), r"GammaArrivals.cv must be > 0"),
        (lambda: MMPP2(0.0, 0.0, 1.0, 1.0), r"rate_low and rate_high must not both be 0"),
        (lambda: MMPP2(1.0, -2.0, 1.0, 1.0), r"MMPP2.rate_high must be >= 0"),
        (lambda: MMPP2(1.0, 2.0, 0.0, 1.0), r"MMPP2.mean_sojourn_low_s must be > 0"),
        (lambda: Diurnal(1.0, 1.5, 10.0), r"Diurnal.amplitude must be in \[0, 1\], got 1.5"),
        (lambda: Diurnal(1.0, 0.5, 0.0), r"Diurnal.period_s must be > 0"),
        (lambda: PiecewiseRate([0.0, 1.0], [1.0, 2.0]), r"breakpoints_s must have len\(rates\) \+ 1 = 3"),
        (lambda: PiecewiseRate([0.0, 2.0, 1.0], [1.0, 2.0]), r"strictly increasing; breakpoints_s\[2\]"),
        (lambda: PiecewiseRate([0.0, 1.0], [0.0]), r"at least one rate > 0"),
        (lambda: PiecewiseRate([0.0, 1.0], [-1.0]), r"PiecewiseRate.rates\[0\] must be >= 0"),
        (lambda: Replay([]), r"Replay.timestamps must not be empty"),
        (lambda: Replay([0.0, 2.0, 1.0, 3.0]), r"must be sorted; timestamps\[2\] = 1.0 < timestamps\[1\]"),
        (lambda: Replay([0.0, np.nan]), r"Replay.timestamps\[1\] must be finite"),
        (lambda: Replay([0.0, 1.0], rate_scale=0), r"Replay.rate_scale must be > 0"),
        (lambda: Replay([0.0, 1.0, 2.0], start_offset_s=1.5), r"at least two distinct timestamps"),
        (lambda: Poisson(1.0).scaled(0.0), r"factor must be > 0"),
        (lambda: Poisson(1.0).sample(np.random.default_rng(0), -1.0), r"horizon_s must be >= 0"),
        (lambda: Poisson(1.0).sample(np.random.default_rng(0), 1.0, float("nan")), r"start_s must be finite"),
        (lambda: Poisson(1e9).sample(np.random.default_rng(0), 1e9), r"more than the limit"),
    ],
)
def test_bad_arguments(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_rng_must_be_generator() -> None:
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        Poisson(1.0).sample(np.random.RandomState(0), 1.0)
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        Poisson(1.0).sample(0, 1.0)
