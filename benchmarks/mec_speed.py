"""Benchmark: MEC env speed, scalar, numpy-batched and multi-agent (issue #10 targets).

    python benchmarks/mec_speed.py [--steps 20000] [--num-envs 256] [--agents 50] [--repeats 5]

Random valid actions (chosen by the loop, which is timed too, as a user's loop would be); the
first run of each is a warm-up (numba loads its cached machine code there) and is not counted.
Prints the median over ``--repeats`` runs with the range, the target and median / target, by
wall-clock time and by the process's CPU time (on a machine shared with other jobs the CPU
time is what this process was given; on an idle machine the two agree).
Targets (issue #10): MecOffload-v0 one env >= 50,000 steps/s; the vector env >= 1,000,000
env-steps/s at 256 envs; the PettingZoo env <= 2 ms per step at 50 agents. No assertions:
machines are noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

import servegym  # noqa: F401 - registers the ids
from servegym.envs.mec_multi import MecOffloadParallelEnv

Clock = tuple[float, float]  # (wall s, CPU s)


def clock() -> Clock:
    return time.perf_counter(), time.process_time()


def elapsed(t0: Clock) -> Clock:
    t1 = clock()
    return t1[0] - t0[0], t1[1] - t0[1]


def scalar_rate(env_id: str, steps: int) -> Callable[[int], tuple[float, float]]:
    """Steps/s (wall, CPU) of one env with random valid actions (resets included)."""
    env = gym.make(env_id).unwrapped
    rng = np.random.default_rng(0)

    def run(seed: int) -> tuple[float, float]:
        env.reset(seed=seed)
        t0 = clock()
        for _ in range(steps):
            valid = np.flatnonzero(env.action_masks())
            action = valid[rng.integers(len(valid))]  # rng.choice(valid), without its overhead
            _, _, term, trunc, _ = env.step(int(action))
            if term or trunc:
                env.reset()
        wall, cpu = elapsed(t0)
        return steps / wall, steps / cpu

    return run


def vector_rate(steps: int, num_envs: int) -> Callable[[int], tuple[float, float]]:
    """Env-steps/s (wall, CPU) of the batched vector env (same-step autoreset)."""
    venv = gym.make_vec("servegym/MecOffload-v0", num_envs=num_envs, vectorization_mode="vector_entry_point")
    rng = np.random.default_rng(0)

    def run(seed: int) -> tuple[float, float]:
        venv.reset(seed=seed)
        t0 = clock()
        for _ in range(steps):
            masks = venv.action_masks()
            # a random valid action per env: the argmax of noise over the valid ones
            actions = np.argmax(np.where(masks, rng.random(masks.shape), -1.0), axis=1)
            venv.step(actions)
        wall, cpu = elapsed(t0)
        return steps * num_envs / wall, steps * num_envs / cpu

    return run


def multi_step_ms(steps: int, agents: int) -> Callable[[int], tuple[float, float]]:
    """Milliseconds per step (wall, CPU) of the PettingZoo env with ``agents`` agents (resets
    included)."""
    env = MecOffloadParallelEnv(num_users=agents)
    rng = np.random.default_rng(0)

    def run(seed: int) -> tuple[float, float]:
        _, infos = env.reset(seed=seed)
        t0 = clock()
        for _ in range(steps):
            masks = np.stack([infos[a]["action_mask"] for a in env.agents]).astype(bool)
            picks = np.argmax(np.where(masks, rng.random(masks.shape), -1.0), axis=1)
            _, _, _, _, infos = env.step(dict(zip(env.agents, picks.tolist(), strict=True)))
            if not env.agents:
                _, infos = env.reset()
        wall, cpu = elapsed(t0)
        return 1e3 * wall / steps, 1e3 * cpu / steps

    return run


def measure(run: Callable[[int], tuple[float, float]], repeats: int) -> tuple[list[float], list[float]]:
    """(wall values, CPU values) of ``repeats`` runs after a warm-up run."""
    run(100)
    values = [run(r) for r in range(repeats)]
    return [v[0] for v in values], [v[1] for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20000, help="scalar env steps per run")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [
        (
            "MecOffload-v0, one env",
            "steps/s",
            scalar_rate("servegym/MecOffload-v0", args.steps),
            50_000,
            True,
        ),
        ("DnnSplit-v0, one env", "steps/s", scalar_rate("servegym/DnnSplit-v0", args.steps), None, True),
        (
            f"MecOffload-v0, vector env x{args.num_envs}",
            "env-steps/s",
            vector_rate(max(args.steps // 40, 50), args.num_envs),
            1_000_000,
            True,
        ),
        (
            f"MecOffload parallel env, {args.agents} agents",
            "ms/step",
            multi_step_ms(max(args.steps // 40, 50), args.agents),
            2.0,
            False,
        ),
    ]
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    print(f"{'':40} {'clock':>5} {'median':>11} {'range':>23} {'target':>12} {'median/target':>13}")
    for name, unit, run, target, higher_is_better in rows:
        for clock_name, values in zip(("wall", "CPU"), measure(run, args.repeats), strict=True):
            med = statistics.median(values)
            fmt = ",.0f" if higher_is_better else ".3f"
            span = f"{min(values):{fmt}}-{max(values):{fmt}}"
            goal = "" if target is None else f"{'>=' if higher_is_better else '<='} {target:{fmt}}"
            ratio = "" if target is None else f"{med / target:.2f}"
            print(f"{name:40} {clock_name:>5} {med:>11{fmt}} {span:>23} {goal:>12} {ratio:>13}  {unit}")
    after = os.getloadavg()[0]
    print(f"(median of {args.repeats} runs after a warm-up run; load average after: {after:.2f})")


if __name__ == "__main__":
    main()
