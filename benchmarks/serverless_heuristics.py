"""Table: every ServerlessAutoscale-v0 controller on some presets, and the oracle's headroom.

    python benchmarks/serverless_heuristics.py [--presets diurnal timer] [--seeds 5] [--episode-s 3600]

Each controller runs in the action mode it drives (replica count, KPA knob, or keep-alive
windows) on the same seeds, so every one sees the same requests, execution times and cold-start
draws. Prints a markdown table per preset: mean return (± the standard error over seeds) and
episode KPIs; then the headroom: the oracle's return minus the best heuristic's, with whether the
difference is beyond two standard errors of the paired per-seed differences.
"""

from __future__ import annotations

import argparse
import math
import statistics

import gymnasium as gym

import servegym  # noqa: F401 - registers the ids
from servegym import baselines
from servegym.experiments.compare import make_controller, run_episode

ENV_ID = "servegym/ServerlessAutoscale-v0"
ORACLE = "serverless-next-window-oracle"
MODES = baselines.SERVERLESS_ACTION_MODES


def sem(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def run(preset: str, seeds: int, episode_s: float) -> dict[str, list[dict[str, float]]]:
    missing = set(baselines.list(ENV_ID)) - set(MODES)
    if missing:
        raise SystemExit(f"controllers without an action mode here: {sorted(missing)}")
    out: dict[str, list[dict[str, float]]] = {}
    for name, mode in MODES.items():
        env = gym.make(ENV_ID, scenario=preset, action_mode=mode, episode_s=episode_s)
        controller = make_controller(name, env)
        out[name] = [run_episode(env, controller, seed) for seed in range(seeds)]
    return out


def table(preset: str, results: dict[str, list[dict[str, float]]]) -> str:
    rows = [
        f"**{preset}**\n",
        "| controller | action mode | return | cost (container-h) | SLO attainment | P99 latency (s) "
        "| cold-start requests | cold starts | idle container-h | scaling actions |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, episodes in results.items():
        mean = {k: statistics.fmean(e[k] for e in episodes) for k in episodes[0]}
        returns = [e["return"] for e in episodes]
        rows.append(
            f"| {name} | {MODES[name]} | {mean['return']:.2f} ± {sem(returns):.2f} "
            f"| {mean['container_seconds'] / 3600:.2f} | {100 * mean['slo_attainment']:.2f}% "
            f"| {mean['latency_p99_s']:.2f} | {mean['cold_start_requests']:.0f} "
            f"({100 * mean['cold_start_fraction']:.2f}%) | {mean['cold_starts']:.0f} "
            f"| {mean['idle_container_seconds'] / 3600:.2f} | {mean['scaling_actions']:.0f} |"
        )
    oracle = [e["return"] for e in results[ORACLE]]
    heuristics = {n: [e["return"] for e in eps] for n, eps in results.items() if n != ORACLE}
    best = max(heuristics, key=lambda n: statistics.fmean(heuristics[n]))
    diffs = [o - h for o, h in zip(oracle, heuristics[best], strict=True)]
    gap, err = statistics.fmean(diffs), sem(diffs)
    verdict = "beyond noise" if gap > 2 * err else "within noise (2 standard errors)"
    worst = min(diffs)
    rows.append(
        f"\nHeadroom: oracle − best heuristic ({best}) = {gap:.2f} ± {err:.2f} per episode, {verdict}; "
        f"smallest per-seed difference {worst:.2f}."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["diurnal", "timer"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--episode-s", type=float, default=3600.0)
    args = parser.parse_args()
    for preset in args.presets:
        print(table(preset, run(preset, args.seeds, args.episode_s)))
        print()


if __name__ == "__main__":
    main()
