"""Episode-level serving KPIs and the capacity search.

Definitions: TTFT = first token - arrival (queueing included); TPOT = (finish - first token) /
(output - 1); TBT = gap between consecutive token emissions of a request (a speculative step
emitting several tokens is one gap; a preemption's re-queueing lands in the next gap, as in
Sarathi-Serve's ``decode_token_execution_plus_preemption_time``); scheduling delay = first
scheduled - arrival. SLO attainment and goodput follow DistServe: a request is good when TTFT
<= TTFT SLO and TPOT <= TPOT SLO; goodput = good finished requests per second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from .config import EngineConfig
from .engine import FINISHED, REJECTED, RUNNING, WAITING, RequestArrays, ServingEngine


# -- the SLO rule (DistServe): written once, used by the KPIs, the env rewards and the oracles ----
@njit(cache=True)
def meets_slos(arrival, first, finish, output, ttft_slo, tpot_slo) -> bool:  # pragma: no cover
    """A finished request is good when TTFT <= TTFT SLO and TPOT <= TPOT SLO (TPOT = (finish -
    first token) / (output - 1); a one-token request has TPOT 0)."""
    tpot = (finish - first) / (output - 1) if output > 1 else 0.0
    return first - arrival <= ttft_slo and tpot <= tpot_slo


@njit(cache=True)
def good_mask(ids, arrival, first, finish, output, ttft_slo, tpot_slo) -> np.ndarray:  # pragma: no cover
    """``meets_slos`` for each of the finished requests ``ids``."""
    out = np.zeros(len(ids), dtype=np.bool_)
    for j in range(len(ids)):
        r = ids[j]
        out[j] = meets_slos(arrival[r], first[r], finish[r], output[r], ttft_slo, tpot_slo)
    return out


@njit(cache=True)
def settle_finished(
    status, arrival, first, finish, output, settled, start, ttft_slo, tpot_slo
):  # pragma: no cover
    """Count requests that finished since the last call: ``settled[r]`` marks those already
    counted; requests before ``start`` are all settled (finished or rejected). Returns
    ``(finished, good, new_start)``; one pass over the requests not yet settled."""
    n = len(status)
    finished = good = 0
    for r in range(start, n):
        if settled[r]:
            continue
        if status[r] == FINISHED:
            settled[r] = 1
            finished += 1
            if meets_slos(arrival[r], first[r], finish[r], output[r], ttft_slo, tpot_slo):
                good += 1
        elif status[r] == REJECTED:
            settled[r] = 1
    while start < n and settled[start]:
        start += 1
    return finished, good, start


@njit(cache=True)
def still_possible(
    status, arrival, first, finish, output, now, ttft_slo, tpot_slo
) -> int:  # pragma: no cover
    """Arrived requests (``status``, a prefix of the table) that are good or can still be: not
    rejected, not finished outside the SLOs, no first token later than the TTFT SLO (or none
    yet with a wait already past it), and a TPOT bound (now - first token) / (output - 1) still
    within the TPOT SLO. An optimistic count of the requests that will end up good."""
    count = 0
    for r in range(len(status)):
        st = status[r]
        if st == REJECTED:
            continue
        if st == FINISHED:
            if meets_slos(arrival[r], first[r], finish[r], output[r], ttft_slo, tpot_slo):
                count += 1
            continue
        if np.isnan(first[r]):
            if now - arrival[r] <= ttft_slo:
                count += 1
            continue
        if first[r] - arrival[r] > ttft_slo:
            continue
        if output[r] > 1 and (now - first[r]) / (output[r] - 1) > tpot_slo:
            continue
        count += 1
    return count


@njit(cache=True)
def inflight_slo_counts(status, arrival, first, now, ttft_slo, start):  # pragma: no cover
    """What a live system knows about its in-flight requests' TTFT, from request ``start`` on
    (those before are settled): ``(running with a first token later than the TTFT SLO,
    waiting for longer than half the TTFT SLO but not the whole, waiting for longer than the
    TTFT SLO)``. A preempted request waiting again counts by its first token, like a running one."""
    running_late = at_risk = waiting_late = 0
    for r in range(start, len(status)):
        st = status[r]
        if st == RUNNING or st == WAITING:
            if not np.isnan(first[r]):
                if first[r] - arrival[r] > ttft_slo:
                    running_late += 1
            elif st == WAITING:
                waited = now - arrival[r]
                if waited > ttft_slo:
                    waiting_late += 1
                elif waited > 0.5 * ttft_slo:
                    at_risk += 1
    return running_late, at_risk, waiting_late


def _q(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else float("nan")


def summarize(engine: ServingEngine) -> dict[str, float]:
    """KPIs of everything the engine has simulated so far."""
    cfg, now = engine.config, max(engine.now, 1e-9)
    arrived = engine.next_arrival
    req = engine.requests
    arrival, first_t, finish_t, output = req.arrival_s, req.first_token_s, req.finished_s, req.output_tokens
    status = req.status[:arrived]
    fin = np.flatnonzero(status == FINISHED)
    started = np.flatnonzero(~np.isnan(first_t[:arrived]))
    ttft = first_t[started] - arrival[started]
    out = output[fin]
    multi = fin[out > 1]
    tpot = (finish_t[multi] - first_t[multi]) / (output[multi] - 1)
    e2e = finish_t[fin] - arrival[fin]
    sched = np.where(np.isnan(req.scheduled_s[:arrived]), now, req.scheduled_s[:arrived]) - arrival[:arrived]
    good = good_mask(fin, arrival, first_t, finish_t, output, cfg.ttft_slo_s, cfg.tpot_slo_s)
    tot = engine.totals()
    counts = engine.counts()
    return {
        "duration_s": engine.now,
        **{f"requests_{k}": float(v) for k, v in counts.items()},
        "iterations": float(engine.iterations),
        "throughput_tokens_per_s": (tot.prefill_tokens + tot.decode_tokens + tot.first_tokens) / now,
        "output_tokens_per_s": (tot.decode_tokens + tot.first_tokens) / now,
        "requests_per_s": len(fin) / now,
        "ttft_p50_s": _q(ttft, 0.5),
        "ttft_p90_s": _q(ttft, 0.9),
        "ttft_p99_s": _q(ttft, 0.99),
        "tpot_mean_s": float(tpot.mean()) if len(tpot) else float("nan"),
        "tpot_p99_s": _q(tpot, 0.99),
        "e2e_mean_s": float(e2e.mean()) if len(e2e) else float("nan"),
        "e2e_p99_s": _q(e2e, 0.99),
        "tbt_p50_s": tot.gaps.quantile(0.5),
        "tbt_p99_s": tot.gaps.quantile(0.99),
        "tbt_slo_miss_fraction": tot.gaps.fraction_above(cfg.tbt_slo_s),
        "scheduling_delay_p50_s": _q(sched, 0.5),
        "scheduling_delay_p99_s": _q(sched, 0.99),
        "slo_attainment": float(good.mean()) if len(fin) else float("nan"),
        "goodput_requests_per_s": float(good.sum()) / now,
        "preemptions": float(tot.preemptions),
        "mean_batch_size": tot.batch_size_sum / max(tot.iterations, 1),
        "busy_fraction": tot.busy_s / now,
        "acceptance_rate": tot.accepted / tot.drafted if tot.drafted else float("nan"),
    }


@dataclass(frozen=True)
class CapacityResult:
    """Highest request rate meeting the SLOs, with the trials that found it."""

    capacity_rps: float
    trials: tuple[tuple[float, bool, float, float], ...]  # (rate, ok, p99 TBT, median sched delay)


def capacity_search(
    config: EngineConfig,
    make_requests: Callable[[float, np.random.Generator], RequestArrays],
    *,
    tbt_slo_s: float | None = None,
    scheduling_delay_slo_s: float = 2.0,
    low_rps: float = 0.05,
    high_rps: float = 64.0,
    iterations: int = 8,
    seed: int = 0,
) -> CapacityResult:
    """Sarathi-Serve's capacity: the highest rate with P99 TBT <= SLO and median scheduling
    delay <= 2 s, by bisection on the rate (each trial simulates ``make_requests(rate, rng)``
    to completion with the same seed)."""
    slo = config.tbt_slo_s if tbt_slo_s is None else tbt_slo_s
    if not 0 < low_rps < high_rps:
        raise ValueError(f"capacity_search: need 0 < low_rps < high_rps, got {low_rps}, {high_rps}")
    trials: list[tuple[float, bool, float, float]] = []

    def ok(rate: float) -> bool:
        rng = np.random.default_rng(seed)
        engine = ServingEngine(config, make_requests(rate, rng), rng)
        engine.run_to_completion()
        s = summarize(engine)
        good = s["tbt_p99_s"] <= slo and s["scheduling_delay_p50_s"] <= scheduling_delay_slo_s
        trials.append((rate, good, s["tbt_p99_s"], s["scheduling_delay_p50_s"]))
        return good

    lo, hi = low_rps, high_rps
    if not ok(lo):
        return CapacityResult(0.0, tuple(trials))
    if ok(hi):
        return CapacityResult(hi, tuple(trials))
    for _ in range(iterations):  # geometric bisection: rates span orders of magnitude
        mid = float(np.sqrt(lo * hi))
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return CapacityResult(lo, tuple(trials))
