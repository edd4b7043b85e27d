"""One replica's steady-state KPIs under Poisson load: how the fast fidelity is checked against
the engine (tests/cluster/test_agreement.py, benchmarks/autoscale_speed.py)."""

from __future__ import annotations

import numpy as np

from servegym.workloads import Poisson, Workload

from .pool import ReplicaPool
from .replica import ReplicaSpec
from .service_curves import service_curves

STEADY_KPIS = ("throughput", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s")


def steady_state_kpis(
    spec: ReplicaSpec, load: float, fidelity: str, seeds: int = 3, duration_s: float = 1800.0
) -> np.ndarray:
    """``STEADY_KPIS`` (throughput in req/s), mean over ``seeds`` runs of one warm replica fed
    Poisson traffic at ``load`` x its capacity at the SLOs for ``duration_s``."""
    rate = load * service_curves(spec).capacity_rps
    runs = []
    for seed in range(seeds):
        requests = Workload(Poisson(rate), spec.lengths).sample(np.random.default_rng(100 + seed), duration_s)
        pool = ReplicaPool(spec, 1, fidelity=fidelity)
        pool.reset(requests, np.random.default_rng(seed), initial_replicas=1)
        for k in range(int(duration_s // 15.0)):
            pool.advance(15.0 * (k + 1))
        kpis = pool.episode_kpis()
        runs.append([kpis["completed"] / kpis["duration_s"], *(kpis[k] for k in STEADY_KPIS[1:])])
    return np.mean(runs, axis=0)
