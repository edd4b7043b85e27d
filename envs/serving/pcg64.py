"""NumPy's PCG64 bit generator, stepped inside compiled code.

Passing a ``numpy.random.Generator`` into a numba function costs about 7 µs per call; the
engine instead carries its generator's 128-bit state in a ``uint64[4]`` array (state high/low,
increment high/low) and draws from it here. The stream is NumPy's own: ``next_double`` gives
the same numbers as ``Generator.random`` on the same state (tested), and the state is written
back to a ``Generator`` whenever Python code asks for it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

_MULT_HIGH = 2549297995355413924  # PCG_DEFAULT_MULTIPLIER_128
_MULT_LOW = 4865540595714422341
_MASK64 = (1 << 64) - 1
STATE_HIGH, STATE_LOW, INC_HIGH, INC_LOW = range(4)


def state_array(rng: np.random.Generator) -> np.ndarray:
    """The generator's PCG64 state as ``uint64[4]``; other bit generators are refused."""
    state = rng.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise ValueError(
            "the serving engine needs a PCG64 generator (numpy.random.default_rng), "
            f"got {state['bit_generator']}"
        )
    s, inc = state["state"]["state"], state["state"]["inc"]
    return np.array([s >> 64, s & _MASK64, inc >> 64, inc & _MASK64], dtype=np.uint64)


def write_state(rng: np.random.Generator, array: np.ndarray) -> None:
    """Set ``rng`` to the state held in ``array`` (no buffered 32-bit value)."""
    hi, lo, inc_hi, inc_lo = (int(x) for x in array)
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (hi << 64) | lo, "inc": (inc_hi << 64) | inc_lo},
        "has_uint32": 0,
        "uinteger": 0,
    }


@njit(cache=True)
def _mul64(a, b):  # pragma: no cover - compiled
    """(high, low) 64-bit halves of the 128-bit product of two uint64."""
    m32 = uint64(0xFFFFFFFF)
    a_lo, a_hi = a & m32, a >> uint64(32)
    b_lo, b_hi = b & m32, b >> uint64(32)
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    lo_hi = a_lo * b_hi
    hi_hi = a_hi * b_hi
    cross = (lo_lo >> uint64(32)) + (hi_lo & m32) + lo_hi
    high = hi_hi + (hi_lo >> uint64(32)) + (cross >> uint64(32))
    low = (cross << uint64(32)) | (lo_lo & m32)
    return high, low


@njit(cache=True)
def next_uint64(s):  # pragma: no cover - compiled
    """Advance the state (LCG step) and return the XSL-RR output of the new state."""
    hi, lo = s[STATE_HIGH], s[STATE_LOW]
    p_hi, p_lo = _mul64(lo, uint64(_MULT_LOW))
    p_hi = p_hi + lo * uint64(_MULT_HIGH) + hi * uint64(_MULT_LOW)
    new_lo = p_lo + s[INC_LOW]
    carry = uint64(1) if new_lo < p_lo else uint64(0)
    new_hi = p_hi + s[INC_HIGH] + carry
    s[STATE_HIGH], s[STATE_LOW] = new_hi, new_lo
    x = new_hi ^ new_lo
    rot = new_hi >> uint64(58)
    return (x >> rot) | (x << ((uint64(64) - rot) & uint64(63)))


@njit(cache=True)
def next_double(s) -> float:  # pragma: no cover - compiled
    """A uniform double in [0, 1): NumPy's ``random()`` (the top 53 bits)."""
    return float(next_uint64(s) >> uint64(11)) * (1.0 / 9007199254740992.0)
