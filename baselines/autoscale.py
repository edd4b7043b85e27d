"""Replica autoscalers for Autoscale-v0, as production runs them (../shared/reference/autoscaling_mec.md
A1-A5), and an oracle that knows the coming traffic.

Each computes a replica count from ``info["metrics"]`` (what the replicas' metrics endpoints and
the autoscaler report) and the deployment's static facts (``info["scenario"]``: SLOs, a replica's
profiled capacity), and returns the action asking for it (``action_for_target``). Time windows
and cooldowns are counted in decisions of ``decision_interval_s``: the env decides every 15 s
(the HPA's sync period), so sub-interval windows (Knative's 6 s panic window, its 2 s tick) are
approximated by one interval.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from servegym.envs.autoscale import action_for_target, planner_replicas
from servegym.envs.cluster.kpa import BUCKET_S, TARGET_MIN, kpa_scale, new_state

from .rollout import best_by_rollout


def _ready(m: Mapping[str, float]) -> int:
    return max(round(m["ready_replicas"]), 0)


def _active(m: Mapping[str, float]) -> int:
    return round(m["ready_replicas"] + m["starting_replicas"])


def _in_flight(m: Mapping[str, float]) -> float:
    """Requests in the replicas now: running plus queued (what a concurrency metric counts)."""
    return m["running_per_replica"] * m["ready_replicas"] + m["queue_requests"]


class _Autoscaler:
    """Common plumbing: the decision interval, the replica bounds, the action for a count."""

    name = "autoscaler"

    def reset(self, seed: int | None = None) -> None:
        self._history: deque[tuple[int, int]] = deque()  # (decision, recommendation)
        self._t = 0

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        m = info["metrics"]
        if not hasattr(self, "_t"):
            self.reset()
        self._t += 1
        desired = self.desired(m, info["scenario"])
        bounded = min(max(desired, round(m["min_replicas"])), round(m["max_replicas"]))
        return action_for_target(info, bounded)

    def desired(self, m: Mapping[str, float], scenario: Any) -> int:
        raise NotImplementedError

    def _decisions(self, m: Mapping[str, float], seconds: float) -> int:
        return max(round(seconds / m["decision_interval_s"]), 1)

    def _stabilised_down(self, m: Mapping[str, float], recommendation: int, window_s: float) -> int:
        """Scale-down stabilisation: the highest recommendation of the last ``window_s``."""
        keep = self._decisions(m, window_s)
        self._history.append((self._t, recommendation))
        while self._history and self._history[0][0] <= self._t - keep:
            self._history.popleft()
        return max(r for _, r in self._history)


class StaticReplicas(_Autoscaler):
    """A fixed fleet sized for the scenario's mean (or peak) traffic at the replica's capacity."""

    def __init__(self, level: str = "mean") -> None:
        if level not in ("mean", "peak"):
            raise ValueError(f"level must be 'mean' or 'peak', got {level!r}")
        self.level = level
        self.name = f"Static({level})"

    def desired(self, m: Mapping[str, float], scenario: Any) -> int:
        rate = scenario.mean_rate if self.level == "mean" else scenario.peak_rate()
        return math.ceil(rate / m["replica_capacity_rps"])


class HPA(_Autoscaler):
    """Kubernetes HPA on requests in flight per replica: ``ceil(ready x metric / target)`` outside a
    10% tolerance, scale-up limited to max(+4, +100%) per sync, scale-down stabilised over 300 s.
    The target is ``target_fraction`` of the in-flight requests a replica holds at capacity."""

    def __init__(
        self, target_fraction: float = 0.8, tolerance: float = 0.1, stabilization_s: float = 300.0
    ) -> None:
        if not 0 < target_fraction <= 2:
            raise ValueError(f"target_fraction must be in (0, 2], got {target_fraction}")
        self.target_fraction, self.tolerance, self.stabilization_s = (
            target_fraction,
            tolerance,
            stabilization_s,
        )
        self.name = f"HPA(target={target_fraction:g}x)"

    def desired(self, m: Mapping[str, float], scenario: Any) -> int:
        ready, active = _ready(m), _active(m)
        if ready == 0:
            return max(active, 1)  # the HPA's minReplicas is at least 1: it never scales to zero
        target = self.target_fraction * m["replica_in_flight_at_capacity"]
        ratio = _in_flight(m) / ready / target
        recommendation = active if abs(1.0 - ratio) <= self.tolerance else math.ceil(ratio * ready)
        recommendation = min(recommendation, max(active + 4, 2 * active))  # scale-up policies, Max
        return max(self._stabilised_down(m, recommendation, self.stabilization_s), 1)


class KPA(_Autoscaler):
    """Knative's KPA: concurrency averaged over a 60 s stable window and a panic window (one
    interval here), per-pod target 70% of the concurrency a replica takes at capacity; panic
    when the panic window wants twice the ready pods, and no scaling down until 60 s calm.
    Where the platform reports Knative's window concurrency (ServerlessAutoscale-v0), it makes
    Knative's exact decision on them instead (``envs.cluster.kpa.kpa_scale``)."""

    def __init__(
        self, target_percentage: float = 0.7, panic_threshold: float = 2.0, stable_window_s: float = 60.0
    ):
        self.target_percentage, self.panic_threshold, self.stable_window_s = (
            target_percentage, panic_threshold, stable_window_s,
        )  # fmt: skip
        self.name = "KPA"

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._concurrency: deque[float] = deque()
        self._panic_until = -1
        self._panic_pods = 0
        self._knative_state: np.ndarray | None = None

    def desired(self, m: Mapping[str, float], scenario: Any) -> int:
        if "stable_concurrency" in m and "panic_concurrency" in m:
            return self._knative(m)
        ready = max(_ready(m), 1)
        target = max(0.01, self.target_percentage * m["replica_in_flight_at_capacity"])
        now = _in_flight(m)
        self._concurrency.append(now)
        while len(self._concurrency) > self._decisions(m, self.stable_window_s):
            self._concurrency.popleft()
        stable = sum(self._concurrency) / len(self._concurrency)
        max_up, max_down = math.ceil(1000 * ready), math.floor(ready / 2)
        dspc = min(max(math.ceil(stable / target), max_down), max_up)
        dppc = min(max(math.ceil(now / target), max_down), max_up)
        if math.ceil(now / target) / ready >= self.panic_threshold:
            self._panic_until = self._t + self._decisions(m, self.stable_window_s)
        if self._t <= self._panic_until:
            self._panic_pods = max(self._panic_pods, dspc, dppc, _active(m))
            return self._panic_pods
        self._panic_pods = 0
        return dspc

    def _knative(self, m: Mapping[str, float]) -> int:
        """Knative's own decision (``kpa_scale``, the code the env runs in ``"kpa-target"`` mode) on
        the 60 s / 6 s window concurrency the platform reports (Knative's
        ``autoscaler_stable_request_concurrency`` and ``autoscaler_panic_request_concurrency``)."""
        if self._knative_state is None:
            self._knative_state = new_state(m["time_s"], _ready(m))
        if m["time_s"] < BUCKET_S:  # no one-second bucket yet: Knative has no data to scale on
            return _active(m)
        target = max(TARGET_MIN, self.target_percentage * m["replica_in_flight_at_capacity"])
        return int(
            kpa_scale(
                self._knative_state, m["time_s"], _ready(m), m["stable_concurrency"],
                m["panic_concurrency"], target, round(m["min_replicas"]), round(m["max_replicas"]),
            )
        )  # fmt: skip


class KEDAQueue(_Autoscaler):
    """KEDA scaling on ``vllm:num_requests_waiting`` (vLLM production stack): an HPA on the waiting
    requests with a per-replica target, polled every 30 s, back down after a 300 s cooldown."""

    def __init__(
        self, target_waiting: float = 10.0, polling_s: float = 30.0, cooldown_s: float = 300.0
    ) -> None:
        if target_waiting <= 0:
            raise ValueError(f"target_waiting must be > 0, got {target_waiting}")
        self.target_waiting, self.polling_s, self.cooldown_s = target_waiting, polling_s, cooldown_s
        self.name = f"KEDA(queue {target_waiting:g}/replica)"

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._last = None

    def desired(self, m: Mapping[str, float], scenario: Any) -> int:
        if self._last is not None and (self._t - 1) % self._decisions(m, self.polling_s):
            return self._last
        # an external metric with an AverageValue target: ceil(total / target), idle -> min replicas
        recommendation = math.ceil(self._value(m) / self.target_waiting)
        self._last = self._stabilised_down(m, recommendation, self.cooldown_s)
        return self._last

    def _value(self, m: Mapping[str, float]) -> float:
        """The scaled metric (total over the replicas)."""
        return m["queue_requests"]


class APA(_Autoscaler):
    """AIBrix's APA on KV-cache use (``gpu_cache_usage_perc``, target 0.5): beyond a 10% band,
    ``ceil(pods x use / target)``, at most doubling and at least halving; scale-down cooldown 300 s."""

    def __init__(self, target: float = 0.5, up_tolerance: float = 0.1, down_tolerance: float = 0.1) -> None:
        if not 0 < target <= 1:
            raise ValueError(f"target must be in (0, 1], got {target}")
        self.target, self.up, self.down = target, up_tolerance, down_tolerance
        self.name = f"APA(kv {target:g})"

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._last_down = -(10**9)

    def desired(self, m: Mapping[str, float], scenario: Any) -> int:
        pods, active = _ready(m), _active(m)
        if pods == 0:
            return active
        ratio = m["kv_utilization"] / self.target
        if ratio > 1.0 + self.up:
            return min(math.ceil(pods * ratio), math.ceil(2 * pods)) + (active - pods)
        if ratio < 1.0 - self.down and self._t - self._last_down >= self._decisions(m, 300.0):
            self._last_down = self._t
            return max(math.ceil(pods * ratio), math.floor(pods / 2)) + (active - pods)
        return active


class Llumnix(_Autoscaler):
    """Llumnix's freeness rule: freeness = (free KV blocks - blocks the waiting prompts need) x
    block size / running requests, the decode steps the batch can still run. Add a replica while
    the mean freeness is below ``up`` (10); remove one when the remaining replicas would still
    average above ``down`` (60)."""

    def __init__(self, up: float = 10.0, down: float = 60.0) -> None:
        self.up, self.down = up, down
        self.name = f"Llumnix(freeness {up:g}/{down:g})"

    def desired(self, m: Mapping[str, float], scenario: Any) -> int:
        ready, active = _ready(m), _active(m)
        if ready == 0:
            return active
        engine = scenario.replica.engine
        blocks, block = engine.capacity_blocks, engine.block_size
        prompt = scenario.mean_lengths[0]
        free = (1.0 - m["kv_utilization"]) * blocks * ready - m["queue_requests"] * prompt / block
        running = max(m["running_per_replica"] * ready, 1.0)
        freeness = free * block / running
        if freeness < self.up:
            return active + 1
        if ready > 1 and (free - blocks) * block / running > self.down:  # freeness after one leaves
            return active - 1
        return active


class CapacityPlanner(_Autoscaler):
    """A queueing-model optimiser in the spirit of llm-d's variant autoscaler: size the pool for
    the larger of the recent arrival rates at ``headroom`` x the replica's capacity at the SLOs
    (from its profiled service curves)."""

    def __init__(self, headroom: float = 0.9) -> None:
        if not 0 < headroom <= 1.5:
            raise ValueError(f"headroom must be in (0, 1.5], got {headroom}")
        self.headroom = headroom
        self.name = f"CapacityPlanner(headroom {headroom:g})"

    def desired(self, m: Mapping[str, float], scenario: Any) -> int:
        return planner_replicas(m, self.headroom)


class NextWindowOracle(_Autoscaler):
    """Knows the coming arrivals (privileged): asks for the replicas the busiest interval needs
    until a replica started now would be ready (its cold start plus one interval), at ``margin``
    x capacity, so it starts replicas ahead of the traffic and keeps those it would need again
    before a new one could start. ``margin=None`` picks, per episode, the margin whose
    whole-episode rollout on a copy of the env earns the most reward (the env's own objective)."""

    MARGINS = (0.6, 0.7, 0.8, 0.9, 1.0)

    def __init__(self, env: Any, margin: float | None = None) -> None:
        self.env, self.margin = env, margin
        self.name = "NextWindowOracle" if margin is None else f"NextWindowOracle(margin {margin:g})"

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._chosen = self.margin

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        if self._chosen is None:
            self._chosen = self._best_margin(info)
        return super().act(obs, info)

    def _best_margin(self, info: Mapping[str, Any]) -> float:
        return best_by_rollout(self.env, self.MARGINS, NextWindowOracle, info)

    def desired(self, m: Mapping[str, float], scenario: Any) -> int:
        env = self.env.unwrapped
        now, interval = env.pool.now, scenario.decision_interval_s
        cold = scenario.replica.cold_start_s
        capacity = self._chosen * m["replica_capacity_rps"]

        def need(t0: float, t1: float) -> int:
            return math.ceil(env._rate_between(t0, t1) / capacity)

        # a replica removed now could not be back before now + cold start: keep what that span needs
        return max(need(t, t + interval) for t in np.arange(now, now + cold + interval, interval / 3))
