"""Benchmark: serving-control env speed and the env's share of PPO training time (issue #4).

    python benchmarks/env_speed.py [--steps 300] [--ppo-steps 4096]

1. Random-action env steps per second for every preset of both envs (median of 3 runs).
2. SB3 PPO on 8 ChunkedPrefill / SpecDecode envs in a DummyVecEnv: wall time inside the envs'
   step/reset as a share of ``PPO.learn`` wall time (target: <= 25%).
No assertions: machines are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import servegym  # noqa: F401 - registers the ids
from servegym.envs.scenarios import CHUNK_PRESETS, SPEC_PRESETS


class TimedEnv(gym.Wrapper):
    """Accumulates wall time spent in the wrapped env's step and reset."""

    spent = 0.0

    def step(self, action):
        t0 = time.perf_counter()
        out = self.env.step(action)
        TimedEnv.spent += time.perf_counter() - t0
        return out

    def reset(self, **kwargs):
        t0 = time.perf_counter()
        out = self.env.reset(**kwargs)
        TimedEnv.spent += time.perf_counter() - t0
        return out


def random_steps_per_s(env_id: str, scenario: str, steps: int) -> float:
    env = gym.make(env_id, scenario=scenario)
    rng = np.random.default_rng(0)
    rates = []
    for r in range(3):
        env.reset(seed=r)
        t0 = time.perf_counter()
        for _ in range(steps):
            _, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
            if term or trunc:
                env.reset()
        rates.append(steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def ppo_env_share(env_id: str, timesteps: int) -> tuple[float, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    TimedEnv.spent = 0.0
    venv = make_vec_env(env_id, n_envs=8, seed=0, wrapper_class=TimedEnv)
    # SB3's default PPO except n_steps (256 x 8 envs = 2048 samples per update, SB3's default size).
    model = PPO("MlpPolicy", venv, n_steps=256, seed=0, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    wall = time.perf_counter() - t0
    return TimedEnv.spent / wall, wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--ppo-steps", type=int, default=4096)
    args = parser.parse_args()
    for env_id, presets in (
        ("servegym/ChunkedPrefill-v0", CHUNK_PRESETS),
        ("servegym/SpecDecode-v0", SPEC_PRESETS),
    ):
        print(f"{env_id}: random-action steps/s (median of 3 x {args.steps} steps)")
        for name in presets:
            print(f"  {name:36s} {random_steps_per_s(env_id, name, args.steps):8.0f}")
    for env_id in ("servegym/ChunkedPrefill-v0", "servegym/SpecDecode-v0"):
        share, wall = ppo_env_share(env_id, args.ppo_steps)
        print(
            f"PPO, 8 envs, {args.ppo_steps} steps on {env_id}: "
            f"env share of wall time {share:.0%} ({wall:.1f} s)"
        )


if __name__ == "__main__":
    main()
