"""The containers of one serverless function and the activator in front of them (Python side).

``reset`` gives the episode's requests (arrival times and execution times); ``scale_to``,
``set_target`` and ``set_keep_alive`` are the controls; ``advance(t)`` runs the compiled event
simulation (``serverless_sim``) to ``t`` and returns the interval's summary. Cold-start durations
come from their own generator in order of use, so the k-th container started in an episode takes
the same time whatever policy started it (common random numbers across controllers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..serving.metrics import HIST_BINS
from ..serving.windows import hist_quantile
from . import serverless_sim as sim
from .fast_pool import DRAINING, EMPTY, READY, STARTING
from .kpa import TICK_S, new_state

MODES = {"replica": sim.MODE_REPLICA, "kpa": sim.MODE_KPA, "keep-alive": sim.MODE_KEEPALIVE}
COLD_BUFFER = 4096


class ServerlessPool:
    """Containers of one function behind an activator; see ``serverless_sim`` for the rules."""

    def __init__(
        self,
        container_concurrency: int,
        max_replicas: int,
        *,
        parallelism: int = 0,
        min_replicas: int = 0,
        slo_s: float = 1.0,
        mode: str = "replica",
    ) -> None:
        def bad(name: str, expected: str, value: Any) -> ValueError:
            return ValueError(f"serverless pool: {name} must be {expected}, got {value!r}")

        for name, value, low in (
            ("container_concurrency", container_concurrency, 1),
            ("max_replicas", max_replicas, 1),
            ("min_replicas", min_replicas, 0),
            ("parallelism", parallelism, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise bad(name, f"an integer >= {low}", value)
        if container_concurrency > 1000:
            raise bad("container_concurrency", "at most 1000", container_concurrency)
        if min_replicas > max_replicas:
            raise bad("min_replicas", f"at most max_replicas={max_replicas}", min_replicas)
        if not (isinstance(slo_s, (int, float)) and math.isfinite(slo_s) and slo_s > 0):
            raise bad("slo_s", "a number of seconds > 0", slo_s)
        if mode not in MODES:
            raise bad("mode", f"one of {sorted(MODES)}", mode)
        self.container_concurrency, self.max_replicas, self.min_replicas = (
            container_concurrency, max_replicas, min_replicas,
        )  # fmt: skip
        self.parallelism = parallelism or container_concurrency
        self.mode = mode
        self.cfg = np.zeros(sim.N_CFG)
        self.cfg[sim.C_CONC] = container_concurrency
        self.cfg[sim.C_PAR] = self.parallelism
        self.cfg[sim.C_SLO] = slo_s
        self.cfg[sim.C_MIN] = min_replicas
        self.cfg[sim.C_MAX] = max_replicas
        self.cfg[sim.C_MODE] = MODES[mode]
        self.cfg[sim.C_TICK] = TICK_S
        self.cfg[sim.C_TARGET] = container_concurrency
        self.n_slots = 2 * max_replicas + 1  # room for a fleet draining while a new one starts
        self._started = False

    # -- controls ------------------------------------------------------------------------------------
    def set_target(self, per_pod_target: float) -> None:
        """The KPA's per-pod concurrency target (``mode="kpa"``)."""
        self.cfg[sim.C_TARGET] = per_pod_target

    def set_keep_alive(self, prewarm_s: float, keep_alive_s: float) -> None:
        """The FaaS windows (``mode="keep-alive"``)."""
        self.cfg[sim.C_PREWARM] = prewarm_s
        self.cfg[sim.C_KEEPALIVE] = keep_alive_s

    @property
    def target(self) -> float:
        return float(self.cfg[sim.C_TARGET])

    @property
    def keep_alive_s(self) -> float:
        return float(self.cfg[sim.C_KEEPALIVE])

    @property
    def prewarm_s(self) -> float:
        return float(self.cfg[sim.C_PREWARM])

    # -- episode -----------------------------------------------------------------------------------
    def reset(
        self,
        arrival_s: np.ndarray,
        work_s: np.ndarray,
        cold_sampler: Callable[[int], np.ndarray],
        initial_replicas: int,
    ) -> None:
        """A new episode: these requests, ``initial_replicas`` containers ready at time 0."""
        if len(arrival_s) != len(work_s):
            raise ValueError("serverless pool: one execution time per request expected")
        if not 0 <= initial_replicas <= self.max_replicas:
            raise ValueError(
                f"serverless pool: initial_replicas must be in 0..{self.max_replicas}, got {initial_replicas}"
            )
        self.arr_t = np.ascontiguousarray(arrival_s, dtype=np.float64)
        self.work = np.ascontiguousarray(work_s, dtype=np.float64)
        self.late = np.zeros(len(self.arr_t), dtype=np.uint8)
        self._cold_sampler = cold_sampler
        self.cold = np.ascontiguousarray(cold_sampler(COLD_BUFFER), dtype=np.float64)
        arrays = sim.new_arrays(self.n_slots, self.container_concurrency)
        self.status, self.cont, self.n_busy = arrays["status"], arrays["cont"], arrays["n_busy"]
        self.slot_req, self.slot_tag = arrays["slot_req"], arrays["slot_tag"]
        self.prewarm_at, self.buckets = arrays["prewarm_at"], arrays["buckets"]
        self.st = np.zeros(sim.N_STATE)
        self.st[sim.S_NEXT_TICK] = TICK_S
        self.st[sim.S_BUCKET_END] = 1.0
        self.st[sim.S_LAST_FINISH] = -1.0
        self.win = np.zeros(sim.N_WINDOW)
        self.lat_hist = np.zeros(HIST_BINS)
        self.idle_hist = np.zeros(sim.IDLE_BINS + 1)
        self._between = np.zeros(sim.N_WINDOW)  # scaling done between intervals
        self._episode = np.zeros(sim.N_WINDOW)
        self._episode_lat = np.zeros(HIST_BINS)
        for s in range(initial_replicas):  # warm from the start: ready, unbilled before time 0
            self.status[s] = READY
            self.cont[s, sim.F_NEXT_DONE] = sim.INF
        self.st[sim.S_DESIRED] = initial_replicas
        self.st[sim.S_HIGH] = initial_replicas
        self.kpa = new_state(0.0, initial_replicas)
        self._started = True

    @property
    def now(self) -> float:
        return float(self.st[sim.S_NOW])

    @property
    def active(self) -> int:
        """Containers starting or ready (the count a scaling decision sets)."""
        return self.count(STARTING) + self.count(READY)

    def count(self, status: int) -> int:
        return int(np.count_nonzero(self.status == status))

    def idle_containers(self) -> int:
        return int(np.count_nonzero((self.status == READY) & (self.n_busy == 0)))

    def scale_to(self, target: int) -> int:
        """Start or remove containers so ``target`` are starting or ready; returns the change."""
        if not 0 <= target <= self.max_replicas:
            raise ValueError(f"serverless pool: target must be in 0..{self.max_replicas}, got {target}")
        self._ensure_cold(self.max_replicas)
        return int(
            sim.scale_to(
                target, self.now, self.status, self.cont, self.n_busy, self.cold, self.st, self._between
            )
        )

    def _ensure_cold(self, needed: int) -> None:
        """Cold-start durations for at least ``needed`` more starts, drawn in order of use."""
        used = int(self.st[sim.S_COLD_NEXT])
        if used + needed > len(self.cold):
            more = self._cold_sampler(max(needed, COLD_BUFFER))
            self.cold = np.concatenate([self.cold, more])

    def advance(self, t_end: float) -> dict[str, Any]:
        """Run to ``t_end``; the interval's summary (counters ``W_*`` by name, latency quantiles,
        the idle-time histogram)."""
        if not self._started:
            raise RuntimeError("serverless pool: advance() before reset()")
        t0 = self.now
        arrivals = int(np.searchsorted(self.arr_t, t_end, side="left")) - int(self.st[sim.S_NEXT_ARR])
        in_system = int(self.st[sim.S_NEXT_ARR] - self.st[sim.S_QHEAD]) + int(self.n_busy.sum())
        ticks = math.ceil((t_end - t0) / TICK_S) + 1
        self._ensure_cold(2 * (arrivals + in_system) + (ticks + 4) * self.n_slots)
        sim.advance(
            t_end, self.cfg, self.st, self.status, self.cont, self.n_busy, self.slot_req, self.slot_tag,
            self.arr_t, self.work, self.late, self.cold, self.prewarm_at, self.buckets, self.kpa,
            self.win, self.lat_hist, self.idle_hist,
        )  # fmt: skip
        return self._close_window(t_end - t0)

    def _close_window(self, seconds: float) -> dict[str, Any]:
        w = self.win
        w += self._between  # scaling done before the interval (``scale_to``) belongs to it
        self._between[:] = 0.0
        total = w[sim.W_COMPLETED]
        summary = {name: float(w[index]) for name, index in WINDOW_INDEX.items()}
        summary["window_s"] = seconds
        summary["latency_p50_s"] = hist_quantile(self.lat_hist, total, 0.5)
        summary["latency_p95_s"] = hist_quantile(self.lat_hist, total, 0.95)
        summary["latency_p99_s"] = hist_quantile(self.lat_hist, total, 0.99)
        summary["idle_time_counts"] = self.idle_hist.copy()
        self._episode += w
        self._episode_lat += self.lat_hist
        w[:] = 0.0
        self.lat_hist[:] = 0.0
        self.idle_hist[:] = 0.0
        return summary

    def window_averages(self) -> tuple[float, float]:
        """(stable, panic): the KPA's 60 s and 6 s mean concurrency of the buckets so far."""
        return sim.window_averages(self.buckets, int(self.st[sim.S_N_BUCKETS]))

    # -- conservation, billing, episode KPIs --------------------------------------------------------
    def counts(self) -> dict[str, float]:
        """Requests by where they are; they add up to the arrivals (no request is ever lost)."""
        return {
            "arrived": float(self.st[sim.S_NEXT_ARR]),
            "waiting": float(self.st[sim.S_NEXT_ARR] - self.st[sim.S_QHEAD]),
            "in_service": float(self.n_busy.sum()),
            "completed": float(self.st[sim.S_COMPLETED]),
        }

    def container_lifetimes_s(self) -> float:
        """Σ of every container's time from its start to its end (or now): what billing integrates."""
        live = self.status != EMPTY
        return float(self.st[sim.S_LIFETIME_S] + (self.now - self.cont[live, sim.F_STARTED_AT]).sum())

    def late_in_system(self) -> int:
        """Requests still waiting or running that have already missed the SLO."""
        ids = [int(self.st[sim.S_QHEAD]) + k for k in range(int(self.counts()["waiting"]))]
        ids += [int(r) for r in self.slot_req[self.status != EMPTY].ravel() if r >= 0]
        return int(self.late[ids].sum()) if ids else 0

    def episode_totals(self) -> tuple[dict[str, float], np.ndarray]:
        """The episode's counters by name (intervals closed so far) and its latency histogram."""
        return {name: float(self._episode[i]) for name, i in WINDOW_INDEX.items()}, self._episode_lat


WINDOW_INDEX = {
    "arrivals": sim.W_ARRIVALS,
    "dispatched": sim.W_DISPATCHED,
    "completed": sim.W_COMPLETED,
    "slo_violations": sim.W_VIOLATIONS,
    "cold_start_requests": sim.W_COLD_REQUESTS,
    "cold_starts": sim.W_COLD_STARTS,
    "container_seconds": sim.W_CONTAINER_S,
    "ready_seconds": sim.W_READY_S,
    "idle_container_seconds": sim.W_IDLE_S,
    "busy_request_seconds": sim.W_BUSY_S,
    "queue_request_seconds": sim.W_QUEUE_S,
    "scaling_actions": sim.W_SCALE_ACTIONS,
    "scale_ups": sim.W_SCALE_UPS,
    "scale_downs": sim.W_SCALE_DOWNS,
    "execution_seconds": sim.W_EXEC_S,
    "latency_seconds": sim.W_LATENCY_S,
    "idle_time_beyond_s": sim.W_IDLE_BEYOND_S,
}
"""Names of the interval counters in a summary."""

__all__ = ["DRAINING", "EMPTY", "MODES", "READY", "STARTING", "ServerlessPool"]
