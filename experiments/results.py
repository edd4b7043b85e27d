"""A results folder: per-unit files written atomically, and the tidy tables merged from them.

Layout of ``RESULTS`` (one suite)::

    suite.yaml, suite.json   the suite as written, and as resolved (what the report expects)
    cells/<env>/<scenario>/<controller>/seed_<s>.json   one finished cell (ok or failed)
    models/<env>/<controller>/seed_<s>-<hash>/          a training run; done.json when finished
    episodes.csv             the tidy table: one row per episode (a failed cell: one row)
    traces.json              decision time series and latency quantiles (first seed)
    curves.json              learning curves of the learned controllers

Every file is written to a temporary name and renamed, so a killed run leaves whole files only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .plan import Cell, Plan, TrainJob
from .suite import Suite

ID_COLUMNS = (
    "suite",
    "env_id",
    "scenario",
    "role",
    "controller",
    "kind",
    "controller_name",
    "seed",
    "episode",
    "episode_seed",
    "status",
)
TAIL_COLUMNS = ("steps", "episode_wall_s", "error", "config_hash", "versions")
INT_COLUMNS = ("seed", "episode", "episode_seed", "steps")
SIGNIFICANT = 10
"""Digits kept of a KPI in the table (float64 noise beyond that would only inflate the file)."""
TEXT_COLUMNS = (*[c for c in ID_COLUMNS if c not in INT_COLUMNS], "error", "config_hash", "versions")


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``path`` whole or not at all (temporary file in the same folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would create it (mkstemp makes it private)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any, compact: bool = False) -> None:
    layout: dict[str, Any] = {"separators": (",", ":")} if compact else {"indent": 1}
    write_atomic(path, json.dumps(_jsonable(value), allow_nan=True, **layout) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


class ResultsError(ValueError):
    """A results file that cannot be read: the message names the file (and line)."""


@dataclass
class Store:
    """The results folder of one suite run."""

    root: Path

    def cell_file(self, cell: Cell) -> Path:
        return self.root.joinpath("cells", *cell.path)

    def model_dir(self, job: TrainJob) -> Path:
        return self.root.joinpath("models", *job.path)

    def remove_partial_writes(self) -> int:
        """Delete temporary files a killed run left behind (never read as results); returns how many."""
        stale = [p for p in self.root.rglob(".*.tmp") if p.is_file()] if self.root.is_dir() else []
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    # -- cells -------------------------------------------------------------------------------
    def read_cell(self, cell: Cell) -> tuple[dict[str, Any] | None, str]:
        """(the cell's result, "") or (None, why it is missing, stale or unreadable)."""
        path = self.cell_file(cell)
        if not path.is_file():
            return None, "not run"
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            return None, f"{path} is unreadable ({err}); it will be run again"
        if not isinstance(result, dict) or result.get("status") not in ("ok", "failed"):
            return None, f"{path} is not a cell result; it will be run again"
        if result.get("config_hash") != cell.config_hash:
            return None, "its configuration changed"
        return result, ""

    def finished(self, cell: Cell) -> bool:
        result, _ = self.read_cell(cell)
        return result is not None and result["status"] == "ok"

    def write_cell(self, cell: Cell, result: dict[str, Any]) -> None:
        write_json(self.cell_file(cell), result)

    # -- training runs ------------------------------------------------------------------------
    def trained(self, job: TrainJob) -> dict[str, Any] | None:
        """The finished run's ``done.json`` (None if the run has not finished)."""
        done = self.model_dir(job) / "done.json"
        try:
            info = json.loads(done.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return info if info.get("config_hash") == job.config_hash else None

    def write_training(self, job: TrainJob, result: dict[str, Any]) -> None:
        folder = self.model_dir(job)
        for name, data in result["files"].items():
            target = folder / name
            if not (target.is_file() and target.read_bytes() == data):
                write_atomic(target, data)
        info = {k: v for k, v in result.items() if k != "files"}
        write_json(folder / "done.json", info)

    def policy_file(self, job: TrainJob, checkpoint: str) -> Path:
        folder = self.model_dir(job)
        best = folder / "best_model.zip"
        return best if checkpoint == "best" and best.is_file() else folder / "model.zip"

    # -- merged tables ------------------------------------------------------------------------
    def merge(self, plan: Plan) -> MergeSummary:
        """Write episodes.csv, traces.json and curves.json from the unit files of ``plan``."""
        rows, traces, missing, failed = [], [], [], []
        for cell in plan.cells:
            result, _why = self.read_cell(cell)
            if result is None:
                missing.append(cell.key)
                continue
            rows += cell_rows(plan.suite, cell, result)
            if result["status"] == "failed":
                failed.append(cell.key)
            elif "trace" in result:
                traces.append(
                    {
                        "env_id": cell.env_id,
                        "scenario": cell.scenario,
                        "controller": cell.controller.label,
                        **result["trace"],
                    }
                )
        write_atomic(self.root / "episodes.csv", format_table(rows))
        write_json(self.root / "traces.json", traces, compact=True)
        write_json(self.root / "curves.json", self._curves(plan.jobs))
        return MergeSummary(len(plan.cells), len(plan.cells) - len(missing), failed, missing)

    def _curves(self, jobs: Iterable[TrainJob]) -> list[dict[str, Any]]:
        curves = []
        for job in jobs:
            info = self.trained(job)
            path = self.model_dir(job) / "evaluations.npz"
            if info is None or not path.is_file():
                continue
            with np.load(path) as data:
                steps, returns = data["timesteps"], data["results"]
            curves.append(
                {
                    "env_id": job.env_id,
                    "controller": job.label,
                    "seed": job.seed,
                    "timesteps": steps.tolist(),
                    "mean_return": returns.mean(axis=1).tolist() if returns.size else [],
                    "train_s": info.get("train_s"),
                    "total_timesteps": info.get("timesteps"),
                }
            )
        return curves


@dataclass
class MergeSummary:
    expected: int
    present: int
    failed: list[str]
    missing: list[str]


def cell_rows(suite: Suite, cell: Cell, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The tidy rows of one cell result: one per episode, or one for a failed cell."""
    base = {
        "suite": suite.name,
        "env_id": cell.env_id,
        "scenario": cell.scenario,
        "role": cell.role,
        "controller": cell.controller.label,
        "kind": cell.controller.kind,
        "controller_name": result.get("controller_name", ""),
        "seed": cell.seed,
        "config_hash": cell.config_hash,
        "versions": result.get("versions", ""),
    }
    if result["status"] == "failed":
        error = result.get("error", "").strip().splitlines()
        return [{**base, "status": "failed", "error": error[-1] if error else "failed"}]
    return [
        {
            **base,
            "episode": e["episode"],
            "episode_seed": e["episode_seed"],
            "status": "ok",
            **e["kpis"],
            "steps": e["steps"],
            "episode_wall_s": e["wall_s"],
        }
        for e in result["episodes"]
    ]


def format_table(rows: list[dict[str, Any]]) -> str:
    """CSV text: identity columns, then the KPIs (sorted, ``return`` first), then provenance."""
    fixed = set(ID_COLUMNS) | set(TAIL_COLUMNS)
    kpis = sorted({k for r in rows for k in r if k not in fixed}, key=lambda k: (k != "return", k))
    columns = [*ID_COLUMNS, *kpis, *TAIL_COLUMNS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell_text(row.get(k)) for k in columns})
    return buffer.getvalue()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{SIGNIFICANT}g}" if math.isfinite(value) else str(value)
    return str(value)


# -- reading the table back ---------------------------------------------------------------------
def read_table(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The tidy table: (KPI columns, rows with numbers parsed); a malformed file is a
    ``ResultsError`` naming the line and the column."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (run `servegym bench` first)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ResultsError(f"{path}: not a UTF-8 CSV file ({err.reason})") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ResultsError(f"{path}: empty file; expected a header line") from None
    missing = [c for c in (*ID_COLUMNS, *TAIL_COLUMNS) if c not in header]
    if missing:
        raise ResultsError(f"{path}:1: not a servegym results table: missing column(s) {', '.join(missing)}")
    kpis = [c for c in header if c not in ID_COLUMNS and c not in TAIL_COLUMNS]
    rows, seen = [], {}
    for fields in reader:
        line = reader.line_num
        if len(fields) != len(header):
            raise ResultsError(f"{path}:{line}: {len(fields)} fields, the header has {len(header)}")
        raw = dict(zip(header, fields, strict=True))
        row: dict[str, Any] = {c: raw[c] for c in TEXT_COLUMNS}
        if row["status"] not in ("ok", "failed"):
            raise ResultsError(f"{path}:{line}: status: expected ok or failed, got {row['status']!r}")
        for column in (*INT_COLUMNS, *kpis, "episode_wall_s"):
            row[column] = _parse_number(raw[column], column, path, line, column in INT_COLUMNS)
        key = (row["env_id"], row["scenario"], row["controller"], row["seed"], row["episode"])
        if key in seen:
            raise ResultsError(
                f"{path}:{line}: the same episode as line {seen[key]} ({', '.join(map(str, key))})"
            )
        seen[key] = line
        rows.append(row)
    return kpis, rows


def _parse_number(text: str, column: str, path: Path, line: int, integer: bool) -> float | int | None:
    if text == "":
        return None
    try:
        return int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ResultsError(f"{path}:{line}: column {column!r}: expected {kind}, got {text!r}") from None


def read_json(path: Path, default: Any) -> Any:
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResultsError(f"{path}: not valid JSON ({err})") from None
