"""ChunkedPrefill-v0: choose the per-iteration prefill token budget of a serving engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from servegym.metric_spec import Metric

from .scenarios import CHUNK_PRESETS, ServingScenario
from .serving_env import LOAD_FEATURES, LOAD_METRICS, ServingControlEnv, load_features, serving_metrics

BUDGET_MENU = (128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 8192)
"""Tile-aligned token budgets (chunk_spec.md D.1)."""

OBSERVATION_FIELDS = (
    ("running decodes / max_num_seqs", 0.0, 1.0),
    ("waiting requests / max_num_seqs (capped at 4)", 0.0, 4.0),
    ("log1p(waiting prompt tokens) / log1p(65536)", 0.0, 2.0),
    ("oldest wait / TTFT SLO (capped at 5)", 0.0, 5.0),
    ("KV-cache utilisation", 0.0, 1.0),
    ("preemptions in the interval / 10 (capped at 1)", 0.0, 1.0),
    ("mean iteration time / TBT SLO (capped at 5)", 0.0, 5.0),
    ("P99 TBT in the interval / TBT SLO (capped at 5)", 0.0, 5.0),
    ("late first tokens / first tokens in the interval", 0.0, 1.0),
    ("arrival rate (EWMA) / estimated capacity (capped at 3)", 0.0, 3.0),
    ("current budget: menu index / (menu size - 1)", 0.0, 1.0),
    ("decode-only iterations / iterations", 0.0, 1.0),
    ("mean decode context / 8192 (capped at 4)", 0.0, 4.0),
    ("prefilling requests / 8 (capped at 4)", 0.0, 4.0),
    ("prompt tokens of arrivals, 10 s average / 8192 (capped at 4)", 0.0, 4.0),
    *LOAD_FEATURES,
)

OBS_LOW = np.array([f[1] for f in OBSERVATION_FIELDS], dtype=np.float32)
OBS_HIGH = np.array([f[2] for f in OBSERVATION_FIELDS], dtype=np.float32)


def encode_chunk_observation(m: Mapping[str, float]) -> np.ndarray:
    """The observation vector from raw metrics (pure: the same code runs in deployment)."""
    seqs = max(m["max_num_seqs"], 1.0)
    first = m["first_tokens"]
    values = (
        m["decoding"] / seqs,
        m["waiting"] / seqs,
        np.log1p(m["waiting_prompt_tokens"]) / np.log1p(65536.0),
        m["oldest_wait_s"] / m["ttft_slo_s"],
        m["kv_utilization"],
        m["preemptions"] / 10.0,
        m["mean_iteration_s"] / m["tbt_slo_s"],
        m["p99_tbt_s"] / m["tbt_slo_s"],
        m["first_tokens_late"] / first if first else 0.0,
        m["arrival_rate_ewma"] / max(m["capacity_rps"], 1e-9),
        m["budget_index"] / (len(BUDGET_MENU) - 1),
        m["decode_only_fraction"],
        m["mean_context"] / 8192.0,
        m["prefilling"] / 8.0,
        m["arrival_prompt_tokens"] / 8192.0,
        *load_features(m),
    )
    obs = np.array(values, dtype=np.float32)
    return obs.clip(OBS_LOW, OBS_HIGH, out=obs)


class ChunkedPrefillEnv(ServingControlEnv):
    """Choose the token budget of a decode-first (Sarathi-Serve / vLLM V1) serving engine.

    ## Description
    Every control interval (default 0.25 s of simulated time) the agent picks how many tokens
    one iteration may process (running decodes count one each; the rest goes to prompt chunks).
    Small budgets keep iterations short (low TBT) but slow prefill (TTFT, throughput); large
    budgets do the opposite. The best budget depends on load, prompt lengths and SLOs.

    ## Action Space
    `Discrete(11)`: index into the tile-aligned menu `BUDGET_MENU` =
    (128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 8192) tokens. `action_masks()`
    returns all-true (every budget is valid); out-of-range actions raise `ValueError`.

    ## Observation Space
    `Box(0, high, (20,), float32)`, from `encode_chunk_observation(info["metrics"])`:

    | index | observation | min | max |
    |---|---|---|---|
    | 0 | running decodes / max_num_seqs | 0 | 1 |
    | 1 | waiting requests / max_num_seqs | 0 | 4 |
    | 2 | log1p(waiting prompt tokens) / log1p(65536) | 0 | 2 |
    | 3 | oldest wait / TTFT SLO | 0 | 5 |
    | 4 | KV-cache utilisation | 0 | 1 |
    | 5 | preemptions in the interval / 10 | 0 | 1 |
    | 6 | mean iteration time / TBT SLO | 0 | 5 |
    | 7 | P99 token gap in the interval / TBT SLO | 0 | 5 |
    | 8 | late first tokens / first tokens in the interval | 0 | 1 |
    | 9 | arrival rate (EWMA) / estimated capacity | 0 | 3 |
    | 10 | current budget (menu index / 10) | 0 | 1 |
    | 11 | decode-only iterations / iterations | 0 | 1 |
    | 12 | mean decode context / 8192 | 0 | 4 |
    | 13 | prefilling requests / 8 | 0 | 4 |
    | 14 | prompt tokens of arrivals (10 s average) / 8192 | 0 | 4 |
    | 15 | arrival rate (30 s average) / estimated capacity | 0 | 3 |
    | 16 | arrival-rate trend: EWMA / 30 s average | 0 | 3 |
    | 17 | running requests whose first token missed the TTFT SLO / max_num_seqs | 0 | 1 |
    | 18 | requests waiting over half the TTFT SLO (not yet all) / max_num_seqs | 0 | 4 |
    | 19 | requests waiting over the TTFT SLO / max_num_seqs | 0 | 4 |

    ## Rewards
    The primary KPI is goodput (DistServe's definition): requests finished with TTFT ≤
    `ttft_slo_s` and TPOT ≤ `tpot_slo_s`, per second of the scenario horizon
    (`info["episode_kpis"]["goodput_requests_per_s"]`). Each decision's reward is
    `scale × (finished − finished late)` for the requests that finished in its interval, as two
    named terms (`info["reward_terms"]`, weights in `reward_weights`, both 1): `finished`
    (`+scale` per finished request) and `missed_slo` (`−scale` per finished request that missed
    the TTFT or the TPOT SLO). `scale = 100 / (offered rate × horizon_s)`, so the return is
    exactly `100 × goodput / offered rate`: the percentage of the offered requests served within
    both SLOs, and a better return is a better KPI. An episode that ends early (queue explosion)
    earns nothing for the rest of the horizon. Requests cannot be dropped or reordered, so the
    reward cannot be gamed by refusing doomed work.

    ## Starting State
    An empty engine at t = 0; requests for the whole horizon are drawn at `reset(seed=...)`.

    ## Episode End
    Truncated when the simulated clock passes the scenario horizon (default 300 s =
    1200 decisions, also `max_episode_steps`) or every request is served; terminated early if
    a request has waited more than 30 s (queue explosion).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | `scenario` | `"llama3-8b-a100-code"` | a preset (`CHUNK_PRESETS`), `"random"` or a scenario |
    | `control_interval_s` | 0.25 | simulated seconds per decision |
    | `reward_weights` | see Rewards | weights of the reward terms |
    | `render_mode` | None | `"ansi"` |
    | any `ServingScenario` field | preset's | e.g. `load=1.1`, `tbt_slo_s=0.5`, `model="Mistral-7B"` |

    ## Version History
    - v0: initial version; the reward became the goodput KPI, the observation gained the
      load trend and TTFT-risk entries 14-19, and the default scenario became
      `llama3-8b-a100-code` (issue 13).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = CHUNK_PRESETS
    KIND: ClassVar[str] = "ChunkedPrefill"
    DEFAULT_SCENARIO: ClassVar[str] = "llama3-8b-a100-code"
    METRICS: ClassVar[tuple[Metric, ...]] = (
        *serving_metrics(
            "decoding",
            "prefilling",
            "waiting",
            "waiting_prompt_tokens",
            "oldest_wait_s",
            "kv_utilization",
            "preemptions",
            "mean_iteration_s",
            "p99_tbt_s",
            "first_tokens",
            "first_tokens_late",
            "decode_only_fraction",
            "mean_context",
            "arrival_prompt_tokens",
            *LOAD_METRICS,
            "ttft_slo_s",
            "tbt_slo_s",
        ),
        Metric("budget_index", "index", "the current budget's index in BUDGET_MENU", high=10, integer=True),
    )

    def __init__(
        self, scenario: str | ServingScenario | None = None, control_interval_s: float = 0.25, **kwargs: Any
    ) -> None:
        if not (isinstance(control_interval_s, (int, float)) and 0.01 <= control_interval_s <= 60):
            raise ValueError(f"control_interval_s must be in [0.01, 60] seconds, got {control_interval_s!r}")
        self.control_interval_s = float(control_interval_s)
        super().__init__(scenario, **kwargs)
        if self.scenario.token_budget not in BUDGET_MENU:
            raise ValueError(
                f"token_budget must be one of the menu {BUDGET_MENU} (the starting budget), "
                f"got {self.scenario.token_budget}"
            )
        self.action_space = spaces.Discrete(len(BUDGET_MENU))
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self.budget_index = BUDGET_MENU.index(self.scenario.token_budget)

    encode = staticmethod(encode_chunk_observation)

    def get_action_meanings(self) -> list[str]:
        return [f"token budget {b}" for b in BUDGET_MENU]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.budget_index = BUDGET_MENU.index(self.scenario.token_budget)
        return super().reset(seed=seed, options=options)

    def _apply_action(self, action: int) -> None:
        self.budget_index = action
        self.engine.token_budget = BUDGET_MENU[action]

    def _advance(self) -> list[float]:
        return self.engine.run_for_window(until=self.engine.now + self.control_interval_s)

    def _metrics(self, window: list[float]) -> dict[str, float]:
        m = self._common_metrics(window)
        m["budget"] = float(BUDGET_MENU[self.budget_index])
        m["budget_index"] = float(self.budget_index)
        return m
