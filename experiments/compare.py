"""Run several controllers on one environment scenario over seeds and tabulate their KPIs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from servegym import baselines
from servegym.controller import Controller

KPI_COLUMNS = (
    ("return", "return"),
    # serving envs
    ("slo_attainment", "SLO att."),
    ("goodput_requests_per_s", "goodput/s"),
    ("ttft_p50_s", "TTFT p50"),
    ("tbt_p99_s", "TBT p99"),
    ("e2e_mean_s", "E2E mean"),
    # MEC envs
    ("delay_mean_s", "delay mean s"),
    ("delay_p95_s", "delay p95 s"),
    ("deadline_miss_ratio", "miss ratio"),
    ("energy_per_task_j", "energy/task J"),
)
"""(KPI key, column label); a table shows the columns its results have."""


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


def heuristic_names(env_id: str) -> list[str]:
    """Every registered non-oracle heuristic of the env (``fixed-budget`` needs an argument)."""
    return [n for n in baselines.list(env_id) if "oracle" not in n and n != "fixed-budget"]


def make_controller(name: str, env: gym.Env):
    """A registered controller; oracles get the env they read."""
    return baselines.make(name, **({"env": env} if "oracle" in name.lower() else {}))


def run_env(args) -> int:
    """``servegym simulate --env ID --controller NAME``: episodes with their KPIs printed."""
    if not args.controller:
        raise ValueError(f"--env needs --controller (one of: {', '.join(baselines.list(args.env))})")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    kwargs = {"scenario": args.scenario} if args.scenario else {}
    if args.horizon:
        if args.env not in ("servegym/ChunkedPrefill-v0", "servegym/SpecDecode-v0"):
            raise ValueError(
                f"--horizon applies to the serving envs; {args.env} episodes are a number of tasks"
            )
        kwargs["horizon_s"] = args.horizon
    env = gym.make(args.env, **kwargs)
    controller = make_controller(args.controller, env)
    for episode in range(args.episodes):
        seed = args.seed + episode
        kpis = run_episode(env, controller, seed)
        print(
            f"{args.env} [{env.unwrapped.scenario_name}] {controller.name} seed {seed}: "
            f"return {kpis['return']:.2f}"
        )
        width = max(len(k) for k in kpis)
        for name, value in kpis.items():
            if name != "return":
                print(f"  {name:<{width}}  {value:.4g}")
    return 0


def compare(
    env_id: str, controllers: Sequence[str], seeds: Sequence[int], **env_kwargs
) -> list[EpisodeResult]:
    """Every controller (registry names) on the same scenario and seeds."""
    return compare_controllers(env_id, controllers, seeds, **env_kwargs)


def compare_controllers(
    env_id: str, controllers: Sequence[str | Controller], seeds: Sequence[int], **env_kwargs
) -> list[EpisodeResult]:
    """Controllers (registry names or objects, e.g. a LearnedController) on the same scenario and seeds."""
    env = gym.make(env_id, **env_kwargs)
    results = []
    for item in controllers:
        controller = make_controller(item, env) if isinstance(item, str) else item
        for seed in seeds:
            results.append(EpisodeResult(controller.name, seed, run_episode(env, controller, seed)))
    return results


def format_table(results: Sequence[EpisodeResult]) -> str:
    """Mean (± standard deviation over seeds) of each KPI per controller."""
    names = list(dict.fromkeys(r.controller for r in results))
    columns = [(key, label) for key, label in KPI_COLUMNS if any(key in r.kpis for r in results)]
    width = max([26, *(len(n) + 2 for n in names)])
    head = f"{'controller':{width}s}" + "".join(f"{label:>18s}" for _, label in columns)
    lines = [head, "-" * len(head)]
    for name in names:
        rows = [r.kpis for r in results if r.controller == name]
        cells = []
        for key, _ in columns:
            values = np.array([row.get(key, np.nan) for row in rows], dtype=float)
            mean, std = np.nanmean(values), np.nanstd(values)
            cells.append(f"{mean:10.3f} ± {std:5.3f}" if len(values) > 1 else f"{mean:18.3f}")
        lines.append(f"{name:{width}s}" + "".join(f"{c:>18s}" for c in cells))
    return "\n".join(lines)
