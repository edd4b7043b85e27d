"""The work a runner's worker does: evaluate one cell, or train one policy.

Both functions take plain picklable arguments, return plain dicts and never raise: a failure
comes back as ``{"status": "failed", "error": <traceback>}`` so the runner records it and goes
on. Files travel as bytes in the arguments and results, so a Ray worker on another machine needs
no shared file system.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .plan import Cell, Trace, TrainJob

SERIES_POINTS = 500
"""Decision time series are thinned to at most this many steps."""
LATENCY_QUANTILES = np.linspace(0.0, 1.0, 201)
"""A latency CDF is stored as these quantiles of the cell's pooled samples."""
TRAINED_FILES = ("model.zip", "best_model.zip", "evaluations.npz", "config.yml")


def limit_threads() -> None:
    """One thread per worker: the runner parallelises over cells, not inside them."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(name, "1")


# -- evaluation --------------------------------------------------------------------------------
def run_cell(cell: Cell, model: bytes | None = None) -> dict[str, Any]:
    """``cell.episode_seeds`` episodes of the cell's controller; ``model`` is a learned policy's file."""
    limit_threads()
    started = time.perf_counter()
    result: dict[str, Any] = {"key": cell.key, "config_hash": cell.config_hash, "versions": versions(cell)}
    try:
        result.update(_evaluate(cell, model))
        result["status"] = "ok"
    except Exception:  # recorded with its traceback; the run goes on
        result.update(status="failed", error=traceback.format_exc())
    result["wall_s"] = time.perf_counter() - started
    return result


def _evaluate(cell: Cell, model: bytes | None) -> dict[str, Any]:
    import gymnasium as gym

    import servegym  # noqa: F401 - registers the ids

    from .compare import run_episode

    env = gym.make(cell.env_id, **cell.env_kwargs)
    controller = _controller(cell, env, model)
    recorder = TraceRecorder(cell.trace, env) if cell.trace else None
    episodes = []
    for index, seed in enumerate(cell.episode_seeds):
        counter = StepCounter(recorder if index == 0 else None, recorder)
        started = time.perf_counter()
        kpis = run_episode(env, controller, seed, on_step=counter)
        if recorder is not None:
            recorder.end_episode()
        episodes.append(
            {
                "episode": index,
                "episode_seed": seed,
                "kpis": {k: float(v) for k, v in kpis.items()},
                "steps": counter.steps,
                "wall_s": time.perf_counter() - started,
            }
        )
    env.close()
    out: dict[str, Any] = {"controller_name": controller.name, "episodes": episodes}
    if recorder is not None:
        out["trace"] = recorder.result()
    return out


def _controller(cell: Cell, env: Any, model: bytes | None) -> Any:
    spec = cell.controller
    if spec.kind == "learned":
        from servegym.agents.controller import LearnedController

        if model is None:
            raise RuntimeError(f"{cell.key}: the learned policy's file was not passed to the worker")
        with tempfile.TemporaryDirectory() as folder:  # the controller keeps the policy in memory
            path = Path(folder) / (Path(spec.model).name if spec.model else "model.zip")
            path.write_bytes(model)
            controller = LearnedController.load(path, env_id=cell.env_id)
        controller.name = f"{spec.label} ({spec.algo or 'policy'})"
        return controller
    from servegym import baselines

    return baselines.make(spec.name, **spec.params, **({"env": env} if spec.kind == "oracle" else {}))


class StepCounter:
    """``on_step`` for an episode: counts steps, feeds the series (first episode) and latency."""

    def __init__(self, series: TraceRecorder | None, latency: TraceRecorder | None) -> None:
        self.steps, self.series, self.latency = 0, series, latency

    def __call__(self, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        self.steps += 1
        if self.series is not None:
            self.series.record_step(action, reward, info)
        if self.latency is not None:
            self.latency.record_latency(info)


class TraceRecorder:
    """A decision time series (the first episode) and latency samples (every episode)."""

    def __init__(self, trace: Trace, env: Any) -> None:
        self.trace, self.env = trace, env
        self.rows: dict[str, list] = {"step": [], "action": [], "reward": [], **{k: [] for k in trace.series}}
        self.latencies: list[float] = []
        self._step = 0

    def record_step(self, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        metrics = info.get("metrics", {})
        self.rows["step"].append(self._step)
        self.rows["action"].append(_number(action))
        self.rows["reward"].append(float(reward))
        for role, key in self.trace.series.items():
            if key not in metrics:
                raise KeyError(
                    f"series {role}: {key!r} is not in info['metrics'] (keys: {', '.join(metrics)})"
                )
            self.rows[role].append(_number(metrics[key]))
        self._step += 1

    def record_latency(self, info: Mapping[str, Any]) -> None:
        latency = self.trace.latency
        if latency is None or latency.source == "requests":
            return
        where = info if latency.source == "step_info" else info.get("metrics", {})
        if latency.key not in where:
            raise KeyError(
                f"latency: {latency.key!r} is not in the step's {latency.source} (keys: {', '.join(where)})"
            )
        self.latencies.append(float(where[latency.key]))

    def end_episode(self) -> None:
        latency = self.trace.latency
        if latency is not None and latency.source == "requests":
            self.latencies.extend(request_latencies(self.env, latency.key).tolist())

    def result(self) -> dict[str, Any]:
        n = len(self.rows["step"])
        keep = np.unique(np.linspace(0, n - 1, min(n, SERIES_POINTS)).round().astype(int)) if n else []
        series = {k: [_round(v[i]) for i in keep] for k, v in self.rows.items()}
        out: dict[str, Any] = {"series": series}
        samples = np.asarray([x for x in self.latencies if np.isfinite(x)], dtype=float)
        if self.trace.latency is not None:
            out["latency"] = {
                "key": self.trace.latency.key,
                "samples": int(samples.size),
                "quantiles": [_round(q) for q in np.quantile(samples, LATENCY_QUANTILES)]
                if samples.size
                else [],
            }
        return out


def request_latencies(env: Any, key: str) -> np.ndarray:
    """Per-request TTFT, end-to-end latency or TPOT of a serving env's finished episode."""
    engine = getattr(env.unwrapped, "engine", None)
    if engine is None or not hasattr(engine, "requests"):
        raise ValueError(
            f"latency source 'requests' needs a serving engine (env.unwrapped.engine); "
            f"{type(env.unwrapped).__name__} has none: use step_info or step_metric"
        )
    r, n = engine.requests, engine.next_arrival
    arrival, first, finished = r.arrival_s[:n], r.first_token_s[:n], r.finished_s[:n]
    if key == "ttft_s":
        values = first - arrival
    elif key == "e2e_s":
        values = finished - arrival
    else:
        outputs = r.output_tokens[:n]
        values = np.where(outputs > 1, (finished - first) / np.maximum(outputs - 1, 1), np.nan)
    return values[np.isfinite(values)]


def _number(value: Any) -> float:
    """A scalar as a float; a vector (per edge, per action) as its sum."""
    array = np.asarray(value, dtype=float)
    return float(array.reshape(-1)[0]) if array.size == 1 else float(array.sum())


def _round(x: float) -> float:
    """Figures need 5 significant digits; the traces file stays small."""
    return float(f"{x:.5g}")


# -- training ----------------------------------------------------------------------------------
def run_training(job: TrainJob, run_dir: str) -> dict[str, Any]:
    """Train (or resume) the job's policy in ``run_dir``; returns its final files as bytes."""
    limit_threads()
    started = time.perf_counter()
    notes: list[str] = []
    result: dict[str, Any] = {"key": job.key, "config_hash": job.config_hash}
    try:
        out = _writable(Path(run_dir))
        trained = _train(job, out, notes)
        result.update(
            status="ok",
            timesteps=trained.timesteps,
            train_s=trained.seconds,
            files={name: (out / name).read_bytes() for name in TRAINED_FILES if (out / name).is_file()},
        )
    except Exception:
        result.update(status="failed", error=traceback.format_exc())
    result["notes"] = notes
    result["wall_s"] = time.perf_counter() - started
    return result


def _train(job: TrainJob, out: Path, notes: list[str]) -> Any:
    from servegym.agents.hyperparams import load_hyperparams
    from servegym.agents.train import train

    timesteps = job.timesteps or load_hyperparams(job.algo, job.env_id).n_timesteps
    kwargs = dict(
        timesteps=timesteps,
        n_envs=job.n_envs or None,
        seed=job.seed,
        out=out,
        env_kwargs=dict(job.env_kwargs),
        hyperparams=dict(job.hyperparams) or None,
        eval_scenarios_=[job.eval_scenario],
        eval_freq=max(timesteps // job.eval_points, 1),
        eval_episodes=job.eval_episodes,
        log=notes.append,
    )
    if (out / "config.yml").is_file():  # an interrupted run: continue its newest checkpoint
        try:
            return train(job.env_id, job.algo, resume=True, **kwargs)
        except (FileNotFoundError, ValueError) as err:
            notes.append(f"could not resume ({err}); training from scratch")
            shutil.rmtree(out)
    elif out.exists():
        shutil.rmtree(out)
    return train(job.env_id, job.algo, **kwargs)


def _writable(path: Path) -> Path:
    """``path``, or a fresh temporary folder on a worker that cannot write there (another machine)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return Path(tempfile.mkdtemp(prefix="servegym-train-")) / path.name


# -- provenance --------------------------------------------------------------------------------
def versions(cell: Cell | None = None) -> str:
    """Package versions that decide a cell's numbers, as ``name=version;...``."""
    import gymnasium
    import numba
    import scipy

    from servegym._version import __version__

    found = {
        "servegym": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "gymnasium": gymnasium.__version__,
    }
    if cell is None or cell.controller.kind == "learned":
        import stable_baselines3
        import torch

        found.update(torch=torch.__version__, stable_baselines3=stable_baselines3.__version__)
    return ";".join(f"{k}={v}" for k, v in found.items())
