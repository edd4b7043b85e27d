"""``servegym report RESULTS``: Markdown tables, verdicts and figures of a bench run.

The report counts every cell the suite expects and says how many it has, lists failed and
missing cells, and then, per env: a table over the held-out scenarios (each controller's primary
metric in % of the best heuristic, mean and IQM with stratified-bootstrap 95% CIs, and the
probability of improvement over the best heuristic), a verdict line per learned policy and
oracle, and one table per scenario with the primary and secondary metrics in their own units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .analysis import (
    EnvResults,
    env_results,
    estimate,
    held_out_verdict,
    improvement,
    metric_problems,
    relative_estimate,
    scenario_verdict,
)
from .plan import make_plan
from .results import ResultsError, Store, read_json, read_table
from .stats import CONFIDENCE, Estimate, format_estimate
from .suite import Suite

MIN_SEEDS = 5
MIN_EPISODES = 10


@dataclass
class Report:
    path: Path
    markdown: str
    figures: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_results(root: Path) -> tuple[Suite, list[str], list[dict]]:
    """The suite and the tidy table of a results folder, re-merged from its cell files if any."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"results folder {root} does not exist (run `servegym bench SUITE --out {root}`)"
        )
    suite_file = root / "suite.json"
    data = read_json(suite_file, None)
    if data is None:
        raise ResultsError(f"{root} has no suite.json: not a folder written by `servegym bench`")
    try:
        suite = Suite.from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        raise ResultsError(f"{suite_file}: not a servegym suite ({type(err).__name__}: {err})") from None
    if (root / "cells").is_dir():  # a run's working folder: the cell files are the source of truth
        Store(root).merge(make_plan(suite))
    kpis, rows = read_table(root / "episodes.csv")
    return suite, kpis, rows


def write_report(root: Path, figures: bool = True) -> Report:
    """Write ``report.md`` (and ``figures/*.png``) into the results folder."""
    suite, kpis, rows = load_results(root)
    results = [env_results(suite, env, rows, kpis) for env in suite.envs]
    problems = [p for r in results for p in metric_problems(r)]
    made: list[Path] = []
    if figures:
        from .figures import make_figures

        made = make_figures(
            root, results, read_json(root / "traces.json", []), read_json(root / "curves.json", [])
        )
    text = render(suite, results, problems, made, root)
    path = root / "report.md"
    path.write_text(text, encoding="utf-8")
    return Report(path, text, made, problems)


# -- rendering --------------------------------------------------------------------------------------
def render(
    suite: Suite, results: list[EnvResults], problems: list[str], figures: list[Path], root: Path
) -> str:
    lines = [f"# Suite `{suite.name}`", ""]
    if suite.description:
        lines += [suite.description, ""]
    expected = sum(r.count.expected for r in results)
    ok = sum(r.count.ok for r in results)
    failed = sum(len(r.count.failed) for r in results)
    lines += [
        f"Regenerate: `servegym bench {suite.name}` then `servegym report {root}`. "
        f"Seeds {_seeds(suite.seeds)}; episodes per cell: "
        + ", ".join(f"{r.env.short} {r.env.episodes}" for r in results)
        + ".",
        "",
        f"**Cells: expected {expected}, have {ok + failed}** "
        f"({ok} ok, {failed} failed, {expected - ok - failed} missing).",
        "",
    ]
    lines += _warnings(suite, results, problems)
    lines += _headline(results)
    for res in results:
        lines += _env_section(res, [f for f in figures if f.name.startswith(res.env.short + "_")], root)
    lines += _method_notes()
    return "\n".join(lines).rstrip() + "\n"


def _seeds(seeds: list[int]) -> str:
    return f"{seeds[0]}..{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else str(seeds)


def _warnings(suite: Suite, results: list[EnvResults], problems: list[str]) -> list[str]:
    out = [f"- **error:** {p}" for p in problems]
    if len(suite.seeds) < MIN_SEEDS:
        out.append(f"- {len(suite.seeds)} seeds: fewer than {MIN_SEEDS}, so the CIs are wide and unreliable.")
    for r in results:
        if r.env.episodes < MIN_EPISODES:
            out.append(f"- {r.env.env_id}: {r.env.episodes} episodes per cell (fewer than {MIN_EPISODES}).")
    return [*out, ""] if out else []


def _headline(results: list[EnvResults]) -> list[str]:
    """One row per env: the best heuristics, the oracle and the learned policy on held-out scenarios."""
    lines = [
        "## Headline: held-out scenarios",
        "",
        "Primary metric in % of the best heuristic of each held-out scenario (IQM over runs, "
        f"{CONFIDENCE:.0%} stratified-bootstrap CI); P(improvement) is over that heuristic.",
        "",
        "| env | primary metric | best heuristic per held-out scenario | oracle | learned policy "
        "| P(improvement) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in results:
        tests = res.test_scenarios
        best = ", ".join(dict.fromkeys(res.best[s] for s in tests if res.best.get(s))) or "n/a"
        oracle = _best_of_kind(res, "oracle")
        learned = _best_of_kind(res, "learned")
        p = improvement(res, tests, learned) if learned else None
        v = held_out_verdict(res, learned) if learned else None
        verdict = "n/a" if v is None else _short_verdict(v)
        lines.append(
            f"| {res.env.short} | {_metric(res.env.primary)} | {best} | "
            f"{_rel(res, oracle)} | {_rel(res, learned)} | {_est(p, '.2f')} | {verdict} |"
        )
    return [*lines, ""]


def _best_of_kind(res: EnvResults, kind: str) -> str:
    """The controller of ``kind`` with the best held-out IQM (relative), or ""."""
    scored = {
        c.label: e.value
        for c in res.env.controllers
        if c.kind == kind and (e := relative_estimate(res, res.test_scenarios, c.label, "iqm")) is not None
    }
    return max(scored, key=scored.get) if scored else ""


def _rel(res: EnvResults, label: str) -> str:
    if not label:
        return "n/a"
    e = relative_estimate(res, res.test_scenarios, label, "iqm")
    return f"{label}: {_est(e, '+.1f', '%')}"


def _short_verdict(v) -> str:
    noise = v.within_noise
    if noise is None:
        return "no CI"
    pct = v.difference_pct
    direction = "ahead" if pct > 0 else "behind" if pct < 0 else "tied"
    return f"{abs(pct):.1f}% {direction}, " + ("within noise" if noise else "not noise")


def _env_section(res: EnvResults, figures: list[Path], root: Path) -> list[str]:
    env, c = res.env, res.count
    lines = [
        f"## {env.env_id}",
        "",
        f"Cells: expected {c.expected}, have {c.present} ({c.ok} ok, {len(c.failed)} failed, "
        f"{len(c.missing)} missing). Primary metric: {_metric(env.primary)}; secondary: "
        + (", ".join(_metric(m) for m in env.secondary) or "none")
        + ".",
        "",
    ]
    for scenario, label, seed, error in c.failed:
        lines.append(f"- **failed:** {scenario} / {label} / seed {seed}: {error}")
    for scenario, label, seed in c.missing:
        lines.append(f"- **missing:** {scenario} / {label} / seed {seed}")
    for scenario, label, seed, n in c.short:
        lines.append(f"- **incomplete:** {scenario} / {label} / seed {seed}: {n} of {env.episodes} episodes")
    if c.failed or c.missing or c.short:
        lines.append("")
    lines += _held_out_table(res)
    for scenario in [*res.test_scenarios, *(s.name for s in env.scenarios if s.role == "train")]:
        lines += _scenario_table(res, scenario)
    if figures:
        lines += ["Figures:", ""]
        lines += [f"![{f.stem}]({f.relative_to(root).as_posix()})" for f in figures]
        lines.append("")
    return lines


def _held_out_table(res: EnvResults) -> list[str]:
    tests, env = res.test_scenarios, res.env
    head = [
        "controller",
        "kind",
        f"{env.primary.name}: mean Δ%",
        "IQM Δ%",
        "P(improvement)",
        *(_metric(m) + " mean" for m in env.secondary),
    ]
    lines = [
        f"### Held-out scenarios ({', '.join(tests)})",
        "",
        f"Δ%: {env.primary.name} in % of each scenario's best heuristic, + is better; "
        f"runs: {_plural(len(res.seeds), 'seed')} x {_plural(len(tests), 'scenario')}.",
        "",
        "| " + " | ".join(head) + " |",
        "|---|---|" + "---:|" * (len(head) - 2),
    ]
    for label in res.labels:
        cells = [
            _est(relative_estimate(res, tests, label, "mean"), "+.1f", "%"),
            _est(relative_estimate(res, tests, label, "iqm"), "+.1f", "%"),
            _est(improvement(res, tests, label), ".2f"),
            *(_est(estimate(res, m.name, tests, label, "mean")) for m in env.secondary),
        ]
        lines.append(f"| {label} | {res.kind(label)} | " + " | ".join(cells) + " |")
    lines.append("")
    for label in res.labels:
        if res.kind(label) in ("learned", "oracle") and (v := held_out_verdict(res, label)) is not None:
            lines.append(f"- {res.kind(label)} {v.text()}")
    return [*lines, ""]


def _scenario_table(res: EnvResults, scenario: str) -> list[str]:
    env = res.env
    role = env.scenario(scenario).role
    best = res.best.get(scenario, "")
    head = [
        "controller",
        f"{_metric(env.primary)} mean",
        "IQM",
        "P(improvement)",
        *(_metric(m) + " mean" for m in env.secondary),
    ]
    lines = [
        f"### {scenario} ({'training' if role == 'train' else 'held-out'})",
        "",
        f"Best heuristic: {best or 'n/a'} (★). Mean and IQM over seeds of the per-seed mean over episodes.",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for label in res.labels:
        mark = " ★" if label == best else ""
        kind = "" if res.kind(label) == "heuristic" else f" ({res.kind(label)})"
        cells = [
            _est(estimate(res, env.primary.name, [scenario], label, "mean")),
            _est(estimate(res, env.primary.name, [scenario], label, "iqm")),
            _est(improvement(res, [scenario], label), ".2f") if label != best else "-",
            *(_est(estimate(res, m.name, [scenario], label, "mean")) for m in env.secondary),
        ]
        lines.append(f"| {label}{kind}{mark} | " + " | ".join(cells) + " |")
    lines.append("")
    for label in res.labels:
        if res.kind(label) == "learned" and (v := scenario_verdict(res, scenario, label)) is not None:
            lines.append(f"- {v.text()}")
    return [*lines, ""]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _metric(m) -> str:
    return f"{m.name} ({'↑' if m.higher_is_better else '↓'})"


def _est(e: Estimate | None, spec: str = ".4g", unit: str = "") -> str:
    if e is None:
        return "n/a"
    return format_estimate(e, spec, unit) + ("" if e.has_ci else " (no CI)")


def _method_notes() -> list[str]:
    return [
        "## How to read this",
        "",
        "- A run is one (scenario, controller, seed) cell; its score is the mean over the cell's "
        "episodes. Every controller of a scenario and seed sees the same episode seeds. A learned "
        "policy's seed is its training seed; a heuristic's seed only selects its episodes.",
        "- The best heuristic is chosen per scenario, in hindsight (highest mean primary metric "
        "among the heuristics); oracles (privileged information) never count as heuristics.",
        "- CIs are 95% percentile bootstraps (10,000 resamples) that resample runs within each "
        "scenario (stratified); IQM is the mean of the middle 50% of runs. P(improvement) is the "
        "probability that a run of the controller beats a run of the best heuristic of the same "
        "scenario (ties count half), averaged over scenarios.",
        '- A verdict is "within noise" when the two 95% CIs overlap (a conservative test).',
        "",
    ]
