"""Benchmark: Autoscale-v0 speed in both fidelities, and the fast fidelity against the engine.

    python benchmarks/autoscale_speed.py [--steps 480] [--runs 5] [--agreement] [--episodes]

1. Fast fidelity steps/s (process CPU time, median of ``--runs``) on every preset with 16
   replicas running (action_mode="target"), and with masked random actions on the default.
2. Engine fidelity: CPU seconds per simulated hour (one replica engine per replica).
3. ``--agreement``: one replica at 20-100% of its capacity, fast vs engine (throughput, TTFT and
   TPOT P50/P99; the test tests/cluster/test_agreement.py holds the limits).
4. ``--episodes``: one-hour episodes of the capacity planner in both fidelities (weighted cost,
   SLO attainment, P99 TTFT): where the fast model diverges under bursts and cold starts.
No assertions: machines are noisy.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
from serverless_speed import steps_per_s  # benchmarks/serverless_speed.py: the same measurement

import servegym  # noqa: F401 - registers the ids
from servegym import baselines
from servegym.envs.autoscale_scenarios import AUTOSCALE_PRESETS
from servegym.envs.cluster import ReplicaSpec
from servegym.envs.cluster.steady_state import STEADY_KPIS, steady_state_kpis
from servegym.envs.serving import EngineConfig
from servegym.experiments.compare import run_episode
from servegym.workloads import length_preset

ENV_ID = "servegym/Autoscale-v0"
PAIRS = {
    "Llama-3-8B / A100": ("Llama-3-8B", "a100"),
    "Qwen2.5-7B / H100": ("Qwen2.5-7B", "h100-sxm"),
}


def engine_cpu_per_hour(preset: str) -> tuple[float, float]:
    """(CPU s per simulated hour, mean replicas) of the capacity planner in engine fidelity."""
    env = gym.make(ENV_ID, scenario=preset, fidelity="engine", episode_s=900.0)
    t0 = time.process_time()
    kpis = run_episode(env, baselines.make("capacity-planner"), 0)
    return (time.process_time() - t0) * 3600.0 / 900.0, kpis["mean_replicas"]


def agreement() -> None:
    print("fast vs engine, one replica, Poisson load, 30 min x 3 seeds: relative error of the fast model")
    print(f"  {'pair':20s} {'load':>5s} " + " ".join(f"{k:>11s}" for k in STEADY_KPIS))
    for label, (model, device) in PAIRS.items():
        spec = ReplicaSpec(EngineConfig(model=model, device=device), length_preset("azure-conv"))
        for load in (0.2, 0.4, 0.6, 0.8, 1.0):
            fast, engine = steady_state_kpis(spec, load, "fast"), steady_state_kpis(spec, load, "engine")
            errors = (fast - engine) / engine
            print(f"  {label:20s} {load:5.1f} " + " ".join(f"{e:+11.1%}" for e in errors))


def episodes(presets: list[str]) -> None:
    print("capacity-planner, one-hour episodes, seed 0: fast | engine")
    for preset in presets:
        row = []
        for fidelity in ("fast", "engine"):
            env = gym.make(ENV_ID, scenario=preset, fidelity=fidelity)
            row.append(run_episode(env, baselines.make("capacity-planner"), 0))
        fast, engine = row
        print(
            f"  {preset:28s} weighted cost {fast['weighted_cost']:7.2f} | {engine['weighted_cost']:7.2f}   "
            f"SLO attainment {fast['slo_attainment']:.4f} | {engine['slo_attainment']:.4f}   "
            f"P99 TTFT {fast['ttft_p99_s']:6.2f} | {engine['ttft_p99_s']:6.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=480)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--agreement", action="store_true")
    parser.add_argument("--episodes", action="store_true")
    args = parser.parse_args()
    steps_per_s(10, 1, 16, ENV_ID, action_mode="target")  # compile (numba caches to disk) outside the timing
    print(f"{ENV_ID} fast fidelity: steps/s, median of {args.runs} x {args.steps} steps (process CPU time)")
    print("  16 replicas (action_mode='target', action 16):")
    for name in AUTOSCALE_PRESETS:
        top = gym.make(ENV_ID, scenario=name).unwrapped.scenario.max_replicas
        rate, mean = steps_per_s(
            args.steps, args.runs, min(16, top), ENV_ID, scenario=name, action_mode="target"
        )
        print(f"    {name:28s} {rate:8.0f}   ({mean:5.1f} replicas)")
    rate, mean = steps_per_s(args.steps, args.runs, None, ENV_ID)
    print(f"  masked random delta actions, default preset: {rate:8.0f}   ({mean:5.1f} replicas on average)")
    for preset in ("llama3-8b-a100-diurnal", "llama3-8b-a100-flash-crowd"):
        cpu, replicas = engine_cpu_per_hour(preset)
        print(f"engine fidelity, {preset}: {cpu:.1f} CPU s per simulated hour ({replicas:.1f} replicas)")
    if args.agreement:
        agreement()
    if args.episodes:
        episodes(["llama3-8b-a100-diurnal", "llama3-8b-a100-mmpp", "llama3-8b-a100-flash-crowd"])


if __name__ == "__main__":
    main()
