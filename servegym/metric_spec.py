"""The metrics a live system sends to drive a policy: declared once per env class, checked here.

An env declares ``METRICS``, a tuple of :class:`Metric` — the keys of ``info["metrics"]`` its
observation encoder reads, with unit and valid range. :func:`check_metrics` validates a live
system's metrics against that declaration before the encoder runs and reports every problem at
once (missing names, non-numbers, wrong shapes, NaN, out-of-range values), each naming its field.
The decision service and ``LearnedController.act_from_metrics`` both use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Metric:
    """One metric: ``name`` (a key of ``info["metrics"]``), ``unit`` and the valid range.

    ``low_open`` makes the lower bound strict (a divisor must be > 0); ``allow_inf`` admits +inf
    (an unavailable option); ``per`` says what a vector's entries are ("" for a number); a
    ``scenario`` metric is a fixed fact of the deployment (an SLO, a limit): when a live system
    omits it, the policy's training scenario's value is used.
    """

    name: str
    unit: str
    description: str
    low: float = 0.0
    high: float = math.inf
    low_open: bool = False
    integer: bool = False
    allow_inf: bool = False
    per: str = ""
    scenario: bool = False

    def range_text(self) -> str:
        low = f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high == math.inf:
            text = low
        else:
            text = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.integer:
            text += ", integer"
        if self.allow_inf:
            text += ", +inf allowed"
        return text


class MetricsError(ValueError):
    """Every problem with a metrics object: ``problems`` is a list of (field, message)."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.problems))


def check_metrics(
    spec: Sequence[Metric],
    metrics: Any,
    shapes: Mapping[str, tuple[int, ...]],
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The metrics the encoder reads, validated: Python floats for numbers, float arrays for vectors.

    ``shapes`` gives each metric's shape (``()`` for a number); ``defaults`` fills omitted
    metrics. Keys the spec does not name are ignored (a live system may send more). Raises
    :class:`MetricsError` listing every problem, missing metrics first and all together.
    """
    if not isinstance(metrics, Mapping):
        raise MetricsError(
            [("metrics", f"expected an object of metric names to values, got {_kind(metrics)}")]
        )
    defaults = defaults or {}
    values: dict[str, Any] = {}
    missing = [m.name for m in spec if m.name not in metrics and m.name not in defaults]
    problems = [(name, "missing") for name in missing]
    for metric in spec:
        if metric.name not in metrics:
            if metric.name in defaults:
                values[metric.name] = defaults[metric.name]
            continue
        value, problem = _check_value(metric, metrics[metric.name], tuple(shapes.get(metric.name, ())))
        if problem:
            problems.append((metric.name, problem))
        else:
            values[metric.name] = value
    if problems:
        raise MetricsError(problems)
    return values


def _check_value(metric: Metric, raw: Any, shape: tuple[int, ...]) -> tuple[Any, str]:
    if shape == ():
        return _check_number(metric, raw)
    expected = f"a list of shape {list(shape)} ({metric.unit})"
    if not isinstance(raw, (list, tuple, np.ndarray)):
        return None, f"expected {expected}, got {_kind(raw)}"
    try:
        array = np.asarray(raw)  # its dtype says whether every entry is a number (no string parsing)
    except ValueError:
        return None, f"expected {expected}, got a ragged list"
    if array.dtype.kind not in ("iufb" if _is_flag(metric) else "iuf"):
        if array.dtype.kind == "O" and _all_numbers(raw):
            return None, f"expected {expected}, got numbers too large for a float"
        return None, f"expected {expected}, got {_kind(raw)}"
    array = array.astype(float)
    if array.shape != shape:
        return None, f"expected {expected}, got shape {list(array.shape)}"
    problem = _range_problem(metric, array)
    return (None, problem) if problem else (array, "")


def _check_number(metric: Metric, raw: Any) -> tuple[float | None, str]:
    """A scalar metric, in plain Python (the common case, kept cheap: it runs per decision)."""
    if type(raw) not in (float, int):  # the JSON types; anything else takes the careful path
        if isinstance(raw, np.ndarray) and raw.ndim == 0:
            raw = raw.item()
        if (isinstance(raw, bool) and not _is_flag(metric)) or not isinstance(raw, Real):
            return None, f"expected a number ({metric.unit}), got {_kind(raw)}"
    try:
        x = float(raw)
    except OverflowError:
        return None, f"expected a number ({metric.unit}), got an integer too large for a float"
    if not math.isfinite(x) and not (metric.allow_inf and x == math.inf):
        return None, f"must be a finite number{' (or +inf)' if metric.allow_inf else ''}, got {x}"
    if (x <= metric.low if metric.low_open else x < metric.low) or x > metric.high:
        return None, f"must be {metric.range_text()} ({metric.unit}), got {x:g}"
    if metric.integer and math.isfinite(x) and x != round(x):
        return None, f"must be an integer, got {x:g}"
    return x, ""


def _is_flag(metric: Metric) -> bool:
    """true/false are accepted for 1/0 in 0-1 integer metrics."""
    return metric.integer and metric.low >= 0 and metric.high <= 1


def _range_problem(metric: Metric, array: np.ndarray) -> str:
    def where(i: int) -> str:
        return f" at index {[int(j) for j in np.unravel_index(i, array.shape)]}"

    flat = array.reshape(-1)
    if flat.size == 0:
        return ""
    low, high = flat.min(), flat.max()  # NaN propagates: one pass each decides the common case
    if (
        (low > metric.low if metric.low_open else low >= metric.low)
        and high <= metric.high
        and (high < math.inf or metric.allow_inf)
        and (not metric.integer or bool(np.all(flat == np.round(flat))))
    ):
        return ""
    bad = np.flatnonzero(np.isnan(flat) | (np.isinf(flat) & ~(metric.allow_inf & (flat > 0))))
    if len(bad):
        allowed = " (or +inf)" if metric.allow_inf else ""
        return f"must be a finite number{allowed}{where(bad[0])}, got {flat[bad[0]]}"
    below = flat <= metric.low if metric.low_open else flat < metric.low
    outside = np.flatnonzero(below | (flat > metric.high))
    if len(outside):
        return f"must be {metric.range_text()} ({metric.unit}){where(outside[0])}, got {flat[outside[0]]:g}"
    if metric.integer:
        fractional = np.flatnonzero(np.isfinite(flat) & (flat != np.round(flat)))
        if len(fractional):
            return f"must be an integer{where(fractional[0])}, got {flat[fractional[0]]:g}"
    return ""


def _all_numbers(value: Any, allow_bool: bool = False) -> bool:
    """True for (nested) lists of real numbers (booleans only where ``allow_bool``)."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind in ("iufb" if allow_bool else "iuf")
    if isinstance(value, (list, tuple)):
        return all(_all_numbers(v, allow_bool) for v in value)
    return isinstance(value, Real) and (allow_bool or not isinstance(value, bool))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:17] + "..."
        return f"a string {shown!r}"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        if not _all_numbers(value):
            return "a list with non-numbers"
        return f"a list of shape {list(np.shape(value))}" if value else "an empty list"
    if isinstance(value, Real):
        return f"a number ({value:g})"
    return type(value).__name__
