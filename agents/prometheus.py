"""Autoscale-v0's metrics from a live vLLM fleet: successive scrapes of each replica's ``/metrics``.

An operator's autoscaler scrapes every replica (Prometheus text format, parsed with
``prometheus_client``) once per decision interval and knows its own fleet (replicas ready,
starting, draining). ``VLLMFleetMetrics`` turns that into the metrics a policy trained on
Autoscale-v0 reads:

- ``running_per_replica``: the sum of ``vllm:num_requests_running`` over the ready replicas;
- ``queue_requests``: the sum of ``vllm:num_requests_waiting``;
- ``kv_utilization``: the mean ``vllm:kv_cache_usage_perc`` (``vllm:gpu_cache_usage_perc``
  before vLLM V1);
- ``ttft_p50_s``, ``ttft_p99_s``: the ``vllm:time_to_first_token_seconds`` histogram's buckets
  added since the last scrape;
- ``tpot_p50_s``, ``tpot_p99_s``: likewise ``vllm:inter_token_latency_seconds``
  (``vllm:time_per_output_token_seconds`` before V1);
- ``arrival_rate_rps``: (the change of ``vllm:request_success_total`` plus the change of the
  requests in the replicas) / the interval;
- ``slo_miss_fraction``: the larger of the shares of first tokens later than the TTFT SLO and
  of token gaps above the TPOT SLO.

Quantiles interpolate linearly inside a bucket, as PromQL's ``histogram_quantile`` does. The
token-gap histogram stands in for per-request TPOT (equal means without speculation), and the
SLO-miss share is estimated from the histograms, not counted per request.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

RUNNING, WAITING = "vllm:num_requests_running", "vllm:num_requests_waiting"
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
SUCCESS = "vllm:request_success"  # counter vllm:request_success_total
TTFT = "vllm:time_to_first_token_seconds"
ITL = ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")


def parse_replica(text: str) -> dict[str, Any]:
    """One replica's scrape: its gauges, its success counter and its two latency histograms
    (cumulative bucket counts by upper bound). Raises ValueError naming what is missing."""
    try:
        families = {f.name: f for f in text_string_to_metric_families(text)}
    except ValueError as err:
        raise ValueError(f"not Prometheus text format: {err}") from None

    def gauge(*names: str) -> float:
        for name in names:
            if name in families:
                return sum(s.value for s in families[name].samples)
        raise ValueError(f"the scrape has no {' or '.join(names)}")

    def histogram(*names: str) -> dict[float, float]:
        for name in names:
            if name in families:
                buckets: dict[float, float] = {}
                for s in families[name].samples:
                    if s.name.endswith("_bucket"):
                        le = float(s.labels["le"])
                        buckets[le] = buckets.get(le, 0.0) + s.value
                return buckets
        raise ValueError(f"the scrape has no histogram {' or '.join(names)}")

    return {
        "running": gauge(RUNNING),
        "waiting": gauge(WAITING),
        "kv": gauge(*KV_CACHE),
        "success": gauge(SUCCESS),
        "ttft": histogram(TTFT),
        "itl": histogram(*ITL),
    }


def quantile(buckets: Mapping[float, float], q: float) -> float:
    """PromQL's histogram_quantile over cumulative bucket counts (0.0 when empty)."""
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0.0
    if total <= 0:
        return 0.0
    rank, lower, below = q * total, 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if math.isinf(edge):
                return lower
            span = count - below
            return lower + (edge - lower) * ((rank - below) / span if span > 0 else 1.0)
        lower, below = edge, count
    return lower


def fraction_above(buckets: Mapping[float, float], threshold: float) -> float:
    """Share of the histogram's observations above ``threshold`` (linear inside a bucket)."""
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0.0
    if total <= 0:
        return 0.0
    lower, below = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if threshold < edge:
            inside = 0.0 if math.isinf(edge) else (threshold - lower) / (edge - lower)
            return 1.0 - (below + max(inside, 0.0) * (count - below)) / total
        lower, below = edge, count
    return 0.0


class VLLMFleetMetrics:
    """Autoscale-v0 metrics from one scrape per decision of every replica (state: the previous
    scrape's counters, the recent arrival rates)."""

    def __init__(self, ttft_slo_s: float, tpot_slo_s: float, preference: float, day_s: float = 86400.0):
        for name, value in (("ttft_slo_s", ttft_slo_s), ("tpot_slo_s", tpot_slo_s), ("day_s", day_s)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not (isinstance(preference, (int, float)) and 0.0 <= preference <= 1.0):
            raise ValueError(f"preference must be in [0, 1], got {preference!r}")
        self.ttft_slo_s, self.tpot_slo_s, self.preference, self.day_s = (
            ttft_slo_s,
            tpot_slo_s,
            preference,
            day_s,
        )
        self._previous: dict[str, Any] | None = None
        self._rates: deque[tuple[float, float]] = deque()

    def observe(
        self, scrapes: Iterable[str], *, now_s: float, ready: int, starting: int = 0, draining: int = 0
    ) -> dict[str, float]:
        """The metrics of the interval since the previous call, from one scrape per replica."""
        replicas = [parse_replica(text) for text in scrapes]
        if not replicas:
            raise ValueError("no scrapes: give the /metrics text of every replica")
        if ready < 0 or starting < 0 or draining < 0:
            raise ValueError("ready, starting and draining must be >= 0")
        fleet = {
            "running": sum(r["running"] for r in replicas),
            "waiting": sum(r["waiting"] for r in replicas),
            "success": sum(r["success"] for r in replicas),
            "ttft": _add_buckets(r["ttft"] for r in replicas),
            "itl": _add_buckets(r["itl"] for r in replicas),
            "now": float(now_s),
        }
        previous = self._previous or {"success": 0.0, "running": 0.0, "waiting": 0.0, "ttft": {}, "itl": {},
                                      "now": now_s - 1.0}  # fmt: skip
        seconds = max(fleet["now"] - previous["now"], 1e-9)
        in_flight = fleet["running"] + fleet["waiting"] - previous["running"] - previous["waiting"]
        arrivals = max(fleet["success"] - previous["success"] + in_flight, 0.0)
        rate = arrivals / seconds
        self._rates.append((fleet["now"], rate))
        while self._rates and self._rates[0][0] <= fleet["now"] - 60.0:
            self._rates.popleft()
        ttft = _subtract_buckets(fleet["ttft"], previous["ttft"])
        itl = _subtract_buckets(fleet["itl"], previous["itl"])
        self._previous = fleet
        return {
            "arrival_rate_rps": rate,
            "arrival_rate_60s_rps": sum(r for _, r in self._rates) / len(self._rates),
            "ready_replicas": float(ready),
            "starting_replicas": float(starting),
            "draining_replicas": float(draining),
            "queue_requests": fleet["waiting"],
            "running_per_replica": fleet["running"] / max(ready, 1),
            "kv_utilization": min(sum(r["kv"] for r in replicas) / len(replicas), 1.0),
            "ttft_p50_s": quantile(ttft, 0.5),
            "ttft_p99_s": quantile(ttft, 0.99),
            "tpot_p50_s": quantile(itl, 0.5),
            "tpot_p99_s": quantile(itl, 0.99),
            "slo_miss_fraction": max(
                fraction_above(ttft, self.ttft_slo_s), fraction_above(itl, self.tpot_slo_s)
            ),
            "time_of_day_s": float(now_s) % self.day_s,
            "day_s": self.day_s,
            "preference": self.preference,
        }


def _add_buckets(histograms: Iterable[Mapping[float, float]]) -> dict[float, float]:
    out: dict[float, float] = {}
    for h in histograms:
        for le, count in h.items():
            out[le] = out.get(le, 0.0) + count
    return out


def _subtract_buckets(now: Mapping[float, float], before: Mapping[float, float]) -> dict[float, float]:
    """Bucket counts added since ``before`` (a replica restart that resets counters counts anew)."""
    delta = {le: count - before.get(le, 0.0) for le, count in now.items()}
    return dict(now) if any(v < 0 for v in delta.values()) else delta
