"""Shared machinery of the serving-control environments (one engine knob per env).

Subclasses define the action menu, how an action is applied and how long a decision lasts,
the metrics they report and the observation encoder (a pure function of the metrics). This
base handles scenarios, seeding, the engine, windows, the reward, info and rendering.

The reward measures the envs' primary KPI, goodput (DistServe): requests that finish within
both the TTFT and the TPOT SLO, per second of the scenario horizon. Each decision's reward is
``scale`` x (finished requests - finished requests that missed an SLO) of its window, with
``scale = 100 / (offered rate x horizon)``, so an episode's return is exactly
``100 x goodput / offered rate``: the share of the offered requests, in percent, served within
both SLOs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from servegym.metric_spec import Metric

from .scenarios import ServingScenario, random_scenario, resolve_scenario
from .serving.engine import ServingEngine
from .serving.summary import inflight_slo_counts, settle_finished, still_possible, summarize
from .serving.windows import SUMMARY as S

QUEUE_EXPLOSION_S = 30.0  # scheduling delay that ends an episode early (chunk_spec.md D.1)
SLOW_RATE_TAU_S = 30.0  # time constant of the slow arrival-rate average (the fast one: weight 0.2)
PROMPT_TAU_S = 10.0  # time constant of the average prompt length of arrivals


_INTS = (int, np.int64, np.int32)


class FloatDict(dict):
    """A dict of float values (metrics, reward terms). Its deep copy is a plain copy, which is
    exact for immutable values and spares vectorised wrappers (SB3's DummyVecEnv deep-copies
    every info) a call per entry."""

    def __deepcopy__(self, memo: dict) -> FloatDict:
        return FloatDict(self)


class ServingControlEnv(gym.Env[np.ndarray, np.int64]):
    """Base class: a scenario, an engine, a decision per ``_advance`` and a reward per window."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    KIND: ClassVar[str] = "serving"
    DEFAULT_SCENARIO: ClassVar[str] = ""
    PRIMARY_KPI: ClassVar[str] = "goodput_requests_per_s"
    """The ``episode_kpis`` entry the return is a fixed positive multiple of (see the module)."""
    REWARD_WEIGHTS: ClassVar[dict[str, float]] = {"finished": 1.0, "missed_slo": 1.0}
    METRICS: ClassVar[tuple[Metric, ...]] = ()
    """The metrics ``encode`` reads (the operator's contract; see ``servegym.metric_spec``)."""

    def __init__(
        self,
        scenario: str | ServingScenario | None = None,
        render_mode: str | None = None,
        reward_weights: Mapping[str, float] | None = None,
        **overrides: Any,
    ) -> None:
        # Other render modes (SB3's make_vec_env asks for "rgb_array") are accepted and render
        # nothing; gymnasium.make already warns about them.
        self.render_mode = render_mode
        scenario = self.DEFAULT_SCENARIO if scenario is None else scenario
        self._randomise = scenario == "random"
        self.scenario_name = scenario if isinstance(scenario, str) else "custom"
        self._overrides = dict(overrides)
        if self._randomise:
            self.scenario = random_scenario(self.PRESETS, np.random.default_rng(0), self._overrides)
        else:
            self.scenario = resolve_scenario(self.PRESETS, scenario, self._overrides, self.KIND)
        weights = dict(self.REWARD_WEIGHTS)
        for name, value in (reward_weights or {}).items():
            if name not in weights:
                raise ValueError(f"unknown reward weight {name!r}; terms: {sorted(weights)}")
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"reward weight {name!r} must be finite and >= 0, got {value!r}")
            weights[name] = float(value)
        self.reward_weights = weights
        self.engine: ServingEngine | None = None
        self.last_metrics: dict[str, float] = {}
        self._capacity = self.scenario.capacity_rps()

    # -- to implement --------------------------------------------------------------------------
    def _apply_action(self, action: int) -> None:
        raise NotImplementedError

    def _advance(self) -> list[float]:
        """Simulate one decision interval; returns the engine's window summary."""
        raise NotImplementedError

    def _metrics(self, window: list[float]) -> dict[str, float]:
        """The metrics a live system would report, from the engine's window summary (a list
        indexed by ``serving.windows.SUMMARY``)."""
        raise NotImplementedError

    @staticmethod
    def encode(metrics: Mapping[str, float]) -> np.ndarray:
        raise NotImplementedError

    def observation_from_metrics(self, metrics: Mapping[str, float]) -> np.ndarray:
        """The observation a live system's metrics give (the keys of ``info["metrics"]``)."""
        return self.encode(metrics)

    def action_masks(self) -> np.ndarray:
        """Every action of the menu is valid in these envs (kept for MaskablePPO)."""
        return np.ones(self.action_space.n, dtype=bool)

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        if self._randomise:
            self.scenario = random_scenario(self.PRESETS, rng, self._overrides)
            self._capacity = self.scenario.capacity_rps()
        requests = self.scenario.workload().sample(rng, self.scenario.horizon_s)
        engine_rng = np.random.default_rng(rng.integers(2**63))
        self.engine = ServingEngine(self.scenario.engine_config(), requests, engine_rng)
        self._arrival_ewma = self.scenario.load * self._capacity
        sc = self.scenario
        self.reward_scale = 100.0 / (sc.offered_rate() * sc.horizon_s)
        self._settled = np.zeros(self.engine.n, dtype=np.int8)
        self._settle_start = 0
        self._good_total = 0
        self._arrival_slow = self._arrival_ewma
        self._arrived = 0
        self._prompt_ewma = sc.mean_lengths()[0]
        self.last_metrics = self._metrics(self.engine.take_window_summary())
        return self.encode(self.last_metrics), self._info({})

    def step(self, action):
        action = self._checked_action(action)
        window, reward, terms, terminated, truncated = self._transition(action)
        metrics = self._metrics(window)
        self.last_metrics = metrics
        info = self._info(terms)
        if terminated or truncated:
            info["episode_kpis"] = self._episode_kpis()
        return self.encode(metrics), reward, terminated, truncated, info

    def advance(self, action: int) -> tuple[float, bool]:
        """The reward-relevant part of ``step``: apply ``action``, simulate one decision and
        return ``(reward, episode over)``, without metrics, observation or info (their running
        estimates are not updated). For oracles' roll-outs on copies of the env."""
        _, reward, _, terminated, truncated = self._transition(action)
        return reward, terminated or truncated

    def _checked_action(self, action) -> int:
        if self.engine is None:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset()")
        fast = type(action) in _INTS and 0 <= action < self.action_space.n
        if not fast and not self.action_space.contains(action):
            if isinstance(action, (np.ndarray, list)) and np.size(action) == 1:
                action = np.asarray(action).reshape(()).item()
            if not self.action_space.contains(action) and not (
                isinstance(action, (int, np.integer)) and 0 <= int(action) < self.action_space.n
            ):
                raise ValueError(
                    f"action {action!r} is outside the action space {self.action_space} "
                    f"(an integer in 0..{self.action_space.n - 1})"
                )
        return int(action)

    def _transition(self, action: int) -> tuple[list[float], float, dict[str, float], bool, bool]:
        """One decision: the window summary, the reward and its terms, terminated, truncated."""
        self._apply_action(action)
        window = self._advance()
        finished, good = self._settle()
        scale = self.reward_scale
        terms = FloatDict(finished=scale * finished, missed_slo=-scale * (finished - good))
        weights = self.reward_weights
        reward = weights["finished"] * terms["finished"] + weights["missed_slo"] * terms["missed_slo"]
        engine = self.engine
        terminated = window[S.oldest_wait_s] > QUEUE_EXPLOSION_S
        truncated = (engine.now >= self.scenario.horizon_s or engine.done) and not terminated
        return window, float(reward), terms, bool(terminated), bool(truncated)

    def _requests(self) -> tuple[np.ndarray, ...]:
        """The arrived requests' status, and every request's arrival, first token, finish time
        and output length (views of the engine's request table)."""
        table = self.engine.requests
        arrived = self.engine.next_arrival
        return (
            table.status[:arrived], table.arrival_s, table.first_token_s, table.finished_s,
            table.output_tokens,
        )  # fmt: skip

    def _settle(self) -> tuple[int, int]:
        """Requests finished since the last call, and how many of them met both SLOs."""
        sc = self.scenario
        finished, good, self._settle_start = settle_finished(
            *self._requests(), self._settled, self._settle_start, sc.ttft_slo_s, sc.tpot_slo_s
        )
        self._good_total += good
        return finished, good

    def good_so_far(self) -> int:
        """Requests finished so far within both SLOs (the KPI's numerator)."""
        return self._good_total

    def still_possible(self) -> int:
        """Arrived requests that met or can still meet both SLOs (``summary.still_possible``): an
        oracle's optimistic estimate of the good requests a state leads to."""
        sc = self.scenario
        return int(still_possible(*self._requests(), self.engine.now, sc.ttft_slo_s, sc.tpot_slo_s))

    def _episode_kpis(self) -> dict[str, float]:
        """``summarize`` of the engine, with goodput over the scenario horizon (so an episode
        that ends early counts zero for the rest of it): the env's primary KPI."""
        kpis = summarize(self.engine)
        kpis[self.PRIMARY_KPI] = self._good_total / self.scenario.horizon_s
        return kpis

    def _info(self, terms: Mapping[str, float]) -> dict[str, Any]:
        return {
            "metrics": FloatDict(self.last_metrics),
            "reward_terms": FloatDict(terms),
            "scenario": self.scenario,
            "capacity_rps": self._capacity,
            "action_mask": self.action_masks(),
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        m = self.last_metrics
        keys = [
            k
            for k in (
                "time_s",
                "running",
                "waiting",
                "kv_utilization",
                "p99_tbt_s",
                "mean_ttft_s",
                "budget",
                "spec_tokens",
                "acceptance_rate",
            )
            if k in m
        ]
        return " ".join(f"{k}={m[k]:.3g}" for k in keys)

    # -- shared metrics --------------------------------------------------------------------------
    def _common_metrics(self, w: list[float]) -> dict[str, float]:
        sc = self.scenario
        now = w[S.now_s]
        elapsed = max(now - w[S.start_s], 1e-9)
        iterations = w[S.iterations]
        rate = w[S.arrivals] / elapsed
        self._arrival_ewma = 0.8 * self._arrival_ewma + 0.2 * rate
        slow = -np.expm1(-elapsed / SLOW_RATE_TAU_S)
        self._arrival_slow += slow * (rate - self._arrival_slow)
        status, arrival, first, _, _ = self._requests()
        arrived = len(status)
        if arrived > self._arrived:
            prompts = self.engine.requests.prompt_tokens[self._arrived : arrived]
            weight = -np.expm1(-elapsed / PROMPT_TAU_S)
            self._prompt_ewma += weight * (float(prompts.mean()) - self._prompt_ewma)
            self._arrived = arrived
        running_late, waiting_at_risk, waiting_late = inflight_slo_counts(
            status, arrival, first, now, sc.ttft_slo_s, self._settle_start
        )
        return {
            "time_s": now,
            "window_s": elapsed,
            "running": w[S.running],
            "decoding": w[S.decoding],
            "prefilling": w[S.prefilling],
            "waiting": w[S.waiting],
            "waiting_prompt_tokens": w[S.waiting_prompt_tokens],
            "oldest_wait_s": w[S.oldest_wait_s],
            "kv_utilization": w[S.kv_utilization],
            "preemptions": w[S.preemptions],
            "iterations": iterations,
            "mean_iteration_s": w[S.busy_s] / iterations if iterations else 0.0,
            "max_iteration_s": w[S.max_iteration_s],
            "p99_iteration_s": w[S.p99_iteration_s],
            "p99_tbt_s": w[S.p99_gap_s],
            "p50_tbt_s": w[S.p50_gap_s],
            "tbt_excess": w[S.tbt_excess],
            "slow_steps": w[S.slow_steps],
            "decode_steps": w[S.decode_steps],
            "first_tokens": w[S.first_tokens],
            "first_tokens_late": w[S.first_tokens_late],
            "ttft_excess": w[S.ttft_excess],
            "decode_tokens": w[S.decode_tokens],
            "prefill_tokens": w[S.prefill_tokens],
            "tokens_within_slo": w[S.tokens_within_slo],
            "finished": w[S.finished],
            "arrivals": w[S.arrivals],
            "arrival_rate": rate,
            "arrival_rate_ewma": self._arrival_ewma,
            "arrival_rate_slow": self._arrival_slow,
            "arrival_prompt_tokens": self._prompt_ewma,
            "running_late": float(running_late),
            "waiting_at_risk": float(waiting_at_risk),
            "waiting_late": float(waiting_late),
            "capacity_rps": self._capacity,
            "mean_context": w[S.mean_context],
            "p90_context": w[S.p90_context],
            "decode_only_fraction": w[S.decode_only_iterations] / iterations if iterations else 1.0,
            "busy_fraction": min(w[S.busy_s] / elapsed, 1.0),
            "max_num_seqs": float(sc.max_num_seqs),
            "tbt_slo_s": sc.tbt_slo_s,
            "ttft_slo_s": sc.ttft_slo_s,
            "tpot_slo_s": sc.tpot_slo_s,
        }


SERVING_METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("decoding", "requests", "requests in their decode phase now"),
        Metric("prefilling", "requests", "requests with a prompt being prefilled now"),
        Metric("waiting", "requests", "requests queued, not yet scheduled"),
        Metric("waiting_prompt_tokens", "tokens", "prompt tokens of the waiting requests"),
        Metric("oldest_wait_s", "s", "queueing time of the oldest waiting request"),
        Metric("kv_utilization", "fraction", "KV-cache blocks in use / blocks", high=1.0),
        Metric("preemptions", "count", "preemptions in the last interval"),
        Metric("mean_iteration_s", "s", "mean engine iteration time in the last interval"),
        Metric("p50_tbt_s", "s", "median gap between output tokens in the last interval"),
        Metric("p99_tbt_s", "s", "P99 gap between output tokens in the last interval"),
        Metric("first_tokens", "count", "first tokens (prefills finished) in the last interval"),
        Metric("first_tokens_late", "count", "of those, first tokens later than the TTFT SLO"),
        Metric("arrival_rate_ewma", "req/s", "arrival rate, EWMA over intervals (weight 0.2)"),
        Metric("arrival_rate_slow", "req/s", "arrival rate, exponential average over 30 s"),
        Metric("arrival_prompt_tokens", "tokens", "prompt length of arrivals, exponential average over 10 s"),
        Metric("running_late", "requests", "running requests whose first token missed the TTFT SLO"),
        Metric(
            "waiting_at_risk", "requests", "requests waiting for over half the TTFT SLO, not yet all of it"
        ),
        Metric("waiting_late", "requests", "requests waiting for longer than the TTFT SLO"),
        Metric("decode_only_fraction", "fraction", "iterations without prefill / iterations", high=1.0),
        Metric("mean_context", "tokens", "mean context length of the decoding requests"),
        Metric("p90_context", "tokens", "P90 context length of the decoding requests"),
        Metric("busy_s", "s", "engine busy time in the last interval"),
        Metric("draft_s", "s", "draft-model time in the last interval"),
        Metric("capacity_rps", "req/s", "estimated capacity of the instance", low_open=True, scenario=True),
        Metric(
            "max_num_seqs",
            "requests",
            "the engine's limit on running requests",
            low=1,
            integer=True,
            scenario=True,
        ),
        Metric("ttft_slo_s", "s", "time-to-first-token SLO", low_open=True, scenario=True),
        Metric("tbt_slo_s", "s", "time-between-tokens SLO", low_open=True, scenario=True),
        Metric("tpot_slo_s", "s", "time-per-output-token SLO", low_open=True, scenario=True),
    )
}
"""The serving metrics the envs' encoders read, declared once; each env picks its own."""


def serving_metrics(*names: str) -> tuple[Metric, ...]:
    return tuple(SERVING_METRICS[n] for n in names)


LOAD_FEATURES = (
    ("arrival rate, 30 s average / estimated capacity (capped at 3)", 0.0, 3.0),
    ("arrival-rate trend: EWMA / 30 s average (capped at 3)", 0.0, 3.0),
    ("running requests whose first token was late / max_num_seqs", 0.0, 1.0),
    ("requests waiting over half the TTFT SLO / max_num_seqs (capped at 4)", 0.0, 4.0),
    ("requests waiting over the TTFT SLO / max_num_seqs (capped at 4)", 0.0, 4.0),
)
"""Observation entries both serving envs append: the load's trend and the requests at risk of
missing, or already past, the TTFT SLO (``load_features``)."""
LOAD_METRICS = (
    "arrival_rate_ewma",
    "arrival_rate_slow",
    "running_late",
    "waiting_at_risk",
    "waiting_late",
    "capacity_rps",
    "max_num_seqs",
)
"""The metrics ``load_features`` reads."""


def load_features(m: Mapping[str, float]) -> tuple[float, ...]:
    """The ``LOAD_FEATURES`` entries from raw metrics (unclipped; the encoders clip)."""
    capacity = max(m["capacity_rps"], 1e-9)
    seqs = max(m["max_num_seqs"], 1.0)
    return (
        m["arrival_rate_slow"] / capacity,
        m["arrival_rate_ewma"] / max(m["arrival_rate_slow"], 1e-3 * capacity),
        m["running_late"] / seqs,
        m["waiting_at_risk"] / seqs,
        m["waiting_late"] / seqs,
    )
