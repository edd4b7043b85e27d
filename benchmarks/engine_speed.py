"""Benchmark: serving-engine speed on the standard scenario (issue #3).

    python benchmarks/engine_speed.py [--repeats 5] [--duration 600]

Llama-3-8B on A100-80GB, TP 1, Azure LLM 2023 conversation lengths, Poisson arrivals at 80% of
the configuration's capacity (Sarathi-Serve's definition: P99 TBT <= 0.1 s and median
scheduling delay <= 2 s), decode-first with a 512-token budget. Reports the median over
repeats of simulated iterations per wall-clock second and simulated seconds per wall-clock
second. No assertions: machines are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from servegym.envs.serving import EngineConfig, ServingEngine
from servegym.envs.serving.summary import capacity_search
from servegym.workloads import Poisson, Workload, length_preset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=float, default=600.0, help="simulated seconds of arrivals")
    parser.add_argument("--capacity", type=float, default=0.0, help="skip the search: capacity in req/s")
    args = parser.parse_args()
    config = EngineConfig(model="Llama-3-8B", device="a100", tp=1, token_budget=512, tbt_slo_s=0.1)
    lengths = length_preset("azure-conv")

    def requests(rate: float, rng: np.random.Generator):
        return Workload(Poisson(rate), lengths).sample(rng, 120.0)

    capacity = args.capacity
    if capacity <= 0:
        t0 = time.perf_counter()
        capacity = capacity_search(config, requests, low_rps=0.5, high_rps=64.0, iterations=7).capacity_rps
        print(f"capacity search: {capacity:.2f} req/s ({time.perf_counter() - t0:.1f} s wall)")
    rate = 0.8 * capacity
    work = Workload(Poisson(rate), lengths).sample(np.random.default_rng(0), args.duration)
    its, speedups = [], []
    for r in range(args.repeats):
        engine = ServingEngine(config, work, np.random.default_rng(r))
        t0 = time.perf_counter()
        engine.run_to_completion()
        wall = time.perf_counter() - t0
        its.append(engine.iterations / wall)
        speedups.append(engine.now / wall)
    print(
        f"standard scenario: {len(work)} requests at {rate:.2f} req/s (80% of capacity), "
        f"{args.duration:.0f} s"
    )
    print(
        f"iterations per wall second (median of {args.repeats}): {statistics.median(its):,.0f} "
        f"(min {min(its):,.0f}, max {max(its):,.0f})"
    )
    print(f"simulated seconds per wall second: {statistics.median(speedups):,.0f}x real time")


if __name__ == "__main__":
    main()
