"""Azure Functions 2019 per-minute invocation counts turned into arrival times.

The files (``invocations_per_function_md.anon.dNN.csv``, Shahrad et al., ATC'20) have columns
``HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440``: one row per function, one column per
minute of the day. Only counts are recorded, so each minute's invocations are placed uniformly
at random within that minute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import _csv
from ._checks import rng_check, sample_budget
from .traces import AZURE_FUNCTIONS_COLUMNS


def _minute_columns(name: str, header: list[str]) -> np.ndarray:
    """Header indices of minute columns 1..N, in minute order; a ValueError names missing minutes."""
    minutes = {int(h): i for i, h in enumerate(header) if h.isdigit()}
    if not minutes:
        raise ValueError(f"{name}:1: missing minute columns 1..1440 (per-minute invocation counts)")
    last = max(minutes)
    missing = [m for m in range(1, last + 1) if m not in minutes]
    if missing:
        shown = ", ".join(str(m) for m in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise ValueError(f"{name}:1: missing minute column(s) {shown} (of 1..{last})")
    return np.array([minutes[m] for m in range(1, last + 1)], dtype=np.int64)


def _counts(name: str, line: int, header: list[str], fields: list[str], cols: np.ndarray) -> np.ndarray:
    if len(fields) <= cols.max():
        raise ValueError(f"{name}:{line}: expected {len(header)} fields, the row has {len(fields)}")
    raw = [fields[i].strip() for i in cols]
    try:
        counts = np.array(raw, dtype=np.int64)
    except ValueError:
        counts = np.array(
            [_csv.nonneg_int(name, line, header[c], r) for c, r in zip(cols, raw, strict=True)],
            dtype=np.int64,
        )
    neg = np.flatnonzero(counts < 0)
    if neg.size:
        c = int(cols[neg[0]])
        raise ValueError(f"{name}:{line}: column {header[c]!r}: expected a count >= 0, got {raw[neg[0]]!r}")
    return counts


def read_azure_functions_minute_counts(path: str | Path, function: str | None = None) -> np.ndarray:
    """Invocations per minute (int64, minute 1 first) of all functions summed, or of one.

    ``function`` selects rows by ``HashFunction`` (several matching rows are summed); by default
    every row is summed.
    """
    with _csv.open_csv(path) as (name, header, rows):
        hf = _csv.find_columns(name, header, AZURE_FUNCTIONS_COLUMNS)[2]
        cols = _minute_columns(name, header)
        total = np.zeros(cols.size, dtype=np.int64)
        rows_read = matched = 0
        for line, fields in rows:
            rows_read += 1
            if function is not None and _csv.field(name, line, fields, hf, "HashFunction") != function:
                continue
            total += _counts(name, line, header, fields, cols)
            matched += 1
    if rows_read == 0:
        raise _csv.no_rows(name)
    if matched == 0:
        raise ValueError(f"{name}: function {function!r} not found in column HashFunction ({rows_read} rows)")
    return total


def read_azure_functions_counts(
    path: str | Path, rng: np.random.Generator, function: str | None = None
) -> np.ndarray:
    """Sorted arrival times (s from the start of the day) of all functions, or of one.

    ``function`` selects rows by ``HashFunction`` (several matching rows are summed); by default
    every row is summed. Minute ``m`` covers ``[60 (m - 1), 60 m)``.
    """
    rng_check(rng)
    total = read_azure_functions_minute_counts(path, function)
    n = int(total.sum())
    sample_budget("read_azure_functions_counts", n)
    starts = np.repeat(60.0 * np.arange(total.size), total)
    times = starts + 60.0 * rng.random(n)
    times.sort()
    return times
