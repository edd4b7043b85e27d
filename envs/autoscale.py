"""Autoscale-v0: how many LLM replicas to run, decided every decision interval."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from servegym.metric_spec import Metric
from servegym.workloads import Requests

from .autoscale_scenarios import (
    AUTOSCALE_PHENOMENA,
    AUTOSCALE_PRESETS,
    TRAINING_PRESETS,
    AutoscaleScenario,
    resolve_autoscale_scenario,
)
from .cluster import FIDELITIES, ROUTERS, ReplicaPool
from .cluster.fast_pool import DRAINING, READY, STARTING
from .cluster.reward import PRIMARY_KPI, CostSloReward
from .serving_env import FloatDict

ACTION_MODES = ("delta", "target", "planner")
PLANNER_HEADROOMS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1)
"""``action_mode="planner"``: the capacity planner's utilisation target, per decision."""
COLD_START_PENALTY = 1.0  # a cold start counts as this many SLO-violating requests (reward)
DEFAULT_PREFERENCE = 0.1  # weight of cost against SLO violations (1 - w)

METRICS: tuple[Metric, ...] = (
    Metric("arrival_rate_rps", "req/s", "requests arriving per second over the last interval"),
    Metric("arrival_rate_60s_rps", "req/s", "requests arriving per second over the last 60 s"),
    Metric("ready_replicas", "replicas", "replicas serving", integer=True),
    Metric("starting_replicas", "replicas", "replicas in their cold start", integer=True),
    Metric("draining_replicas", "replicas", "replicas finishing their requests before leaving", integer=True),
    Metric(
        "queue_requests", "requests", "requests waiting (router and replica queues), mean over the interval"
    ),
    Metric("running_per_replica", "requests", "requests running per ready replica, mean over the interval"),
    Metric(
        "kv_utilization", "fraction", "KV-cache use of the ready replicas, mean over the interval", high=1.0
    ),
    Metric("ttft_p50_s", "s", "median time to first token of the interval's requests"),
    Metric("ttft_p99_s", "s", "P99 time to first token of the interval's requests"),
    Metric("tpot_p50_s", "s", "median time per output token of the interval's requests"),
    Metric("tpot_p99_s", "s", "P99 time per output token of the interval's requests"),
    Metric("slo_miss_fraction", "fraction", "requests missing the TTFT or TPOT SLO", high=1.0),
    Metric("time_of_day_s", "s", "seconds into the day (the traffic's cycle)"),
    Metric("day_s", "s", "length of the traffic's daily cycle", low_open=True, scenario=True),
    Metric("preference", "weight", "weight of cost against SLO violations (these get 1 - w)", high=1.0),
    Metric(
        "replica_capacity_rps", "req/s", "one replica's capacity at the SLOs", low_open=True, scenario=True
    ),
    Metric("max_replicas", "replicas", "the fleet's upper limit", low=1, integer=True, scenario=True),
    Metric("ttft_slo_s", "s", "time-to-first-token SLO", low_open=True, scenario=True),
    Metric("tpot_slo_s", "s", "time-per-output-token SLO", low_open=True, scenario=True),
    Metric(
        "max_num_seqs",
        "requests",
        "a replica's limit on running requests",
        low=1,
        integer=True,
        scenario=True,
    ),
)
"""What a live system reports per decision (the operator's contract): fleet counts from the
autoscaler, the rest from the replicas' metrics endpoints (``agents.prometheus`` maps vLLM's
Prometheus names onto these)."""

OBSERVATION_FIELDS = (
    ("arrival rate (interval) / (max_replicas x replica capacity)", 0.0, 3.0),
    ("arrival rate (60 s) / (max_replicas x replica capacity)", 0.0, 3.0),
    ("rate trend: 0.5 + (interval - 60 s rate) / fleet capacity, clipped to [0, 1]", 0.0, 1.0),
    ("ready replicas / max_replicas", 0.0, 1.0),
    ("starting replicas / max_replicas", 0.0, 1.0),
    ("draining replicas / max_replicas", 0.0, 2.0),
    ("log1p(queue) / log1p(10,000)", 0.0, 2.0),
    ("running per ready replica / max_num_seqs", 0.0, 1.0),
    ("KV-cache utilisation", 0.0, 1.0),
    ("TTFT p50 / TTFT SLO (capped at 5)", 0.0, 5.0),
    ("TTFT p99 / TTFT SLO (capped at 5)", 0.0, 5.0),
    ("TPOT p50 / TPOT SLO (capped at 5)", 0.0, 5.0),
    ("TPOT p99 / TPOT SLO (capped at 5)", 0.0, 5.0),
    ("SLO-miss fraction of the interval", 0.0, 1.0),
    ("time of day: 0.5 + 0.5 sin", 0.0, 1.0),
    ("time of day: 0.5 + 0.5 cos", 0.0, 1.0),
    ("replicas needed for the interval's rate / max_replicas (capped at 2)", 0.0, 2.0),
    ("preference w (weight of cost)", 0.0, 1.0),
)
OBS_LOW = np.array([f[1] for f in OBSERVATION_FIELDS], dtype=np.float32)
OBS_HIGH = np.array([f[2] for f in OBSERVATION_FIELDS], dtype=np.float32)
_LOG_QUEUE = math.log1p(10_000.0)
WINDOW_KEYS = (
    "arrivals", "completed", "slo_violations", "replica_seconds", "kv_utilization", "running_per_replica",
    "waiting", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s",
)  # fmt: skip


def encode_autoscale_observation(m: Mapping[str, float]) -> np.ndarray:
    """The observation from raw metrics (pure: the same code runs in deployment)."""
    n = m["max_replicas"]
    fleet = n * m["replica_capacity_rps"]
    phase = 2.0 * math.pi * m["time_of_day_s"] / m["day_s"]
    values = [
        m["arrival_rate_rps"] / fleet,
        m["arrival_rate_60s_rps"] / fleet,
        0.5 + (m["arrival_rate_rps"] - m["arrival_rate_60s_rps"]) / fleet,
        m["ready_replicas"] / n,
        m["starting_replicas"] / n,
        m["draining_replicas"] / n,
        math.log1p(m["queue_requests"]) / _LOG_QUEUE,
        m["running_per_replica"] / m["max_num_seqs"],
        m["kv_utilization"],
        m["ttft_p50_s"] / m["ttft_slo_s"],
        m["ttft_p99_s"] / m["ttft_slo_s"],
        m["tpot_p50_s"] / m["tpot_slo_s"],
        m["tpot_p99_s"] / m["tpot_slo_s"],
        m["slo_miss_fraction"],
        0.5 + 0.5 * math.sin(phase),
        0.5 + 0.5 * math.cos(phase),
        m["arrival_rate_rps"] / m["replica_capacity_rps"] / n,
        m["preference"],
    ]
    obs = np.array(values, dtype=np.float32)
    return obs.clip(OBS_LOW, OBS_HIGH, out=obs)


def planner_replicas(metrics: Mapping[str, float], headroom: float) -> int:
    """The capacity planner's rule (llm-d-like): the replicas for the larger of the interval's and
    the 60 s arrival rate at ``headroom`` x one replica's capacity at the SLOs."""
    rate = max(metrics["arrival_rate_rps"], metrics["arrival_rate_60s_rps"])
    return math.ceil(rate / (headroom * metrics["replica_capacity_rps"]))


def action_for_target(info: Mapping[str, Any], target: float) -> int:
    """The valid action closest to asking for ``target`` replicas, from a step's info (what a
    heuristic that computes a replica count returns): in ``"delta"`` mode the change from the
    replicas starting or ready, clipped to the largest step; in ``"target"`` mode the count; in
    ``"planner"`` mode the headroom whose planned count is closest (not always ``target``)."""
    mask = np.asarray(info["action_mask"])
    m = info["metrics"]
    if info["action_mode"] == "planner":
        planned = np.array([planner_replicas(m, h) for h in PLANNER_HEADROOMS])
        return int(np.argmin(np.abs(planned - target)))
    if info["action_mode"] == "target":
        wanted = int(min(max(round(target), 0), len(mask) - 1))
    else:
        k = (len(mask) - 1) // 2
        active = round(m["ready_replicas"] + m["starting_replicas"])
        wanted = int(min(max(round(target) - active, -k), k)) + k
    valid = np.flatnonzero(mask)
    return int(valid[np.argmin(np.abs(valid - wanted))])


class AutoscaleEnv(gym.Env[np.ndarray, np.int64]):
    """Decide how many replicas of an LLM service run, every decision interval.

    ## Description
    A pool of LLM serving replicas (model, GPU, TP) behind a least-outstanding-requests router
    serves an hour of traffic. Every `decision_interval_s` (default 15 s, the HPA's sync period)
    the controller sets the number of replicas. A new replica is billed from the moment it starts
    but serves only after its cold start (container start + weights from the storage tier +
    engine initialisation: about 35 s for an 8B model from SSD, two minutes for 70B); a removed
    replica drains (takes no new requests and leaves once its requests are done); no request is
    ever dropped. Too few replicas and requests miss their TTFT/TPOT SLOs; too many and GPUs idle.
    `fidelity="fast"` (default) runs each replica as a fluid queue over service curves tabulated
    from the serving engine; `fidelity="engine"` runs a serving engine per replica.

    ## Action Space
    `action_mode="delta"` (default): `Discrete(2k + 1)` with `k = max_step` (default 4): change the
    number of replicas by `action - k`. `action_mode="target"`: `Discrete(max_replicas + 1)`: the
    number of replicas. `action_mode="planner"`: `Discrete(7)`: the capacity planner's
    utilisation target from `PLANNER_HEADROOMS` (0.5 ... 1.1 x a replica's capacity) for this
    interval: the policy tunes a production rule's knob (as Schuler et al. tune Knative's).
    The count is of replicas starting or ready. Requests outside
    `[min_replicas, max_replicas]` are clamped to the bounds (as the HPA does) and masked, so
    masking agents skip the redundant actions.

    ## Observation Space
    `Box(0, high, (18,), float32)` from `encode_autoscale_observation(info["metrics"])`:

    | index | observation | min | max |
    |---|---|---|---|
    | 0, 1 | arrival rate over the interval / over 60 s, per fleet capacity | 0 | 3 |
    | 2 | rate trend (0.5 + difference of the two) | 0 | 1 |
    | 3, 4, 5 | ready, starting, draining replicas / max_replicas | 0 | 1, 1, 2 |
    | 6 | log1p(queued requests) / log1p(10,000) | 0 | 2 |
    | 7 | running requests per replica / max_num_seqs | 0 | 1 |
    | 8 | KV-cache utilisation | 0 | 1 |
    | 9–12 | TTFT p50, p99 and TPOT p50, p99 / their SLOs | 0 | 5 |
    | 13 | SLO-miss fraction of the interval | 0 | 1 |
    | 14, 15 | time of day (sin, cos, shifted to [0, 1]) | 0 | 1 |
    | 16 | replicas the interval's rate needs / max_replicas | 0 | 2 |
    | 17 | preference w | 0 | 1 |

    ## Rewards
    A vector `info["reward_vec"] = [cost, slo]` (mo-gymnasium's convention), scalarised with
    weights `{"cost": w, "slo": 1 - w}` (`info["reward_weights"]`; `preference=w`, default 0.1, or
    `"random"`: w ~ U(0, 1) per episode, observed). `cost` = −replica-seconds billed /
    (max_replicas × interval); `slo` = −(requests missing an SLO + 1 per cold start) / the
    interval's mean number of requests.

    ## Episode End
    Truncated after `episode_s` (default 3,600 s: 240 decisions).

    ## Arguments
    `scenario` (a preset of `AUTOSCALE_PRESETS`, an `AutoscaleScenario`, or `"random"`: each
    episode one of `TRAINING_PRESETS`, drawn by the reset seed), `fidelity`, `router`,
    `action_mode`, `max_step`, `preference`, and any `AutoscaleScenario` field (`mean_load`,
    `arrivals`, `max_replicas`, `cold_start_tier`, `trace_path`, ...).

    ## Version History
    - v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    METRICS: ClassVar[tuple[Metric, ...]] = METRICS
    DEFAULT_SCENARIO: ClassVar[str] = "llama3-8b-a100-diurnal"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = AUTOSCALE_PRESETS
    PRESET_PHENOMENA: ClassVar[dict[str, str]] = AUTOSCALE_PHENOMENA
    PRIMARY_KPI: ClassVar[str] = PRIMARY_KPI
    PRIMARY_KPI_GOAL: ClassVar[str] = "min"

    def __init__(
        self,
        scenario: str | AutoscaleScenario | None = None,
        fidelity: str = "fast",
        router: str = "least-outstanding",
        action_mode: str = "delta",
        max_step: int = 4,
        preference: float | str = DEFAULT_PREFERENCE,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        if scenario == "random":  # workload randomisation over the training presets
            self._mix = tuple(resolve_autoscale_scenario(p, overrides) for p in TRAINING_PRESETS)
            shared = [(m.replica, m.max_replicas, m.warm_pool) for m in self._mix]
            if any(item != shared[0] for item in shared):
                raise ValueError("scenario='random': the training presets must share replicas and bounds")
        else:
            self._mix = (resolve_autoscale_scenario(scenario or self.DEFAULT_SCENARIO, overrides),)
        self.scenario = self._mix[0]
        self.scenario_name = (
            scenario if isinstance(scenario, str) else "custom" if scenario else self.DEFAULT_SCENARIO
        )
        if fidelity not in FIDELITIES:
            raise ValueError(f"fidelity must be one of {FIDELITIES}, got {fidelity!r}")
        if router not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}, got {router!r}")
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if not isinstance(max_step, int) or not 1 <= max_step <= 64:
            raise ValueError(f"max_step must be an integer in 1..64, got {max_step!r}")
        if preference != "random" and not (isinstance(preference, (int, float)) and 0.0 <= preference <= 1.0):
            raise ValueError(f"preference must be a number in [0, 1] or 'random', got {preference!r}")
        self.fidelity, self.router, self.action_mode, self.max_step = fidelity, router, action_mode, max_step
        self._preference_setting = preference
        self.render_mode = render_mode
        sc = self.scenario
        self.pool = ReplicaPool(
            sc.replica, sc.max_replicas, fidelity=fidelity, router=router, warm_pool=sc.warm_pool
        )
        n = {"delta": 2 * max_step + 1, "target": sc.max_replicas + 1, "planner": len(PLANNER_HEADROOMS)}[
            action_mode
        ]
        self.action_space = spaces.Discrete(n)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self._use_scenario(sc)
        self.reward_rule = CostSloReward()
        self._started = False

    def _use_scenario(self, sc: AutoscaleScenario) -> None:
        """The episode's scenario (one of the mix under ``scenario="random"``), and what derives
        from it."""
        self.scenario = sc
        self._ref_requests = sc.mean_rate * sc.decision_interval_s
        curves = sc.curves
        self._in_flight_at_capacity = float(
            np.interp(sc.capacity_rps, curves.throughput_rps, curves.in_system)
        )

    # -- helpers ------------------------------------------------------------------------------------
    def get_action_meanings(self) -> list[str]:
        if self.action_mode == "delta":
            k = self.max_step
            return [f"{d:+d} replicas" for d in range(-k, k + 1)]
        if self.action_mode == "planner":
            return [f"capacity planner at {h:g} x capacity" for h in PLANNER_HEADROOMS]
        return [f"{n} replicas" for n in range(self.scenario.max_replicas + 1)]

    def target_for(
        self, action: int, active: int | None = None, metrics: Mapping[str, float] | None = None
    ) -> int:
        """The number of replicas an action asks for, from ``active`` replicas (starting or ready;
        default: the pool's) or, in ``"planner"`` mode, the ``metrics`` (default: the last
        interval's), before the bounds."""
        if self.action_mode == "target":
            return action
        if self.action_mode == "planner":
            return planner_replicas(
                self.last_metrics if metrics is None else metrics, PLANNER_HEADROOMS[action]
            )
        return (self.pool.active if active is None else active) + action - self.max_step

    def replicas_for(self, action: int, metrics: Mapping[str, float]) -> int:
        """The replica count a deployed autoscaler applies for ``action``, given the fleet and the
        rates in the metrics, within the bounds."""
        sc = self.scenario
        active = round(metrics["ready_replicas"] + metrics["starting_replicas"])
        return min(max(self.target_for(int(action), active, metrics), sc.min_replicas), sc.max_replicas)

    def action_for(self, target: int) -> int:
        """The valid action closest to asking for ``target`` replicas."""
        return action_for_target(self._info({}), target)

    def action_masks(self) -> np.ndarray:
        sc = self.scenario
        actions = np.arange(self.action_space.n)
        if self.action_mode == "planner":  # every headroom is a valid request (clamped to the bounds)
            return np.ones(len(actions), dtype=bool)
        targets = actions if self.action_mode == "target" else self.pool.active + actions - self.max_step
        return (targets >= sc.min_replicas) & (targets <= sc.max_replicas)

    def observation_from_metrics(self, metrics: Mapping[str, float]) -> np.ndarray:
        return encode_autoscale_observation(metrics)

    # -- gymnasium API --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        if len(self._mix) > 1:
            self._use_scenario(self._mix[int(rng.integers(len(self._mix)))])
        sc = self.scenario
        w = float(rng.uniform()) if self._preference_setting == "random" else float(self._preference_setting)
        self.preference = w
        requests = self._requests(rng)
        self._arrival_times = requests.arrival_s
        initial = sc.initial_replicas or self._replicas_for(self._rate_between(0.0, 60.0))
        initial = min(max(initial, sc.min_replicas), sc.max_replicas)
        self.pool.reset(requests, np.random.default_rng(rng.integers(2**63)), initial)
        self._recent: list[float] = []
        self._cold_starts_seen = 0
        self.reward_rule.reset(w)
        self.last_metrics = self._metrics(dict.fromkeys(WINDOW_KEYS, 0.0))
        self._started = True
        return encode_autoscale_observation(self.last_metrics), self._info({})

    def step(self, action):
        if not self._started:
            raise RuntimeError("AutoscaleEnv.step() called before reset()")
        if not (type(action) in (int, np.int64) and 0 <= action < self.action_space.n):
            if isinstance(action, (np.ndarray, list)) and np.size(action) == 1:
                action = np.asarray(action).reshape(()).item()
            if not (isinstance(action, (int, np.integer)) and 0 <= int(action) < self.action_space.n):
                raise ValueError(
                    f"action {action!r} is outside the action space {self.action_space} "
                    f"(an integer in 0..{self.action_space.n - 1})"
                )
        action = int(action)
        sc = self.scenario
        target = min(max(self.target_for(action), sc.min_replicas), sc.max_replicas)  # HPA's bounds
        self.pool.scale_to(target)
        window = self.pool.advance(self.pool.now + sc.decision_interval_s)
        metrics = self._metrics(window)
        self.last_metrics = metrics
        cold = self.pool.cold_starts - self._cold_starts_seen
        self._cold_starts_seen = self.pool.cold_starts
        interval_capacity = sc.max_replicas * window["window_s"]
        terms = {
            "cost": -window["replica_seconds"] / interval_capacity,
            "slo": -(window["slo_violations"] + COLD_START_PENALTY * cold) / self._ref_requests,
        }
        reward = self.reward_rule(terms)
        truncated = self.pool.now >= sc.episode_s - 1e-9
        info = self._info(terms)
        if truncated:
            info["episode_kpis"] = self.episode_kpis()
        return encode_autoscale_observation(metrics), reward, False, truncated, info

    def _requests(self, rng: np.random.Generator) -> Requests:
        """The episode's requests. The fast fidelity needs only arrival times (its tables hold the
        length mix), so it skips drawing lengths; they come after the times in the random
        stream, so both fidelities see the same arrivals for a seed."""
        sc = self.scenario
        workload, horizon = sc.workload(rng), sc.episode_s + sc.decision_interval_s
        if self.fidelity == "engine" or workload.paired:
            return workload.sample(rng, horizon)
        times = workload.arrivals.sample(rng, horizon)
        ones = np.ones(len(times), dtype=np.int64)
        return Requests(times, ones, ones)

    def episode_kpis(self) -> dict[str, float]:
        kpis = self.pool.episode_kpis()
        kpis["cost_usd_per_hour"] = kpis["cost_usd"] / max(self.pool.now / 3600.0, 1e-9)
        kpis.update(self.reward_rule.kpis())
        return kpis

    # -- metrics ---------------------------------------------------------------------------------------
    def _rate_between(self, t0: float, t1: float) -> float:
        times = self._arrival_times
        n = np.searchsorted(times, t1, side="left") - np.searchsorted(times, t0, side="left")
        return float(n) / max(t1 - t0, 1e-9)

    def _replicas_for(self, rate: float) -> int:
        return math.ceil(rate / self.scenario.capacity_rps) if rate > 0 else 0

    def _metrics(self, w: Mapping[str, float]) -> dict[str, float]:
        sc, pool = self.scenario, self.pool
        seconds = max(w.get("window_s", sc.decision_interval_s), 1e-9)
        rate = w["arrivals"] / seconds if w.get("window_s") else self._rate_between(0.0, 60.0)
        keep = max(round(60.0 / sc.decision_interval_s), 1)  # intervals in the 60 s rate
        self._recent = ([*self._recent, rate] if w.get("window_s") else [])[-keep:]
        counts = pool.status_counts()
        long_rate = sum(self._recent) / len(self._recent) if self._recent else rate
        completed = w["completed"]
        return {
            "time_s": pool.now,
            "arrival_rate_rps": rate,
            "arrival_rate_60s_rps": long_rate,
            "ready_replicas": float(counts[READY]),
            "starting_replicas": float(counts[STARTING]),
            "draining_replicas": float(counts[DRAINING]),
            "queue_requests": w["waiting"],
            "running_per_replica": w["running_per_replica"],
            "kv_utilization": min(w["kv_utilization"], 1.0),
            "ttft_p50_s": w["ttft_p50_s"],
            "ttft_p99_s": w["ttft_p99_s"],
            "tpot_p50_s": w["tpot_p50_s"],
            "tpot_p99_s": w["tpot_p99_s"],
            "slo_miss_fraction": min(w["slo_violations"] / completed, 1.0) if completed > 0 else 0.0,
            "time_of_day_s": pool.now % sc.episode_s,
            "day_s": sc.episode_s,
            "preference": self.preference,
            "replica_capacity_rps": sc.capacity_rps,
            "replica_in_flight_at_capacity": self._in_flight_at_capacity,
            "cold_start_s": sc.replica.cold_start_s,
            "decision_interval_s": sc.decision_interval_s,
            "min_replicas": float(sc.min_replicas),
            "max_replicas": float(sc.max_replicas),
            "ttft_slo_s": sc.ttft_slo_s,
            "tpot_slo_s": sc.tpot_slo_s,
            "max_num_seqs": float(sc.max_num_seqs),
        }

    def _info(self, terms: Mapping[str, float]) -> dict[str, Any]:
        return {
            "metrics": FloatDict(self.last_metrics),
            "reward_terms": FloatDict(terms),
            "reward_vec": np.array([terms.get("cost", 0.0), terms.get("slo", 0.0)]),
            "reward_weights": FloatDict(self.reward_rule.weights),
            "scenario": self.scenario,
            "action_mode": self.action_mode,
            "action_mask": self.action_masks(),
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        m = self.last_metrics
        return (
            f"t={m['time_s']:.0f}s rate={m['arrival_rate_rps']:.2f}/s ready={m['ready_replicas']:.0f} "
            f"starting={m['starting_replicas']:.0f} draining={m['draining_replicas']:.0f} "
            f"ttft_p99={m['ttft_p99_s']:.2f}s miss={m['slo_miss_fraction']:.3f}"
        )


__all__ = [
    "AUTOSCALE_PRESETS",
    "AutoscaleEnv",
    "AutoscaleScenario",
    "action_for_target",
    "encode_autoscale_observation",
    "planner_replicas",
]
