"""Service curves of one replica, tabulated from the serving engine: the fast fidelity's model.

The engine serves Poisson traffic at a grid of loads (fractions of the replica's SLO capacity);
at each load the tables hold the throughput, the mean number of requests in the replica
(Little's law: throughput x mean latency), quantiles of TTFT and TPOT, the fraction of requests
meeting both SLOs, and the mean KV-cache use, batch and queue. A run at twice the capacity gives
the saturated throughput. The fast replica model (``fast_pool``) interpolates these tables, so its
steady-state behaviour is the engine's; the tables are built once per replica type and cached.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np

from servegym._version import __version__
from servegym.hardware import get_device
from servegym.workloads import Poisson, Workload

from ..serving import ServingEngine
from ..serving.capacity import estimate_capacity, mean_lengths
from ..serving.requests import FINISHED
from .replica import ReplicaSpec

LOADS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1)
"""Loads (arrival rate / the analytic capacity estimate) at which the engine is run."""
GOOD_AT_CAPACITY = 0.99  # a replica's capacity: the highest rate with this fraction meeting the SLOs
OVERLOAD = 2.0  # load of the saturation run
RUN_S, WARMUP_S = 600.0, 60.0  # the shortest run, and the start it leaves out
REQUESTS_PER_LOAD = 4000  # runs are long enough to measure this many requests (P99s from 40)
MASS_EDGES = np.array([*np.arange(0.0, 0.95, 0.05), 0.95, 0.98, 0.99, 0.995, 0.999, 1.0])
LEVELS = 0.5 * (MASS_EDGES[1:] + MASS_EDGES[:-1])
"""Quantile levels tabulated for TTFT and TPOT: the middles of probability-mass bins, finer in the
tail so P99s stay resolved; ``WEIGHTS`` are the bins' masses."""
WEIGHTS = np.diff(MASS_EDGES)


@dataclass(frozen=True)
class ServiceCurves:
    """A replica's behaviour at steady load, per ``load`` (fraction of ``analytic_capacity_rps``:
    ``LOADS`` plus three more between the last load that meets the SLOs and the first that
    does not)."""

    analytic_capacity_rps: float  # the latency model's estimate (``estimate_capacity``): the grid's unit
    capacity_rps: float  # requests/s one replica serves with >= GOOD_AT_CAPACITY meeting the SLOs
    max_throughput_rps: float  # requests/s when saturated
    rejected_fraction: float  # requests longer than max_model_len (refused at arrival)
    load: np.ndarray
    throughput_rps: np.ndarray
    in_system: np.ndarray  # mean requests in the replica (waiting + running)
    ttft_s: np.ndarray  # [load, LEVELS]
    tpot_s: np.ndarray  # [load, LEVELS]
    good: np.ndarray  # fraction of requests meeting the TTFT and TPOT SLOs
    ttft_ok: np.ndarray  # fraction with TTFT within its SLO
    kv_utilization: np.ndarray
    running: np.ndarray
    waiting: np.ndarray

    def __deepcopy__(self, memo: dict) -> ServiceCurves:
        return self  # read-only tables


def _run(spec: ReplicaSpec, rate: float, seed: int) -> dict[str, np.ndarray | float]:
    """Serve Poisson traffic at ``rate`` long enough for REQUESTS_PER_LOAD requests; statistics of
    those arriving after the warm-up."""
    run_s = max(RUN_S, WARMUP_S + REQUESTS_PER_LOAD / rate)
    rng = np.random.default_rng(seed)
    requests = Workload(Poisson(rate), spec.lengths).sample(rng, run_s)
    engine = ServingEngine(spec.engine, requests, np.random.default_rng(seed + 1))
    kv, running, waiting = [], [], []
    t = WARMUP_S
    engine.run_until(t)
    while t < run_s:  # time averages of the queue, sampled each second
        t += 1.0
        engine.run_until(t)
        kv.append(engine.kv_utilization)
        running.append(engine.num_running)
        waiting.append(engine.num_waiting)
    engine.run_to_completion()
    req = engine.requests
    window = (req.arrival_s >= WARMUP_S) & (req.arrival_s < run_s)
    measured = window & (req.status == FINISHED)  # not those rejected for max_model_len
    ttft = (req.first_token_s - req.arrival_s)[measured]
    e2e = (req.finished_s - req.arrival_s)[measured]
    out = req.output_tokens[measured]
    tpot = np.where(out > 1, (req.finished_s - req.first_token_s)[measured] / np.maximum(out - 1, 1), 0.0)
    cfg = spec.engine
    ok_ttft = ttft <= cfg.ttft_slo_s
    throughput = measured.sum() / (run_s - WARMUP_S)  # all finish: the run goes to completion
    return {
        "throughput": float(throughput),
        "in_system": float(throughput * e2e.mean()) if len(e2e) else 0.0,
        "ttft": np.quantile(ttft, LEVELS) if len(ttft) else np.zeros(len(LEVELS)),
        "tpot": np.quantile(tpot, LEVELS) if len(tpot) else np.zeros(len(LEVELS)),
        "good": float(np.mean(ok_ttft & (tpot <= cfg.tpot_slo_s))) if len(ttft) else 1.0,
        "ttft_ok": float(np.mean(ok_ttft)) if len(ttft) else 1.0,
        "kv": float(np.mean(kv)),
        "running": float(np.mean(running)),
        "waiting": float(np.mean(waiting)),
    }


def _capacity_at(good: np.ndarray, throughput: np.ndarray) -> float:
    """Throughput where the fraction of requests meeting the SLOs falls to GOOD_AT_CAPACITY
    (interpolated between the tabulated loads)."""
    below = np.flatnonzero(good < GOOD_AT_CAPACITY)
    if not len(below):
        return float(throughput[-1])
    i = int(below[0])
    if i == 0:
        return float(throughput[0])
    f = (good[i - 1] - GOOD_AT_CAPACITY) / max(good[i - 1] - good[i], 1e-12)
    return float(throughput[i - 1] + f * (throughput[i] - throughput[i - 1]))


def _saturated_throughput(spec: ReplicaSpec, capacity: float, seed: int) -> float:
    """Requests/s finished while a backlog never empties (arrivals at OVERLOAD x capacity)."""
    rng = np.random.default_rng(seed)
    requests = Workload(Poisson(OVERLOAD * capacity), spec.lengths).sample(rng, RUN_S)
    engine = ServingEngine(spec.engine, requests, np.random.default_rng(seed + 1))
    engine.run_until(WARMUP_S)
    before = engine.counts()["finished"]
    engine.run_until(RUN_S)
    return (engine.counts()["finished"] - before) / (engine.now - WARMUP_S)


_CACHE: dict[str, ServiceCurves] = {}


def cache_dir() -> Path:
    """Where tabulated curves are kept between processes: ``$SERVEGYM_CACHE`` or the user cache."""
    root = os.environ.get("SERVEGYM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "servegym"
    )
    return Path(root) / "service_curves"


def service_curves(spec: ReplicaSpec, seed: int = 2024) -> ServiceCurves:
    """Tabulate ``spec``'s replica by running the engine (a few seconds, once: kept in memory and
    in ``cache_dir()``, keyed by the replica's configuration, the seed and servegym's version)."""
    key = hashlib.sha256(
        repr((_code_digest(), repr(spec.engine), repr(spec.lengths), seed)).encode()
    ).hexdigest()[:24]
    if key not in _CACHE:
        _CACHE[key] = _load(key) or _tabulate(spec, seed)
        _store(key, _CACHE[key])
    return _CACHE[key]


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """A digest of the code and data the tables come from (this module, the serving engine, the
    latency model and its catalogs): any change to them makes new tables."""
    here = Path(__file__).resolve()
    serving = here.parent.parent / "serving"
    hardware = Path(inspect.getfile(get_device)).resolve().parent
    files = [
        here,
        *sorted(serving.glob("*.py")),
        *sorted(hardware.rglob("*.py")),
        *sorted(hardware.rglob("*.yaml")),
    ]
    digest = hashlib.sha256(__version__.encode())
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _load(key: str) -> ServiceCurves | None:
    path = cache_dir() / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            values = {f.name: data[f.name] for f in fields(ServiceCurves)}
    except (OSError, KeyError, ValueError):
        return None  # absent or unreadable: tabulate again
    return ServiceCurves(**{k: float(v) if v.ndim == 0 else v for k, v in values.items()})


def _store(key: str, curves: ServiceCurves) -> None:
    """Write the tables atomically; a read-only or full cache directory is not an error."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, **{f.name: getattr(curves, f.name) for f in fields(ServiceCurves)})
        os.replace(tmp.name, folder / f"{key}.npz")
    except OSError:
        pass


def _tabulate(spec: ReplicaSpec, seed: int) -> ServiceCurves:
    lm = spec.engine.latency_model()
    prompt, output = mean_lengths(spec.lengths, spec.engine.context_limit())
    capacity = estimate_capacity(lm, prompt, output, spec.engine.tbt_slo_s, spec.engine.max_num_seqs)
    loads = list(LOADS)
    runs = [_run(spec, u * capacity, seed + 17 * i) for i, u in enumerate(loads)]
    # where the SLOs start to fail, latency climbs steeply: refine the grid there
    first_bad = next((i for i, r in enumerate(runs) if r["good"] < GOOD_AT_CAPACITY), None)
    if first_bad:
        lo, hi = loads[first_bad - 1], loads[first_bad]
        extra = [lo + f * (hi - lo) for f in (0.25, 0.5, 0.75)]
        extra_runs = [_run(spec, u * capacity, seed + 1000 + 17 * i) for i, u in enumerate(extra)]
        loads = loads[:first_bad] + extra + loads[first_bad:]
        runs = runs[:first_bad] + extra_runs + runs[first_bad:]
    saturated = max(_saturated_throughput(spec, capacity, seed + 999), runs[-1]["throughput"])

    def column(key: str) -> np.ndarray:
        return np.array([r[key] for r in runs], dtype=float)

    good = column("good")
    throughput = np.maximum.accumulate(column("throughput"))
    prompts, outputs = spec.lengths.sample(np.random.default_rng(12345), 20000)
    return ServiceCurves(
        rejected_fraction=float(np.mean(prompts + outputs > spec.engine.context_limit())),
        analytic_capacity_rps=capacity,
        capacity_rps=_capacity_at(good, throughput),
        max_throughput_rps=float(saturated),
        load=np.array(loads),
        throughput_rps=throughput,
        in_system=np.maximum.accumulate(column("in_system")),
        ttft_s=np.maximum.accumulate(np.stack([r["ttft"] for r in runs]), axis=0),
        tpot_s=np.stack([r["tpot"] for r in runs]),
        good=good,
        ttft_ok=column("ttft_ok"),
        kv_utilization=column("kv"),
        running=column("running"),
        waiting=column("waiting"),
    )
