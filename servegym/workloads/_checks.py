"""Argument checks shared by the workload modules; each raises ValueError naming the argument."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

# Guard against horizons that would allocate more than a few GB of arrival times.
MAX_SAMPLES = 50_000_000


def real(name: str, value: Any) -> float:
    """``value`` as a finite float (bools and non-numbers are rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def positive(name: str, value: Any) -> float:
    """A finite float > 0."""
    out = real(name, value)
    if out <= 0.0:
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}")
    return out


def nonnegative(name: str, value: Any) -> float:
    """A finite float >= 0."""
    out = real(name, value)
    if out < 0.0:
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return out


def in_range(name: str, value: Any, lo: float, hi: float) -> float:
    """A finite float in the closed interval [lo, hi]."""
    out = real(name, value)
    if not lo <= out <= hi:
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
    return out


def integer(name: str, value: Any, minimum: int) -> int:
    """An int >= ``minimum`` (integral floats such as 4096.0 are accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    else:
        f = float(value)
        if not (math.isfinite(f) and f.is_integer()):
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        out = int(f)
    if out < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return out


def rng_check(rng: Any) -> np.random.Generator:
    """Insist on a ``numpy.random.Generator`` (no global or legacy RNG)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), got {type(rng)!r}"
        )
    return rng


def float_array(name: str, values: Any) -> np.ndarray:
    """A 1-D finite float64 array (a copy, made read-only)."""
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D sequence of numbers") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] must be finite, got {float(arr[bad[0]])!r}")
    arr.flags.writeable = False
    return arr


def token_array(name: str, values: Any, minimum: int = 1) -> np.ndarray:
    """A 1-D int64 array of token counts >= ``minimum`` (integral floats accepted), read-only."""
    raw = np.asarray(values)
    if raw.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {raw.shape}")
    if raw.dtype.kind in "iu":
        arr = raw.astype(np.int64)
    elif raw.dtype.kind in "fb" or raw.size == 0:
        f = raw.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(f) | (f != np.round(f)))
        if bad.size:
            raise ValueError(f"{name}[{bad[0]}] must be an integer token count, got {raw[bad[0]].item()!r}")
        arr = f.astype(np.int64)
    else:
        raise ValueError(f"{name} must hold integer token counts, got dtype {raw.dtype}")
    bad = np.flatnonzero(arr < minimum)
    if bad.size:
        raise ValueError(
            f"{name}[{bad[0]}] must be >= {minimum}, got {int(arr[bad[0]])} ({bad.size} such entries)"
        )
    arr = np.array(arr, dtype=np.int64)
    arr.flags.writeable = False
    return arr


def first_unsorted(values: np.ndarray) -> int:
    """Index of the first element smaller than its predecessor, or -1 if non-decreasing."""
    bad = np.flatnonzero(np.diff(values) < 0)
    return int(bad[0]) + 1 if bad.size else -1


def sample_budget(name: str, expected: float) -> None:
    """Refuse a draw whose expected size would exhaust memory."""
    if expected > MAX_SAMPLES:
        raise ValueError(
            f"{name}: expected {expected:.3g} arrivals, more than the limit of {MAX_SAMPLES:.0e}; "
            "sample a shorter horizon in pieces"
        )


def request_arrays(owner: str, arrival_s: Any, prompt_tokens: Any, output_tokens: Any):
    """Validated (arrival_s, prompt_tokens, output_tokens): equal lengths, sorted finite times,
    token counts >= 1. Errors name ``owner`` and the first offending index."""
    t = float_array(f"{owner}.arrival_s", arrival_s)
    p = token_array(f"{owner}.prompt_tokens", prompt_tokens)
    o = token_array(f"{owner}.output_tokens", output_tokens)
    if not t.size == p.size == o.size:
        raise ValueError(
            f"{owner}: arrival_s, prompt_tokens and output_tokens must have the same length, "
            f"got {t.size}, {p.size}, {o.size}"
        )
    i = first_unsorted(t)
    if i >= 0:
        raise ValueError(f"{owner}.arrival_s must be sorted; arrival_s[{i}] < arrival_s[{i - 1}]")
    return t, p, o
