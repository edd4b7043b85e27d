"""Speculative-decoding acceptance: per-request rates, drift, and sampled accepted lengths.

Each request draws a per-token acceptance rate alpha_r from a dataset preset (a Beta
distribution); at each verification step the number of accepted drafts is the number of
leading successes of i.i.d. Bernoulli(alpha_r) trials, capped at k, so the expected tokens per
step (accepted + bonus) is (1 - alpha^(k+1)) / (1 - alpha).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from .pcg64 import next_double, state_array, write_state


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
    # One draft serving two domains (draft/target mismatch on one of them): weak-draft chat
    # (0.36) and code (~0.9) requests. A broad Beta with the mix's mean stands for the mixture
    # (an assumption: a + b = 2, sd 0.28).
    "mixed-domains": AcceptancePreset(
        1.2, 0.8, "chat 35.6% (llama.cpp#2926) and code 88-94% (llama.cpp#3006) on one draft, mean 0.6"
    ),
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
    alpha = np.asarray(alpha, dtype=float)
    caps = np.broadcast_to(np.asarray(k, dtype=np.int64), alpha.shape).copy()
    out = np.zeros(len(alpha), dtype=np.int64)
    state = state_array(rng)
    draw_accepted(state, alpha, caps, out)
    write_state(rng, state)
    return out


@njit(cache=True)
def draw_accepted(rng_state, alpha, caps, out) -> None:  # pragma: no cover - compiled
    """``out[i]`` = accepted drafts of request i: P(at least j) = alpha_i^j, capped at caps[i].
    Draws one uniform per request from the PCG64 state, none when no cap is positive."""
    n = len(alpha)
    if n == 0 or caps.max() <= 0:
        out[:n] = 0
        return
    for i in range(n):
        u = next_double(rng_state)
        a = min(max(alpha[i], 1e-12), 1.0 - 1e-12)
        geometric = math.floor(math.log(u) / math.log(a)) if u > 0.0 else math.inf
        out[i] = int(min(geometric, caps[i]))


def drift_arrays(drift: tuple[tuple[float, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    """(times, multipliers) of a drift schedule, as the compiled engine reads it."""
    table = np.asarray(drift, dtype=float).reshape(-1, 2)
    return np.ascontiguousarray(table[:, 0]), np.ascontiguousarray(table[:, 1])


def drift_multiplier(drift: tuple[tuple[float, float], ...], now: float) -> float:
    """The acceptance multiplier in force at ``now`` of a ``(time_s, multiplier)`` schedule."""
    return drift_at(*drift_arrays(drift), float(now))


@njit(cache=True)
def drift_at(times, multipliers, now) -> float:  # pragma: no cover - compiled
    """The acceptance multiplier in force at ``now`` (piecewise constant; 1 before the first step)."""
    m = 1.0
    for i in range(len(times)):
        if now >= times[i]:
            m = multipliers[i]
        else:
            break
    return m
