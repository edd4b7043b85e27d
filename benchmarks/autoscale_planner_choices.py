"""Which utilisation targets a policy trained in Autoscale-v0's ``action_mode="planner"`` picks.

    python benchmarks/autoscale_planner_choices.py [MODEL] [--seed 100]

MODEL defaults to seed 0's best model of the autoscale suite
(experiments/results/autoscale/models/..., kept locally by ``servegym bench autoscale``). For one
episode of each 8B training preset: how often each target was chosen, and its correlation with
the interval's rate trend and with the load (rate over one replica's capacity).
"""

from __future__ import annotations

import argparse
import glob

import gymnasium as gym
import numpy as np

import servegym  # noqa: F401 - registers the ids
from servegym.agents.controller import LearnedController
from servegym.envs.autoscale import PLANNER_HEADROOMS

DEFAULT_MODEL = (
    "experiments/results/autoscale/models/Autoscale-v0/maskable-ppo-planner/seed_0*/best_model.zip"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", nargs="?", help="a policy trained with action_mode='planner'")
    parser.add_argument("--seed", type=int, default=100)
    args = parser.parse_args()
    found = [args.model] if args.model else sorted(glob.glob(DEFAULT_MODEL))
    if not found:
        raise SystemExit(f"no model given and none at {DEFAULT_MODEL}: run `servegym bench autoscale` first")
    controller = LearnedController.load(found[0])
    for preset in ("llama3-8b-a100-diurnal", "llama3-8b-a100-mmpp", "llama3-8b-a100-flash-crowd"):
        env = gym.make("servegym/Autoscale-v0", scenario=preset, action_mode="planner")
        obs, info = env.reset(seed=args.seed)
        controller.reset(args.seed)
        chosen, trend, load, done = [], [], [], False
        while not done:
            action = controller.act(obs, info)
            m = info["metrics"]
            chosen.append(PLANNER_HEADROOMS[action])
            trend.append(m["arrival_rate_rps"] - m["arrival_rate_60s_rps"])
            load.append(m["arrival_rate_rps"] / m["replica_capacity_rps"])
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        values, counts = np.unique(chosen, return_counts=True)
        print(
            f"{preset}: {dict(zip(values.tolist(), counts.tolist(), strict=True))}; "
            f"corr(target, trend) {np.corrcoef(chosen, trend)[0, 1]:+.2f}, "
            f"corr(target, load) {np.corrcoef(chosen, load)[0, 1]:+.2f}"
        )


if __name__ == "__main__":
    main()
