"""Speculative-decoding acceptance: per-request rates, drift, and sampled accepted lengths.

Each request draws a per-token acceptance rate alpha_r from a dataset preset (a Beta
distribution); at each verification step the number of accepted drafts is the number of
leading successes of i.i.d. Bernoulli(alpha_r) trials, capped at k, so the expected tokens per
step (accepted + bonus) is (1 - alpha^(k+1)) / (1 - alpha).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AcceptancePreset:
    """Beta(a, b) distribution of per-request per-token acceptance, with its source."""

    a: float
    b: float
    source: str

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)


# Means from ../shared/reference/chunk_spec.md B.5 / C.6 ("chat alpha ~ 0.6-0.8,
# code/summarization higher"); concentrations (a + b = 20) are a documented assumption.
ACCEPTANCE_PRESETS: dict[str, AcceptancePreset] = {
    "chat": AcceptancePreset(14.0, 6.0, "chat alpha ~0.6-0.8 (chunk_spec.md C.6); SmartSpec default 0.7"),
    "code": AcceptancePreset(17.0, 3.0, "code 88-94% accepted (llama.cpp#3006 via chunk_spec.md B.5)"),
    "summarization": AcceptancePreset(16.0, 4.0, "summarization higher than chat (chunk_spec.md C.6)"),
    "weak-draft": AcceptancePreset(8.0, 12.0, "70B/7B chat 35.6% of drafts accepted (llama.cpp#2926)"),
    "mtp": AcceptancePreset(16.6, 3.4, "GLM-4.7 MTP alpha ~0.82-0.85 (sglang#23336)"),
}


def acceptance_preset(name: str) -> AcceptancePreset:
    try:
        return ACCEPTANCE_PRESETS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown acceptance preset {name!r}; available: {sorted(ACCEPTANCE_PRESETS)}"
        ) from None


def expected_tokens_per_step(alpha: float | np.ndarray, k: int):
    """Accepted drafts plus the bonus token, in expectation: (1 - a^(k+1)) / (1 - a)."""
    alpha = np.asarray(alpha, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(alpha >= 1.0, k + 1.0, (1.0 - alpha ** (k + 1)) / (1.0 - alpha))
    return out if out.ndim else float(out)


def sample_accepted(rng: np.random.Generator, alpha: np.ndarray, k) -> np.ndarray:
    """Accepted drafts per request: leading successes of Bernoulli(alpha) trials, capped at k
    (a number, or one cap per request, e.g. 0 for requests that proposed nothing)."""
    if np.max(k, initial=0) <= 0 or len(alpha) == 0:
        return np.zeros(len(alpha), dtype=np.int64)
    u = rng.random(len(alpha))
    a = np.clip(alpha, 1e-12, 1.0 - 1e-12)
    geometric = np.floor(np.log(u) / np.log(a))  # P(X >= j) = a^j
    return np.minimum(geometric, k).astype(np.int64)


def drift_multiplier(drift: tuple[tuple[float, float], ...], now: float) -> float:
    """The acceptance multiplier in force at ``now`` (piecewise constant; 1 before the first step)."""
    m = 1.0
    for t, value in drift:
        if now >= t:
            m = value
        else:
            break
    return m
