"""The fast replica model: each replica a fluid queue whose service follows the engine's curves.

Per replica, ``in_system`` requests (waiting and running) depart at the rate the engine reaches
with that many requests in it (throughput against Little's-law occupancy from the service curves;
the saturated throughput beyond the tabulated loads). Requests arriving while ``in_system`` sits
at a tabulated load's occupancy see that load's TTFT and TPOT distributions; a backlog beyond the
largest tabulated occupancy adds its drain time to their TTFT. So at steady load the model is the
engine's tables, and under bursts and cold starts it is a queue with the engine's speed; where the
two fidelities part is measured by the agreement test (tests/cluster/test_agreement.py).

All replicas of a pool advance together in one compiled call per decision, in sub-steps of
``dt`` seconds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..serving.metrics import hist_add_one
from .service_curves import WEIGHTS, ServiceCurves

EMPTY, STARTING, READY, DRAINING = range(4)
STATUS_NAMES = ("empty", "starting", "ready", "draining")

# window counters (float64)
(
    W_ARRIVALS,  # requests that arrived
    W_DISPATCHED,  # requests handed to a replica
    W_COMPLETED,  # requests finished
    W_VIOLATIONS,  # requests missing the TTFT or the TPOT SLO
    W_TTFT_LATE,  # requests missing the TTFT SLO
    W_REPLICA_S,  # replica-seconds billed (starting, ready, draining)
    W_READY_S,  # replica-seconds ready
    W_KV_S,  # Σ KV utilisation x seconds over ready replicas
    W_RUNNING_S,  # Σ running requests x seconds
    W_WAITING_S,  # Σ waiting requests x seconds (replica queues and the router)
    W_IDLE_S,  # ready replica-seconds with nothing to do
) = range(11)
N_WINDOW = 11


class FluidTables:
    """The service curves as the flat arrays the compiled model reads."""

    def __init__(self, curves: ServiceCurves) -> None:
        self.curves = curves
        # occupancy -> departure rate, with the empty replica at the origin
        self.occupancy = np.concatenate([[0.0], curves.in_system])
        self.departures = np.concatenate([[0.0], curves.throughput_rps])
        self.max_throughput = max(curves.max_throughput_rps, float(curves.throughput_rps[-1]))
        self.load = curves.load
        self.ttft = np.ascontiguousarray(curves.ttft_s)
        self.tpot = np.ascontiguousarray(curves.tpot_s)
        self.good = curves.good
        self.ttft_ok = curves.ttft_ok
        self.kv = curves.kv_utilization
        self.running = curves.running
        self.waiting = curves.waiting
        self.weights = WEIGHTS

    def arrays(self) -> tuple:
        return (
            self.occupancy, self.departures, self.max_throughput, self.ttft, self.tpot, self.good,
            self.ttft_ok, self.kv, self.running, self.waiting, self.weights,
        )  # fmt: skip


@njit(cache=True)
def _interp_index(x, xs):  # pragma: no cover - compiled
    """(i, f): x lies at xs[i] + f (xs[i+1] - xs[i]) (clamped to the ends)."""
    n = len(xs)
    if x <= xs[0]:
        return 0, 0.0
    if x >= xs[n - 1]:
        return n - 2, 1.0
    i = np.searchsorted(xs, x, side="right") - 1
    span = xs[i + 1] - xs[i]
    return i, (x - xs[i]) / span if span > 0 else 0.0


@njit(cache=True)
def expand_rows(row_weight, table, weights, hist) -> None:  # pragma: no cover - compiled
    """Add each load row's quantile values, weighted by the row's weight x the level's mass."""
    for j in range(len(row_weight)):
        if row_weight[j] > 0.0:
            for q in range(len(weights)):
                hist_add_one(hist, table[j, q], row_weight[j] * weights[q])
        row_weight[j] = 0.0


@njit(cache=True)
def _rows(i, f):  # pragma: no cover - compiled
    """Load rows (lo, hi) and weight of hi for occupancy segment i (row r is occupancy r + 1;
    below the lowest tabulated load, the lowest load's row)."""
    if i == 0:
        return 0, 0, 0.0
    return i - 1, i, f


@njit(cache=True)
def advance_fast(
    status, ready_at, in_system, arrived, departed, router_queue, arrivals, t0, dt, slo_ttft,
    occupancy, departures, max_throughput, ttft, tpot, good, ttft_ok, kv, running, waiting, weights,
    window, ttft_hist, row_weight, row_ttft_weight,
):  # pragma: no cover - compiled  # fmt: skip
    """Advance every replica through ``len(arrivals)`` sub-steps of ``dt`` starting at ``t0``.

    ``arrivals[k]`` requests arrive in sub-step k and go to the ready replica with the fewest
    outstanding requests, one at a time; with no replica ready they wait at the router
    (``router_queue[0]`` requests, ``router_queue[1]`` Σ of their arrival times). Starting replicas
    become ready at ``ready_at``; draining replicas take nothing new and empty when done. Adds
    to ``window`` (W_*); each request's latency distribution is the tables' at its operating
    point: as weights of load rows (``row_weight`` for TPOT, ``row_ttft_weight`` for TTFT
    without a backlog wait; ``expand_rows`` turns them into histograms) or, when a backlog
    delays it, straight into ``ttft_hist``. Returns the requests in the system.
    """
    n_slots = len(status)
    l_max = occupancy[len(occupancy) - 1]
    for k in range(len(arrivals)):
        t = t0 + k * dt
        for s in range(n_slots):
            if status[s] == STARTING and ready_at[s] <= t:
                status[s] = READY
        n_ready = 0
        for s in range(n_slots):
            if status[s] != EMPTY:
                window[W_REPLICA_S] += dt
            if status[s] == READY:
                n_ready += 1
        a = arrivals[k]
        window[W_ARRIVALS] += a
        mid = t + 0.5 * dt
        if n_ready == 0:
            router_queue[0] += a
            router_queue[1] += a * mid
            window[W_WAITING_S] += router_queue[0] * dt
            continue
        # the router's backlog first (its wait so far is added to those requests' TTFT), then
        # this sub-step's arrivals, each to the least-loaded ready replica
        backlog = int(router_queue[0])
        waited = t * backlog - router_queue[1] if backlog else 0.0
        extra_wait = waited / backlog if backlog else 0.0
        router_queue[0] = 0.0
        router_queue[1] = 0.0
        for phase in range(2):
            count = backlog if phase == 0 else a
            for _ in range(count):
                best, best_load = -1, 1e300
                for s in range(n_slots):
                    if status[s] == READY and in_system[s] < best_load:
                        best, best_load = s, in_system[s]
                # the latency this request will see: the replica's operating point as it arrives
                j, j2, g = _rows(*_interp_index(in_system[best], occupancy))
                wait = max(in_system[best] - l_max, 0.0) / max_throughput
                if phase == 0:
                    wait += extra_wait
                in_system[best] += 1.0
                arrived[best] += 1
                window[W_DISPATCHED] += 1
                row_weight[j] += 1.0 - g  # its TPOT (and, without a wait, its TTFT) distribution
                row_weight[j2] += g
                p_good = good[j] + (good[j2] - good[j]) * g
                p_ttft = ttft_ok[j] + (ttft_ok[j2] - ttft_ok[j]) * g
                if wait > 0.0:  # a backlog beyond the tables: the TTFT distribution shifted by it
                    late = 0.0
                    for q in range(len(weights)):
                        value = ttft[j, q] + (ttft[j2, q] - ttft[j, q]) * g + wait
                        hist_add_one(ttft_hist, value, weights[q])
                        if value > slo_ttft:
                            late += weights[q]
                else:
                    row_ttft_weight[j] += 1.0 - g
                    row_ttft_weight[j2] += g
                    late = 1.0 - p_ttft
                # misses: the TTFT tail with this wait, and the operating point's TPOT misses
                tpot_miss = 1.0 - (p_good / p_ttft if p_ttft > 0 else 1.0)
                window[W_TTFT_LATE] += late
                window[W_VIOLATIONS] += min(1.0, late + (1.0 - late) * tpot_miss)
        # departures and time averages
        for s in range(n_slots):
            if status[s] != READY and status[s] != DRAINING:
                continue
            n = in_system[s]
            i, f = _interp_index(n, occupancy)
            rate = departures[i] + (departures[i + 1] - departures[i]) * f
            if n > l_max:
                rate = max_throughput
            out = min(n, rate * dt)
            in_system[s] = n - out
            departed[s] += out
            window[W_COMPLETED] += out
            if status[s] == READY:
                window[W_READY_S] += dt
                j, j2, g = _rows(i, f)
                util = kv[j] + (kv[j2] - kv[j]) * g if n > 0 else 0.0
                window[W_KV_S] += (1.0 if n > l_max else util) * dt
                run_n = running[j] + (running[j2] - running[j]) * g if n > 0 else 0.0
                window[W_RUNNING_S] += min(run_n, n) * dt
                window[W_WAITING_S] += max(n - run_n, 0.0) * dt
                if n < 0.5:
                    window[W_IDLE_S] += dt
            if status[s] == DRAINING and in_system[s] < 0.5:  # the last request has left
                departed[s] += in_system[s]
                window[W_COMPLETED] += in_system[s]
                in_system[s] = 0.0
                status[s] = EMPTY
    total = router_queue[0]
    for s in range(n_slots):
        total += in_system[s]
    return total
