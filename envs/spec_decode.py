"""SpecDecode-v0: choose how many draft tokens to verify per decode step under load."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from servegym.metric_spec import Metric

from .scenarios import SPEC_PRESETS, ServingScenario
from .serving.windows import SUMMARY as S
from .serving_env import LOAD_FEATURES, LOAD_METRICS, ServingControlEnv, load_features, serving_metrics

K_MAX = 8
ACCEPTANCE_KEYS = tuple(f"acceptance_pos{i + 1}" for i in range(K_MAX))
ACCEPTANCE_EWMA = 0.3  # weight of the newest window in the per-position acceptance estimate

OBSERVATION_FIELDS = (
    ("decoding requests / max_num_seqs", 0.0, 1.0),
    ("waiting requests / max_num_seqs (capped at 4)", 0.0, 4.0),
    ("KV-cache utilisation", 0.0, 1.0),
    ("mean decode context / 8192 (capped at 4)", 0.0, 4.0),
    ("p90 decode context / 8192 (capped at 4)", 0.0, 4.0),
    *((f"acceptance at draft position {i + 1} (EWMA)", 0.0, 1.0) for i in range(K_MAX)),
    ("accepted / drafted in the window", 0.0, 1.0),
    ("draft time / busy time in the window", 0.0, 1.0),
    ("mean iteration time / TPOT SLO (capped at 5)", 0.0, 5.0),
    ("median token gap / TPOT SLO (capped at 5)", 0.0, 5.0),
    ("P99 token gap / TPOT SLO (capped at 5)", 0.0, 5.0),
    ("current k / 8", 0.0, 1.0),
    ("arrival rate (EWMA) / estimated capacity (capped at 3)", 0.0, 3.0),
    ("late first tokens / first tokens in the window", 0.0, 1.0),
    ("log1p(waiting prompt tokens) / log1p(65536)", 0.0, 2.0),
    *LOAD_FEATURES,
)

OBS_LOW = np.array([f[1] for f in OBSERVATION_FIELDS], dtype=np.float32)
OBS_HIGH = np.array([f[2] for f in OBSERVATION_FIELDS], dtype=np.float32)


def encode_spec_observation(m: Mapping[str, float]) -> np.ndarray:
    """The observation vector from raw metrics (pure: the same code runs in deployment)."""
    seqs = max(m["max_num_seqs"], 1.0)
    slo = m["tpot_slo_s"]
    first = m["first_tokens"]
    busy = m["busy_s"]
    values = [
        m["decoding"] / seqs,
        m["waiting"] / seqs,
        m["kv_utilization"],
        m["mean_context"] / 8192.0,
        m["p90_context"] / 8192.0,
        *(m[key] for key in ACCEPTANCE_KEYS),
        m["acceptance_rate"],
        m["draft_s"] / busy if busy > 0 else 0.0,
        m["mean_iteration_s"] / slo,
        m["p50_tbt_s"] / slo,
        m["p99_tbt_s"] / slo,
        m["spec_tokens"] / K_MAX,
        m["arrival_rate_ewma"] / max(m["capacity_rps"], 1e-9),
        m["first_tokens_late"] / first if first else 0.0,
        np.log1p(m["waiting_prompt_tokens"]) / np.log1p(65536.0),
        *load_features(m),
    ]
    obs = np.array(values, dtype=np.float32)
    return obs.clip(OBS_LOW, OBS_HIGH, out=obs)


class SpecDecodeEnv(ServingControlEnv):
    """Choose the speculation length k of a serving engine with a draft model or n-gram proposer.

    ## Description
    Every `decision_iterations` engine iterations (default 8) the agent picks k, the number of
    draft tokens each decoding request proposes and the target verifies in one step. Speculation
    multiplies tokens per step by (1 − α^(k+1))/(1 − α) but costs k draft passes and k extra
    verified tokens per request, which stop being free once the batch is compute-bound: no
    single k is best across load, context length and acceptance (SmartSpec).

    ## Action Space
    `Discrete(9)`: k ∈ {0, …, 8} (0 = no speculation). `action_masks()` is all-true;
    out-of-range actions raise `ValueError`.

    ## Observation Space
    `Box(0, high, (27,), float32)`, from `encode_spec_observation(info["metrics"])`:

    | index | observation | min | max |
    |---|---|---|---|
    | 0 | decoding requests / max_num_seqs | 0 | 1 |
    | 1 | waiting requests / max_num_seqs | 0 | 4 |
    | 2 | KV-cache utilisation | 0 | 1 |
    | 3 | mean decode context / 8192 | 0 | 4 |
    | 4 | p90 decode context / 8192 | 0 | 4 |
    | 5–12 | acceptance rate at draft positions 1–8 (EWMA over windows) | 0 | 1 |
    | 13 | accepted / drafted tokens in the window | 0 | 1 |
    | 14 | draft time / busy time in the window | 0 | 1 |
    | 15 | mean iteration time / TPOT SLO | 0 | 5 |
    | 16 | median token gap / TPOT SLO | 0 | 5 |
    | 17 | P99 token gap / TPOT SLO | 0 | 5 |
    | 18 | current k / 8 | 0 | 1 |
    | 19 | arrival rate (EWMA) / estimated capacity | 0 | 3 |
    | 20 | late first tokens / first tokens in the window | 0 | 1 |
    | 21 | log1p(waiting prompt tokens) / log1p(65536) | 0 | 2 |
    | 22 | arrival rate (30 s average) / estimated capacity | 0 | 3 |
    | 23 | arrival-rate trend: EWMA / 30 s average | 0 | 3 |
    | 24 | running requests whose first token missed the TTFT SLO / max_num_seqs | 0 | 1 |
    | 25 | requests waiting over half the TTFT SLO (not yet all) / max_num_seqs | 0 | 4 |
    | 26 | requests waiting over the TTFT SLO / max_num_seqs | 0 | 4 |

    ## Rewards
    The primary KPI is goodput (DistServe's definition): requests finished with TTFT ≤
    `ttft_slo_s` and TPOT ≤ `tpot_slo_s`, per second of the scenario horizon
    (`info["episode_kpis"]["goodput_requests_per_s"]`). Speculation changes both: it shortens
    TPOT while verification is cheap and lengthens it (and delays prefills, whose tokens share
    the iteration's budget with the drafts) once it is not. Each decision's reward is
    `scale × (finished − finished late)` over the requests that finished during it, as two named
    terms (`info["reward_terms"]`, weights in `reward_weights`, both 1): `finished` (`+scale` per
    finished request) and `missed_slo` (`−scale` per finished request that missed the TTFT or
    the TPOT SLO). `scale = 100 / (offered rate × horizon_s)`, so the return is exactly
    `100 × goodput / offered rate`, the percentage of the offered requests served within both
    SLOs, however many decisions the episode takes.

    ## Starting State
    An empty engine at t = 0 with k = the scenario's `spec_tokens` (default 0).

    ## Episode End
    Truncated when the simulated clock passes the horizon (default 300 s) or every request is
    served; terminated early if a request has waited more than 30 s.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | `scenario` | `"llama2-7b-68m-tight-slo"` | a preset (`SPEC_PRESETS`), `"random"` or a scenario |
    | `decision_iterations` | 8 | engine iterations per decision (1–20) |
    | `reward_weights` | see Rewards | weights of the reward terms |
    | `render_mode` | None | `"ansi"` |
    | any `ServingScenario` field | preset's | e.g. `load=0.9`, `acceptance="code"`, `draft="ngram"` |

    ## Version History
    - v0: initial version; the reward became the goodput KPI (it was a per-decision token-rate
      ratio, whose sum grew with the number of decisions), the observation gained entries
      21-26, and the default scenario became `llama2-7b-68m-tight-slo` (issue 13).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = SPEC_PRESETS
    KIND: ClassVar[str] = "SpecDecode"
    DEFAULT_SCENARIO: ClassVar[str] = "llama2-7b-68m-tight-slo"
    METRICS: ClassVar[tuple[Metric, ...]] = (
        *serving_metrics(
            "decoding",
            "waiting",
            "kv_utilization",
            "mean_context",
            "p90_context",
            "busy_s",
            "draft_s",
            "mean_iteration_s",
            "p50_tbt_s",
            "p99_tbt_s",
            "first_tokens",
            "first_tokens_late",
            "waiting_prompt_tokens",
            *LOAD_METRICS,
            "tpot_slo_s",
        ),
        *(
            Metric(
                f"acceptance_pos{i + 1}", "fraction", f"acceptance at draft position {i + 1} (EWMA)", high=1
            )
            for i in range(K_MAX)
        ),
        Metric("acceptance_rate", "fraction", "accepted / drafted tokens in the last window", high=1.0),
        Metric("spec_tokens", "tokens", "the current speculation length k", high=K_MAX, integer=True),
    )

    def __init__(
        self, scenario: str | ServingScenario | None = None, decision_iterations: int = 8, **kwargs: Any
    ) -> None:
        if not (isinstance(decision_iterations, int) and 1 <= decision_iterations <= 20):
            raise ValueError(f"decision_iterations must be an integer in 1..20, got {decision_iterations!r}")
        self.decision_iterations = decision_iterations
        super().__init__(scenario, **kwargs)
        if self.scenario.draft is None:
            raise ValueError("SpecDecode scenarios need a draft: set draft='ngram' or a draft model name")
        self.action_space = spaces.Discrete(K_MAX + 1)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)

    encode = staticmethod(encode_spec_observation)

    def get_action_meanings(self) -> list[str]:
        return ["k = 0: no speculation", *(f"k = {k} draft tokens" for k in range(1, K_MAX + 1))]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._acceptance = [0.7] * K_MAX  # prior: SmartSpec's initial alpha
        return super().reset(seed=seed, options=options)

    def _apply_action(self, action: int) -> None:
        self.engine.spec_tokens = action

    def _advance(self) -> list[float]:
        return self.engine.run_for_window(until=self.scenario.horizon_s, iterations=self.decision_iterations)

    def _metrics(self, w: list[float]) -> dict[str, float]:
        m = self._common_metrics(w)
        drafted = w[S.drafted_at_position : S.drafted_at_position + K_MAX]
        accepted = w[S.accepted_at_position : S.accepted_at_position + K_MAX]
        self._acceptance = [  # EWMA of each draft position's acceptance, where it was drafted
            (1 - ACCEPTANCE_EWMA) * old + ACCEPTANCE_EWMA * (a / d) if d > 0 else old
            for old, a, d in zip(self._acceptance, accepted, drafted, strict=True)
        ]
        m.update(zip(ACCEPTANCE_KEYS, self._acceptance, strict=True))
        drafted_total, accepted_total, iterations = w[S.drafted], w[S.accepted], w[S.iterations]
        m["acceptance_rate"] = accepted_total / drafted_total if drafted_total else 0.0
        m["drafted"] = drafted_total
        m["accepted"] = accepted_total
        m["draft_s"] = w[S.draft_s]
        m["busy_s"] = w[S.busy_s]
        m["spec_tokens"] = float(self.engine.spec_tokens)
        m["mean_batch"] = w[S.batch_size_sum] / iterations if iterations else 0.0
        return m
