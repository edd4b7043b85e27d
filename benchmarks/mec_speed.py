"""Benchmark: MecOffload-v0 steps per second, scalar and numpy-batched (issue #5).

    python benchmarks/mec_speed.py [--steps 3000] [--num-envs 256]

Random valid actions; medians of 3 runs. Targets from the issue: >= 20,000 steps/s for one
env, >= 200,000 env-steps/s for the vector env at 256 envs. No assertions: machines are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import servegym  # noqa: F401 - registers the ids


def scalar_rate(steps: int) -> float:
    env = gym.make("servegym/MecOffload-v0").unwrapped
    rng = np.random.default_rng(0)
    rates = []
    for r in range(3):
        env.reset(seed=r)
        t0 = time.perf_counter()
        for _ in range(steps):
            valid = np.flatnonzero(env.action_masks())
            action = valid[rng.integers(len(valid))]  # rng.choice(valid), without its overhead
            _, _, term, trunc, _ = env.step(int(action))
            if term or trunc:
                env.reset()
        rates.append(steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def vector_rate(steps: int, num_envs: int) -> float:
    venv = gym.make_vec("servegym/MecOffload-v0", num_envs=num_envs, vectorization_mode="vector_entry_point")
    rng = np.random.default_rng(0)
    rates = []
    for r in range(3):
        venv.reset(seed=r)
        t0 = time.perf_counter()
        for _ in range(steps):
            masks = venv.unwrapped.action_masks() if hasattr(venv, "unwrapped") else venv.action_masks()
            # a random valid action per env: the argmax of noise over the valid ones
            actions = np.argmax(np.where(masks, rng.random(masks.shape), -1.0), axis=1)
            venv.step(actions)
        rates.append(steps * num_envs / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--num-envs", type=int, default=256)
    args = parser.parse_args()
    print(f"MecOffload-v0, one env: {scalar_rate(args.steps):,.0f} steps/s (median of 3)")
    vec_steps = max(args.steps // 10, 50)
    print(
        f"MecOffload-v0, vector env x{args.num_envs}: "
        f"{vector_rate(vec_steps, args.num_envs):,.0f} env-steps/s"
    )


if __name__ == "__main__":
    main()
