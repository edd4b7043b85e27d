"""The fast replica model: each replica a fluid queue whose service follows the engine's curves.

Per replica, ``in_system`` requests (waiting and running) depart at the rate the engine reaches
with that many requests in it (throughput against Little's-law occupancy from the service curves;
the saturated throughput beyond the tabulated loads). Requests arriving while ``in_system`` sits
at a tabulated load's occupancy see that load's TTFT and TPOT distributions (loads up to the
replica's capacity); a backlog beyond BACKLOG_FACTOR x the occupancy at capacity adds its drain
time to their TTFT. So at steady load the model is the
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
    W_REJECTED,  # requests longer than the replica's max_model_len, refused at arrival
) = range(12)
N_WINDOW = 12
SMOOTHING_S = 30.0  # time constant of the occupancy that sets a replica's operating point
BACKLOG_FACTOR = 1.5
"""A backlog past this multiple of a replica's occupancy at capacity delays new requests by its
drain time at the saturated throughput (chosen where steady-state agreement at capacity and
overload transients both hold best; see the README's fidelity table)."""


class FluidTables:
    """The service curves as the flat arrays the compiled model reads."""

    def __init__(self, curves: ServiceCurves) -> None:
        self.curves = curves
        # occupancy -> departure rate, with the empty replica at the origin
        self.occupancy = np.concatenate([[0.0], curves.in_system])
        self.departures = np.concatenate([[0.0], curves.throughput_rps])
        self.max_throughput = max(curves.max_throughput_rps, float(curves.throughput_rps[-1]))
        # requests in a replica at its capacity: beyond it the tables' loads are backlogs in growth
        self.stable_occupancy = float(np.interp(curves.capacity_rps, curves.throughput_rps, curves.in_system))
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
            self.occupancy, self.departures, self.max_throughput, self.stable_occupancy, self.ttft,
            self.tpot, self.good,
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


SUBROWS = 4  # interpolation points per load row of the tables


@njit(cache=True)
def expand_rows(row_weight, table, weights, hist) -> None:  # pragma: no cover - compiled
    """Add the quantile values at each interpolation point (point v lies v % SUBROWS quarters of
    the way from load row v // SUBROWS to the next), weighted by its requests x the level's mass."""
    last = table.shape[0] - 1
    for v in range(len(row_weight)):
        if row_weight[v] > 0.0:
            j, g = v // SUBROWS, (v % SUBROWS) / SUBROWS
            j2 = min(j + 1, last)
            for q in range(len(weights)):
                value = table[j, q] + (table[j2, q] - table[j, q]) * g
                hist_add_one(hist, value, row_weight[v] * weights[q])
        row_weight[v] = 0.0


@njit(cache=True)
def _shifted_ttft(
    ttft, j, j2, g, wait, count, weights, slo_ttft, tpot_miss, ttft_hist, window
):  # pragma: no cover
    """``count`` requests whose TTFT is the tables' (rows j, j2, weight g) plus ``wait``: into the
    histogram, with their TTFT-late and any-SLO-miss shares."""
    late = 0.0
    for q in range(len(weights)):
        value = ttft[j, q] + (ttft[j2, q] - ttft[j, q]) * g + wait
        hist_add_one(ttft_hist, value, count * weights[q])
        if value > slo_ttft:
            late += weights[q]
    window[W_TTFT_LATE] += count * late
    window[W_VIOLATIONS] += count * min(1.0, late + (1.0 - late) * tpot_miss)


@njit(cache=True)
def _rows(i, f):  # pragma: no cover - compiled
    """Load rows (lo, hi) and weight of hi for occupancy segment i (row r is occupancy r + 1;
    below the lowest tabulated load, the lowest load's row)."""
    if i == 0:
        return 0, 0, 0.0
    return i - 1, i, f


@njit(cache=True)
def advance_fast(
    status, ready_at, in_system, smoothed, arrived, departed, router_queue, reject, arrivals, t0, dt,
    slo_ttft, occupancy, departures, max_throughput, stable, ttft, tpot, good, ttft_ok, kv, running,
    waiting, weights,
    window, ttft_hist, row_weight, row_ttft_weight,
):  # pragma: no cover - compiled  # fmt: skip
    """Advance every replica through ``len(arrivals)`` sub-steps of ``dt`` starting at ``t0``.

    ``arrivals[k]`` requests arrive in sub-step k; the fraction ``reject[0]`` too long for the
    replica is refused (``reject[1]`` carries a fraction of a request between sub-steps); the rest
    go to the ready replica with the fewest outstanding requests, one at a time. With no replica
    ready they wait at the router (``router_queue[0]`` requests, ``router_queue[1]`` the sum of
    their arrival times). Starting replicas become ready at ``ready_at``; draining replicas take
    nothing new and empty when done. Adds to ``window`` (W_*); each request's latency
    distribution is the tables' at its operating point: as counts per interpolation point between
    load rows (``row_weight`` for TPOT, ``row_ttft_weight`` for TTFT without a backlog wait;
    ``expand_rows`` turns them into histograms) or, when a backlog delays it, straight into
    ``ttft_hist``. Returns the requests in the system.
    """
    n_slots = len(status)
    l_max = occupancy[len(occupancy) - 1]
    ready = np.empty(n_slots, dtype=np.int64)  # per ready replica (first n_ready entries):
    rows = np.empty((n_slots, 3), dtype=np.int64)  # load rows j, j2 and interpolation point v
    frac = np.empty(n_slots)
    late0 = np.empty(n_slots)  # without a backlog wait: TTFT-late share, any-SLO-miss share
    miss0 = np.empty(n_slots)
    tpot_miss = np.empty(n_slots)
    plain = np.empty(n_slots)  # requests dispatched that met no backlog wait
    given = np.empty(n_slots)
    wait_sum = np.empty(n_slots)  # Σ backlog waits of the requests delayed by one, and their count
    delayed = np.empty(n_slots)
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
        window[W_ARRIVALS] += arrivals[k]
        reject[1] += arrivals[k] * reject[0]
        refused = int(reject[1])
        reject[1] -= refused
        window[W_REJECTED] += refused
        a = arrivals[k] - refused
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
        # each ready replica's operating point (its smoothed occupancy: fixed within the sub-step)
        plain[:n_ready] = 0.0
        given[:n_ready] = 0.0
        wait_sum[:n_ready] = 0.0
        delayed[:n_ready] = 0.0
        r = 0
        for s in range(n_slots):
            if status[s] == READY:
                j, j2, g = _rows(*_interp_index(min(smoothed[s], stable), occupancy))
                ready[r] = s
                rows[r, 0], rows[r, 1] = j, j2
                rows[r, 2] = j * SUBROWS + round(g * SUBROWS) if j2 > j else j * SUBROWS
                frac[r] = g
                p_good = good[j] + (good[j2] - good[j]) * g
                p_ttft = ttft_ok[j] + (ttft_ok[j2] - ttft_ok[j]) * g
                tpot_miss[r] = 1.0 - (p_good / p_ttft if p_ttft > 0 else 1.0)
                late0[r] = 1.0 - p_ttft
                miss0[r] = min(1.0, late0[r] + (1.0 - late0[r]) * tpot_miss[r])
                r += 1
        for phase in range(2):
            count = backlog if phase == 0 else a
            for q_req in range(count):
                best = 0
                for r in range(1, n_ready):
                    if in_system[ready[r]] < in_system[ready[best]]:
                        best = r
                s = ready[best]
                wait = max(in_system[s] - stable * BACKLOG_FACTOR, 0.0) / max_throughput
                if phase == 0:  # waits at the router, spread evenly up to twice their mean (oldest first)
                    wait += 2.0 * extra_wait * (backlog - q_req - 0.5) / backlog
                in_system[s] += 1.0
                arrived[s] += 1
                given[best] += 1.0
                if wait > 0.0 and phase == 0:  # a router wait: this request's own shift
                    j, j2, g = rows[best, 0], rows[best, 1], frac[best]
                    _shifted_ttft(
                        ttft, j, j2, g, wait, 1.0, weights, slo_ttft, tpot_miss[best], ttft_hist, window
                    )
                elif wait > 0.0:  # a backlog beyond the tables: shifted by its wait (mean per replica)
                    wait_sum[best] += wait
                    delayed[best] += 1.0
                else:
                    plain[best] += 1.0
        for r in range(n_ready):
            if delayed[r] > 0.0:
                j, j2, g, mean_wait = rows[r, 0], rows[r, 1], frac[r], wait_sum[r] / delayed[r]
                _shifted_ttft(
                    ttft, j, j2, g, mean_wait, delayed[r], weights, slo_ttft, tpot_miss[r], ttft_hist, window
                )
        # the distributions of the requests dispatched: quantiles interpolated between load rows,
        # on a grid of SUBROWS points per row (TPOT for all; TTFT for those without a wait)
        for r in range(n_ready):
            window[W_DISPATCHED] += given[r]
            row_weight[rows[r, 2]] += given[r]
            row_ttft_weight[rows[r, 2]] += plain[r]
            window[W_TTFT_LATE] += plain[r] * late0[r]
            window[W_VIOLATIONS] += plain[r] * miss0[r]
        # departures and time averages
        for s in range(n_slots):
            if status[s] != READY and status[s] != DRAINING:
                continue
            n = in_system[s]
            smoothed[s] += (n - smoothed[s]) * min(dt / SMOOTHING_S, 1.0)
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
