"""Small checks that turn bad numbers into errors naming the field."""

from __future__ import annotations

import math
from typing import Any


def positive(where: str, field: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a float, or ValueError naming ``where.field`` and what was expected."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {field} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        expected = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{where}: {field} must be {expected} and finite, got {value!r}")
    return v


def positive_int(where: str, field: str, value: Any, *, allow_zero: bool = False) -> int:
    """``value`` as an int (integral floats accepted), else ValueError naming the field."""
    v = positive(where, field, value, allow_zero=allow_zero)
    if v != int(v):
        raise ValueError(f"{where}: {field} must be a whole number, got {value!r}")
    return int(v)


def name_list(where: str, field: str, value: Any) -> tuple[str, ...]:
    """A list of names (e.g. aliases) as a tuple of strings; a bare string is an error."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: {field} must be a list of strings, got {value!r}")
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where}: {field} must hold non-empty strings, got {value!r}")
    return tuple(value)
