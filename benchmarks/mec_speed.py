"""Benchmark: MEC env speed, scalar, numpy-batched and multi-agent (issue #10 targets).

    python benchmarks/mec_speed.py [--steps 20000] [--num-envs 256] [--agents 50] [--repeats 5]

Random valid actions (chosen by the loop, which is timed too, as a user's loop would be); the
first run of each is a warm-up (numba loads its cached machine code there) and is not counted.
Prints the median over ``--repeats`` runs with the range, the target and median / target.
Targets (issue #10): MecOffload-v0 one env >= 50,000 steps/s; the vector env >= 1,000,000
env-steps/s at 256 envs; the PettingZoo env <= 2 ms per step at 50 agents. No assertions:
machines are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

import servegym  # noqa: F401 - registers the ids
from servegym.envs.mec_multi import MecOffloadParallelEnv


def scalar_rate(env_id: str, steps: int) -> Callable[[int], float]:
    """Steps/s of one env with random valid actions (resets included)."""
    env = gym.make(env_id).unwrapped
    rng = np.random.default_rng(0)

    def run(seed: int) -> float:
        env.reset(seed=seed)
        t0 = time.perf_counter()
        for _ in range(steps):
            valid = np.flatnonzero(env.action_masks())
            action = valid[rng.integers(len(valid))]  # rng.choice(valid), without its overhead
            _, _, term, trunc, _ = env.step(int(action))
            if term or trunc:
                env.reset()
        return steps / (time.perf_counter() - t0)

    return run


def vector_rate(steps: int, num_envs: int) -> Callable[[int], float]:
    """Env-steps/s of the batched vector env (same-step autoreset)."""
    venv = gym.make_vec("servegym/MecOffload-v0", num_envs=num_envs, vectorization_mode="vector_entry_point")
    rng = np.random.default_rng(0)

    def run(seed: int) -> float:
        venv.reset(seed=seed)
        t0 = time.perf_counter()
        for _ in range(steps):
            masks = venv.action_masks()
            # a random valid action per env: the argmax of noise over the valid ones
            actions = np.argmax(np.where(masks, rng.random(masks.shape), -1.0), axis=1)
            venv.step(actions)
        return steps * num_envs / (time.perf_counter() - t0)

    return run


def multi_step_ms(steps: int, agents: int) -> Callable[[int], float]:
    """Milliseconds per step of the PettingZoo env with ``agents`` agents (resets included)."""
    env = MecOffloadParallelEnv(num_users=agents)
    rng = np.random.default_rng(0)

    def run(seed: int) -> float:
        _, infos = env.reset(seed=seed)
        t0 = time.perf_counter()
        for _ in range(steps):
            masks = np.stack([infos[a]["action_mask"] for a in env.agents]).astype(bool)
            picks = np.argmax(np.where(masks, rng.random(masks.shape), -1.0), axis=1)
            _, _, _, _, infos = env.step(dict(zip(env.agents, picks.tolist(), strict=True)))
            if not env.agents:
                _, infos = env.reset()
        return 1e3 * (time.perf_counter() - t0) / steps

    return run


def measure(run: Callable[[int], float], repeats: int) -> list[float]:
    run(100)  # warm-up
    return [run(r) for r in range(repeats)]


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
    print(f"{'':44} {'median':>12} {'range':>25} {'target':>12} {'median/target':>14}")
    for name, unit, run, target, higher_is_better in rows:
        values = measure(run, args.repeats)
        med = statistics.median(values)
        fmt = ",.0f" if higher_is_better else ".3f"
        span = f"{min(values):{fmt}}-{max(values):{fmt}}"
        goal = "" if target is None else f"{'>=' if higher_is_better else '<='} {target:{fmt}}"
        ratio = "" if target is None else f"{med / target:.2f}"
        print(f"{name:44} {med:>12{fmt}} {span:>25} {goal:>12} {ratio:>14}  {unit}")
    print(f"(median of {args.repeats} runs after a warm-up run)")


if __name__ == "__main__":
    main()
