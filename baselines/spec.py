"""Speculation-length controllers for SpecDecode-v0 (rules from ../shared/reference/chunk_spec.md
B.3-B.4 and D.2)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from servegym.envs.scenarios import ServingScenario
from servegym.envs.serving.speculation import expected_tokens_per_step
from servegym.envs.spec_decode import K_MAX
from servegym.hardware import IterationBatch, LatencyModel


class _StepModel:
    """Predicted time of one speculative step: k draft passes plus the target's verification,
    from the scenario's latency model (the "informed" predictor)."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        sc: ServingScenario = info["scenario"]
        self.target: LatencyModel = sc.latency_model()
        self.draft: LatencyModel | None = sc.draft_latency_model()

    def step_time(self, batch: int, context: float, k: int) -> float:
        total = self.target.iteration_time(
            IterationBatch(decode_seqs=batch, decode_context=batch * context, spec_tokens=k)
        )
        if self.draft is not None:
            for i in range(k):
                total += self.draft.iteration_time(
                    IterationBatch(decode_seqs=batch, decode_context=batch * (context + i))
                )
        return total


def _batch_and_context(m: Mapping[str, float]) -> tuple[int, float]:
    return max(round(m["decoding"]), 1), max(m["mean_context"], 1.0)


class FixedK:
    """A constant speculation length."""

    def __init__(self, k: int = 3) -> None:
        if not 0 <= k <= K_MAX:
            raise ValueError(f"k must be in 0..{K_MAX}, got {k}")
        self.k = int(k)
        self.name = f"Fixed({k})"

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        return self.k


class DisableByBatchSize:
    """vLLM V0 ``speculative_disable_by_batch_size`` (#4592): k while the running batch is
    smaller than ``threshold``, else 0."""

    def __init__(self, k: int = 3, threshold: int = 8) -> None:
        if not 0 <= k <= K_MAX:
            raise ValueError(f"k must be in 0..{K_MAX}, got {k}")
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        self.k, self.threshold = int(k), int(threshold)
        self.name = f"DisableByBatchSize(k={k}, T={threshold})"

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        return self.k if info["metrics"]["running"] < self.threshold else 0


class BatchSizeTable:
    """vLLM V1 batch-size -> k schedule (#32374 and its offline generator): for profiled batch
    sizes {1, 4, 16, 64, 256} pick argmax_k (1 + sum_{i<k} a_i) / ITL(bs, k) over k in
    {0, 1, 3, 5}; use the entry of the nearest profiled size (log scale); the table is rebuilt
    with the online per-position acceptance every ``refresh`` decisions (first after 10)."""

    name = "BatchSizeTable"
    SIZES = (1, 4, 16, 64, 256)
    KS = (0, 1, 3, 5)

    def __init__(self, refresh: int = 10, alpha0: float = 0.7) -> None:
        if refresh < 1 or not 0 < alpha0 < 1:
            raise ValueError(f"need refresh >= 1 and 0 < alpha0 < 1, got refresh={refresh}, alpha0={alpha0}")
        self.refresh, self.alpha0 = refresh, alpha0
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.model: _StepModel | None = None
        self.table: dict[int, int] = {}
        self.decisions = 0

    def _build(self, info: Mapping[str, Any], rates: Sequence[float]) -> None:
        m = info["metrics"]
        context = max(m["mean_context"], 1.0)
        for bs in self.SIZES:
            best, best_value = 0, -np.inf
            for k in self.KS:
                tokens = 1.0 + float(sum(rates[:k]))
                value = tokens / self.model.step_time(bs, context, k)
                if value > best_value:
                    best, best_value = k, value
            self.table[bs] = best

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        m = info["metrics"]
        if self.model is None:
            self.model = _StepModel(info)
            self._build(info, [self.alpha0 ** (i + 1) for i in range(K_MAX)])
        self.decisions += 1
        if self.decisions >= self.refresh and self.decisions % self.refresh == 0:
            self._build(info, [m[f"acceptance_pos{i + 1}"] for i in range(K_MAX)])
        bs = max(m["decoding"], 1.0)
        nearest = min(self.SIZES, key=lambda s: abs(math.log(s) - math.log(bs)))
        return self.table[nearest]


class SmartSpecGreedy:
    """SmartSpec / DSD (authors' code): every 20 engine steps enumerate k = 0..K with predicted
    goodput B * AL(alpha_hat, k) / T(B, L, k) (k = 0 boosted 1.1x), stopping at the first
    decrease; alpha_hat is an EMA (0.85 old / 0.15 new, start 0.7) of the measured acceptance at
    the first draft position. T comes from the scenario's latency model (informed variant)."""

    name = "SmartSpecGreedy"

    def __init__(
        self,
        recompute_steps: int = 20,
        alpha0: float = 0.7,
        k0_bonus: float = 1.1,
        decision_iterations: int = 8,
    ) -> None:
        self.every = max(1, math.ceil(recompute_steps / decision_iterations))
        self.alpha0, self.k0_bonus = alpha0, k0_bonus
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.model: _StepModel | None = None
        self.alpha = self.alpha0
        self.k = 0
        self.decisions = 0

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        m = info["metrics"]
        if self.model is None:
            self.model = _StepModel(info)
        if m.get("drafted", 0.0) > 0:
            self.alpha = 0.85 * self.alpha + 0.15 * m["acceptance_pos1"]
        if self.decisions % self.every == 0:
            batch, context = _batch_and_context(m)
            best_k, best = 0, -np.inf
            for k in range(K_MAX + 1):
                goodput = (
                    batch * expected_tokens_per_step(self.alpha, k) / self.model.step_time(batch, context, k)
                )
                if k == 0:
                    goodput *= self.k0_bonus
                if goodput < best:
                    break
                best_k, best = k, goodput
            self.k = best_k
        self.decisions += 1
        return self.k


class SGLangEMA:
    """SGLang adaptive speculation (adaptive_spec_params defaults): per batch-size tier a list
    of step counts (bs 1: {1,3,5,7}; bs 8: {0,1,3}; bs 32: {0,1}; bs >= 64: {0}); an EMA
    (0.8/0.2) of mean accepted drafts per verification; after 10 warm-up decisions, every 5:
    drop one level if ema <= prev - 0.5 + down_hyst (prev = 0 -> threshold 0.5), rise if
    ema > current - 0.5 + up_hyst; from 0 always probe the next level."""

    name = "SGLangEMA"
    TIERS = ((64, (0,)), (32, (0, 1)), (8, (0, 1, 3)), (1, (1, 3, 5, 7)))

    def __init__(
        self, warmup: int = 10, every: int = 5, down_hyst: float = 0.0, up_hyst: float = 0.0
    ) -> None:
        if warmup < 0 or every < 1:
            raise ValueError(f"need warmup >= 0 and every >= 1, got warmup={warmup}, every={every}")
        self.warmup, self.every = warmup, every
        self.down_hyst, self.up_hyst = down_hyst, up_hyst
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.ema = 0.0
        self.level: dict[int, int] = {}
        self.decisions = 0

    def _tier(self, batch: float) -> tuple[int, tuple[int, ...]]:
        for threshold, steps in self.TIERS:
            if batch >= threshold:
                return threshold, steps
        return self.TIERS[-1]

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        m = info["metrics"]
        tier, steps = self._tier(max(m["decoding"], 1.0))
        level = self.level.setdefault(tier, len(steps) - 1 if tier == 1 else 0)
        if m.get("drafted", 0.0) > 0:
            verifications = max(m["decoding"], 1.0) * max(m["iterations"], 1.0)
            self.ema = 0.8 * self.ema + 0.2 * (m["accepted"] / verifications)
        self.decisions += 1
        if self.decisions > self.warmup and self.decisions % self.every == 0:
            current = steps[level]
            prev = steps[level - 1] if level > 0 else 0
            if current == 0 and level + 1 < len(steps):
                level += 1  # from 0 always probe the next level
            elif level > 0 and self.ema <= (0.5 if prev == 0 else prev - 0.5 + self.down_hyst):
                level -= 1
            elif level + 1 < len(steps) and self.ema > current - 0.5 + self.up_hyst:
                level += 1
            self.level[tier] = level
        return steps[self.level[tier]]
