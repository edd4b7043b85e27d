"""Headroom per preset: the best heuristic against the oracle on the env's primary KPI, and the
rank correlation between the return and the KPI over every controller.

    python -m servegym.experiments.headroom --env servegym/ChunkedPrefill-v0 --seeds 3 \\
        --out experiments/results/headroom_chunked_prefill.md

For each preset, every heuristic (``baselines.heuristics``) and every oracle of the env runs on
the same seeds. The best heuristic is the one with the highest mean KPI; the headroom is the
oracle's mean KPI over it, in percent, with a 95% bootstrap CI of the per-seed paired ratio (for
a KPI to minimise, ``PRIMARY_KPI_GOAL = "min"``: the lowest mean is best and the headroom is the
oracle's reduction, 1 - oracle / best heuristic).
Spearman's rho is taken between the controllers' mean returns and mean KPIs (and over all
episodes; minus the KPI where lower is better); a reward that measures the KPI gives 1 (ties aside).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from scipy import stats as sps

from servegym import baselines
from servegym.envs.scenarios import PRESET_PHENOMENA
from servegym.registration import check_env_id

from .compare import EpisodeResult, compare_controllers, is_oracle, make_controller
from .stats import bootstrap_ci


@dataclass
class PresetHeadroom:
    """One preset's row of the headroom table."""

    preset: str
    phenomenon: str
    kpi: str
    goal: str  # "max" or "min"
    best_heuristic: str
    heuristic_kpi: float
    heuristic_ci: tuple[float, float]
    oracle: str
    oracle_kpi: float
    oracle_ci: tuple[float, float]
    headroom_pct: float
    headroom_ci: tuple[float, float]
    spearman_means: float
    spearman_episodes: float
    seeds: list[int]
    means: dict[str, float]  # mean KPI per controller
    returns: dict[str, float]  # mean return per controller
    cpu_s: float


def _primary_kpi(env_id: str) -> str:
    env = gym.make(env_id)
    try:
        return env.unwrapped.PRIMARY_KPI
    finally:
        env.close()


def _ci(values: np.ndarray) -> tuple[float, float]:
    estimate = bootstrap_ci(values, "mean")
    return (estimate.low, estimate.high)


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Rank correlation of values rounded to 9 significant digits (so float round-off does not
    break ties)."""
    x, y = (np.array([float(f"{v:.9g}") for v in values]) for values in (x, y))
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(sps.spearmanr(x, y).statistic)


def preset_headroom(
    env_id: str,
    preset: str,
    seeds: Sequence[int],
    controllers: Sequence[str] | None = None,
    oracle: str | None = None,
    **env_kwargs,
) -> PresetHeadroom:
    """Every controller on ``preset`` over ``seeds``; the row of the headroom table."""
    names = list(controllers) if controllers is not None else baselines.list(env_id)
    names = [n for n in names if n not in baselines.PARAMETRISED]
    oracles = [n for n in names if is_oracle(n)]
    oracle = oracle or next((n for n in oracles if "lookahead" in n), oracles[-1] if oracles else None)
    if oracle is None:
        raise ValueError(f"no oracle among the controllers {names}")
    probe = gym.make(env_id, scenario=preset, **env_kwargs)
    kpi = probe.unwrapped.PRIMARY_KPI
    goal = getattr(probe.unwrapped, "PRIMARY_KPI_GOAL", "max")
    phenomena = getattr(probe.unwrapped, "PRESET_PHENOMENA", PRESET_PHENOMENA)
    sign = 1.0 if goal == "max" else -1.0
    oracle_name = make_controller(oracle, probe).name
    start = time.process_time()
    results: list[EpisodeResult] = compare_controllers(env_id, names, seeds, scenario=preset, **env_kwargs)
    cpu = time.process_time() - start
    kpis: dict[str, np.ndarray] = {}
    rets: dict[str, np.ndarray] = {}
    for name in dict.fromkeys(r.controller for r in results):
        kpis[name] = np.array([r.kpis[kpi] for r in results if r.controller == name])
        rets[name] = np.array([r.kpis["return"] for r in results if r.controller == name])
    heuristics = [n for n in kpis if not is_oracle(n)]
    best = max(heuristics, key=lambda n: sign * kpis[n].mean())
    ratio = sign * (kpis[oracle_name] / np.maximum(kpis[best], 1e-12) - 1.0)
    return PresetHeadroom(
        preset=preset,
        phenomenon=phenomena.get(preset, ""),
        kpi=kpi,
        goal=goal,
        best_heuristic=best,
        heuristic_kpi=float(kpis[best].mean()),
        heuristic_ci=_ci(kpis[best]),
        oracle=oracle_name,
        oracle_kpi=float(kpis[oracle_name].mean()),
        oracle_ci=_ci(kpis[oracle_name]),
        headroom_pct=100.0 * sign * (kpis[oracle_name].mean() / max(kpis[best].mean(), 1e-12) - 1.0),
        headroom_ci=tuple(100.0 * v for v in _ci(ratio)),
        # against the KPI's goodness (minus a KPI to minimise): 1 = a better return is a better KPI
        spearman_means=_spearman([rets[n].mean() for n in kpis], [sign * kpis[n].mean() for n in kpis]),
        spearman_episodes=_spearman(
            [r.kpis["return"] for r in results], [sign * r.kpis[kpi] for r in results]
        ),
        seeds=list(seeds),
        means={n: float(v.mean()) for n, v in kpis.items()},
        returns={n: float(v.mean()) for n, v in rets.items()},
        cpu_s=cpu,
    )


def _fmt_ci(value: float, ci: tuple[float, float], digits: int = 3) -> str:
    if any(math.isnan(v) for v in ci):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def markdown(env_id: str, rows: Sequence[PresetHeadroom], command: str) -> str:
    """The headroom table, then the rank correlations, as Markdown."""
    seeds = rows[0].seeds if rows else []
    kpi = rows[0].kpi if rows else ""
    lowest = bool(rows) and rows[0].goal == "min"
    best, headroom = (
        ("lowest", "1 - oracle / best heuristic (the oracle's reduction)")
        if lowest
        else ("highest", "oracle / best heuristic - 1")
    )
    lines = [
        f"# Headroom on {env_id}",
        "",
        f"`{command}`",
        "",
        f"KPI: `{kpi}` (mean over seeds {seeds}, 95% bootstrap CI in brackets; {best} is best). Best "
        f"heuristic: the non-oracle controller with the {best} mean KPI. Headroom: {headroom}, with "
        "the CI of the per-seed paired ratio; it is within noise when that CI contains 0.",
        "",
        "| preset | phenomenon | best heuristic | its KPI | oracle | its KPI | headroom % |",
        "|---|---|---|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r.preset}` | {r.phenomenon} | {r.best_heuristic} "
            f"| {_fmt_ci(r.heuristic_kpi, r.heuristic_ci)} | {r.oracle} "
            f"| {_fmt_ci(r.oracle_kpi, r.oracle_ci)} "
            f"| {_fmt_ci(r.headroom_pct, r.headroom_ci, 1)} |"
        )
    lines += [
        "",
        "Return vs KPI, Spearman's rho over every controller of each preset (controller means; all "
        "episodes):",
        "",
        "| preset | rho (means) | rho (episodes) | controllers | CPU s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r.preset}` | {r.spearman_means:.3f} | {r.spearman_episodes:.3f} | {len(r.means)} "
            f"| {r.cpu_s:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="an env id whose class names PRIMARY_KPI and PRESETS")
    parser.add_argument("--presets", nargs="+", help="default: every preset of the env")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    parser.add_argument("--horizon", type=float, help="override the presets' horizon_s")
    parser.add_argument("--out", type=Path, help="write the Markdown table here (and .json beside it)")
    args = parser.parse_args(argv)
    check_env_id(args.env)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    env = gym.make(args.env).unwrapped
    presets = args.presets or sorted(env.PRESETS)
    unknown = sorted(set(presets) - set(env.PRESETS))
    if unknown:
        raise ValueError(f"unknown presets {unknown}; {args.env} has {sorted(env.PRESETS)}")
    kwargs = {"horizon_s": args.horizon} if args.horizon else {}
    rows = []
    for preset in presets:
        row = preset_headroom(args.env, preset, range(args.seeds), **kwargs)
        rows.append(row)
        print(
            f"{preset}: best heuristic {row.best_heuristic} {row.heuristic_kpi:.3f}, {row.oracle} "
            f"{row.oracle_kpi:.3f}, headroom {row.headroom_pct:+.1f}%, rho {row.spearman_means:.3f} "
            f"({row.cpu_s:.0f} s)",
            flush=True,
        )
    command = "python -m servegym.experiments.headroom " + " ".join(
        a if " " not in a else f'"{a}"' for a in (argv if argv is not None else sys.argv[1:])
    )
    text = markdown(args.env, rows, command)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    else:
        print(text)
    return 0


def cli() -> int:
    """``main`` with bad arguments reported in one line (exit code 2), not a traceback."""
    try:
        return main()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(cli())
