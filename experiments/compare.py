"""Run several controllers on one environment scenario over seeds and tabulate their KPIs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from servegym import baselines

KPI_COLUMNS = (
    ("return", "return"),
    ("slo_attainment", "SLO att."),
    ("goodput_requests_per_s", "goodput/s"),
    ("ttft_p50_s", "TTFT p50"),
    ("tbt_p99_s", "TBT p99"),
    ("e2e_mean_s", "E2E mean"),
)


@dataclass
class EpisodeResult:
    controller: str
    seed: int
    kpis: dict[str, float]


def run_episode(env: gym.Env, controller, seed: int) -> dict[str, float]:
    """One episode of ``controller`` in ``env``; the episode KPIs plus its return."""
    obs, info = env.reset(seed=seed)
    controller.reset(seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(controller.act(obs, info))
        total += reward
        done = terminated or truncated
    return {"return": total, **info["episode_kpis"]}


def compare(
    env_id: str, controllers: Sequence[str], seeds: Sequence[int], **env_kwargs
) -> list[EpisodeResult]:
    """Every controller (registry names) on the same scenario and seeds."""
    env = gym.make(env_id, **env_kwargs)
    results = []
    for name in controllers:
        controller = baselines.make(name, **({"env": env} if "oracle" in name else {}))
        for seed in seeds:
            results.append(EpisodeResult(controller.name, seed, run_episode(env, controller, seed)))
    return results


def format_table(results: Sequence[EpisodeResult]) -> str:
    """Mean (± standard deviation over seeds) of each KPI per controller."""
    names = list(dict.fromkeys(r.controller for r in results))
    head = f"{'controller':26s}" + "".join(f"{label:>18s}" for _, label in KPI_COLUMNS)
    lines = [head, "-" * len(head)]
    for name in names:
        rows = [r.kpis for r in results if r.controller == name]
        cells = []
        for key, _ in KPI_COLUMNS:
            values = np.array([row[key] for row in rows], dtype=float)
            mean, std = np.nanmean(values), np.nanstd(values)
            cells.append(f"{mean:10.3f} ± {std:5.3f}" if len(values) > 1 else f"{mean:18.3f}")
        lines.append(f"{name:26s}" + "".join(f"{c:>18s}" for c in cells))
    return "\n".join(lines)
