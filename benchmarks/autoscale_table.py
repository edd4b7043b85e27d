"""Every Autoscale-v0 controller on some presets, and a figure of replicas and load over time.

    python benchmarks/autoscale_table.py [--presets llama3-8b-a100-diurnal llama3-8b-a100-flash-crowd]
        [--seeds 5] [--figure benchmarks/results/autoscale_replicas.png]

All controllers see the same requests (same seeds). Per preset, a Markdown table: the primary KPI
(`weighted_cost`, minus the return; lower is better) with its 95% bootstrap CI, the dollars per
hour, SLO attainment, P99 TTFT, cold starts, scaling actions and mean replicas; then the
oracle's reduction of the KPI against the best heuristic with the CI of the paired per-seed
ratio. The figure shows, for seed 0, the load in replicas' worth of capacity and the replicas
the best heuristic and the oracle run.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

import servegym  # noqa: F401 - registers the ids
from servegym import baselines
from servegym.experiments.compare import compare_controllers, make_controller, run_episode
from servegym.experiments.stats import bootstrap_ci

ENV_ID = "servegym/Autoscale-v0"
ORACLE = "next-window-oracle"
KPI = "weighted_cost"


def _ci(values: np.ndarray, digits: int = 2) -> str:
    est = bootstrap_ci(values, "mean")
    return f"{values.mean():.{digits}f} [{est.low:.{digits}f}, {est.high:.{digits}f}]"


def table(preset: str, seeds: int) -> tuple[str, str]:
    """The preset's Markdown table and the registry name of its best heuristic."""
    names = [*baselines.heuristics(ENV_ID), ORACLE]
    results = compare_controllers(ENV_ID, names, range(seeds), scenario=preset)
    by: dict[str, list[dict[str, float]]] = {}
    for r in results:
        by.setdefault(r.controller, []).append(r.kpis)
    col = {n: {k: np.array([e[k] for e in eps]) for k in eps[0]} for n, eps in by.items()}
    oracle = next(n for n in col if "oracle" in n.lower())
    best = min((n for n in col if n != oracle), key=lambda n: col[n][KPI].mean())
    rows = [
        f"**{preset}** ({seeds} seeds, one-hour episodes)\n",
        "| controller | weighted cost (KPI, lower is better) | $/h | SLO attainment | P99 TTFT (s) "
        "| cold starts | scaling actions | mean replicas |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in sorted(col, key=lambda n: col[n][KPI].mean()):
        c = col[name]
        label = f"**{name}**" if name == best else name
        rows.append(
            f"| {label} | {_ci(c[KPI])} | {c['cost_usd_per_hour'].mean():.2f} "
            f"| {100 * c['slo_attainment'].mean():.2f}% | {c['ttft_p99_s'].mean():.2f} "
            f"| {c['cold_starts'].mean():.1f} | {(c['scale_ups'] + c['scale_downs']).mean():.1f} "
            f"| {c['mean_replicas'].mean():.2f} |"
        )
    reduction = 1.0 - col[oracle][KPI] / col[best][KPI]
    est = bootstrap_ci(reduction, "mean")
    noise = "within noise" if est.low <= 0.0 <= est.high else "beyond noise"
    rows.append(
        f"\nHeadroom: the oracle lowers the KPI by {100 * reduction.mean():.1f}% "
        f"[{100 * est.low:.1f}, {100 * est.high:.1f}] against the best heuristic ({best}), {noise}."
    )
    registry = {baselines.make(n).name: n for n in baselines.heuristics(ENV_ID)}
    return "\n".join(rows), registry[best]


def trace(preset: str, controller: str) -> dict[str, np.ndarray]:
    """Seed 0's load (replicas' worth) and replica counts, per decision."""
    env = gym.make(ENV_ID, scenario=preset)
    rows: list[tuple[float, float, float]] = []

    def record(_action, _reward, info) -> None:
        m = info["metrics"]
        load = m["arrival_rate_rps"] / m["replica_capacity_rps"]
        rows.append((m["time_s"], load, m["ready_replicas"] + m["starting_replicas"]))

    run_episode(env, make_controller(controller, env), 0, on_step=record)
    t, load, replicas = map(np.array, zip(*rows, strict=True))
    return {"time_s": t, "load": load, "replicas": replicas}


def figure(presets: Sequence[str], best: dict[str, str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(presets), 1, figsize=(9, 3.2 * len(presets)), squeeze=False)
    for ax, preset in zip(axes[:, 0], presets, strict=True):
        heuristic = trace(preset, best[preset])
        oracle = trace(preset, ORACLE)
        minutes = heuristic["time_s"] / 60.0
        ax.plot(minutes, heuristic["load"], color="0.7", lw=1, label="load (replicas' capacity)")
        ax.step(minutes, heuristic["replicas"], where="post", label=f"{best[preset]} (best heuristic)")
        ax.step(minutes, oracle["replicas"], where="post", label=ORACLE)
        ax.set_title(preset)
        ax.set_ylabel("replicas")
        ax.legend(loc="upper left", fontsize=8)
    axes[-1, 0].set_xlabel("minutes")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--presets", nargs="+", default=["llama3-8b-a100-diurnal", "llama3-8b-a100-flash-crowd"]
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--figure", type=Path, default=Path("benchmarks/results/autoscale_replicas.png"))
    args = parser.parse_args()
    best = {}
    for preset in args.presets:
        text, best[preset] = table(preset, args.seeds)
        print(text, end="\n\n", flush=True)
    figure(args.presets, best, args.figure)
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
