"""Knative's KPA decision (envs.cluster.kpa), and the env's KPA knob against the ``kpa`` heuristic."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import servegym  # noqa: F401 - registers the ids
from servegym import baselines
from servegym.envs.cluster.kpa import (
    MAX_PANIC_PODS,
    PANIC_TIME,
    ZERO_SINCE,
    kpa_scale,
    new_state,
    resolve_target,
    window_averages,
)

ENV_ID = "servegym/ServerlessAutoscale-v0"


def test_target_is_70_percent_of_the_annotation_capped_at_container_concurrency():
    assert resolve_target(100, 0) == pytest.approx(70.0)  # no containerConcurrency: the annotation
    assert resolve_target(100, 10) == pytest.approx(7.0)  # capped at containerConcurrency
    assert resolve_target(5, 10) == pytest.approx(3.5)
    assert resolve_target(0.001, 10) == pytest.approx(0.01)  # TargetMin


def test_stable_mode_ceil_of_concurrency_over_target_and_at_most_halving():
    state = new_state(0.0, 1)
    assert kpa_scale(state, 10.0, 4, 20.0, 20.0, 7.0, 0, 100) == 3  # ceil(20 / 7)
    assert kpa_scale(state, 12.0, 8, 1.0, 1.0, 7.0, 0, 100) == 4  # max scale-down rate 2: floor(8 / 2)
    assert kpa_scale(state, 14.0, 4, 1.0, 1.0, 7.0, 0, 3) == 2
    assert kpa_scale(state, 16.0, 4, 100.0, 10.0, 7.0, 0, 3) == 3  # max-scale


def test_panic_holds_the_highest_count_until_a_stable_window_of_calm():
    state = new_state(0.0, 1)
    # panic: the 6 s window wants 2x the ready pods
    assert kpa_scale(state, 10.0, 2, 7.0, 40.0, 7.0, 0, 100) == 6
    assert state[PANIC_TIME] == 10.0 and state[MAX_PANIC_PODS] == 6
    # the load falls: no scale-down while panicking
    assert kpa_scale(state, 30.0, 6, 7.0, 7.0, 7.0, 0, 100) == 6
    # 60 s after the last panic signal, back to the stable decision
    assert kpa_scale(state, 71.0, 6, 7.0, 7.0, 7.0, 0, 100) == 3
    assert state[PANIC_TIME] < 0 and state[MAX_PANIC_PODS] == 0


def test_starts_in_panic_with_more_than_one_pod():
    state = new_state(0.0, 5)
    assert kpa_scale(state, 2.0, 5, 0.0, 0.0, 7.0, 0, 100) == 5  # keeps its scale at first
    assert kpa_scale(state, 62.0, 5, 0.0, 0.0, 7.0, 0, 100) == 2  # floor(5 / 2) after a calm window


def test_scale_to_zero_only_after_the_grace_period():
    state = new_state(0.0, 1)
    assert kpa_scale(state, 100.0, 1, 0.0, 0.0, 7.0, 0, 100) == 1
    assert state[ZERO_SINCE] == 100.0
    assert kpa_scale(state, 129.0, 1, 0.0, 0.0, 7.0, 0, 100) == 1
    assert kpa_scale(state, 130.0, 1, 0.0, 0.0, 7.0, 0, 100) == 0
    assert kpa_scale(state, 132.0, 0, 0.1, 0.5, 7.0, 0, 100) == 1 and state[ZERO_SINCE] < 0
    assert kpa_scale(new_state(0.0, 1), 200.0, 1, 0.0, 0.0, 7.0, 1, 100) == 1  # min-scale 1: never zero


def test_window_averages_over_the_buckets_seen():
    buckets = np.zeros(60)
    buckets[:3] = [3.0, 6.0, 9.0]
    assert window_averages(buckets, 3) == pytest.approx((6.0, 6.0))
    buckets[:] = np.arange(60.0)
    stable, panic = window_averages(buckets, 70)  # a ring: the last 60 are 10..59 then 0..9
    assert stable == pytest.approx(np.arange(60.0).mean())
    assert panic == pytest.approx(np.mean([4.0, 5.0, 6.0, 7.0, 8.0, 9.0]))


@pytest.mark.parametrize("scenario", ["diurnal", "bursty", "flash-crowd"])
def test_kpa_heuristic_in_target_mode_replays_the_knob_mode_exactly(scenario):
    """The env's KPA (knob at Knative's default) and the ``kpa`` heuristic deciding every 2 s in
    ``"target"`` mode make the same decisions: one rule, two callers. (With min_replicas >= 1 there
    is no scale from zero, where the activator's poke would differ.)"""
    kw = dict(scenario=scenario, episode_s=600, min_replicas=1)
    knob = gym.make(ENV_ID, action_mode="kpa-target", **kw)
    replica = gym.make(ENV_ID, action_mode="target", **kw)
    _, info_k = knob.reset(seed=3)
    _, info_r = replica.reset(seed=3)
    default, kpa = baselines.make("knative-default"), baselines.make("kpa")
    kpa.reset(3)
    done = False
    while not done:  # (the knob's KPA acts at the tick closing an interval, the heuristic at the
        # next step: the same instant, so the rewards agree step by step)
        _, rk, _, done, info_k = knob.step(default.act(None, info_k))
        _, rr, _, _, info_r = replica.step(kpa.act(None, info_r))
        assert rk == pytest.approx(rr, rel=1e-12, abs=1e-12)
    assert info_k["episode_kpis"] == pytest.approx(info_r["episode_kpis"], rel=1e-9)
    assert info_k["episode_kpis"]["scale_ups"] > 0  # the KPA did scale
