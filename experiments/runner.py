"""Run a suite's cells in parallel, locally or on Ray, resuming where an earlier run stopped.

Finished cells (a result file whose config hash matches) are skipped; training runs start first
(they are the long pole) and each releases its evaluation cells when it finishes. Results come
back to this process, which writes each unit's file atomically, so a killed run loses only the
units in flight. A unit that raises, or whose worker dies, is recorded as failed and the run
goes on; the next run retries it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .cells import limit_threads, run_cell, run_training
from .plan import Cell, Plan, TrainJob, make_plan
from .results import MergeSummary, Store, write_atomic, write_json
from .suite import Suite

BACKENDS = ("local", "ray")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# -- backends ------------------------------------------------------------------------------------
class LocalBackend:
    """A pool of worker processes on this machine (spawned: no state shared with this process)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.capacity = workers
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.capacity, mp_context=get_context("spawn"), initializer=limit_threads)

    def submit(self, fn: Callable[..., dict[str, Any]], *args: Any) -> Future:
        return self._pool.submit(fn, *args)

    def wait(self, handles: list[Future], timeout: float) -> list[Future]:
        done, _ = wait_futures(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Future) -> dict[str, Any]:
        try:
            return handle.result()
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            raise

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class RayBackend:
    """Cells and training runs as Ray tasks (one CPU each) on a running cluster or a local one."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError('--backend ray needs Ray: pip install "servegym[ray]"') from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.capacity = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        self._remote = {fn: ray.remote(num_cpus=1, max_retries=0)(fn) for fn in (run_cell, run_training)}

    def submit(self, fn: Callable[..., dict[str, Any]], *args: Any) -> Any:
        return self._remote[fn].remote(*args)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        ready, _ = self._ray.wait(handles, num_returns=1, timeout=timeout)
        return ready

    def result(self, handle: Any) -> dict[str, Any]:
        return self._ray.get(handle)

    def shutdown(self) -> None:
        if self._started:
            self._ray.shutdown()


def make_backend(
    name: str, workers: int | None = None, address: str | None = None
) -> LocalBackend | RayBackend:
    if name == "local":
        return LocalBackend(default_workers() if workers is None else workers)
    if name == "ray":
        return RayBackend(address)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


# -- the run ---------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    cells: int
    skipped: int
    ran: int = 0
    failed: list[str] = field(default_factory=list)
    trained: int = 0
    training_failed: list[str] = field(default_factory=list)
    cell_seconds: list[tuple[str, float]] = field(default_factory=list)  # (key, wall s) of cells run
    train_seconds: list[tuple[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    interrupted: bool = False
    merged: MergeSummary | None = None


class Progress:
    """What the run reports as it goes (a rich progress bar, or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self._bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def add(self, name: str, total: int) -> None:
        if self._bar is not None and total:
            self._tasks[name] = self._bar.add_task(name, total=total)

    def advance(self, name: str) -> None:
        if name in self._tasks:
            self._bar.advance(self._tasks[name])

    def note(self, message: str) -> None:
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)


def run_suite(
    suite: Suite,
    out: str | Path,
    backend: LocalBackend | RayBackend,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> RunSummary:
    """Run every unfinished cell of ``suite`` into ``out`` and merge the tables."""
    store = Store(Path(out))
    plan = make_plan(suite)
    with _exclusive(store.root):
        return _run(plan, store, backend, progress, log)


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """One run per results folder at a time (the lock goes with the process, even when killed)."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another servegym bench is running in {root}") from None
        yield


def _run(plan: Plan, store: Store, backend: Any, progress: bool, log: Callable[[str], None]) -> RunSummary:
    suite = plan.suite
    if removed := store.remove_partial_writes():
        log(f"note: removed {removed} partly written file(s) of an interrupted run")
    _write_suite(store, suite)
    todo: list[Cell] = []
    for cell in plan.cells:
        result, why = store.read_cell(cell)
        if result is not None and result["status"] == "ok":
            continue
        if why.endswith("will be run again"):
            log(f"note: {why}")
        todo.append(cell)
    summary = RunSummary(cells=len(plan.cells), skipped=len(plan.cells) - len(todo))
    jobs = list(
        {
            c.train.key: c.train for c in todo if c.train is not None and store.trained(c.train) is None
        }.values()
    )
    started = time.perf_counter()
    with Progress(progress) as bar:
        bar.add("training", len(jobs))
        bar.add("cells", len(todo))
        scheduler = _Scheduler(store, backend, bar, summary, log)
        try:
            scheduler.run(todo, jobs)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            backend.shutdown()
    summary.wall_s = time.perf_counter() - started
    summary.merged = store.merge(plan)
    return summary


def _write_suite(store: Store, suite: Suite) -> None:
    store.root.mkdir(parents=True, exist_ok=True)
    source = Path(suite.source)
    if source.is_file():
        write_atomic(store.root / "suite.yaml", source.read_text(encoding="utf-8"))
    write_json(store.root / "suite.json", suite.to_dict())


@dataclass
class _Unit:
    kind: str  # cell | train
    cell: Cell | None = None
    job: TrainJob | None = None

    @property
    def key(self) -> str:
        return self.cell.key if self.cell else self.job.key


class _Scheduler:
    def __init__(self, store: Store, backend: Any, bar: Progress, summary: RunSummary, log) -> None:
        self.store, self.backend, self.bar, self.summary, self.log = store, backend, bar, summary, log
        self.queue: deque[_Unit] = deque()
        self.waiting: dict[str, list[Cell]] = {}
        self.in_flight: dict[Any, _Unit] = {}

    def run(self, cells: list[Cell], jobs: list[TrainJob]) -> None:
        pending = {job.key for job in jobs}
        self.queue.extend(_Unit("train", job=job) for job in jobs)
        for cell in cells:
            if cell.train is not None and cell.train.key in pending:
                self.waiting.setdefault(cell.train.key, []).append(cell)
            else:
                self.queue.append(_Unit("cell", cell=cell))
        while self.queue or self.in_flight:
            while self.queue and len(self.in_flight) < self.backend.capacity:
                self._submit(self.queue.popleft())
            for handle in self.backend.wait(list(self.in_flight), timeout=1.0):
                unit = self.in_flight.pop(handle)
                try:
                    result = self.backend.result(handle)
                except Exception as err:  # the worker died (killed, out of memory) or Ray lost the task
                    result = _failed(unit, f"the worker running this unit died: {type(err).__name__}: {err}")
                self._finish(unit, result)

    def _submit(self, unit: _Unit) -> None:
        if unit.kind == "train":
            handle = self.backend.submit(run_training, unit.job, str(self.store.model_dir(unit.job) / "run"))
        else:
            try:
                model = self._model(unit.cell)
            except OSError as err:
                self._finish(unit, _failed(unit, f"cannot read the policy file: {err}"))
                return
            handle = self.backend.submit(run_cell, unit.cell, model)
        self.in_flight[handle] = unit

    def _model(self, cell: Cell) -> bytes | None:
        spec = cell.controller
        if spec.kind != "learned":
            return None
        if cell.train is None:
            return Path(spec.model).read_bytes()
        return self.store.policy_file(cell.train, spec.checkpoint).read_bytes()

    def _finish(self, unit: _Unit, result: dict[str, Any]) -> None:
        if unit.kind == "cell":
            self.store.write_cell(unit.cell, result)
            self.bar.advance("cells")
            if result["status"] == "ok":
                self.summary.ran += 1
                self.summary.cell_seconds.append((unit.key, result["wall_s"]))
            else:
                self.summary.failed.append(unit.key)
                self.bar.note(f"failed: {unit.key}: {_last_line(result['error'])}")
            return
        self.bar.advance("training")
        dependents = self.waiting.pop(unit.key, [])
        if result["status"] == "ok":
            self.store.write_training(unit.job, result)
            self.summary.trained += 1
            self.summary.train_seconds.append((unit.key, result["wall_s"]))
            self.queue.extend(_Unit("cell", cell=c) for c in dependents)
            _tidy_run_dir(self.store.model_dir(unit.job))
            return
        self.summary.training_failed.append(unit.key)
        self.bar.note(f"training failed: {unit.key}: {_last_line(result['error'])}")
        folder = self.store.model_dir(unit.job)
        write_atomic(folder / "error.txt", result["error"])
        for cell in dependents:
            self._finish(
                _Unit("cell", cell=cell),
                _failed(
                    _Unit("cell", cell=cell),
                    f"training {unit.key} failed (see {folder / 'error.txt'}):\n{result['error']}",
                ),
            )


def _tidy_run_dir(folder: Path) -> None:
    """A finished run keeps its final files (copied up by ``write_training``) and TensorBoard logs."""
    run = folder / "run"
    if not run.is_dir():
        return
    if (run / "tb").is_dir():
        shutil.rmtree(folder / "tb", ignore_errors=True)
        (run / "tb").rename(folder / "tb")
    shutil.rmtree(run, ignore_errors=True)


def _failed(unit: _Unit, error: str) -> dict[str, Any]:
    config_hash = unit.cell.config_hash if unit.cell else unit.job.config_hash
    return {"key": unit.key, "config_hash": config_hash, "status": "failed", "error": error, "wall_s": 0.0}


def _last_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


def describe_plan(suite: Suite, out: str | Path) -> str:
    """How many cells and training runs the suite has, and how many are done in ``out``."""
    store, plan = Store(Path(out)), make_plan(suite)
    done = sum(store.finished(c) for c in plan.cells)
    trained = sum(store.trained(j) is not None for j in plan.jobs)
    return (
        f"suite {suite.name}: {len(plan.cells)} cells ({done} done), {len(plan.jobs)} training runs "
        f"({trained} done) -> {out}"
    )


__all__ = [
    "BACKENDS",
    "LocalBackend",
    "RayBackend",
    "RunSummary",
    "describe_plan",
    "make_backend",
    "make_plan",
    "run_suite",
]
