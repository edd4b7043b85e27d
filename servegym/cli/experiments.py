"""``servegym bench`` (run a suite, resumable, local or Ray) and ``servegym report`` (tables, figures)."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

DEFAULT_RESULTS = Path("experiments") / "results"


def _cmd_bench(args: argparse.Namespace) -> int:
    from servegym.experiments.suite import Overrides, load_suite, shipped_suites

    if args.list:
        for name, path in sorted(shipped_suites().items()):
            print(f"{name:20s} {path}")
        return 0
    if not args.suite:
        raise ValueError("name a suite (a shipped one, see --list, or a YAML file)")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    overrides = Overrides(args.seeds, args.episodes, args.timesteps, args.envs)
    suite = load_suite(args.suite, overrides)
    out = Path(args.out) if args.out else DEFAULT_RESULTS / suite.name
    from servegym.experiments.runner import describe_plan, make_backend, run_suite

    print(describe_plan(suite, out), file=sys.stderr)
    if args.dry_run:
        return 0
    backend = make_backend(args.backend, args.workers, args.ray_address)
    print(f"backend: {backend.name}, {backend.capacity} worker(s)", file=sys.stderr)
    summary = run_suite(suite, out, backend, progress=not args.no_progress, log=_note)
    print(_summary_text(summary, out))
    if summary.interrupted:
        return 130
    return 1 if summary.failed or summary.training_failed else 0


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _summary_text(summary, out: Path) -> str:
    merged = summary.merged
    lines = [
        f"{'interrupted: ' if summary.interrupted else ''}{summary.cells} cells: "
        f"{summary.skipped} already done, "
        f"{summary.ran} ran, {len(summary.failed)} failed; {summary.trained} policies trained"
        + (f", {len(summary.training_failed)} trainings failed" if summary.training_failed else "")
        + f"; {summary.wall_s:.0f} s",
    ]
    if summary.cell_seconds:
        times = [s for _, s in summary.cell_seconds]
        lines.append(f"time per cell: median {statistics.median(times):.2f} s, max {max(times):.2f} s")
    if summary.train_seconds:
        times = [s for _, s in summary.train_seconds]
        lines.append(
            f"time per training run: median {statistics.median(times):.0f} s, max {max(times):.0f} s"
        )
    if merged is not None:
        lines.append(
            f"results: {out / 'episodes.csv'} (expected {merged.expected} cells, have {merged.present})"
        )
    for key in summary.failed[:10]:
        lines.append(f"  failed: {key}")
    if len(summary.failed) > 10:
        lines.append(f"  ... and {len(summary.failed) - 10} more (the report lists them)")
    if summary.interrupted or (merged and merged.missing):
        lines.append("rerun the same command to finish: finished cells are skipped")
    lines.append(f"tables and figures: servegym report {out}")
    return "\n".join(lines)


def _cmd_report(args: argparse.Namespace) -> int:
    from servegym.experiments.report import write_report

    report = write_report(Path(args.results), figures=not args.no_figures)
    print(report.markdown)
    print(
        f"\nwrote {report.path}" + (f" and {len(report.figures)} figures" if report.figures else ""),
        file=sys.stderr,
    )
    return 0


def add_experiment_commands(sub) -> None:
    bench = sub.add_parser(
        "bench",
        help="run a benchmark suite (every scenario x controller x seed), resumable, locally or on Ray",
        description="Run a suite's cells in parallel; finished cells are skipped, so rerunning resumes.",
    )
    bench.add_argument("suite", nargs="?", help="a shipped suite (see --list) or a suite YAML file")
    bench.add_argument("--list", action="store_true", help="list the shipped suites")
    bench.add_argument("--out", help="results folder (default: experiments/results/<suite>)")
    bench.add_argument("--backend", choices=("local", "ray"), default="local")
    bench.add_argument("--workers", type=int, help="local worker processes (default: the usable cores)")
    bench.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray instance)")
    bench.add_argument("--seeds", type=int, help="use seeds 0..N-1 instead of the suite's")
    bench.add_argument("--episodes", type=int, help="evaluation episodes per cell instead of the suite's")
    bench.add_argument("--timesteps", type=int, help="training budget of every learned policy")
    bench.add_argument("--envs", nargs="+", metavar="ID", help="run only these env blocks of the suite")
    bench.add_argument(
        "--dry-run", action="store_true", help="check the suite and count its cells; run nothing"
    )
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.set_defaults(func=_cmd_bench)

    report = sub.add_parser(
        "report",
        help="Markdown tables (mean, IQM, CIs, P(improvement), verdicts) and figures of a bench run",
    )
    report.add_argument("results", help="a results folder written by servegym bench")
    report.add_argument("--no-figures", action="store_true", help="tables only")
    report.set_defaults(func=_cmd_report)
