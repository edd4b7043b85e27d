"""Multi-objective metrics of servegym.experiments.mec_metrics: front, hypervolume, utility, table."""

from __future__ import annotations

import numpy as np
import pytest

from servegym.baselines.mec import GreedyWeighted
from servegym.experiments import mec_metrics as mm

# Three mutually non-dominated (delay s, energy J) points; reference (1 s, 2 J):
#   sorted by delay: (0.2, 1.5), (0.4, 1.0), (0.6, 0.4)
#   HV = (0.4-0.2)(2-1.5) + (0.6-0.4)(2-1.0) + (1-0.6)(2-0.4) = 0.1 + 0.2 + 0.64 = 0.94 s*J
#   normalised by the 1 x 2 box: 0.47
HAND = [(0.4, 1.0), (0.6, 0.4), (0.2, 1.5)]


def test_hypervolume_hand_example():
    assert mm.hypervolume_2d(HAND, (1.0, 2.0), normalize=False) == pytest.approx(0.94)
    assert mm.hypervolume_2d(HAND, (1.0, 2.0)) == pytest.approx(0.47)
    assert mm.REFERENCE_POINT == (1.0, 2.0)
    assert mm.hypervolume_2d(HAND) == pytest.approx(0.47)  # the default reference


def test_hypervolume_matches_a_grid_count():
    """Independent check: the fraction of grid cells of the box dominated by some point."""
    n = 2000
    d, e = np.meshgrid((np.arange(n) + 0.5) / n * 1.0, (np.arange(n) + 0.5) / n * 2.0)
    dominated = np.zeros_like(d, dtype=bool)
    for pd, pe in HAND:
        dominated |= (d >= pd) & (e >= pe)
    assert mm.hypervolume_2d(HAND) == pytest.approx(dominated.mean(), abs=2e-3)


def test_hypervolume_ignores_dominated_duplicate_and_outside_points():
    extra = [*HAND, (0.5, 1.2), (0.4, 1.0), (1.2, 0.1), (0.1, 2.5), (1.0, 0.0)]
    assert mm.hypervolume_2d(extra) == pytest.approx(0.47)
    assert mm.hypervolume_2d(list(reversed(extra))) == pytest.approx(0.47)
    assert mm.hypervolume_2d([(1.5, 3.0)]) == 0.0
    assert mm.hypervolume_2d(np.empty((0, 2))) == 0.0


def test_hypervolume_single_point_and_ideal_point():
    assert mm.hypervolume_2d([(0.25, 0.5)]) == pytest.approx((1 - 0.25) * (1 - 0.25))
    assert mm.hypervolume_2d([(0.0, 0.0)]) == pytest.approx(1.0)
    assert mm.hypervolume_2d([(0.5, 1.0)], (2.0, 4.0), normalize=False) == pytest.approx(1.5 * 3.0)


def test_hypervolume_rejects_bad_input():
    with pytest.raises(ValueError):
        mm.hypervolume_2d(HAND, (0.0, 1.0))
    with pytest.raises(ValueError):
        mm.hypervolume_2d([(np.nan, 1.0)])


def test_pareto_front():
    front = mm.pareto_front([*HAND, (0.5, 1.2), (0.4, 1.0), (0.4, 1.1)])
    assert front.tolist() == [[0.2, 1.5], [0.4, 1.0], [0.6, 0.4]]


def test_expected_utility_hand_value_sign_and_range():
    points, w = [(0.5, 0.5), (0.25, 1.0)], [1.0, 0.0]
    # w = 1: -(0.5 / 0.5) = -1; w = 0: -(1.0 / 0.5) = -2; mean -1.5
    assert mm.expected_utility(points, w) == pytest.approx(-1.5)
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.uniform(0, 1, (5, 2))
        prefs = rng.uniform(0, 1, 5)
        eu = mm.expected_utility(p, prefs)
        normalised = p / [mm.DELAY_REF_S, mm.ENERGY_REF_J]
        assert -normalised.max() <= eu <= -normalised.min() <= 0
    assert mm.expected_utility([(0.0, 0.0)], [0.3]) == 0.0
    with pytest.raises(ValueError, match="one point per preference"):
        mm.expected_utility(points, [0.5])


def test_task_metrics():
    s = mm.task_metrics(np.arange(1, 101) / 100, np.full(100, 0.2), np.arange(100) < 7)
    assert s["mean_delay_s"] == pytest.approx(0.505)
    assert s["p95_delay_s"] == pytest.approx(np.percentile(np.arange(1, 101) / 100, 95))
    assert s["miss_ratio"] == pytest.approx(0.07)
    assert s["energy_per_task_j"] == pytest.approx(0.2)
    with pytest.raises(ValueError):
        mm.task_metrics([], [], [])


def test_default_preference_grids():
    assert len(mm.DEFAULT_PREFERENCES) == 11 and mm.DEFAULT_PREFERENCES[1] == pytest.approx(0.1)
    assert len(mm.POLICY_PREFERENCES) == 51 and mm.POLICY_PREFERENCES[1] == pytest.approx(0.02)
    assert mm.DEFAULT_PREFERENCES[0] == 0.0 and mm.DEFAULT_PREFERENCES[-1] == 1.0


# -- sweeps ---------------------------------------------------------------------------------------------
PREFS = (0.0, 0.5, 1.0)


@pytest.fixture(scope="module")
def weighted() -> mm.SweepResult:
    return mm.sweep("greedy-weighted", "multi-edge-busy", episodes=2, preferences=PREFS, episode_tasks=50)


def test_sweep_collects_every_task(weighted):
    assert weighted.points.shape == (3, 2)
    assert weighted.delay.shape == weighted.energy.shape == weighted.missed.shape == (3 * 2 * 50,)
    assert weighted.env_id == "servegym/MecOffload-v0"
    means = weighted.delay.reshape(3, -1).mean(axis=1), weighted.energy.reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(weighted.points, np.stack(means, axis=1))


def test_expected_utility_is_the_mean_env_reward_over_preferences(weighted):
    assert weighted.expected_utility == pytest.approx(weighted.mean_reward.mean(), rel=1e-9)
    assert weighted.expected_utility < 0


def test_weighted_greedy_traces_a_front(weighted):
    (d0, e0), _, (d1, e1) = weighted.points
    assert d1 < d0 and e0 < e1  # w = 1 is faster, w = 0 is frugal
    assert len(weighted.front) == 3
    assert weighted.hypervolume > max(mm.hypervolume_2d([p]) for p in weighted.points)


def test_preference_blind_controller_gives_one_point():
    r = mm.sweep("greedy-delay", "multi-edge-busy", episodes=1, preferences=PREFS, episode_tasks=30)
    assert np.ptp(r.points, axis=0).max() == 0.0
    s = r.summary()
    assert s["front_points"] == 1
    d, e = r.points[0]
    assert s["hypervolume"] == pytest.approx((1 - d / 1.0) * (1 - e / 2.0))


def test_sweep_accepts_controller_objects_and_checks_arguments():
    r = mm.sweep(GreedyWeighted(preference=1.0), "single-edge-light", 1, (0.2,), episode_tasks=10)
    assert r.controller.startswith("GreedyWeighted") and r.delay.size == 10
    with pytest.raises(ValueError):
        mm.sweep("greedy-delay", episodes=0)
    with pytest.raises(ValueError):
        mm.sweep("greedy-delay", preferences=(1.5,))


def test_table_and_cli(capsys):
    table = mm.heuristics_table("single-edge-light", 1, (0.0, 1.0), episode_tasks=10)
    lines = table.splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| controller")]
    assert len(rows) == len(mm.heuristic_names()) == 12
    assert any(line.startswith("| neurosurgeon (DnnSplit)") for line in rows)
    assert "HV ref (1 s, 2 J)" in lines[0]
    assert mm.main(["--scenario", "single-edge-light", "--episodes", "1", "--controllers", "all-local"]) == 0
    out = capsys.readouterr().out
    assert "| all-local |" in out and "single-edge-light" in out
    with pytest.raises(ValueError, match="preference-step"):
        mm.main(["--preference-step", "0.3"])
