"""Benchmark: ServerlessAutoscale-v0 steps per second, and the env's share of PPO training time.

    python benchmarks/serverless_speed.py [--steps 1800] [--runs 5] [--ppo-steps 4096]

1. Steps/s with 16 containers running (``action_mode="target"``, action 16, max_replicas 16) on
   each preset, and with masked random actions in each action mode on the default preset:
   medians of ``--runs`` runs of ``--steps`` steps, CPU time of this process
   (``time.process_time``, so other processes on a shared machine count less). Target: >= 5,000.
2. SB3 PPO on 8 envs (default kwargs) in a DummyVecEnv: wall time inside the envs as a share of
   ``PPO.learn`` (the issue's target: <= 20%). ``--ppo-steps 0`` skips it.
No assertions: machines are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import servegym  # noqa: F401 - registers the ids
from servegym.envs.serverless import ACTION_MODES
from servegym.envs.serverless_scenarios import SERVERLESS_PRESETS

ENV_ID = "servegym/ServerlessAutoscale-v0"


def steps_per_s(
    steps: int, runs: int, fixed: int | None, env_id: str = ENV_ID, **kwargs
) -> tuple[float, float]:
    """(median steps/s, mean containers or replicas billed) over ``runs`` runs of ``env_id``."""
    env = gym.make(env_id, **kwargs)
    rng = np.random.default_rng(0)
    rates, containers = [], []
    for r in range(runs):
        _, info = env.reset(seed=r)
        billed = 0.0
        t0 = time.process_time()
        for _ in range(steps):
            action = fixed if fixed is not None else int(rng.choice(np.flatnonzero(info["action_mask"])))
            _, _, term, trunc, info = env.step(action)
            billed += -info["reward_terms"]["cost"]
            if term or trunc:
                _, info = env.reset()
        rates.append(steps / (time.process_time() - t0))
        containers.append(billed / steps * env.unwrapped.scenario.max_replicas)
    return statistics.median(rates), float(np.mean(containers))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1800)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ppo-steps", type=int, default=4096)
    args = parser.parse_args()
    steps_per_s(10, 1, 16, action_mode="target")  # compile (numba caches to disk) outside the timing
    print(f"{ENV_ID}: steps/s, median of {args.runs} x {args.steps} steps (process CPU time)")
    print("  16 containers (action_mode='target', action 16):")
    for name in SERVERLESS_PRESETS:
        rate, mean = steps_per_s(args.steps, args.runs, 16, scenario=name, action_mode="target")
        sc = gym.make(ENV_ID, scenario=name).unwrapped.scenario
        print(f"    {name:20s} {rate:8.0f}   ({sc.mean_rate:7.2f} req/s mean, {mean:5.1f} containers)")
    print("  masked random actions, preset 'diurnal':")
    for mode in ACTION_MODES:
        rate, mean = steps_per_s(args.steps, args.runs, None, action_mode=mode)
        print(f"    {mode:20s} {rate:8.0f}   ({mean:5.1f} containers on average)")
    if args.ppo_steps:
        from env_speed import ppo_env_share  # benchmarks/env_speed.py: the same measurement

        share, wall = ppo_env_share(ENV_ID, args.ppo_steps)
        print(f"PPO, 8 envs, {args.ppo_steps} steps: env share of wall time {share:.0%} ({wall:.1f} s)")


if __name__ == "__main__":
    main()
