"""The fast replica model against the engine fidelity at steady load (issue #11).

One replica, Poisson traffic at 20-100% of its capacity at the SLOs, 30 simulated minutes,
three seeds, two model/GPU pairs. Throughput and TPOT agree within 10% (medians) and 20% (P99s)
at every load, TTFT too up to 80% of capacity. At capacity itself (where 1% of requests miss
their SLOs) TTFT sits on a cliff: on Qwen2.5-7B/H100 the engine's own P99 TTFT, mean of three
seeds, ranges from 3.7 to 5.1 s between seed sets (single episodes 2.7 to 6.7 s), and the fast
model is held to 60% there; the README reports the measured gaps.
"""

from __future__ import annotations

import numpy as np
import pytest

from servegym.envs.cluster import ReplicaSpec
from servegym.envs.cluster.steady_state import STEADY_KPIS as KPIS
from servegym.envs.cluster.steady_state import steady_state_kpis
from servegym.envs.serving import EngineConfig
from servegym.workloads import length_preset

CONV = length_preset("azure-conv")
PAIRS = {
    "llama3-8b-a100": ReplicaSpec(EngineConfig(model="Llama-3-8B", device="a100"), CONV),
    "qwen2.5-7b-h100": ReplicaSpec(EngineConfig(model="Qwen2.5-7B", device="h100-sxm"), CONV),
}
LOADS = (0.2, 0.4, 0.6, 0.8, 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_fast_model_agrees_with_the_engine_at_steady_load(pair, load):
    spec = PAIRS[pair]
    fast, engine = steady_state_kpis(spec, load, "fast"), steady_state_kpis(spec, load, "engine")
    error = dict(zip(KPIS, np.abs(fast - engine) / engine, strict=True))
    limits = {"throughput": 0.10, "ttft_p50_s": 0.10, "ttft_p99_s": 0.20, "tpot_p50_s": 0.10}
    limits["tpot_p99_s"] = 0.20
    if load >= 1.0:  # the cliff of the TTFT curve: the engine's own P99 spans 3.7-5.1 s over seeds
        limits["ttft_p50_s"] = limits["ttft_p99_s"] = 0.60
    failed = {k: f"{error[k]:.1%} > {limits[k]:.0%}" for k in KPIS if error[k] > limits[k]}
    assert not failed, (failed, dict(zip(KPIS, engine, strict=True)))
