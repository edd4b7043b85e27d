"""The bench runner: tidy tables, resume, failures recorded, local processes and Ray alike."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servegym import baselines
from servegym.experiments.plan import make_plan
from servegym.experiments.results import Store
from servegym.experiments.runner import LocalBackend, run_suite
from servegym.experiments.suite import Overrides, load_suite

from .conftest import SerialBackend, tiny_suite_text

CHUNK = "servegym/ChunkedPrefill-v0"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _run(suite, out: Path, **kwargs):
    return run_suite(suite, out, kwargs.pop("backend", SerialBackend()), progress=False, log=lambda m: None)


def test_every_cell_lands_in_one_tidy_table(write_suite, tmp_path) -> None:
    suite = load_suite(write_suite(tiny_suite_text()))
    summary = _run(suite, tmp_path / "out")
    assert (summary.cells, summary.ran, summary.skipped, summary.failed) == (8, 8, 0, [])
    rows = _rows(tmp_path / "out" / "episodes.csv")
    assert len(rows) == 8 * 2  # cells x episodes
    first = rows[0]
    assert first["suite"] == "tiny" and first["env_id"] == CHUNK and first["status"] == "ok"
    assert float(first["return"]) == float(first["return"])  # a number
    assert first["versions"].startswith("servegym=") and len(first["config_hash"]) == 64
    assert {r["controller_name"] for r in rows} == {"SarathiStatic", "SlackFeedback"}
    seeds = {(r["scenario"], r["seed"], r["controller"]): [] for r in rows}
    for r in rows:
        seeds[(r["scenario"], r["seed"], r["controller"])].append(int(r["episode_seed"]))
    for (scenario, seed, _), episode_seeds in seeds.items():
        assert episode_seeds == seeds[(scenario, seed, "sarathi-static")]  # common random numbers
    traces = json.loads((tmp_path / "out" / "traces.json").read_text())
    assert len(traces) == 4  # the first seed's cells
    assert all(t["latency"]["samples"] > 0 and len(t["series"]["decision"]) > 0 for t in traces)
    assert (tmp_path / "out" / "suite.yaml").read_text() == tiny_suite_text()


def test_a_second_run_skips_finished_cells_and_reruns_changed_ones(write_suite, tmp_path) -> None:
    path = write_suite(tiny_suite_text())
    out = tmp_path / "out"
    _run(load_suite(path), out)
    before = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*.json")}
    again = _run(load_suite(path), out)
    assert (again.skipped, again.ran) == (8, 0)
    assert {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*.json")} == before
    # a corrupt cell file is run again (with a note), never read as a result
    victim = sorted(before)[0]
    victim.write_text('{"status": "ok", "config_ha', encoding="utf-8")
    notes: list[str] = []
    third = run_suite(load_suite(path), out, SerialBackend(), progress=False, log=notes.append)
    assert third.ran == 1 and any("unreadable" in n for n in notes)
    # more episodes change every cell's configuration: every cell runs again
    fourth = _run(load_suite(path, Overrides(episodes=3)), out)
    assert fourth.ran == 8 and len(_rows(out / "episodes.csv")) == 8 * 3


class Exploding:
    """A controller that raises on its first decision."""

    name = "Exploding"

    def reset(self, seed=None) -> None:
        pass

    def act(self, obs, info):
        raise RuntimeError("boom: the controller failed")


def test_a_failing_cell_is_recorded_with_its_traceback_and_the_run_goes_on(
    write_suite, tmp_path, monkeypatch
) -> None:
    monkeypatch.setitem(baselines._REGISTRY, "slack-feedback", (CHUNK, Exploding, "raises"))
    suite = load_suite(write_suite(tiny_suite_text()))
    out = tmp_path / "out"
    summary = _run(suite, out)
    assert summary.ran == 4 and len(summary.failed) == 4
    assert all("slack-feedback" in key for key in summary.failed)
    cell = next(c for c in make_plan(suite).cells if c.controller.label == "slack-feedback")
    result = json.loads(Store(out).cell_file(cell).read_text())
    assert result["status"] == "failed" and "Traceback" in result["error"] and "boom" in result["error"]
    rows = _rows(out / "episodes.csv")
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 4 and failed[0]["error"] == "RuntimeError: boom: the controller failed"
    assert failed[0]["episode"] == "" and failed[0]["return"] == ""
    assert len([r for r in rows if r["status"] == "ok"]) == 4 * 2
    # the next run retries the failed cells only
    monkeypatch.undo()
    again = _run(load_suite(write_suite(tiny_suite_text(), "again.yaml")), out)
    assert (again.skipped, again.ran, again.failed) == (4, 4, [])


def test_two_runs_cannot_share_a_results_folder(write_suite, tmp_path) -> None:
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RuntimeError, match="another servegym bench is running"):
            _run(load_suite(write_suite(tiny_suite_text())), out)


@pytest.mark.slow
def test_a_killed_run_resumes_and_loses_only_the_cells_in_flight(write_suite, tmp_path) -> None:
    path = write_suite(tiny_suite_text(episodes=6))
    out = tmp_path / "out"
    argv = [
        sys.executable,
        "-m",
        "servegym.cli",
        "bench",
        str(path),
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
    ]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list((out / "cells").rglob("*.json"))) < 3:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its worker, mid-run
    proc.wait()
    finished = {p: p.read_bytes() for p in (out / "cells").rglob("*.json")}
    assert 3 <= len(finished) < 8, "the run should have been killed mid-way"
    for data in finished.values():
        assert json.loads(data)["status"] == "ok"  # whole files only
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"8 cells: {len(finished)} already done, {8 - len(finished)} ran, 0 failed" in done.stdout
    assert "expected 8 cells, have 8" in done.stdout
    assert all(p.read_bytes() == data for p, data in finished.items())  # not rerun
    rows = _rows(out / "episodes.csv")
    assert len(rows) == 8 * 6 and not list(out.rglob(".*.tmp"))


@pytest.fixture
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_and_local_processes_give_identical_tables(write_suite, tmp_path, ray_instance) -> None:
    from servegym.experiments.runner import RayBackend

    suite = load_suite(write_suite(tiny_suite_text(learned=True)))
    local = run_suite(suite, tmp_path / "local", LocalBackend(2), progress=False, log=lambda m: None)
    on_ray = run_suite(suite, tmp_path / "ray", RayBackend(), progress=False, log=lambda m: None)
    assert local.failed == on_ray.failed == [] and local.trained == on_ray.trained == 2
    a, b = _rows(tmp_path / "local" / "episodes.csv"), _rows(tmp_path / "ray" / "episodes.csv")
    assert len(a) == 12 * 2
    for row in a + b:
        row.pop("episode_wall_s")
    assert a == b
    assert ray_instance.is_initialized()  # the runner leaves a Ray instance it did not start running
    curves = json.loads((tmp_path / "ray" / "curves.json").read_text())
    assert len(curves) == 2 and all(c["timesteps"] for c in curves)
