"""Run several controllers on one environment scenario over seeds and tabulate their KPIs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from servegym import baselines
from servegym.controller import Controller
from servegym.registration import check_env_id
from servegym.tables import render_table

from .stats import Verdict, verdict

KPI_COLUMNS = (
    ("return", "return"),
    # serving envs
    ("slo_attainment", "SLO attainment"),
    ("goodput_requests_per_s", "goodput (req/s)"),
    ("ttft_p50_s", "TTFT p50 (s)"),
    ("tbt_p99_s", "TBT p99 (s)"),
    ("e2e_mean_s", "E2E mean (s)"),
    # MEC envs
    ("delay_mean_s", "delay mean (s)"),
    ("delay_p95_s", "delay p95 (s)"),
    ("deadline_miss_ratio", "deadline misses"),
    ("energy_per_task_j", "energy/task (J)"),
)
"""(KPI key, column header with unit); a table shows the columns its results have."""
BEST_OF_KEY = "return"
BEST_MARK = "★"


@dataclass
class EpisodeResult:
    controller: str
    seed: int
    kpis: dict[str, float]


def run_episode(
    env: gym.Env, controller, seed: int, on_step: Callable[[Any, float, dict], None] | None = None
) -> dict[str, float]:
    """One episode of ``controller`` in ``env``; the episode KPIs plus its return.
    ``on_step(action, reward, info)`` sees every step (traces for figures)."""
    obs, info = env.reset(seed=seed)
    controller.reset(seed)
    total, done = 0.0, False
    while not done:
        action = controller.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        if on_step is not None:
            on_step(action, reward, info)
        total += reward
        done = terminated or truncated
    return {"return": total, **info["episode_kpis"]}


def heuristic_names(env_id: str) -> list[str]:
    """Every registered non-oracle heuristic of the env (``baselines.heuristics``)."""
    return baselines.heuristics(env_id)


def make_controller(name: str, env: gym.Env):
    """A registered controller; oracles get the env they read."""
    return baselines.make(name, **({"env": env} if "oracle" in name.lower() else {}))


def check_controllers(env_id: str, names: Sequence[str]) -> None:
    """Refuse registry names that are unknown or belong to another env, naming those that fit."""
    fitting = ", ".join(baselines.list(env_id))
    for name in names:
        try:
            targets = baselines.env_ids(name)
        except ValueError:
            raise ValueError(f"unknown controller {name!r}; controllers for {env_id}: {fitting}") from None
        if env_id not in targets:
            raise ValueError(
                f"{name!r} is a controller for {', '.join(targets)}, not {env_id}; "
                f"controllers for {env_id}: {fitting}"
            )


def run_env(args) -> int:
    """``servegym simulate --env ID --controller NAME``: episodes with their KPIs printed."""
    check_env_id(args.env)
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
    check_controllers(args.env, [args.controller])
    env = gym.make(args.env, **kwargs)
    controller = make_controller(args.controller, env)
    for episode in range(args.episodes):
        seed = args.seed + episode
        kpis = run_episode(env, controller, seed)
        print(
            f"{args.env} [{env.unwrapped.scenario_name}] {controller.name} seed {seed}: "
            f"return {kpis['return']:.2f}"
        )
        rows = [[name, f"{value:.4g}"] for name, value in kpis.items() if name != "return"]
        print(render_table(["KPI", "value"], rows, right=[1]))
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
    check_env_id(env_id)
    check_controllers(env_id, [c for c in controllers if isinstance(c, str)])
    env = gym.make(env_id, **env_kwargs)
    results = []
    for item in controllers:
        controller = make_controller(item, env) if isinstance(item, str) else item
        for seed in seeds:
            results.append(EpisodeResult(controller.name, seed, run_episode(env, controller, seed)))
    return results


@dataclass
class Row:
    """One table row: controllers whose episodes were identical share it."""

    names: list[str]
    kpis: list[dict[str, float]]  # per seed

    @property
    def label(self) -> str:
        return ", ".join(self.names)

    def values(self, key: str) -> np.ndarray:
        return np.array([k.get(key, np.nan) for k in self.kpis], dtype=float)

    def mean(self, key: str = BEST_OF_KEY) -> float:
        return float(np.nanmean(self.values(key)))


def is_oracle(name: str) -> bool:
    return "oracle" in name.lower()


def table_rows(results: Sequence[EpisodeResult], first: Sequence[str] = ()) -> list[Row]:
    """Rows in one order for every env: ``first`` (learned policies), then the other controllers in
    the order they ran (the registry's), oracles last; identical controllers collapsed."""
    rows: list[Row] = []
    for name in dict.fromkeys(r.controller for r in results):
        kpis = [r.kpis for r in results if r.controller == name]
        same = next(
            (row for row in rows if not set(row.names) & set(first) and _same_episodes(row.kpis, kpis)), None
        )
        if same is not None and name not in first:
            same.names.append(name)
        else:
            rows.append(Row([name], kpis))
    return sorted(rows, key=lambda row: (not any(n in first for n in row.names), is_oracle(row.label)))


def _same_episodes(a: list[dict[str, float]], b: list[dict[str, float]]) -> bool:
    """Equal KPIs on every seed (NaN equal to NaN: a KPI with no samples)."""
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(repr(x[k]) == repr(y[k]) for k in x) for x, y in zip(a, b, strict=True)
    )


def table_verdict(rows: Sequence[Row], policy: str | None = None) -> Verdict | None:
    """The policy (else the best controller) against the best heuristic, on mean return."""
    heuristics = [r for r in rows if not is_oracle(r.label) and (policy is None or policy not in r.names)]
    if policy is not None:
        candidate = next((r for r in rows if policy in r.names), None)
        others = heuristics
    else:
        candidate = max(rows, key=Row.mean, default=None)
        others = [r for r in heuristics if r is not candidate]
    if candidate is None or not others:
        return None
    baseline = max(others, key=Row.mean)
    label = "the best heuristic" if policy is not None or is_oracle(candidate.label) else "the next heuristic"
    return verdict(
        candidate.label,
        candidate.values(BEST_OF_KEY),
        f"{baseline.label} ({label})",
        baseline.values(BEST_OF_KEY),
    )


def format_table(
    results: Sequence[EpisodeResult], policy: str | None = None, title: str | None = None
) -> str:
    """Mean ± standard deviation over seeds of each KPI per controller, the best (by mean return)
    marked, then the verdict line (see ``table_verdict``)."""
    rows = table_rows(results, [policy] if policy else [])
    columns = [(key, label) for key, label in KPI_COLUMNS if any(key in r.kpis for r in results)]
    best = max(rows, key=Row.mean)
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            values = row.values(key)
            mean, std = np.nanmean(values), np.nanstd(values)
            cells.append(f"{mean:.3f} ± {std:.3f}" if len(values) > 1 else f"{mean:.3f}")
        body.append([BEST_MARK if row is best else "", row.label, *cells])
    seeds = max(len(r.kpis) for r in rows)
    caption = f"mean ± std over {seeds} seed{'s' if seeds > 1 else ''}; {BEST_MARK} best mean return"
    if any(len(row.names) > 1 for row in rows):
        caption += "; controllers with identical episodes share a row"
    table = render_table(
        ["", "controller", *(label for _, label in columns)],
        body,
        title=title,
        right=range(2, 2 + len(columns)),
        caption=caption,
    )
    found = table_verdict(rows, policy)
    return table + ("\n" + found.text() if found else "")
