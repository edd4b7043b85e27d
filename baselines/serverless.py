"""Controllers for ServerlessAutoscale-v0: the FaaS keep-alive policies, Knative's default
configuration, KEDA's HTTP scaler, and an oracle that knows the coming requests.

The replica autoscalers of ``baselines.autoscale`` (KPA, HPA, static fleets, capacity planner)
serve this env too: it reports their metrics under the same names. References:
../shared/reference/autoscaling_mec.md A2-A4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from servegym.envs.autoscale import action_for_target
from servegym.envs.cluster.serverless_sim import IDLE_BIN_S, IDLE_BINS, S_COLD_NEXT
from servegym.envs.serverless import action_for_keep_alive, action_for_knob

from .autoscale import KEDAQueue, _active
from .rollout import best_by_rollout


def _require_mode(info: Mapping[str, Any], modes: tuple[str, ...], who: str) -> None:
    if info.get("action_mode") not in modes:
        raise ValueError(
            f"{who} controls action_mode {' or '.join(repr(m) for m in modes)} of "
            f"ServerlessAutoscale-v0; this env has action_mode={info.get('action_mode')!r}"
        )


class FixedKeepAlive:
    """A fixed keep-alive window and no pre-warming: AWS Lambda keeps an idle execution environment
    about 10 minutes, Azure Functions 20 (Shahrad et al., ATC'20; reference A4)."""

    def __init__(self, keep_alive_min: float = 10.0, prewarm_min: float = 0.0) -> None:
        if not (keep_alive_min >= 0 and prewarm_min >= 0):
            raise ValueError(f"windows must be >= 0 minutes, got {keep_alive_min}, {prewarm_min}")
        self.keep_alive_min, self.prewarm_min = keep_alive_min, prewarm_min
        self.name = f"FixedKeepAlive({keep_alive_min:g} min)"

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        _require_mode(info, ("keep-alive",), self.name)
        return action_for_keep_alive(info, 60.0 * self.prewarm_min, 60.0 * self.keep_alive_min)


class HybridHistogram:
    """The hybrid histogram policy of "Serverless in the Wild" (ATC'20), as dslab-faas implements it.

    Idle times (an invocation's arrival after the previous invocation's finish) fill one-minute bins
    over 4 hours. When at least ``oob_thr`` of them fall beyond the range, a forecast F of the next
    idle time sets keep-alive = 2 x ``arima_margin`` x F and pre-warm = (1 - ``arima_margin``) x F;
    when the bin counts' CV is below ``cv_thr`` the pattern is uncertain: keep-alive = the range,
    no pre-warm; otherwise keep-alive = (tail bin + 1) x bin x (1 + ``hist_margin``) and pre-warm =
    head bin x bin x (1 - ``hist_margin``), head and tail the 5th and 99th percentiles. The forecast
    is an AR(1) least-squares fit of the out-of-range idle times (dslab fits an ARIMA to all idle
    times); it cannot trigger in episodes shorter than the 4-hour range. The windows are then
    rounded to the env's menus (keep-alive up, pre-warm down).
    """

    HEAD, TAIL = 0.05, 0.99

    def __init__(
        self, cv_thr: float = 2.0, oob_thr: float = 0.5, hist_margin: float = 0.1, arima_margin: float = 0.15
    ) -> None:
        self.cv_thr, self.oob_thr, self.hist_margin, self.arima_margin = (
            cv_thr, oob_thr, hist_margin, arima_margin,
        )  # fmt: skip
        self.name = "HybridHistogram"
        self.range_s = IDLE_BINS * IDLE_BIN_S

    def reset(self, seed: int | None = None) -> None:
        self.bins = np.zeros(IDLE_BINS)
        self.out_of_range: list[float] = []

    def _percentile_bin(self, p: float) -> int:
        cum = np.cumsum(self.bins) / self.bins.sum()
        return int(min(np.searchsorted(cum, p - 1e-12, side="left"), IDLE_BINS - 1))

    def _forecast(self) -> float:
        x = np.asarray(self.out_of_range)
        if len(x) < 3:
            return float(x[-1])
        b, a = np.polyfit(x[:-1], x[1:], 1)
        return float(max(a + b * x[-1], 0.0))

    def windows(self) -> tuple[float, float]:
        """(pre-warm, keep-alive) seconds from the idle times seen so far."""
        in_range = float(self.bins.sum())
        oob = len(self.out_of_range)
        if oob and oob / (oob + in_range) >= self.oob_thr:
            f = self._forecast()
            return f * (1.0 - self.arima_margin), f * self.arima_margin * 2.0
        cv = float(self.bins.std(ddof=1) / self.bins.mean()) if in_range else 0.0
        if cv < self.cv_thr:
            return 0.0, self.range_s
        head, tail = self._percentile_bin(self.HEAD), self._percentile_bin(self.TAIL)
        return head * IDLE_BIN_S * (1.0 - self.hist_margin), (tail + 1) * IDLE_BIN_S * (
            1.0 + self.hist_margin
        )

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        _require_mode(info, ("keep-alive",), self.name)
        if not hasattr(self, "bins"):
            self.reset()
        m = info["metrics"]
        counts = np.asarray(m["idle_time_counts"])
        self.bins += counts[:IDLE_BINS]
        beyond = round(counts[IDLE_BINS])
        if beyond:  # the interval's out-of-range idle times (at most one per 4 h: their mean is exact)
            self.out_of_range.extend([m["idle_time_beyond_s"] / beyond] * beyond)
        return action_for_keep_alive(info, *self.windows())


class KnativeDefault:
    """Knative's default configuration in ``"kpa-target"`` mode: no target annotation, so the KPA
    aims at 70% of containerConcurrency (Schuler et al.'s baseline)."""

    name = "KnativeDefault"

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        _require_mode(info, ("kpa-target",), self.name)
        return action_for_knob(info, info["metrics"]["container_concurrency"])


class KEDAHttp(KEDAQueue):
    """KEDA's HTTP add-on: an HPA on the requests in flight (waiting at the interceptor and running),
    polled every 30 s, scaled to zero after a 300 s cooldown and back from zero on the first
    request; the per-replica target defaults to the KPA's, 70% of container concurrency."""

    def __init__(self, target: float | None = None, polling_s: float = 30.0, cooldown_s: float = 300.0):
        super().__init__(target or 1.0, polling_s, cooldown_s)
        self._fixed_target = target
        self.name = "KEDA(http in-flight)" if target is None else f"KEDA(http {target:g}/replica)"

    def desired(self, m: Mapping[str, float], scenario: Any) -> int:
        if self._fixed_target is None:
            self.target_waiting = 0.7 * m["replica_in_flight_at_capacity"]
        if _active(m) == 0 and m["queue_requests"] > 0:  # activation: 0 -> 1 at once
            self._last = None
        return super().desired(m, scenario)

    def _value(self, m: Mapping[str, float]) -> float:
        return m["running_per_replica"] * m["ready_replicas"] + m["queue_requests"]


class ServerlessNextWindowOracle:
    """Knows every coming request and its execution time, and the cold starts to come (privileged).

    It plans on the requests' ideal in-flight count (each running from its arrival for its
    execution time). For each interval it needs enough containers for that count, at
    ``per_container`` x a container's full-speed requests each: for its peak in the interval
    (``smooth_s=0``) or its mean over the ``smooth_s`` seconds from the interval's start. It asks
    for them as far ahead as the next cold starts take and keeps them while needed again within
    ``keep_s``. Alternatively (``fleet=n``) it runs a fixed fleet of ``n`` containers. Either
    way it never scales down while requests wait. Left unset, the plan is picked per episode:
    of the grid below and the fixed fleets around the ideal mean, the one whose whole-episode
    rollout on a copy of the env earns the most reward (the env's own objective). Needs
    ``action_mode="target"`` (or ``"delta"``, whose steps may clip its count).
    """

    SMOOTH_S = (0.0, 2.0, 60.0)
    PER_CONTAINER = (1.2, 1.0, 0.8)  # fractions of a container's full-speed requests
    KEEP_S = (0.0, 60.0)
    FLEETS = (-1, 0, 1, 2)  # fixed fleets: the ideal mean's containers plus these

    def __init__(
        self,
        env: Any,
        smooth_s: float | None = None,
        per_container: float | None = None,
        keep_s: float | None = None,
        fleet: int | None = None,
    ) -> None:
        for name, value, low, high in (
            ("smooth_s", smooth_s, 0.0, 1e6),
            ("per_container", per_container, 1e-3, 10.0),
            ("keep_s", keep_s, 0.0, 1e6),
            ("fleet", fleet, 0, 256),
        ):
            if value is not None and not (isinstance(value, (int, float)) and low <= value <= high):
                raise ValueError(f"{name} must be a number in [{low:g}, {high:g}] or None, got {value!r}")
        self.env, self.fleet = env, fleet
        self.smooth_s, self.per_container, self.keep_s = smooth_s, per_container, keep_s
        self.name = "ServerlessNextWindowOracle"

    def reset(self, seed: int | None = None) -> None:
        self._plan_params: dict[str, Any] | None = None
        self._need: np.ndarray | None = None

    def _candidates(self) -> list[dict[str, Any]]:
        if self.fleet is not None:
            return [{"fleet": int(self.fleet)}]
        smooth = (self.smooth_s,) if self.smooth_s is not None else self.SMOOTH_S
        pers = (self.per_container,) if self.per_container is not None else self.PER_CONTAINER
        keeps = (self.keep_s,) if self.keep_s is not None else self.KEEP_S
        plans: list[dict[str, Any]] = [
            {"smooth_s": a, "per_container": b, "keep_s": c} for a in smooth for b in pers for c in keeps
        ]
        if len(plans) > 1:
            sc = self.env.unwrapped.scenario
            ideal = self._ideal_mean()
            base = math.ceil(ideal / sc.full_speed_requests)
            fleets = sorted({min(max(base + d, sc.min_replicas, 1), sc.max_replicas) for d in self.FLEETS})
            plans += [{"fleet": n} for n in fleets]
        return plans

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        _require_mode(info, ("target", "delta"), "ServerlessNextWindowOracle")
        if not hasattr(self, "_plan_params"):
            self.reset()
        if self._plan_params is None:
            plans = self._candidates()
            self._plan_params = plans[0] if len(plans) == 1 else self._best(info, plans)
        return action_for_target(info, self.desired(info["metrics"]))

    @property
    def plan(self) -> dict[str, Any] | None:
        """The plan in use this episode (None before the first decision)."""
        return self._plan_params

    def _best(self, info: Mapping[str, Any], plans: list[dict[str, Any]]) -> dict[str, Any]:
        return best_by_rollout(
            self.env, plans, lambda env, params: ServerlessNextWindowOracle(env, **params), info
        )

    def _in_flight(self) -> tuple[np.ndarray, np.ndarray]:
        """The ideal in-flight count: event times and the count after each."""
        pool = self.env.unwrapped.pool
        start, end = pool.arr_t, pool.arr_t + pool.work
        times = np.concatenate([start, end])
        steps = np.concatenate([np.ones(len(start)), -np.ones(len(end))])
        order = np.lexsort((steps, times))  # at a tie, departures first
        return times[order], np.cumsum(steps[order])

    def _ideal_mean(self) -> float:
        """The ideal in-flight count's mean over the episode."""
        sc = self.env.unwrapped.scenario
        times, in_flight = self._in_flight()
        inside = times < sc.episode_s
        t, v = np.append(times[inside], sc.episode_s), in_flight[inside]
        return float(np.sum(v * np.diff(t))) / sc.episode_s if len(v) else 0.0

    def _plan(self) -> np.ndarray:
        """Containers each interval needs (see the class docstring)."""
        sc = self.env.unwrapped.scenario
        interval = sc.decision_interval_s
        times, in_flight = self._in_flight()
        n = math.ceil((sc.episode_s + interval) / interval) + 1
        smooth = self._plan_params["smooth_s"]
        span = min(max(round(smooth / interval), 1), n)
        edges = np.arange(n + span + 1) * interval
        before = np.searchsorted(times, edges, side="right") - 1  # the last event at or before each edge
        last = np.maximum(before, 0)
        level = np.where(before >= 0, in_flight[last], 0.0)
        if smooth == 0.0:
            value = np.zeros(n)
            bucket = np.minimum((times / interval).astype(np.int64), n - 1)
            np.maximum.at(value, bucket, in_flight)
            value = np.maximum(value, level[:n])  # the count carried into each interval
        else:
            area = np.concatenate([[0.0], np.cumsum(in_flight[:-1] * np.diff(times))])
            at_edge = np.where(before >= 0, area[last] + level * (edges - times[last]), 0.0)
            value = (at_edge[span : span + n] - at_edge[:n]) / (span * interval)
        per = max(1.0, math.floor(self._plan_params["per_container"] * sc.full_speed_requests))
        return np.ceil(value / per - 1e-9)

    def desired(self, m: Mapping[str, float]) -> int:
        env = self.env.unwrapped
        pool, sc = env.pool, env.scenario
        params = self._plan_params
        if "fleet" in params:
            need = float(params["fleet"])
        else:
            if self._need is None:
                self._need = self._plan()
            interval = sc.decision_interval_s
            k = round(pool.now / interval)
            nxt = int(pool.st[S_COLD_NEXT])
            coming = pool.cold[nxt : nxt + sc.max_replicas]
            lead_s = float(coming.max()) if len(coming) else float(sc.cold_start.quantile(0.99))
            horizon = math.ceil(lead_s / interval) + math.ceil(params["keep_s"] / interval)
            need = float(self._need[k : k + horizon + 1].max()) if k < len(self._need) else 0.0
        hold = pool.active if pool.counts()["waiting"] else 0  # no scaling down while requests wait
        return int(min(max(need, hold, sc.min_replicas), sc.max_replicas))
