"""Token-budget controllers for ChunkedPrefill-v0 (rules from ../shared/reference/chunk_spec.md D.1)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from servegym.envs.chunked_prefill import BUDGET_MENU
from servegym.envs.scenarios import ServingScenario
from servegym.hardware import IterationBatch, LatencyModel

ENGINE_DEFAULTS = {
    "sarathi": 512,  # sarathi/config/config.py chunk_size
    "vllm-a100": 2048,  # vLLM V1 OpenAI server, < 70 GiB or A100 (EngineArgs.get_batch_defaults)
    "vllm-h100": 8192,  # vLLM V1 OpenAI server, >= 70 GiB non-A100
    "sglang": 8192,  # chunked_prefill_size on A100/H100-class GPUs
    "fastgen": 768,  # DeepSpeed-FastGen max_ragged_batch_size
}


def menu_index(budget: int) -> int:
    if budget not in BUDGET_MENU:
        raise ValueError(f"budget {budget} is not in the menu {BUDGET_MENU}")
    return BUDGET_MENU.index(budget)


def _scenario(info: Mapping[str, Any]) -> ServingScenario:
    return info["scenario"]


def _predicted_iteration_s(
    lm: LatencyModel, decodes: int, context: float, budget: int, prompt: float
) -> float:
    """Iteration time of ``decodes`` decodes plus a prompt chunk filling the rest of ``budget``."""
    batch = IterationBatch(decode_seqs=decodes, decode_context=decodes * context)
    chunk = budget - decodes
    if chunk > 0:
        batch.add_prefill(chunk, int(prompt / 2))
    return lm.iteration_time(batch)


class FixedBudget:
    """A constant budget (an engine default: Sarathi 512, vLLM 2048/8192, SGLang 8192, FastGen 768)."""

    def __init__(self, budget: int = 512, label: str = "") -> None:
        self.index = menu_index(int(budget))
        self.name = f"Fixed({budget})" + (f" [{label}]" if label else "")

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        return self.index


class SarathiStatic:
    """Sarathi-Serve's offline choice: the largest menu budget whose predicted iteration time
    with ``max_num_seqs`` decodes at the mean context plus a chunk filling the budget is at most
    ``theta`` x the TBT SLO (theta = 0.9); fixed for the episode."""

    name = "SarathiStatic"

    def __init__(self, theta: float = 0.9) -> None:
        if not 0 < theta <= 1:
            raise ValueError(f"theta must be in (0, 1], got {theta}")
        self.theta = theta
        self.index: int | None = None

    def reset(self, seed: int | None = None) -> None:
        self.index = None

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        if self.index is None:
            sc = _scenario(info)
            lm = sc.latency_model()
            prompt, output = sc.mean_lengths()
            context = prompt + output / 2
            ok = [
                i
                for i, b in enumerate(BUDGET_MENU)
                if _predicted_iteration_s(lm, sc.max_num_seqs, context, b, prompt)
                <= self.theta * sc.tbt_slo_s
            ]
            self.index = max(ok) if ok else 0
        return self.index


class SlackFeedback:
    """Each interval: P99 iteration time > 0.9 x SLO -> one menu level down; < 0.6 x SLO with
    prompt tokens waiting -> one level up; after a change, hold for one interval."""

    name = "SlackFeedback"

    def __init__(self, start_budget: int = 512, high: float = 0.9, low: float = 0.6) -> None:
        self.start = menu_index(start_budget)
        self.high, self.low = high, low
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.index = self.start
        self.hold = False

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        m = info["metrics"]
        if self.hold:
            self.hold = False
            return self.index
        slo = m["tbt_slo_s"]
        previous = self.index
        if m["p99_iteration_s"] > self.high * slo:
            self.index = max(self.index - 1, 0)
        elif m["p99_iteration_s"] < self.low * slo and m["waiting_prompt_tokens"] > 0:
            self.index = min(self.index + 1, len(BUDGET_MENU) - 1)
        self.hold = self.index != previous
        return self.index


class PressureRule:
    """P-PAS-like: the largest budget (8192) while waiting prompt tokens < tau and running
    decodes < d1 x max_num_seqs; otherwise the largest menu budget whose predicted iteration
    time with the current decodes meets the TBT SLO. (The reference words the second case as
    the "smallest budget meeting T <= SLO", which would always be 128; the largest is the
    reading that makes the rule adaptive.)"""

    name = "PressureRule"

    def __init__(self, tau_tokens: int = 2048, d1_fraction: float = 0.25) -> None:
        self.tau, self.d1 = tau_tokens, d1_fraction
        self._lm: LatencyModel | None = None

    def reset(self, seed: int | None = None) -> None:
        self._lm = None

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        m = info["metrics"]
        if m["waiting_prompt_tokens"] < self.tau and m["decoding"] < self.d1 * m["max_num_seqs"]:
            return len(BUDGET_MENU) - 1
        if self._lm is None:
            sc = _scenario(info)
            self._lm = sc.latency_model()
            self._prompt = sc.mean_lengths()[0]
        decodes = max(int(m["decoding"]), 1)
        context = max(m["mean_context"], 1.0)
        ok = [
            i
            for i, b in enumerate(BUDGET_MENU)
            if b > decodes
            and _predicted_iteration_s(self._lm, decodes, context, b, self._prompt) <= m["tbt_slo_s"]
        ]
        return max(ok) if ok else 0


class BestStaticOracle:
    """The best fixed budget for this scenario and seed, found by simulating the whole episode
    once per menu budget on copies of the env (``env.advance``): an upper bound for static
    control, not for adaptive heuristics (``LookaheadOracle`` is the upper bound for those)."""

    name = "BestStaticOracle"

    def __init__(self, env: Any) -> None:
        self.env = env
        self.index: int | None = None
        self.returns: dict[int, float] = {}

    def reset(self, seed: int | None = None) -> None:
        self.index = None

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        if self.index is None:
            base = self.env.unwrapped
            self.returns = {}
            for i in range(len(BUDGET_MENU)):
                sim = copy.deepcopy(base)
                total, done = 0.0, False
                while not done:
                    reward, done = sim.advance(i)
                    total += reward
                self.returns[i] = total
            self.index = max(self.returns, key=self.returns.get)
        return self.index
