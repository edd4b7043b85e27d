"""The report's PNG figures: learning curves, Pareto fronts, latency CDFs, decisions over time.

Each figure is one env (``figures/<Env>-v0_<what>.png``) and is drawn only when the results hold
what it needs (learned controllers, a ``pareto`` pair, a ``latency`` source, ``series``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import EnvResults, estimate, relative_estimate
from .stats import bootstrap_ci

DPI = 110


def make_figures(
    root: Path, results: Sequence[EnvResults], traces: list[dict], curves: list[dict]
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    folder = root / "figures"
    folder.mkdir(exist_ok=True)
    made: list[Path] = []
    for res in results:
        env_id = res.env.env_id
        mine = [t for t in traces if t.get("env_id") == env_id]
        for path in (
            learning_curves(folder, res, [c for c in curves if c.get("env_id") == env_id]),
            *(pareto(folder, res, x, y) for x, y in res.env.pareto),
            latency_cdfs(folder, res, mine),
            decisions(folder, res, mine),
        ):
            if path is not None:
                made.append(path)
    return made


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def learning_curves(folder: Path, res: EnvResults, curves: list[dict]) -> Path | None:
    """Mean in-training evaluation return over seeds with a 95% bootstrap band, per learned policy,
    beside the best heuristic's and the oracles' mean return on the training scenario."""
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(c["controller"] for c in curves if c["timesteps"]))
    if not labels:
        return None
    fig, axes = plt.subplots(1, len(labels), figsize=(5.5 * len(labels), 3.8), squeeze=False)
    for ax, label in zip(axes[0], labels, strict=True):
        runs = [c for c in curves if c["controller"] == label and c["timesteps"]]
        length = min(len(c["timesteps"]) for c in runs)
        steps = np.asarray(runs[0]["timesteps"][:length], dtype=float)
        values = np.array([c["mean_return"][:length] for c in runs], dtype=float)
        mean = values.mean(axis=0)
        ax.plot(steps, mean, marker="o", ms=3, label=f"{label} ({len(runs)} seeds)")
        if len(runs) > 1:
            bands = [bootstrap_ci(values[:, i], resamples=2000) for i in range(length)]
            ax.fill_between(
                steps, [b.low for b in bands], [b.high for b in bands], alpha=0.25, label="95% CI"
            )
        spec = next(c for c in res.env.controllers if c.label == label)
        train = spec.train_scenario
        best = res.best.get(train)
        if best and (e := estimate(res, "return", [train], best, "mean")) is not None:
            ax.axhline(e.value, color="k", ls="--", lw=1, label=f"best heuristic: {best}")
        for oracle in (c.label for c in res.env.controllers if c.kind == "oracle"):
            if (e := estimate(res, "return", [train], oracle, "mean")) is not None:
                ax.axhline(e.value, color="tab:red", ls=":", lw=1, label=f"oracle: {oracle}")
        ax.set_title(f"{res.env.short}: {label} on {train}", fontsize=9)
        ax.set_xlabel("training steps")
        ax.set_ylabel("episode return (evaluation)")
        ax.legend(fontsize=7)
    return _save(fig, folder / f"{res.env.short}_learning_curves.png")


def pareto(folder: Path, res: EnvResults, x: str, y: str) -> Path | None:
    """Each controller's mean (x, y) per held-out scenario with 95% CIs; the non-dominated ones joined."""
    import matplotlib.pyplot as plt

    scenarios = res.test_scenarios
    mx, my = res.env.metric(x), res.env.metric(y)
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.5 * len(scenarios), 4.2), squeeze=False)
    drawn = False
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        points = []
        for label in res.labels:
            ex = estimate(res, x, [scenario], label, "mean")
            ey = estimate(res, y, [scenario], label, "mean")
            if ex is None or ey is None:
                continue
            points.append((label, ex, ey))
            xerr = [[ex.value - ex.low], [ex.high - ex.value]] if ex.has_ci else None
            yerr = [[ey.value - ey.low], [ey.high - ey.value]] if ey.has_ci else None
            ax.errorbar(
                ex.value, ey.value, xerr=xerr, yerr=yerr, fmt=_marker(res.kind(label)), capsize=2, ms=5
            )
            ax.annotate(label, (ex.value, ey.value), fontsize=6, xytext=(3, 3), textcoords="offset points")
        front = _front([(p[1].value, p[2].value) for p in points], mx.higher_is_better, my.higher_is_better)
        if front:
            fx, fy = zip(*front, strict=True)
            ax.plot(fx, fy, color="tab:gray", lw=1, ls="--", label="non-dominated")
            ax.legend(fontsize=7)
        drawn = drawn or bool(points)
        ax.set_title(f"{scenario} (held-out)", fontsize=9)
        ax.set_xlabel(f"{x} ({'higher' if mx.higher_is_better else 'lower'} is better)")
        ax.set_ylabel(f"{y} ({'higher' if my.higher_is_better else 'lower'} is better)")
    if not drawn:
        import matplotlib.pyplot as plt

        plt.close(fig)
        return None
    fig.suptitle(f"{res.env.env_id}: {x} vs {y}", fontsize=10)
    return _save(fig, folder / f"{res.env.short}_pareto_{x}_{y}.png")


def _marker(kind: str) -> str:
    return {"heuristic": "o", "oracle": "s", "learned": "D"}[kind]


def _front(points: list[tuple[float, float]], x_up: bool, y_up: bool) -> list[tuple[float, float]]:
    """The non-dominated points, ordered by x."""
    sx, sy = (1 if x_up else -1), (1 if y_up else -1)
    front = [
        p
        for p in points
        if not any(
            sx * q[0] >= sx * p[0] and sy * q[1] >= sy * p[1] and (q[0], q[1]) != (p[0], p[1]) for q in points
        )
    ]
    return sorted(set(front))


def latency_cdfs(folder: Path, res: EnvResults, traces: list[dict]) -> Path | None:
    """The latency CDF of every controller on each held-out scenario (first seed, all its episodes)."""
    import matplotlib.pyplot as plt

    if res.env.latency is None:
        return None
    scenarios = [
        s for s in res.test_scenarios if any(t["scenario"] == s and t.get("latency") for t in traces)
    ]
    if not scenarios:
        return None
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.5 * len(scenarios), 4.0), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        for t in traces:
            lat = t.get("latency")
            if t["scenario"] != scenario or not lat or not lat["quantiles"]:
                continue
            q = np.asarray(lat["quantiles"], dtype=float)
            levels = np.linspace(0.0, 1.0, len(q))
            style = {"oracle": ":", "learned": "-"}.get(res.kind(t["controller"]), "--")
            width = 2.0 if res.kind(t["controller"]) == "learned" else 1.0
            ax.plot(q, levels, ls=style, lw=width, label=f"{t['controller']} (n={lat['samples']})")
        positive = [
            t
            for t in traces
            if t["scenario"] == scenario and t.get("latency") and min(t["latency"]["quantiles"] or [0]) > 0
        ]
        if positive:
            ax.set_xscale("log")
        ax.set_title(f"{scenario} (held-out)", fontsize=9)
        ax.set_xlabel(f"{res.env.latency.key} (s)")
        ax.set_ylabel("fraction of samples ≤ x")
        ax.legend(fontsize=6)
    fig.suptitle(
        f"{res.env.env_id}: latency CDF ({res.env.latency.source} {res.env.latency.key}, first seed)",
        fontsize=10,
    )
    return _save(fig, folder / f"{res.env.short}_latency_cdf.png")


def decisions(folder: Path, res: EnvResults, traces: list[dict]) -> Path | None:
    """The decisions of the best heuristic, the best oracle and the best learned policy over the
    first episode of each held-out scenario, against the load signal."""
    import matplotlib.pyplot as plt

    scenarios = [s for s in res.test_scenarios if any(t["scenario"] == s for t in traces)]
    if not scenarios:
        return None
    picks: list[tuple[str, str]] = []  # (role, label) per row
    for kind in ("heuristic", "oracle", "learned"):
        label = _best_label(res, kind)
        if label:
            picks.append((kind, label))
    if not picks:
        return None
    fig, axes = plt.subplots(
        len(picks),
        len(scenarios),
        figsize=(6.0 * len(scenarios), 2.3 * len(picks)),
        squeeze=False,
        sharex="col",
        sharey="col",  # decisions on one scale per scenario; the load axes are twins
    )
    series = res.env.series
    decision = series.get("decision", "action")
    for col, scenario in enumerate(scenarios):
        loads = [v for t in traces if t["scenario"] == scenario for v in t["series"].get("load", [])]
        top = max(loads, default=0.0) * 1.05 or 1.0  # one load scale per scenario, as for the decisions
        for row, (kind, label) in enumerate(picks):
            ax = axes[row][col]
            trace = next((t for t in traces if t["scenario"] == scenario and t["controller"] == label), None)
            if trace is None:
                ax.set_axis_off()
                continue
            s = trace["series"]
            x = s.get("time", s["step"])
            ax.step(x, s.get("decision", s["action"]), where="post", color="tab:blue", lw=1)
            ax.set_ylabel(decision, color="tab:blue", fontsize=8)
            if "load" in s:
                twin = ax.twinx()
                twin.plot(x, s["load"], color="tab:orange", lw=0.8, alpha=0.7)
                twin.set_ylabel(series["load"], color="tab:orange", fontsize=8)
                twin.set_ylim(0.0, top)
            ax.set_title(
                f"{scenario}: {label} ({'best ' + kind if kind != 'learned' else 'learned'})", fontsize=8
            )
        axes[-1][col].set_xlabel(series.get("time", "decision step"))
    fig.suptitle(f"{res.env.env_id}: decisions over the first episode (first seed)", fontsize=10)
    return _save(fig, folder / f"{res.env.short}_decisions.png")


def _best_label(res: EnvResults, kind: str) -> str:
    scored = {
        c.label: e.value
        for c in res.env.controllers
        if c.kind == kind and (e := relative_estimate(res, res.test_scenarios, c.label, "mean")) is not None
    }
    return max(scored, key=scored.get) if scored else ""
