"""Analytic capacity of one serving instance, used to set loads and size fleets."""

from __future__ import annotations

import numpy as np

from servegym.hardware import IterationBatch, LatencyModel
from servegym.workloads import LengthDistribution


def mean_lengths(lengths: LengthDistribution, context_limit: int) -> tuple[float, float]:
    """Mean prompt and output tokens of the requests an instance can take (a fixed-seed sample of
    20,000, without those longer than ``context_limit``)."""
    prompts, outputs = lengths.sample(np.random.default_rng(12345), 20000)
    keep = prompts + outputs <= context_limit
    return float(prompts[keep].mean()), float(outputs[keep].mean())


def estimate_capacity(
    lm: LatencyModel, mean_prompt: float, mean_output: float, tbt_slo_s: float, max_num_seqs: int
) -> float:
    """Requests/s the instance sustains with iterations within the TBT SLO (analytic).

    At rate r, Little's law gives B = r * mean_output * T decoding requests and r * mean_prompt
    * T prefill tokens per iteration of length T; the capacity is the largest r for which the
    fixed point T exists with T <= the TBT SLO and B <= max_num_seqs (bisection on r).
    """
    context = mean_prompt + mean_output / 2

    def iteration(rate: float) -> float | None:
        t = lm.decode_time(1, int(context))
        for _ in range(60):
            b = rate * mean_output * t
            if b > max_num_seqs:
                return None
            batch = IterationBatch(decode_seqs=max(round(b), 1), decode_context=max(b, 1.0) * context)
            prefill = round(rate * mean_prompt * t)
            if prefill:
                batch.add_prefill(prefill, int(mean_prompt / 2))
            t_new = lm.iteration_time(batch)
            if abs(t_new - t) < 1e-6:
                return t_new
            if t_new > 10 * tbt_slo_s:
                return None
            t = t_new
        return t

    lo, hi = 1e-3, 1e3
    for _ in range(40):
        mid = np.sqrt(lo * hi)
        t = iteration(mid)
        if t is not None and t <= tbt_slo_s:
            lo = mid
        else:
            hi = mid
    return float(lo)
