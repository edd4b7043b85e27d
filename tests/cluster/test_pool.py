"""The replica pool: conservation and billing under random scaling, lifecycle, routing, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servegym.envs.cluster import (
    DRAINING,
    READY,
    STARTING,
    ColdStart,
    ReplicaPool,
    ReplicaSpec,
    service_curves,
)
from servegym.envs.serving import EngineConfig
from servegym.workloads import Poisson, Workload, length_preset

SPEC = ReplicaSpec(EngineConfig(model="Llama-3-8B", device="a100"), length_preset("azure-conv"))


def _requests(rate: float, horizon_s: float, seed: int = 0):
    return Workload(Poisson(rate), length_preset("azure-conv")).sample(np.random.default_rng(seed), horizon_s)


def _conserved(pool: ReplicaPool) -> None:
    c = pool.counts()
    total = c["at_router"] + c["in_replicas"] + c["completed"] + c["rejected"]
    assert total == pytest.approx(c["arrived"], abs=1e-6), c
    assert min(c.values()) >= -1e-9, c


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    targets=st.lists(st.integers(0, 6), min_size=5, max_size=40),
    rate=st.floats(0.5, 25.0),
    seed=st.integers(0, 10_000),
    warm=st.integers(0, 2),
)
def test_fast_pool_conserves_requests_and_bills_every_replica_second(targets, rate, seed, warm):
    pool = ReplicaPool(SPEC, 6, warm_pool=warm)
    pool.reset(_requests(rate, len(targets) + 5.0, seed), np.random.default_rng(seed), initial_replicas=1)
    billed = 0.0
    for target in targets:
        pool.scale_to(target)
        alive = np.count_nonzero(pool.status != 0)  # starting, ready or draining
        window = pool.advance(pool.now + 1.0)  # one sub-step: billing is the count at its start
        assert window["replica_seconds"] == alive
        billed += alive
        _conserved(pool)
    assert pool.episode_kpis()["gpu_hours"] * 3600.0 == pytest.approx(billed)


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(targets=st.lists(st.integers(0, 4), min_size=5, max_size=25), seed=st.integers(0, 10_000))
def test_engine_pool_conserves_requests(targets, seed):
    pool = ReplicaPool(SPEC, 4, fidelity="engine")
    pool.reset(
        _requests(8.0, 5.0 * len(targets) + 5.0, seed), np.random.default_rng(seed), initial_replicas=2
    )
    for target in targets:
        pool.scale_to(target)
        pool.advance(pool.now + 5.0)
        _conserved(pool)
    pool.scale_to(4)
    for _ in range(200):  # with replicas and time enough, every request finishes
        pool.advance(pool.now + 5.0)
        if pool.counts()["completed"] + pool.counts()["rejected"] == pool.counts()["arrived"]:
            break
    c = pool.counts()
    assert c["completed"] + c["rejected"] == c["arrived"] and c["at_router"] == c["in_replicas"] == 0


def test_cold_start_comes_from_the_model_size_and_the_storage_tier():
    ssd = ReplicaSpec(SPEC.engine, SPEC.lengths, ColdStart("ssd"))
    s3 = ReplicaSpec(SPEC.engine, SPEC.lengths, ColdStart("s3-streamer"))
    weights = SPEC.engine.model.weight_bytes
    assert ssd.cold_start_s == pytest.approx(5.0 + weights / (1.5 * 2**30) + 20.0)
    assert s3.cold_start_s < ssd.cold_start_s and ssd.warm_start_s < s3.cold_start_s
    big = ReplicaSpec(EngineConfig(model="Llama-2-70B", tp=4), SPEC.lengths)
    assert big.cold_start_s > 3 * ssd.cold_start_s  # a 70B model takes minutes, not seconds


def test_lifecycle_starting_ready_draining_gone():
    pool = ReplicaPool(SPEC, 4)
    pool.reset(_requests(4.0, 400.0), np.random.default_rng(0), initial_replicas=1)
    assert pool.count(READY) == 1
    pool.scale_to(3)
    assert pool.count(STARTING) == 2 and pool.cold_starts == 2
    pool.advance(pool.now + 10.0)
    assert pool.count(STARTING) == 2  # a cold start (about 35 s for 8B from SSD) takes longer
    pool.advance(pool.now + 40.0)
    assert pool.count(READY) == 3
    pool.scale_to(1)
    assert pool.count(DRAINING) == 2 and pool.active == 1
    for _ in range(60):
        pool.advance(pool.now + 5.0)
    assert pool.count(DRAINING) == 0 and pool.count(READY) == 1
    _conserved(pool)


def test_scaling_down_cancels_replicas_still_starting_first():
    pool = ReplicaPool(SPEC, 4)
    pool.reset(_requests(2.0, 100.0), np.random.default_rng(0), initial_replicas=2)
    pool.scale_to(4)
    pool.scale_to(2)
    assert pool.count(STARTING) == 0 and pool.count(READY) == 2 and pool.count(DRAINING) == 0


def test_warm_pool_starts_faster_and_is_returned_after_draining():
    pool = ReplicaPool(SPEC, 4, warm_pool=1)
    pool.reset(_requests(2.0, 600.0), np.random.default_rng(0), initial_replicas=1)
    pool.scale_to(3)
    assert pool.warm_starts == 1 and pool.cold_starts == 1
    ready_at = sorted(pool.ready_at[pool.status == STARTING])
    assert ready_at[0] - pool.now == pytest.approx(SPEC.warm_start_s)
    assert ready_at[1] - pool.now == pytest.approx(SPEC.cold_start_s)


def test_no_replica_ready_requests_wait_at_the_router_then_are_served():
    pool = ReplicaPool(SPEC, 2)
    pool.reset(_requests(3.0, 200.0), np.random.default_rng(1), initial_replicas=0)
    pool.advance(10.0)
    assert pool.counts()["at_router"] > 0
    pool.scale_to(1)
    for _ in range(40):
        pool.advance(pool.now + 5.0)
    assert pool.counts()["at_router"] == 0
    kpis = pool.episode_kpis()
    assert kpis["ttft_p99_s"] > SPEC.cold_start_s  # the first requests waited for the cold start
    _conserved(pool)


@pytest.mark.parametrize("router", ["least-outstanding", "round-robin"])
def test_engine_routers_spread_requests(router):
    pool = ReplicaPool(SPEC, 3, fidelity="engine", router=router)
    pool.reset(_requests(6.0, 60.0), np.random.default_rng(2), initial_replicas=3)
    pool.advance(60.0)
    per_replica = pool.arrived[pool.status == READY]
    assert per_replica.sum() == pool.counts()["arrived"]
    assert per_replica.min() >= 0.25 * per_replica.mean()


def test_service_curves_are_monotone_and_cached():
    curves = service_curves(SPEC)
    assert curves is service_curves(SPEC)
    assert np.all(np.diff(curves.throughput_rps) >= 0) and np.all(np.diff(curves.in_system) >= 0)
    assert 0 < curves.capacity_rps < curves.max_throughput_rps
    assert curves.good[0] >= 0.99 and curves.good[-1] < 0.99  # the SLOs fail somewhere on the grid
    assert 0 <= curves.rejected_fraction < 0.05


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fidelity": "exact"}, "fidelity must be one of"),
        ({"router": "random"}, "router must be one of"),
        ({"max_replicas": 0}, "max_replicas must be an integer >= 1"),
        ({"warm_pool": -1}, "warm_pool must be an integer >= 0"),
        ({"fidelity": "fast", "router": "round-robin"}, "least-outstanding replica only"),
    ],
)
def test_bad_pool_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReplicaPool(SPEC, **{"max_replicas": 2, **kwargs})


def test_bad_targets_and_prices():
    pool = ReplicaPool(SPEC, 2)
    pool.reset(_requests(1.0, 10.0), np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match=r"target must be in 0\.\.2"):
        pool.scale_to(3)
    with pytest.raises(ValueError, match="gpu_price_per_hour"):
        ReplicaSpec(EngineConfig(device="l4", max_model_len=4096), SPEC.lengths)
    with pytest.raises(ValueError, match="tier must be one of"):
        ColdStart("floppy")
    with pytest.raises(ValueError, match="engine_init_s"):
        ColdStart(engine_init_s=-1.0)
