"""A pool of LLM replicas behind a router: lifecycle, routing, billing, and two fidelities.

Replica life: starting (cold start, or a faster warm start from the warm pool) -> ready (takes
requests) -> draining (takes none; leaves once its requests are done) -> gone. Scaling down
first cancels replicas still starting, then drains the least-loaded ready ones; no request is
ever dropped. With no replica ready, requests wait at the router (as at Knative's activator).
Every replica that is starting, ready or draining is billed.

``fidelity="fast"`` runs every replica as the fluid queue of ``fast_pool`` over the engine's
service curves; ``fidelity="engine"`` runs one serving engine per replica. Both report the
same window summary (``WINDOW_FIELDS``) and episode KPIs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from servegym.workloads import Requests

from ..serving import ServingEngine
from ..serving.metrics import HIST_BINS, hist_add
from ..serving.windows import hist_quantile
from .fast_pool import (
    DRAINING,
    EMPTY,
    N_WINDOW,
    READY,
    STARTING,
    SUBROWS,
    W_ARRIVALS,
    W_COMPLETED,
    W_DISPATCHED,
    W_IDLE_S,
    W_KV_S,
    W_READY_S,
    W_REJECTED,
    W_REPLICA_S,
    W_RUNNING_S,
    W_TTFT_LATE,
    W_VIOLATIONS,
    W_WAITING_S,
    FluidTables,
    advance_fast,
    expand_rows,
)
from .replica import ReplicaSpec
from .service_curves import WEIGHTS, service_curves

FIDELITIES = ("fast", "engine")
ROUTERS = ("least-outstanding", "round-robin")
SUBSTEP_S = 1.0  # routing and queue granularity of a pool


@njit(cache=True)
def latency_quantiles(ttft_hist, tpot_hist):  # pragma: no cover - compiled
    """P50 and P99 of the TTFT and TPOT histograms (one call per window)."""
    n_ttft, n_tpot = ttft_hist.sum(), tpot_hist.sum()
    return (
        hist_quantile(ttft_hist, n_ttft, 0.5), hist_quantile(ttft_hist, n_ttft, 0.99),
        hist_quantile(tpot_hist, n_tpot, 0.5), hist_quantile(tpot_hist, n_tpot, 0.99),
    )  # fmt: skip


class ReplicaPool:
    """Replicas of one type. ``reset`` gives the episode's requests; ``scale_to`` sets the
    number of replicas wanted; ``advance(t)`` runs to time ``t`` and returns the window."""

    def __init__(
        self,
        spec: ReplicaSpec,
        max_replicas: int,
        *,
        fidelity: str = "fast",
        router: str = "least-outstanding",
        warm_pool: int = 0,
    ) -> None:
        if fidelity not in FIDELITIES:
            raise ValueError(f"replica pool: fidelity must be one of {FIDELITIES}, got {fidelity!r}")
        if router not in ROUTERS:
            raise ValueError(f"replica pool: router must be one of {ROUTERS}, got {router!r}")
        if fidelity == "fast" and router != "least-outstanding":
            raise ValueError("replica pool: the fast fidelity routes to the least-outstanding replica only")
        if not isinstance(max_replicas, int) or max_replicas < 1:
            raise ValueError(f"replica pool: max_replicas must be an integer >= 1, got {max_replicas!r}")
        if not isinstance(warm_pool, int) or warm_pool < 0:
            raise ValueError(f"replica pool: warm_pool must be an integer >= 0, got {warm_pool!r}")
        self.spec, self.max_replicas, self.fidelity, self.router = spec, max_replicas, fidelity, router
        self.warm_pool = warm_pool
        self.curves = service_curves(spec)
        self._tables = FluidTables(self.curves).arrays() if fidelity == "fast" else None
        slots = 2 * max_replicas + 1  # room for a full fleet draining while a new one starts
        self.status = np.zeros(slots, dtype=np.int64)
        self.ready_at = np.zeros(slots)
        self.in_system = np.zeros(slots)  # fast: fluid requests per replica
        self.smoothed = np.zeros(slots)  # fast: their smoothed occupancy (the operating point)
        self._reject = np.array([self.curves.rejected_fraction, 0.0])
        self.arrived = np.zeros(slots, dtype=np.int64)
        self.departed = np.zeros(slots)
        self.router_queue = np.zeros(2)  # requests waiting at the router, Σ of their arrival times
        self.engines: list[ServingEngine | None] = [None] * slots
        self.now = 0.0

    # -- episode ---------------------------------------------------------------------------------
    def reset(self, requests: Requests, rng: np.random.Generator, initial_replicas: int) -> None:
        """A new episode: these requests, ``initial_replicas`` ready at time 0."""
        self.requests = requests
        self._rng = rng
        self.now = 0.0
        self.status[:] = EMPTY
        self.in_system[:] = 0.0
        self.smoothed[:] = 0.0
        self._reject[1] = 0.0
        self.arrived[:] = 0
        self.departed[:] = 0.0
        self.router_queue[:] = 0.0
        self.engines = [None] * len(self.status)
        self._retired: list[ServingEngine] = []  # drained this window (scanned once more)
        self._gone = {"finished": 0, "rejected": 0}  # requests of drained engines
        self._next_request = 0
        self._router_ids: list[int] = []
        self._rr = 0
        self.warm_available = self.warm_pool
        self.cold_starts = self.warm_starts = self.scale_ups = self.scale_downs = 0
        self._window = np.zeros(N_WINDOW)
        self._ttft_hist = np.zeros(HIST_BINS)
        self._tpot_hist = np.zeros(HIST_BINS)
        self._totals = np.zeros(N_WINDOW)
        self._total_ttft = np.zeros(HIST_BINS)
        self._total_tpot = np.zeros(HIST_BINS)
        self._row_weight = np.zeros(len(self.curves.load) * SUBROWS)
        self._row_ttft_weight = np.zeros(len(self.curves.load) * SUBROWS)
        if self.fidelity == "fast":
            last = float(requests.arrival_s[-1]) if len(requests) else 0.0
            edges = np.arange(0.0, last + 2 * SUBSTEP_S, SUBSTEP_S)
            self._arrival_counts = np.histogram(requests.arrival_s, bins=edges)[0].astype(np.int64)
        for _ in range(initial_replicas):
            self._start(ready_at=0.0, warm=False, counted=False)
        self._promote(0.0)

    # -- scaling ---------------------------------------------------------------------------------
    @property
    def active(self) -> int:
        """Replicas starting or ready (the count a scaling decision sets)."""
        counts = self.status_counts()
        return counts[STARTING] + counts[READY]

    def count(self, status: int) -> int:
        return self.status_counts()[status]

    def status_counts(self) -> list[int]:
        """Replicas per status (indexed by EMPTY, STARTING, READY, DRAINING)."""
        return np.bincount(self.status, minlength=4).tolist()

    def scale_to(self, target: int) -> int:
        """Start or remove replicas so ``target`` are starting or ready; returns the change."""
        if not 0 <= target <= self.max_replicas:
            raise ValueError(f"replica pool: target must be in 0..{self.max_replicas}, got {target}")
        change = target - self.active
        for _ in range(change):
            warm = self.warm_available > 0
            self.warm_available -= warm
            start_s = self.spec.warm_start_s if warm else self.spec.cold_start_s
            self._start(self.now + start_s, warm)
        for _ in range(-change):
            self._remove_one()
        self.scale_ups += change > 0
        self.scale_downs += change < 0
        return change

    def _start(self, ready_at: float, warm: bool, counted: bool = True) -> None:
        slot = int(np.flatnonzero(self.status == EMPTY)[0])
        self.status[slot] = STARTING  # (arrived and departed stay cumulative over a slot's replicas)
        self.ready_at[slot] = ready_at
        self.in_system[slot] = 0.0
        self.smoothed[slot] = 0.0
        if counted:
            if warm:
                self.warm_starts += 1
            else:
                self.cold_starts += 1
        if self.fidelity == "engine":
            empty = Requests(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
            self.engines[slot] = ServingEngine(
                self.spec.engine, empty, np.random.default_rng(self._rng.integers(2**63))
            )

    def _remove_one(self) -> None:
        starting = np.flatnonzero(self.status == STARTING)
        if len(starting):  # cancel the replica that would be ready last
            slot = int(starting[np.argmax(self.ready_at[starting])])
            self.status[slot] = EMPTY
            self.engines[slot] = None
            self.warm_available = min(self.warm_available + 1, self.warm_pool)
            return
        ready = np.flatnonzero(self.status == READY)
        slot = int(ready[np.argmin(self._outstanding(ready))])
        self.status[slot] = DRAINING

    def _outstanding(self, slots: np.ndarray) -> np.ndarray:
        if self.fidelity == "fast":
            return self.in_system[slots]
        return np.array([self.engines[s].num_running + self.engines[s].num_waiting for s in slots])

    def _promote(self, t: float) -> None:
        self.status[(self.status == STARTING) & (self.ready_at <= t)] = READY

    # -- running -------------------------------------------------------------------------------
    def advance(self, t_end: float) -> dict[str, Any]:
        """Run to ``t_end`` (a whole number of sub-steps from now); returns the window summary."""
        steps = max(round((t_end - self.now) / SUBSTEP_S), 0)
        if self.fidelity == "fast":
            self._advance_fast(steps)
        else:
            for _ in range(steps):
                self._engine_substep()
        return self._close_window(steps * SUBSTEP_S)

    def _advance_fast(self, steps: int) -> None:
        k0 = round(self.now / SUBSTEP_S)
        counts = self._arrival_counts[k0 : k0 + steps]
        if len(counts) < steps:
            counts = np.concatenate([counts, np.zeros(steps - len(counts), dtype=np.int64)])
        draining = self.count(DRAINING)
        advance_fast(
            self.status, self.ready_at, self.in_system, self.smoothed, self.arrived, self.departed,
            self.router_queue, self._reject, counts, self.now, SUBSTEP_S, self.spec.engine.ttft_slo_s,
            *self._tables, self._window, self._ttft_hist, self._row_weight, self._row_ttft_weight,
        )  # fmt: skip
        self.now += steps * SUBSTEP_S
        self._promote(self.now)
        left = draining - self.count(DRAINING)  # replicas that finished draining keep their weights
        self.warm_available = min(self.warm_available + left, self.warm_pool)

    def _engine_substep(self) -> None:
        t0, t1 = self.now, self.now + SUBSTEP_S
        self._promote(t0)
        w, req = self._window, self.requests
        arrival = req.arrival_s
        end = int(np.searchsorted(arrival, t1, side="left"))
        new = list(range(self._next_request, end))
        self._next_request = end
        w[W_ARRIVALS] += len(new)
        ready = np.flatnonzero(self.status == READY)
        if not len(ready):
            self._router_ids.extend(new)
        else:
            queued = self._router_ids + new
            self._router_ids = []
            self._dispatch(queued, ready)
        for slot in np.flatnonzero(self.status != EMPTY):
            engine = self.engines[slot]
            engine.run_until(t1)
            if self.status[slot] == READY:
                w[W_READY_S] += SUBSTEP_S
                w[W_KV_S] += engine.kv_utilization * SUBSTEP_S
                w[W_RUNNING_S] += engine.num_running * SUBSTEP_S
                if engine.num_running + engine.num_waiting == 0:
                    w[W_IDLE_S] += SUBSTEP_S
            w[W_WAITING_S] += engine.num_waiting * SUBSTEP_S
            w[W_REPLICA_S] += SUBSTEP_S
            if self.status[slot] == DRAINING and engine.done:
                self.status[slot] = EMPTY
                self._retired.append(engine)
                c = engine.counts()
                self._gone["finished"] += c["finished"]
                self._gone["rejected"] += c["rejected"]
                self.engines[slot] = None
                self.warm_available = min(self.warm_available + 1, self.warm_pool)
        w[W_WAITING_S] += len(self._router_ids) * SUBSTEP_S
        self.now = t1

    def _dispatch(self, ids: list[int], ready: np.ndarray) -> None:
        """Hand requests to ready replicas: least outstanding requests, or round-robin."""
        if not ids:
            return
        load = self._outstanding(ready).astype(float)
        chosen: dict[int, list[int]] = {int(s): [] for s in ready}
        for rid in ids:
            if self.router == "round-robin":
                i = self._rr % len(ready)
                self._rr += 1
            else:
                i = int(np.argmin(load))
            load[i] += 1
            chosen[int(ready[i])].append(rid)
        req = self.requests
        for slot, rids in chosen.items():
            if rids:
                idx = np.array(rids)
                self.engines[slot].submit(req.arrival_s[idx], req.prompt_tokens[idx], req.output_tokens[idx])
                self.arrived[slot] += len(rids)
                self._window[W_DISPATCHED] += len(rids)

    # -- windows ---------------------------------------------------------------------------------
    def _engine_latencies(self, t0: float, t1: float) -> None:
        """Requests that finished in (t0, t1]: completions, SLO misses and their latencies."""
        cfg = self.spec.engine
        w = self._window
        for engine in [e for e in self.engines if e is not None] + self._retired:
            r = engine.requests
            done = (r.finished_s > t0) & (r.finished_s <= t1)
            if not done.any():
                continue
            ttft = (r.first_token_s - r.arrival_s)[done]
            out = r.output_tokens[done]
            tpot = np.where(out > 1, (r.finished_s - r.first_token_s)[done] / np.maximum(out - 1, 1), 0.0)
            late = ttft > cfg.ttft_slo_s
            w[W_COMPLETED] += done.sum()
            w[W_TTFT_LATE] += late.sum()
            w[W_VIOLATIONS] += (late | (tpot > cfg.tpot_slo_s)).sum()
            hist_add(self._ttft_hist, np.ascontiguousarray(ttft))
            hist_add(self._tpot_hist, np.ascontiguousarray(tpot[out > 1]))
        self._retired = []

    def _close_window(self, seconds: float) -> dict[str, Any]:
        if self.fidelity == "engine":
            self._engine_latencies(self.now - seconds, self.now)
        else:
            expand_rows(self._row_ttft_weight, self.curves.ttft_s, WEIGHTS, self._ttft_hist)
            expand_rows(self._row_weight, self.curves.tpot_s, WEIGHTS, self._tpot_hist)
        w = self._window
        ttft_p50, ttft_p99, tpot_p50, tpot_p99 = latency_quantiles(self._ttft_hist, self._tpot_hist)
        ready_s = max(w[W_READY_S], 1e-9)
        summary = {
            "window_s": seconds,
            "arrivals": float(w[W_ARRIVALS]),
            "completed": float(w[W_COMPLETED]),
            "slo_violations": float(w[W_VIOLATIONS]),
            "ttft_late": float(w[W_TTFT_LATE]),
            "replica_seconds": float(w[W_REPLICA_S]),
            "idle_replica_seconds": float(w[W_IDLE_S]),
            "kv_utilization": float(w[W_KV_S] / ready_s) if w[W_READY_S] else 0.0,
            "running_per_replica": float(w[W_RUNNING_S] / ready_s) if w[W_READY_S] else 0.0,
            "waiting": float(w[W_WAITING_S] / max(seconds, 1e-9)),
            "ttft_p50_s": ttft_p50,
            "ttft_p99_s": ttft_p99,
            "tpot_p50_s": tpot_p50,
            "tpot_p99_s": tpot_p99,
        }
        self._totals += w
        self._total_ttft += self._ttft_hist
        self._total_tpot += self._tpot_hist
        w[:] = 0.0
        self._ttft_hist[:] = 0.0
        self._tpot_hist[:] = 0.0
        return summary

    # -- conservation and episode KPIs -------------------------------------------------------------
    def counts(self) -> dict[str, float]:
        """Requests by where they are; they add up to the arrivals (no request is ever lost)."""
        if self.fidelity == "fast":
            return {
                "arrived": float(self._totals[W_ARRIVALS] + self._window[W_ARRIVALS]),
                "at_router": float(self.router_queue[0]),
                "in_replicas": float(self.in_system.sum()),
                "completed": float(self.departed.sum()),
                "rejected": float(self._totals[W_REJECTED] + self._window[W_REJECTED]),
            }
        finished, rejected, held = self._gone["finished"], self._gone["rejected"], 0
        for engine in self.engines:
            if engine is not None:  # a replica holds what it was given and has not finished or refused
                c = engine.counts()
                finished, rejected = finished + c["finished"], rejected + c["rejected"]
                held += engine.n - c["finished"] - c["rejected"]
        return {
            "arrived": float(self._next_request),
            "at_router": float(len(self._router_ids)),
            "in_replicas": float(held),
            "completed": float(finished),
            "rejected": float(rejected),
        }

    def episode_kpis(self) -> dict[str, float]:
        t = self._totals + self._window
        completed = max(t[W_COMPLETED], 1e-9)
        ttft_p50, ttft_p99, tpot_p50, tpot_p99 = latency_quantiles(self._total_ttft, self._total_tpot)
        gpu_s = t[W_REPLICA_S] * self.spec.gpus
        return {
            "duration_s": self.now,
            "requests": float(t[W_ARRIVALS]),
            "completed": float(t[W_COMPLETED]),
            "slo_attainment": float(1.0 - t[W_VIOLATIONS] / completed) if t[W_COMPLETED] else math.nan,
            "ttft_p50_s": ttft_p50,
            "ttft_p99_s": ttft_p99,
            "tpot_p50_s": tpot_p50,
            "tpot_p99_s": tpot_p99,
            "gpu_hours": gpu_s / 3600.0,
            "cost_usd": gpu_s / 3600.0 * self.spec.price_per_gpu_hour,
            "idle_gpu_hours": t[W_IDLE_S] * self.spec.gpus / 3600.0,
            "mean_replicas": t[W_REPLICA_S] / max(self.now, 1e-9),
            "cold_starts": float(self.cold_starts),
            "warm_starts": float(self.warm_starts),
            "scale_ups": float(self.scale_ups),
            "scale_downs": float(self.scale_downs),
        }
