"""Benchmark: the env's share of SB3 PPO wall time, per registered id (issue #10: <= 20%).

    python benchmarks/ppo_env_share.py [--envs ID ...] [--timesteps 32768] [--repeats 3]

For each id, SB3 PPO with its default hyperparameters (n_steps 2048, batch 64, 10 epochs) trains
on 8 envs built as ``servegym train`` builds them (``agents.envs.make_train_env``: the SB3 adapter
of the batched vector env for ids with a ``vector_entry_point``, else a ``DummyVecEnv`` of
Monitor-wrapped envs). A ``VecEnv`` wrapper times ``reset`` and ``step_wait`` (where the envs
step; ``step_async`` only stores the actions); the share is that time over ``model.learn``'s
wall time. The default budget is two PPO updates (2 x 2048 x 8 steps). Prints the median share
over ``--repeats`` runs with the range. No assertions: machines are noisy.
"""

from __future__ import annotations

import os

# One BLAS thread: idle BLAS threads spin and would count as the process's CPU time.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper  # noqa: E402

import servegym  # noqa: F401, E402 - registers the ids
from servegym.agents.envs import make_train_env  # noqa: E402
from servegym.agents.vec_env import has_batched_env  # noqa: E402
from servegym.registration import ENVS  # noqa: E402

TARGET_SHARE = 0.20
CLOCK = time.process_time
"""CPU time of this process (PPO runs one torch thread): other jobs on the machine do not enter
the share; ``--clock wall`` measures wall time instead."""


class TimedVecEnv(VecEnvWrapper):
    """Accumulates the wall time spent in the wrapped VecEnv's ``reset`` and ``step_wait``."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.seconds = 0.0
        self.steps = 0

    def reset(self) -> np.ndarray:
        t0 = CLOCK()
        obs = self.venv.reset()
        self.seconds += CLOCK() - t0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(actions)

    def step_wait(self):
        t0 = CLOCK()
        out = self.venv.step_wait()
        self.seconds += CLOCK() - t0
        self.steps += self.num_envs
        return out


def env_share(env_id: str, timesteps: int, seed: int) -> tuple[float, float, float]:
    """(env share of ``learn`` wall time, wall time s, env steps/s inside training)."""
    venv = TimedVecEnv(make_train_env(env_id, 8, seed, {}))
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0)
    t0 = CLOCK()
    model.learn(total_timesteps=timesteps)
    wall = CLOCK() - t0
    venv.close()
    return venv.seconds / wall, wall, venv.steps / venv.seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", nargs="+", default=list(ENVS), help="ids (default: every registered id)")
    parser.add_argument("--timesteps", type=int, default=2 * 2048 * 8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="CPU time (default) or wall")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    # PPO's random actions include masked ones, which the envs reject with a warning (once per
    # env); that is expected here and would only clutter the table.
    warnings.filterwarnings("ignore", message=".*rejected; see action_masks.*")
    threads = torch.get_num_threads()
    print(f"PPO (SB3 defaults), 8 envs, {args.timesteps} steps per run, torch threads {threads}")
    header = f"{'id':30} {'vec env':>18} {'env share':>10} {'range':>13} {'wall s':>7} {'env steps/s':>12}"
    print(header + f"  target <= {TARGET_SHARE:.0%}")
    for env_id in args.envs:
        runs = [env_share(env_id, args.timesteps, seed) for seed in range(args.repeats)]
        shares = [r[0] for r in runs]
        kind = "SB3 adapter" if has_batched_env(env_id) else "DummyVecEnv"
        span = f"{min(shares):.1%}-{max(shares):.1%}"
        wall = statistics.median(r[1] for r in runs)
        rate = statistics.median(r[2] for r in runs)
        share = statistics.median(shares)
        verdict = "met" if share <= TARGET_SHARE else "NOT met"
        print(f"{env_id:30} {kind:>18} {share:>10.1%} {span:>13} {wall:>7.1f} {rate:>12,.0f}  {verdict}")
    print(f"(median of {args.repeats} runs, seeds 0..{args.repeats - 1})")


if __name__ == "__main__":
    main()
