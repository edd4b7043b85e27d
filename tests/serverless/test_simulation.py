"""The serverless event simulation: conservation, billing, processor sharing, lifecycle rules."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import servegym  # noqa: F401 - registers the ids
from servegym.envs.cluster.fast_pool import DRAINING, READY, STARTING
from servegym.envs.cluster.serverless_pool import ServerlessPool

ENV_ID = "servegym/ServerlessAutoscale-v0"


def constant(value: float):
    return lambda n: np.full(n, value)


def pool_with(
    arrivals, works, *, conc=1, par=0, max_replicas=4, initial=1, mode="replica", cold=1.0, slo=10.0
):
    pool = ServerlessPool(conc, max_replicas, parallelism=par, slo_s=slo, mode=mode)
    pool.reset(np.asarray(arrivals, float), np.asarray(works, float), constant(cold), initial)
    return pool


def assert_conserved(pool: ServerlessPool) -> None:
    c = pool.counts()
    assert min(c.values()) >= 0
    assert c["arrived"] == c["completed"] + c["waiting"] + c["in_service"]


# -- properties -------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(["delta", "target", "kpa-target", "keep-alive"]),
    scenario=st.sampled_from(["diurnal", "bursty", "timer", "mmpp-short", "diurnal-cpu-bound"]),
    seed=st.integers(0, 2**31 - 1),
    actions=st.lists(st.integers(0, 10**6), min_size=5, max_size=40),
)
def test_no_request_is_lost_and_billing_integrates_the_count(mode, scenario, seed, actions):
    """Under random actions: arrivals = completed + waiting + in service after every step, and the
    container-seconds billed equal the sum of every container's lifetime."""
    env = gym.make(ENV_ID, scenario=scenario, action_mode=mode, episode_s=120, decision_interval_s=2)
    core = env.unwrapped
    _, info = env.reset(seed=seed)
    billed = 0.0
    for raw in actions:
        valid = np.flatnonzero(info["action_mask"])
        _, _, _, truncated, info = env.step(int(valid[raw % len(valid)]))
        billed += -info["reward_terms"]["cost"] * core.scenario.max_replicas * 2.0
        assert_conserved(core.pool)
        assert (
            info["metrics"]["ready_replicas"] + info["metrics"]["starting_replicas"]
            <= core.scenario.max_replicas
        )
        if truncated:
            break
    assert billed == pytest.approx(core.pool.container_lifetimes_s(), rel=1e-9, abs=1e-6)
    totals, _ = core.pool.episode_totals()
    assert totals["arrivals"] == core.pool.counts()["arrived"]


def test_requests_wait_without_containers_and_count_late_once():
    """No container: every request waits at the activator (none dropped); each counts as an SLO
    miss once its wait exceeds the SLO, and not again when it finally completes."""
    pool = pool_with([0.5, 1.0, 1.5], [0.2, 0.2, 0.2], initial=0, slo=2.0)
    first = pool.advance(2.0)
    assert first["slo_violations"] == 0 and pool.counts()["waiting"] == 3
    second = pool.advance(4.0)
    assert second["slo_violations"] == 3 and pool.counts()["waiting"] == 3
    pool.scale_to(1)  # cold start 1 s, then one request at a time
    third = pool.advance(10.0)
    assert third["slo_violations"] == 0 and third["completed"] == 3
    assert third["cold_start_requests"] == 1  # the first waited for the container's cold start
    assert_conserved(pool)


def test_processor_sharing_above_parallelism():
    """Two 1 s requests in one container that runs one at full speed share it: both finish at 2 s;
    with parallelism 2 both finish at 1 s."""
    for par, finish in ((1, 2.0), (2, 1.0)):
        pool = pool_with([0.0, 0.0], [1.0, 1.0], conc=2, par=par)
        pool.advance(finish - 0.01)
        assert pool.counts()["completed"] == 0
        pool.advance(finish + 0.01)
        assert pool.counts()["completed"] == 2


def test_container_concurrency_queues_the_rest_fifo():
    pool = pool_with([0.0, 0.1, 0.2], [1.0, 1.0, 1.0], conc=2)
    pool.advance(0.5)
    assert pool.counts()["in_service"] == 2 and pool.counts()["waiting"] == 1
    pool.advance(1.05)  # the first finished at 1.0; the third took its slot
    assert pool.counts() == {"arrived": 3.0, "waiting": 0.0, "in_service": 2.0, "completed": 1.0}


def test_scale_down_cancels_starting_then_idle_then_drains_busy():
    pool = pool_with([0.0], [5.0], conc=1, initial=2)
    pool.advance(1.0)  # one busy, one idle
    pool.scale_to(3)  # a third starts (cold start 1 s)
    assert pool.count(STARTING) == 1
    pool.scale_to(2)
    assert pool.count(STARTING) == 0 and pool.count(READY) == 2
    pool.scale_to(1)
    assert pool.count(READY) == 1 and pool.count(DRAINING) == 0  # the idle one went
    pool.scale_to(0)
    assert pool.count(DRAINING) == 1  # the busy one drains
    pool.advance(6.0)
    assert pool.count(DRAINING) == 0 and pool.counts()["completed"] == 1


def test_keep_alive_terminates_idle_containers_and_prewarm_reloads():
    # keep-alive 30 s: the container serving a request at t=0 leaves at 1 + 30 s
    pool = pool_with([0.0], [1.0], initial=1, mode="keep-alive")
    pool.set_keep_alive(0.0, 30.0)
    pool.advance(30.5)
    assert pool.active == 1
    pool.advance(31.5)
    assert pool.active == 0
    # pre-warm 10 s: unloaded when idle at 1 s, started again at 11 s (ready at 12 s), then kept 30 s
    pool = pool_with([0.0, 20.0], [1.0, 1.0], initial=1, mode="keep-alive")
    pool.set_keep_alive(10.0, 30.0)
    pool.advance(5.0)
    assert pool.active == 0
    summary = pool.advance(30.0)
    assert summary["cold_starts"] == 1 and summary["cold_start_requests"] == 0  # warm for the second
    assert pool.counts()["completed"] == 2


def test_reactive_scale_out_starts_containers_for_waiting_requests():
    pool = pool_with([0.0, 0.0, 0.0], [2.0, 2.0, 2.0], conc=1, initial=0, mode="keep-alive", max_replicas=2)
    pool.set_keep_alive(0.0, 60.0)
    summary = pool.advance(1.5)
    assert summary["cold_starts"] == 2 and summary["cold_start_requests"] == 2  # capped at max_replicas
    pool.advance(10.0)
    assert pool.counts()["completed"] == 3


def test_kpa_mode_pokes_from_zero_and_scales_to_zero_after_grace():
    pool = pool_with([100.0], [1.0], conc=10, initial=0, mode="kpa")
    pool.set_target(7.0)
    pool.advance(100.5)
    assert pool.active == 1  # the activator's poke
    pool.advance(150.0)
    assert pool.active == 1  # the stable window still sees the request
    pool.advance(250.0)
    assert pool.active == 0  # 60 s without requests, then the 30 s grace period


# -- determinism and common random numbers -----------------------------------------------------------
@pytest.mark.parametrize("mode", ["delta", "target", "kpa-target", "keep-alive"])
def test_same_seed_same_episode_in_every_mode(mode):
    def run():
        env = gym.make(ENV_ID, scenario="bursty", action_mode=mode, episode_s=300)
        _, info = env.reset(seed=9)
        rng = np.random.default_rng(1)
        out = []
        done = False
        while not done:
            _, r, te, tr, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
            out.append(r)
            done = te or tr
        return out, info["episode_kpis"]

    (a, ka), (b, kb) = run(), run()
    assert a == b and ka == kb


def test_the_workload_does_not_depend_on_the_action_mode():
    arrivals = {}
    for mode in ("delta", "kpa-target", "keep-alive"):
        env = gym.make(ENV_ID, scenario="diurnal", action_mode=mode)
        env.reset(seed=4)
        pool = env.unwrapped.pool
        arrivals[mode] = (pool.arr_t.copy(), pool.work.copy(), pool.cold[:50].copy())
    for mode in ("kpa-target", "keep-alive"):
        for x, y in zip(arrivals["delta"], arrivals[mode], strict=True):
            np.testing.assert_array_equal(x, y)
