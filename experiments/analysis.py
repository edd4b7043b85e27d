"""The numbers of a report: per-run scores, the best heuristic, estimates with CIs, verdicts.

A run is one (scenario, controller, seed) cell; its score on a metric is the mean over the
cell's episodes. Estimates over runs use the stratified bootstrap of ``stats`` with one stratum
per scenario. Scores across held-out scenarios are compared as percent differences from each
scenario's best heuristic (the heuristic with the best mean primary metric there, picked in
hindsight, so a stronger baseline than any single rule).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .stats import Estimate, Verdict, probability_of_improvement, stratified_bootstrap_ci
from .suite import EnvSuite, Metric, Suite

BEST_HEURISTIC = "the best heuristic"


@dataclass
class CellCount:
    expected: int
    ok: int
    failed: list[tuple[str, str, int, str]]  # (scenario, controller, seed, error)
    missing: list[tuple[str, str, int]]
    short: list[tuple[str, str, int, int]]  # ok cells with fewer episodes than planned: (..., episodes)

    @property
    def present(self) -> int:
        return self.ok + len(self.failed)


@dataclass
class EnvResults:
    """One env block's runs: ``scores[metric][scenario][controller]`` = per-seed run scores."""

    env: EnvSuite
    seeds: list[int]
    count: CellCount
    scores: dict[str, dict[str, dict[str, list[float]]]]
    names: dict[str, str]  # controller label -> the controller's own name
    kpis: list[str]  # metrics the env recorded
    best: dict[str, str] = field(default_factory=dict)  # scenario -> best heuristic label

    def runs(self, metric: str, scenario: str, controller: str) -> list[float]:
        return self.scores.get(metric, {}).get(scenario, {}).get(controller, [])

    def kind(self, label: str) -> str:
        return next(c.kind for c in self.env.controllers if c.label == label)

    @property
    def test_scenarios(self) -> list[str]:
        return [s.name for s in self.env.scenarios if s.role == "test"]

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.env.controllers]


def env_results(
    suite: Suite, env: EnvSuite, rows: Sequence[dict[str, Any]], kpis: Sequence[str]
) -> EnvResults:
    """Group the tidy rows of ``env`` into run scores and count the cells."""
    mine = [r for r in rows if r["env_id"] == env.env_id]
    recorded = [k for k in kpis if any(r["status"] == "ok" and _finite(r.get(k)) for r in mine)]
    episodes: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    failed = []
    names: dict[str, str] = {}
    for r in mine:
        key = (r["scenario"], r["controller"], r["seed"])
        if r["status"] == "failed":
            failed.append((*key, r["error"]))
        else:
            episodes.setdefault(key, []).append(r)
            names.setdefault(r["controller"], r["controller_name"])
    expected = [
        (s.name, c.label, seed) for s in env.scenarios for c in env.controllers for seed in suite.seeds
    ]
    failed = [f for f in failed if f[:3] in set(expected)]
    failed_keys = {f[:3] for f in failed}
    missing = [k for k in expected if k not in episodes and k not in failed_keys]
    short = [(*k, len(episodes[k])) for k in expected if k in episodes and len(episodes[k]) < env.episodes]
    count = CellCount(len(expected), sum(k in episodes for k in expected), failed, missing, short)
    scores: dict[str, dict[str, dict[str, list[float]]]] = {}
    for metric in recorded:
        for scenario, label, seed in expected:
            values = [e[metric] for e in episodes.get((scenario, label, seed), []) if _finite(e.get(metric))]
            if values:
                scores.setdefault(metric, {}).setdefault(scenario, {}).setdefault(label, []).append(
                    float(np.mean(values))
                )
    result = EnvResults(env, list(suite.seeds), count, scores, names, recorded)
    for scenario in env.scenarios:
        result.best[scenario.name] = _best_heuristic(result, scenario.name)
    return result


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _best_heuristic(res: EnvResults, scenario: str) -> str:
    metric = res.env.primary
    means = {
        label: float(np.mean(runs))
        for label in res.labels
        if res.kind(label) == "heuristic" and (runs := res.runs(metric.name, scenario, label))
    }
    if not means:
        return ""
    pick = max if metric.higher_is_better else min
    return pick(means, key=means.get)


# -- estimates ------------------------------------------------------------------------------------
def estimate(
    res: EnvResults, metric: str, scenarios: Sequence[str], label: str, statistic: str
) -> Estimate | None:
    strata = [runs for s in scenarios if (runs := res.runs(metric, s, label))]
    return stratified_bootstrap_ci(strata, statistic) if strata else None


def relative_runs(res: EnvResults, scenario: str, label: str) -> list[float]:
    """Primary-metric run scores as % of the scenario's best heuristic's mean (+ = better)."""
    metric = res.env.primary
    best = res.best.get(scenario)
    reference = res.runs(metric.name, scenario, best) if best else []
    runs = res.runs(metric.name, scenario, label)
    if not reference or not runs:
        return []
    base = float(np.mean(reference))
    if base == 0:
        return []
    sign = 1.0 if metric.higher_is_better else -1.0
    return [sign * (x - base) / abs(base) * 100.0 for x in runs]


def relative_estimate(
    res: EnvResults, scenarios: Sequence[str], label: str, statistic: str
) -> Estimate | None:
    strata = [runs for s in scenarios if (runs := relative_runs(res, s, label))]
    return stratified_bootstrap_ci(strata, statistic) if strata else None


def improvement(res: EnvResults, scenarios: Sequence[str], label: str) -> Estimate | None:
    """P(a run of ``label`` beats a run of the scenario's best heuristic), over ``scenarios``."""
    metric = res.env.primary
    pairs = [
        (res.runs(metric.name, s, label), res.runs(metric.name, s, res.best[s]))
        for s in scenarios
        if res.best.get(s)
    ]
    pairs = [(x, y) for x, y in pairs if x and y]
    if not pairs:
        return None
    return probability_of_improvement([x for x, _ in pairs], [y for _, y in pairs], metric.higher_is_better)


def held_out_verdict(res: EnvResults, label: str) -> Verdict | None:
    """``label`` against the best heuristic on the held-out scenarios: IQM of the relative score."""
    scenarios = res.test_scenarios
    mine = relative_estimate(res, scenarios, label, "iqm")
    strata = [runs for s in scenarios if res.best.get(s) and (runs := relative_runs(res, s, res.best[s]))]
    if mine is None or not strata:
        return None
    base = stratified_bootstrap_ci(strata, "iqm")
    metric = res.env.primary
    where = f"{len(scenarios)} held-out scenario{'s' if len(scenarios) > 1 else ''}"
    return Verdict(
        label,
        f"{BEST_HEURISTIC} (per scenario)",
        mine,
        base,
        f"{metric.name} over {where}, in % of the best heuristic",
        higher_is_better=True,
        statistic="IQM",
        relative=True,
        improvement=improvement(res, scenarios, label),
    )


def scenario_verdict(res: EnvResults, scenario: str, label: str) -> Verdict | None:
    """``label`` against the scenario's best heuristic on the IQM of the primary metric."""
    metric, best = res.env.primary, res.best.get(scenario)
    x, y = res.runs(metric.name, scenario, label), res.runs(metric.name, scenario, best) if best else []
    if not x or not y or label == best:
        return None
    return Verdict(
        label,
        f"{best} ({BEST_HEURISTIC})",
        stratified_bootstrap_ci([x], "iqm"),
        stratified_bootstrap_ci([y], "iqm"),
        metric.name,
        metric.higher_is_better,
        statistic="IQM",
        improvement=probability_of_improvement([x], [y], metric.higher_is_better),
    )


def metric_problems(res: EnvResults) -> list[str]:
    """Metrics the suite lists that the env never recorded."""
    listed: list[Metric] = [res.env.primary, *res.env.secondary]
    if not res.count.ok:
        return []
    return [
        f"{m.at or res.env.env_id}: {res.env.env_id}: metric {m.name!r} is not a KPI this env reports; "
        f"it reports: {', '.join(res.kpis)}"
        for m in listed
        if m.name not in res.kpis
    ]
