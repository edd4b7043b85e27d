"""ServerlessAutoscale-v0: how a serverless function's containers scale, decided every interval."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from servegym.metric_spec import Metric

from .cluster.fast_pool import DRAINING, READY, STARTING
from .cluster.functions import Lognormal
from .cluster.kpa import resolve_target
from .cluster.reward import PRIMARY_KPI, CostSloReward
from .cluster.serverless_pool import ServerlessPool
from .serverless_scenarios import SERVERLESS_PRESETS, ServerlessScenario, resolve_serverless_scenario
from .serving.windows import hist_quantile
from .serving_env import FloatDict

ACTION_MODES = ("delta", "target", "kpa-target", "keep-alive")
POOL_MODE = {"delta": "replica", "target": "replica", "kpa-target": "kpa", "keep-alive": "keep-alive"}
KPA_TARGET_MENU = (1, 2, 5, 10, 20, 50, 70, 100)  # Schuler et al.'s concurrency menu
KEEP_ALIVE_MENU_MIN = (0, 1, 2, 5, 10, 20, 30, 60, 240)
PREWARM_MENU_MIN = (0, 1, 2, 5, 10)
DEFAULT_KEEP_ALIVE = (0.0, 600.0)  # (pre-warm, keep-alive) s before the first decision: Lambda's 10 min
DEFAULT_PREFERENCE = 0.1  # weight of cost against SLO violations (1 - w)

METRICS: tuple[Metric, ...] = (
    Metric("arrival_rate_rps", "req/s", "requests arriving per second over the last interval"),
    Metric("arrival_rate_60s_rps", "req/s", "requests arriving per second over the last 60 s"),
    Metric("ready_replicas", "containers", "ready containers (Knative autoscaler_actual_pods)", integer=True),
    Metric(
        "starting_replicas",
        "containers",
        "containers in their cold start (autoscaler_not_ready_pods)",
        integer=True,
    ),
    Metric(
        "draining_replicas",
        "containers",
        "containers finishing requests before leaving (autoscaler_terminating_pods)",
        integer=True,
    ),
    Metric("idle_replicas", "containers", "ready containers with no request", integer=True),
    Metric(
        "queue_requests",
        "requests",
        "requests waiting at the activator, mean over the interval (activator_request_concurrency)",
    ),
    Metric("running_per_replica", "requests", "requests in each ready container, mean over the interval"),
    Metric(
        "stable_concurrency",
        "requests",
        "requests in the system, mean over 60 s (autoscaler_stable_request_concurrency)",
    ),
    Metric(
        "panic_concurrency",
        "requests",
        "requests in the system, mean over 6 s (autoscaler_panic_request_concurrency)",
    ),
    Metric(
        "target_concurrency",
        "requests",
        "the KPA's per-container target in effect (autoscaler_target_concurrency_per_pod)",
        low_open=True,
    ),
    Metric("keep_alive_s", "s", "keep-alive window in effect (0 outside keep-alive mode)"),
    Metric("prewarm_s", "s", "pre-warm window in effect (0 outside keep-alive mode)"),
    Metric("latency_p50_s", "s", "median end-to-end latency of the interval's finished requests"),
    Metric("latency_p99_s", "s", "P99 end-to-end latency of the interval's finished requests"),
    Metric("slo_miss_fraction", "fraction", "requests found missing the SLO / requests finished", high=1.0),
    Metric("cold_start_fraction", "fraction", "finished requests that waited for a cold start", high=1.0),
    Metric("time_of_day_s", "s", "seconds into the day (the traffic's cycle)"),
    Metric("day_s", "s", "length of the traffic's daily cycle", low_open=True, scenario=True),
    Metric("preference", "weight", "weight of cost against SLO violations (these get 1 - w)", high=1.0),
    Metric(
        "container_concurrency",
        "requests",
        "requests a container serves at once (containerConcurrency)",
        low=1,
        integer=True,
        scenario=True,
    ),
    Metric(
        "replica_capacity_rps",
        "req/s",
        "a container's capacity: full-speed requests / mean execution time",
        low_open=True,
        scenario=True,
    ),
    Metric("max_replicas", "containers", "the upper limit (max-scale)", low=1, integer=True, scenario=True),
    Metric("slo_s", "s", "end-to-end latency SLO", low_open=True, scenario=True),
)
"""What a live platform reports per decision (the operator's contract); Knative's metric for
each is named in its description."""

OBSERVATION_FIELDS = (
    ("arrival rate (interval) / (max_replicas x container capacity)", 0.0, 3.0),
    ("arrival rate (60 s) / (max_replicas x container capacity)", 0.0, 3.0),
    ("rate trend: 0.5 + (interval - 60 s rate) / fleet capacity, clipped to [0, 1]", 0.0, 1.0),
    ("ready containers / max_replicas", 0.0, 1.0),
    ("starting containers / max_replicas", 0.0, 1.0),
    ("draining containers / max_replicas", 0.0, 2.0),
    ("idle containers / max_replicas", 0.0, 1.0),
    ("log1p(activator queue) / log1p(10,000)", 0.0, 2.0),
    ("requests per ready container / container_concurrency", 0.0, 1.0),
    ("stable concurrency / (max_replicas x container_concurrency)", 0.0, 2.0),
    ("panic concurrency / (max_replicas x container_concurrency)", 0.0, 2.0),
    ("KPA target / container_concurrency", 0.0, 1.0),
    ("keep-alive / 4 h", 0.0, 1.0),
    ("pre-warm / 1 h", 0.0, 1.0),
    ("latency p50 / SLO (capped at 5)", 0.0, 5.0),
    ("latency p99 / SLO (capped at 5)", 0.0, 5.0),
    ("SLO-miss fraction of the interval", 0.0, 1.0),
    ("cold-start fraction of the interval", 0.0, 1.0),
    ("time of day: 0.5 + 0.5 sin", 0.0, 1.0),
    ("time of day: 0.5 + 0.5 cos", 0.0, 1.0),
    ("containers the interval's rate needs / max_replicas (capped at 2)", 0.0, 2.0),
    ("preference w (weight of cost)", 0.0, 1.0),
)
OBS_LOW = np.array([f[1] for f in OBSERVATION_FIELDS], dtype=np.float32)
OBS_HIGH = np.array([f[2] for f in OBSERVATION_FIELDS], dtype=np.float32)
_LOG_QUEUE = math.log1p(10_000.0)


def encode_serverless_observation(m: Mapping[str, float]) -> np.ndarray:
    """The observation from raw metrics (pure: the same code runs in deployment)."""
    n, conc = m["max_replicas"], m["container_concurrency"]
    fleet = n * m["replica_capacity_rps"]
    phase = 2.0 * math.pi * m["time_of_day_s"] / m["day_s"]
    slo = m["slo_s"]
    values = [
        m["arrival_rate_rps"] / fleet,
        m["arrival_rate_60s_rps"] / fleet,
        0.5 + (m["arrival_rate_rps"] - m["arrival_rate_60s_rps"]) / fleet,
        m["ready_replicas"] / n,
        m["starting_replicas"] / n,
        m["draining_replicas"] / n,
        m["idle_replicas"] / n,
        math.log1p(m["queue_requests"]) / _LOG_QUEUE,
        m["running_per_replica"] / conc,
        m["stable_concurrency"] / (n * conc),
        m["panic_concurrency"] / (n * conc),
        m["target_concurrency"] / conc,
        m["keep_alive_s"] / 14400.0,
        m["prewarm_s"] / 3600.0,
        m["latency_p50_s"] / slo,
        m["latency_p99_s"] / slo,
        m["slo_miss_fraction"],
        m["cold_start_fraction"],
        0.5 + 0.5 * math.sin(phase),
        0.5 + 0.5 * math.cos(phase),
        m["arrival_rate_rps"] / m["replica_capacity_rps"] / n,
        m["preference"],
    ]
    obs = np.array(values, dtype=np.float32)
    return obs.clip(OBS_LOW, OBS_HIGH, out=obs)


def _menu(name: str, values: Any, lo: float, hi: float) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty sequence of numbers, got {values!r}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= hi):
            raise ValueError(f"{name}[{i}] must be a number in [{lo:g}, {hi:g}], got {v!r}")
        out.append(float(v))
    if sorted(set(out)) != out:
        raise ValueError(f"{name} must be strictly increasing, got {list(values)}")
    return tuple(out)


def action_for_knob(info: Mapping[str, Any], target: float) -> int:
    """The ``"kpa-target"`` action whose menu entry is nearest to ``target`` (valid ones only)."""
    menu = np.asarray(info["target_menu"])
    valid = np.flatnonzero(np.asarray(info["action_mask"]))
    return int(valid[np.argmin(np.abs(menu[valid] - target))])


def action_for_keep_alive(info: Mapping[str, Any], prewarm_s: float, keep_alive_s: float) -> int:
    """The ``"keep-alive"`` action nearest to asking for these windows: the keep-alive rounded up
    and the pre-warm rounded down to the menus (keeping warm longer, loading earlier)."""
    keep = np.asarray(info["keep_alive_menu_s"])
    pre = np.asarray(info["prewarm_menu_s"])
    k = min(int(np.searchsorted(keep, keep_alive_s - 1e-9, side="left")), len(keep) - 1)
    p = max(int(np.searchsorted(pre, prewarm_s + 1e-9, side="right")) - 1, 0)
    return p * len(keep) + k


class _ColdStarts:
    """Cold-start durations from the episode's own generator (picklable, unlike a closure)."""

    def __init__(self, dist: Lognormal, rng: np.random.Generator) -> None:
        self.dist, self.rng = dist, rng

    def __call__(self, n: int) -> np.ndarray:
        return self.dist.sample(self.rng, n)


class ServerlessAutoscaleEnv(gym.Env[np.ndarray, np.int64]):
    """Scale a serverless function's containers (Knative-style), every decision interval.

    ## Description
    Requests for one function reach an activator that hands each to a ready container with a free
    slot (at most `container_concurrency` at once; above `parallelism` they share the container by
    processor sharing) or holds it, first come first served: no request is lost. A container is
    billed from the start of its cold start (lognormal, 5th / 95th percentile 0.25 / 3 s) until it
    ends; execution times are lognormal fits to Azure Functions 2019. A compiled event simulation
    runs each interval. Too few containers and requests wait (for a slot or a cold start) and miss
    the SLO; too many and containers idle.

    ## Action Space
    `action_mode="delta"` (default): `Discrete(2k + 1)`, change the number of containers by
    `action - k` (`k = max_step`, default 4). `"target"`: `Discrete(max_replicas + 1)`, the number.
    In both the count is of containers starting or ready; requests outside `[min_replicas,
    max_replicas]` are clamped (as the HPA does) and masked. `"kpa-target"`: `Discrete(8)`, the
    per-container target concurrency from {1, 2, 5, 10, 20, 50, 70, 100} while Knative's KPA runs
    underneath every 2 s (its per-pod target is 70% of the entry, capped at `container_concurrency`;
    entries above the cap act as the cap and are masked). `"keep-alive"`: `Discrete(5 x 9)`, a
    (pre-warm, keep-alive) pair from {0, 1, 2, 5, 10} x {0, 1, 2, 5, 10, 20, 30, 60, 240} minutes,
    index `prewarm_index x 9 + keep_alive_index`, with FaaS scale-out on demand.

    ## Observation Space
    `Box(0, high, (22,), float32)` from `encode_serverless_observation(info["metrics"])`; the rows
    are `OBSERVATION_FIELDS` (rates and concurrency per fleet capacity, container counts per
    `max_replicas`, the knob in effect, latency per SLO, SLO-miss and cold-start fractions, time of
    day, containers needed, preference).

    ## Rewards
    A vector `info["reward_vec"] = [cost, slo]` scalarised with weights `{"cost": w, "slo": 1 - w}`
    (`preference=w`, default 0.1, or `"random"`: w ~ U(0, 1) per episode, observed). `cost` =
    -container-seconds / (max_replicas x interval); `slo` = -(requests found missing the SLO +
    `cold_start_penalty` x requests that waited for a cold start) / max(mean requests per interval, 1).

    ## Episode End
    Truncated after `episode_s` (default 3,600 s: 1,800 decisions of 2 s).

    ## Arguments
    `scenario` (a preset of `SERVERLESS_PRESETS` or a `ServerlessScenario`), `action_mode`,
    `max_step`, `preference`, `target_menu`, `keep_alive_menu_min`, `prewarm_menu_min`, and any
    `ServerlessScenario` field (`mean_load`, `arrivals`, `container_concurrency`, `counts_path`, ...).

    ## Version History
    - v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    METRICS: ClassVar[tuple[Metric, ...]] = METRICS
    DEFAULT_SCENARIO: ClassVar[str] = "diurnal"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = SERVERLESS_PRESETS
    PRIMARY_KPI: ClassVar[str] = PRIMARY_KPI
    PRIMARY_KPI_GOAL: ClassVar[str] = "min"

    def __init__(
        self,
        scenario: str | ServerlessScenario | None = None,
        action_mode: str = "delta",
        max_step: int = 4,
        preference: float | str = DEFAULT_PREFERENCE,
        target_menu: Sequence[float] = KPA_TARGET_MENU,
        keep_alive_menu_min: Sequence[float] = KEEP_ALIVE_MENU_MIN,
        prewarm_menu_min: Sequence[float] = PREWARM_MENU_MIN,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.scenario = resolve_serverless_scenario(scenario or self.DEFAULT_SCENARIO, overrides)
        self.scenario_name = (
            scenario if isinstance(scenario, str) else "custom" if scenario else self.DEFAULT_SCENARIO
        )
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if isinstance(max_step, bool) or not isinstance(max_step, int) or not 1 <= max_step <= 64:
            raise ValueError(f"max_step must be an integer in 1..64, got {max_step!r}")
        if preference != "random" and not (
            isinstance(preference, (int, float)) and not isinstance(preference, bool) and 0 <= preference <= 1
        ):
            raise ValueError(f"preference must be a number in [0, 1] or 'random', got {preference!r}")
        self.target_menu = _menu("target_menu", target_menu, 0.01, 1e4)
        keep_min = _menu("keep_alive_menu_min", keep_alive_menu_min, 0, 1e4)
        self.keep_alive_menu_s = tuple(60.0 * v for v in keep_min)
        self.prewarm_menu_s = tuple(60.0 * v for v in _menu("prewarm_menu_min", prewarm_menu_min, 0, 1e4))
        self.action_mode, self.max_step = action_mode, max_step
        self._preference_setting = preference
        self.render_mode = render_mode
        sc = self.scenario
        self.pool = ServerlessPool(
            sc.container_concurrency,
            sc.max_replicas,
            parallelism=sc.parallelism,
            min_replicas=sc.min_replicas,
            slo_s=sc.slo_s,
            mode=POOL_MODE[action_mode],
        )
        n = {
            "delta": 2 * max_step + 1,
            "target": sc.max_replicas + 1,
            "kpa-target": len(self.target_menu),
            "keep-alive": len(self.prewarm_menu_s) * len(self.keep_alive_menu_s),
        }[action_mode]
        self.action_space = spaces.Discrete(n)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self._ref_requests = max(sc.mean_rate * sc.decision_interval_s, 1.0)
        conc = sc.container_concurrency
        capped = [min(t, conc) for t in self.target_menu]
        self._knob_mask = np.array([i == 0 or capped[i] > capped[i - 1] for i in range(len(capped))])
        # Knative's default with containerConcurrency set: a target of the whole concurrency
        at_cap = np.flatnonzero(np.array(capped) >= conc)
        self.default_knob = int(at_cap[0]) if len(at_cap) else len(capped) - 1
        self.reward_rule = CostSloReward()
        self._started = False

    # -- actions -------------------------------------------------------------------------------------
    def get_action_meanings(self) -> list[str]:
        if self.action_mode == "delta":
            k = self.max_step
            return [f"{d:+d} containers" for d in range(-k, k + 1)]
        if self.action_mode == "target":
            return [f"{n} containers" for n in range(self.scenario.max_replicas + 1)]
        if self.action_mode == "kpa-target":
            return [f"KPA target concurrency {t:g}" for t in self.target_menu]
        return [
            f"pre-warm {p / 60:g} min, keep-alive {k / 60:g} min"
            for p in self.prewarm_menu_s
            for k in self.keep_alive_menu_s
        ]

    def target_for(self, action: int) -> int:
        """The number of containers a replica action asks for (before the bounds)."""
        return self.pool.active + action - self.max_step if self.action_mode == "delta" else action

    def keep_alive_for(self, action: int) -> tuple[float, float]:
        """(pre-warm, keep-alive) seconds of a keep-alive action."""
        p, k = divmod(action, len(self.keep_alive_menu_s))
        return self.prewarm_menu_s[p], self.keep_alive_menu_s[k]

    def action_masks(self) -> np.ndarray:
        sc = self.scenario
        if self.action_mode in ("delta", "target"):
            targets = np.array([self.target_for(a) for a in range(self.action_space.n)])
            return (targets >= sc.min_replicas) & (targets <= sc.max_replicas)
        if self.action_mode == "kpa-target":
            return self._knob_mask.copy()
        return np.ones(self.action_space.n, dtype=bool)

    def observation_from_metrics(self, metrics: Mapping[str, float]) -> np.ndarray:
        return encode_serverless_observation(metrics)

    def _apply(self, action: int) -> None:
        sc, pool = self.scenario, self.pool
        if self.action_mode in ("delta", "target"):
            pool.scale_to(min(max(self.target_for(action), sc.min_replicas), sc.max_replicas))
        elif self.action_mode == "kpa-target":
            pool.set_target(resolve_target(self.target_menu[action], sc.container_concurrency))
        else:
            pool.set_keep_alive(*self.keep_alive_for(action))

    # -- gymnasium API --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng, sc = self.np_random, self.scenario
        w = float(rng.uniform()) if self._preference_setting == "random" else float(self._preference_setting)
        self.preference = w
        self.reward_rule.reset(w)
        arrivals = sc.sample_arrivals(rng, sc.episode_s + sc.decision_interval_s)
        work = sc.execution.sample(rng, len(arrivals))
        cold = _ColdStarts(sc.cold_start, np.random.default_rng(rng.integers(2**63)))
        first_minute = np.searchsorted(arrivals, 60.0) / 60.0
        initial = sc.initial_replicas or math.ceil(first_minute / sc.capacity_rps)
        initial = min(max(initial, sc.min_replicas), sc.max_replicas)
        self.pool.reset(arrivals, work, cold, initial)
        self.pool.set_target(resolve_target(self.target_menu[self.default_knob], sc.container_concurrency))
        self.pool.set_keep_alive(*DEFAULT_KEEP_ALIVE)
        self._recent: list[float] = []
        self.last_metrics = self._metrics(None)
        self._started = True
        return encode_serverless_observation(self.last_metrics), self._info({})

    def step(self, action):
        if not self._started:
            raise RuntimeError("ServerlessAutoscaleEnv.step() called before reset()")
        if not (type(action) in (int, np.int64) and 0 <= action < self.action_space.n):
            if isinstance(action, (np.ndarray, list)) and np.size(action) == 1:
                action = np.asarray(action).reshape(()).item()
            if isinstance(action, bool) or not (
                isinstance(action, (int, np.integer)) and 0 <= int(action) < self.action_space.n
            ):
                raise ValueError(
                    f"action {action!r} is outside the action space {self.action_space} "
                    f"(an integer in 0..{self.action_space.n - 1})"
                )
        self._apply(int(action))
        sc = self.scenario
        window = self.pool.advance(self.pool.now + sc.decision_interval_s)
        metrics = self._metrics(window)
        self.last_metrics = metrics
        terms = {
            "cost": -window["container_seconds"] / (sc.max_replicas * window["window_s"]),
            "slo": -(window["slo_violations"] + sc.cold_start_penalty * window["cold_start_requests"])
            / self._ref_requests,
        }
        reward = self.reward_rule(terms)
        truncated = self.pool.now >= sc.episode_s - 1e-9
        info = self._info(terms)
        if truncated:
            info["episode_kpis"] = self.episode_kpis()
        return encode_serverless_observation(metrics), reward, False, truncated, info

    def episode_kpis(self) -> dict[str, float]:
        """KPIs of the episode so far (requests still in the system at its end are counted as
        SLO misses if already late; they are not in the latency percentiles)."""
        pool, sc = self.pool, self.scenario
        totals, lat = pool.episode_totals()
        completed = totals["completed"]
        late_left = pool.late_in_system()
        judged = completed + late_left
        hours = max(pool.now / 3600.0, 1e-9)
        return {
            "duration_s": pool.now,
            "requests": totals["arrivals"],
            "completed": completed,
            "slo_attainment": 1.0 - totals["slo_violations"] / judged if judged else math.nan,
            "latency_p50_s": hist_quantile(lat, completed, 0.5),
            "latency_p95_s": hist_quantile(lat, completed, 0.95),
            "latency_p99_s": hist_quantile(lat, completed, 0.99),
            "container_seconds": totals["container_seconds"],
            "cost_usd": totals["container_seconds"] / 3600.0 * sc.price_per_container_hour,
            "cost_usd_per_hour": totals["container_seconds"] / 3600.0 * sc.price_per_container_hour / hours,
            "idle_container_seconds": totals["idle_container_seconds"],
            "mean_replicas": totals["container_seconds"] / max(pool.now, 1e-9),
            "cold_starts": totals["cold_starts"],
            "cold_start_requests": totals["cold_start_requests"],
            "cold_start_fraction": totals["cold_start_requests"] / completed if completed else 0.0,
            "scaling_actions": totals["scaling_actions"],
            "scale_ups": totals["scale_ups"],
            "scale_downs": totals["scale_downs"],
            **self.reward_rule.kpis(),
        }

    # -- metrics ---------------------------------------------------------------------------------------
    def _metrics(self, w: Mapping[str, Any] | None) -> dict[str, Any]:
        sc, pool = self.scenario, self.pool
        if w is None:  # at reset: the first minute's rate, nothing finished yet
            rate = float(np.searchsorted(pool.arr_t, 60.0)) / 60.0
            w = {"arrivals": 0.0, "completed": 0.0, "slo_violations": 0.0, "cold_start_requests": 0.0,
                 "cold_starts": 0.0, "ready_seconds": 0.0, "busy_request_seconds": 0.0,
                 "queue_request_seconds": 0.0, "latency_p50_s": 0.0, "latency_p95_s": 0.0,
                 "latency_p99_s": 0.0, "idle_time_counts": np.zeros(241), "idle_time_beyond_s": 0.0,
                 "window_s": 0.0}  # fmt: skip
            self._recent = []
        else:
            rate = w["arrivals"] / w["window_s"]
            keep = max(round(60.0 / sc.decision_interval_s), 1)
            self._recent = [*self._recent, rate][-keep:]
        long_rate = float(np.mean(self._recent)) if self._recent else rate
        seconds = max(w["window_s"], 1e-9)
        ready_s = w["ready_seconds"]
        completed = w["completed"]
        stable, panic = pool.window_averages()
        keep_mode = self.action_mode == "keep-alive"
        return {
            "time_s": pool.now,
            "arrival_rate_rps": rate,
            "arrival_rate_60s_rps": long_rate,
            "ready_replicas": float(pool.count(READY)),
            "starting_replicas": float(pool.count(STARTING)),
            "draining_replicas": float(pool.count(DRAINING)),
            "idle_replicas": float(pool.idle_containers()),
            "queue_requests": w["queue_request_seconds"] / seconds,
            "running_per_replica": min(w["busy_request_seconds"] / ready_s, sc.container_concurrency)
            if ready_s
            else 0.0,
            "stable_concurrency": stable,
            "panic_concurrency": panic,
            "target_concurrency": pool.target,
            "keep_alive_s": pool.keep_alive_s if keep_mode else 0.0,
            "prewarm_s": pool.prewarm_s if keep_mode else 0.0,
            "latency_p50_s": w["latency_p50_s"],
            "latency_p95_s": w["latency_p95_s"],
            "latency_p99_s": w["latency_p99_s"],
            "slo_miss_fraction": min(w["slo_violations"] / completed, 1.0) if completed else 0.0,
            "cold_start_fraction": min(w["cold_start_requests"] / completed, 1.0) if completed else 0.0,
            "cold_start_requests": w["cold_start_requests"],
            "cold_starts": w["cold_starts"],
            "completed": completed,
            "time_of_day_s": pool.now % sc.episode_s,
            "day_s": sc.episode_s,
            "preference": self.preference,
            "container_concurrency": float(sc.container_concurrency),
            "replica_in_flight_at_capacity": float(sc.container_concurrency),
            "replica_capacity_rps": sc.capacity_rps,
            "decision_interval_s": sc.decision_interval_s,
            "min_replicas": float(sc.min_replicas),
            "max_replicas": float(sc.max_replicas),
            "slo_s": sc.slo_s,
            "idle_time_counts": w["idle_time_counts"],
            "idle_time_beyond_s": w["idle_time_beyond_s"],
        }

    def _info(self, terms: Mapping[str, float]) -> dict[str, Any]:
        info = {
            "metrics": FloatDict(self.last_metrics),
            "reward_terms": FloatDict(terms),
            "reward_vec": np.array([terms.get("cost", 0.0), terms.get("slo", 0.0)]),
            "reward_weights": FloatDict(self.reward_rule.weights),
            "scenario": self.scenario,
            "action_mode": self.action_mode,
            "action_mask": self.action_masks(),
        }
        if self.action_mode == "kpa-target":
            info["target_menu"] = np.array(self.target_menu)
        elif self.action_mode == "keep-alive":
            info["keep_alive_menu_s"] = np.array(self.keep_alive_menu_s)
            info["prewarm_menu_s"] = np.array(self.prewarm_menu_s)
        return info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        m = self.last_metrics
        return (
            f"t={m['time_s']:.0f}s rate={m['arrival_rate_rps']:.2f}/s ready={m['ready_replicas']:.0f} "
            f"starting={m['starting_replicas']:.0f} queue={m['queue_requests']:.1f} "
            f"p99={m['latency_p99_s']:.2f}s miss={m['slo_miss_fraction']:.3f} "
            f"cold={m['cold_start_fraction']:.3f}"
        )


__all__ = [
    "SERVERLESS_PRESETS",
    "ServerlessAutoscaleEnv",
    "ServerlessScenario",
    "action_for_keep_alive",
    "action_for_knob",
    "encode_serverless_observation",
]
