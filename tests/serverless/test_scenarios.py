"""ServerlessAutoscale-v0 scenarios: fitted distributions, workloads (Azure Functions counts), bad input."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import servegym  # noqa: F401 - registers the ids
from servegym.envs.cluster.functions import cold_start, duration_preset, spread_for
from servegym.envs.serverless import ServerlessAutoscaleEnv
from servegym.envs.serverless_scenarios import SERVERLESS_PRESETS, ServerlessScenario
from servegym.workloads import Periodic, read_azure_functions_minute_counts

ENV_ID = "servegym/ServerlessAutoscale-v0"
MINUTES = 1440
HEADER = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(m) for m in range(1, MINUTES + 1))


def counts_csv(path: Path, rows: dict[str, dict[int, int]]) -> Path:
    lines = [HEADER]
    for function, counts in rows.items():
        cells = ["0"] * MINUTES
        for minute, n in counts.items():
            cells[minute - 1] = str(n)
        lines.append(f"owner,app,{function},http," + ",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


# -- fitted numbers ------------------------------------------------------------------------------------
def test_execution_times_reproduce_the_cited_azure_numbers():
    median = duration_preset("azure-median")
    assert median.mean_s == pytest.approx(math.exp(-0.38))  # the paper's log-mean of averages
    assert median.quantile(0.99) == pytest.approx(3.0)  # the median function's maximum, ~3 s
    p75 = duration_preset("azure-p75")
    assert p75.mean_s == pytest.approx(math.exp(-0.38 + 2.36 * 0.6744897501960817))
    assert p75.quantile(0.99) == pytest.approx(10.0)
    assert duration_preset("azure-p25").sigma == pytest.approx(median.sigma)
    rng = np.random.default_rng(0)
    assert median.sample(rng, 200_000).mean() == pytest.approx(median.mean_s, rel=0.01)
    with pytest.raises(ValueError, match="must exceed the mean"):
        spread_for(2.0, 1.0)


def test_cold_starts_span_a_quarter_second_to_three_seconds():
    dist = cold_start()
    assert dist.quantile(0.05) == pytest.approx(0.25) and dist.quantile(0.95) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="q_low"):
        cold_start(3.0, 0.25)


# -- workloads -----------------------------------------------------------------------------------------
def test_periodic_timer_arrivals():
    t = Periodic(60.0, phase_s=5.0, jitter_s=1.0, batch=3).sample(np.random.default_rng(0), 300.0)
    assert len(t) == 15 and np.all(np.diff(t) >= 0)
    fires = np.floor((t - 5.0) / 60.0)
    assert np.all(np.bincount(fires.astype(int)) == 3)
    assert np.all((t - 5.0) - 60.0 * fires < 1.0)
    assert Periodic(60.0).scaled(2.0).period_s == 30.0
    with pytest.raises(ValueError, match="jitter_s"):
        Periodic(10.0, jitter_s=10.0)


def test_azure_counts_replayed_from_a_random_minute_at_the_episode_scale(tmp_path):
    path = counts_csv(tmp_path / "d01.csv", {"f1": {m: 120 for m in range(1, 721)}, "f2": {1: 5}})
    np.testing.assert_array_equal(read_azure_functions_minute_counts(path, "f2")[:2], [5, 0])
    # as recorded: half the day at 2 req/s, half silent
    sc = ServerlessScenario(arrivals="azure-functions", counts_path=str(path), function="f1", trace_scale=1.0,
                            rate_jitter=0.0)  # fmt: skip
    assert sc.mean_rate == pytest.approx(1.0)
    rates = []
    for seed in range(20):
        t = sc.sample_arrivals(np.random.default_rng(seed), 3600.0)
        assert np.all(np.diff(t) >= 0) and (len(t) == 0 or t[-1] < 3600.0)
        rates.append(len(t) / 3600.0)
    assert {round(r) for r in rates} >= {0, 2}  # random start minutes land in both halves
    assert all(r < 2.2 for r in rates)
    # scaled to the mean load instead: the day's mean becomes mean_load x capacity
    scaled = ServerlessScenario(
        arrivals="azure-functions", counts_path=str(path), function="f1", mean_load=2.0
    )
    assert scaled.mean_rate == pytest.approx(2.0 * scaled.capacity_rps)
    env = gym.make(ENV_ID, arrivals="azure-functions", counts_path=str(path), function="f1", episode_s=120)
    env.reset(seed=0)
    env.step(4)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("HashOwner,HashApp,HashFunction,Trigger,1,3\n", "missing minute column"),
        ("HashOwner,HashApp,Trigger,1\no,a,http,1\n", "missing column"),
        ("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,x\n", ":2: column '2'"),
        ("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,-3\n", "expected a count >= 0"),
        ("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,0,0\n", "every per-minute count is 0"),
        ("HashOwner,HashApp,HashFunction,Trigger,1,2\n", "no data rows"),
    ],
)
def test_malformed_counts_files_are_named_with_the_problem(tmp_path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=message) as err:
        gym.make(ENV_ID, arrivals="azure-functions", counts_path=str(path))
    assert "bad.csv" in str(err.value)


def test_counts_file_errors_for_missing_file_and_function(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        ServerlessScenario(arrivals="azure-functions", counts_path=str(tmp_path / "nope.csv"))
    path = counts_csv(tmp_path / "d.csv", {"f1": {1: 1}})
    with pytest.raises(ValueError, match="function 'zz' not found"):
        ServerlessScenario(arrivals="azure-functions", counts_path=str(path), function="zz")
    with pytest.raises(ValueError, match="needs counts_path"):
        ServerlessScenario(arrivals="azure-functions")


# -- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_replicas": 5, "max_replicas": 4}, "min_replicas must be at most max_replicas=4"),
        ({"max_replicas": 0}, "max_replicas must be an integer >= 1"),
        ({"max_replicas": 1000}, "max_replicas must be an integer in 1..256"),
        ({"container_concurrency": 0}, "container_concurrency must be an integer >= 1"),
        ({"container_concurrency": 2.5}, "container_concurrency must be an integer"),
        ({"parallelism": 20}, "parallelism must be at most container_concurrency=10"),
        ({"initial_replicas": 99}, "initial_replicas must be at most"),
        ({"slo_s": 0}, "slo_s must be a number in"),
        ({"mean_load": -1}, "mean_load must be a number in"),
        ({"decision_interval_s": 2.5}, "decision_interval_s must be a whole number"),
        ({"arrivals": "nope"}, "arrivals must be one of"),
        ({"duration": "nope"}, "duration must be one of"),
        ({"duration_mean_s": 1.0, "duration_sigma": 9.0}, "duration_sigma must be a number in"),
        ({"cold_start_p5_s": 4.0}, "q_low < q_high"),
        ({"timer_period_s": 10.0, "timer_jitter_s": 20.0}, "timer_jitter_s must be less than"),
        ({"no_such_field": 1}, "unknown serverless scenario field"),
        ({"scenario": "nope"}, "unknown ServerlessAutoscale scenario"),
        ({"action_mode": "nope"}, "action_mode must be one of"),
        ({"max_step": 0}, "max_step must be an integer in 1..64"),
        ({"preference": 2.0}, "preference must be a number in"),
        ({"target_menu": (5, 1)}, "target_menu must be strictly increasing"),
        ({"target_menu": ()}, "target_menu must be a non-empty sequence"),
        ({"keep_alive_menu_min": (0, -1)}, r"keep_alive_menu_min\[1\] must be a number"),
    ],
)
def test_bad_arguments_raise_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(ENV_ID, **kwargs)


def test_out_of_range_actions_raise_and_masked_ones_clamp_to_the_bound():
    env = gym.make(ENV_ID, scenario="diurnal", action_mode="delta", max_replicas=4, min_replicas=1)
    env.reset(seed=0)
    core = env.unwrapped
    for bad in (-1, 9, 2.5, "1", True):
        with pytest.raises(ValueError, match="outside the action space"):
            env.step(bad)
    core.pool.scale_to(4)
    mask = core.action_masks()
    assert not mask[5:].any() and mask[4]  # +1..+4 would exceed max_replicas
    env.step(8)  # masked: asks for 8, clamped to max_replicas, nothing else changes
    assert core.pool.active == 4
    knob = gym.make(ENV_ID, action_mode="kpa-target", container_concurrency=10).unwrapped
    np.testing.assert_array_equal(knob.action_masks(), [True, True, True, True, False, False, False, False])
    knob.reset(seed=0)
    knob.step(7)  # masked: 100 acts as the cap, 10
    assert knob.pool.target == pytest.approx(7.0)


def test_step_before_reset_and_unknown_presets():
    with pytest.raises(RuntimeError, match="before reset"):
        ServerlessAutoscaleEnv().step(0)
    for name in SERVERLESS_PRESETS:
        ServerlessAutoscaleEnv(scenario=name)
