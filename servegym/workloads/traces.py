"""LLM request traces: the :class:`Trace` record and readers for public trace formats.

* Azure LLM inference 2023/2024 (``TIMESTAMP,ContextTokens,GeneratedTokens``):
  :func:`read_azure_llm_csv`. Timestamps such as ``2023-11-16 18:15:46.6805900`` (any number of
  fractional digits, optional ``T`` separator, optional ``Z`` / ``+00:00`` offset as in the 2024
  files) are parsed without pandas, keeping whole seconds and the fraction apart so nothing is
  lost to float rounding. Naive timestamps are taken as UTC.
* Vidur/Splitwise processed traces (``arrived_at,num_prefill_tokens,num_decode_tokens``, seconds
  from the trace start): :func:`read_vidur_trace_csv`.
* :func:`read_trace` picks the reader from the header.

Policies shared by the readers:

* Arrival times must be non-decreasing; an out-of-order row is an error naming its line, unless
  ``sort=True`` (then rows are stably sorted by time). The 2023 Azure files are sorted.
* Negative or non-numeric values are errors naming ``file:line`` and the column.
* A zero token count cannot be simulated (every request reads >= 1 prompt token and emits >= 1
  token). By default it is an error naming the first such line and the number of such rows;
  with ``nonpositive="drop"`` those rows are dropped, counted in ``Trace.rejected_rows`` and
  reported with a warning. (The 2023 Azure files have none: their minimum prompt / output is
  2 / 7 tokens for conv and 3 / 6 for code.)
* With ``rezero=True`` (default) arrival times start at 0; otherwise Vidur times are kept as
  written and Azure times are seconds since the Unix epoch.
"""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from . import _csv
from ._checks import first_unsorted, nonnegative, positive, real, request_arrays

Nonpositive = Literal["error", "drop"]

AZURE_LLM_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
VIDUR_COLUMNS = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")
AZURE_FUNCTIONS_COLUMNS = ("HashOwner", "HashApp", "HashFunction", "Trigger")


@dataclass(frozen=True)
class LengthStats:
    """Summary of one token-length column."""

    mean: float
    p50: float
    p90: float
    p99: float
    max: int


@dataclass(frozen=True)
class TraceStats:
    """Summary of a trace; ``mean_rate`` is ``num_requests / duration_s`` (first to last arrival)."""

    num_requests: int
    duration_s: float
    mean_rate: float
    interarrival_mean_s: float
    interarrival_cv: float
    prompt: LengthStats
    output: LengthStats


def _length_stats(x: np.ndarray) -> LengthStats:
    p50, p90, p99 = np.quantile(x, [0.5, 0.9, 0.99])
    return LengthStats(float(x.mean()), float(p50), float(p90), float(p99), int(x.max()))


@dataclass(frozen=True, eq=False)
class Trace:
    """Requests of a recorded trace as arrays: arrival time (s), prompt and output tokens."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    source: str = ""
    rejected_rows: int = 0

    def __post_init__(self) -> None:
        t, p, o = request_arrays("Trace", self.arrival_s, self.prompt_tokens, self.output_tokens)
        object.__setattr__(self, "arrival_s", t)
        object.__setattr__(self, "prompt_tokens", p)
        object.__setattr__(self, "output_tokens", o)

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def duration_s(self) -> float:
        """Time from the first to the last arrival."""
        return float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) else 0.0

    def scaled(self, rate_scale: float) -> Trace:
        """Arrival times divided by ``rate_scale`` (2.0 = twice the rate); lengths unchanged."""
        s = positive("rate_scale", rate_scale)
        return Trace(
            self.arrival_s / s, self.prompt_tokens, self.output_tokens, self.source, self.rejected_rows
        )

    def window(self, start_s: float, duration_s: float) -> Trace:
        """Requests arriving in ``[start_s, start_s + duration_s)``, with times measured from ``start_s``.

        An idle stretch at the start of the window is kept (the first arrival need not be at 0).
        """
        start = real("start_s", start_s)
        dur = nonnegative("duration_s", duration_s)
        lo = int(np.searchsorted(self.arrival_s, start, side="left"))
        hi = int(np.searchsorted(self.arrival_s, start + dur, side="left"))
        return Trace(
            self.arrival_s[lo:hi] - start,
            self.prompt_tokens[lo:hi],
            self.output_tokens[lo:hi],
            self.source,
        )

    def stats(self) -> TraceStats:
        """Rate, burstiness (CV of inter-arrival gaps) and length quantiles."""
        if len(self) < 2:
            raise ValueError(f"Trace.stats needs at least 2 requests, got {len(self)}")
        gaps = np.diff(self.arrival_s)
        mean_gap = float(gaps.mean())
        dur = self.duration_s
        return TraceStats(
            num_requests=len(self),
            duration_s=dur,
            mean_rate=len(self) / dur if dur > 0 else float("inf"),
            interarrival_mean_s=mean_gap,
            interarrival_cv=float(gaps.std() / mean_gap) if mean_gap > 0 else float("nan"),
            prompt=_length_stats(self.prompt_tokens),
            output=_length_stats(self.output_tokens),
        )


# ---------------------------------------------------------------------------------------------
# Azure timestamps

_HEAD = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_TAIL = re.compile(r"(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE)
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


class _AzureClock:
    """Parses Azure ``TIMESTAMP`` fields into (whole seconds since the epoch, fraction).

    The date and time of day (the first 19 characters) are parsed once per distinct second;
    rows of a sorted trace share them, which keeps a 27M-row file to a few µs per row.
    """

    def __init__(self) -> None:
        self._head = ""
        self._head_secs = 0
        self._offsets: dict[str, int] = {}

    def _error(self, name: str, line: int, raw: str, what: str = "") -> ValueError:
        if what:
            return ValueError(f"{name}:{line}: column 'TIMESTAMP': {what} in {raw!r}")
        return ValueError(
            f"{name}:{line}: column 'TIMESTAMP': "
            f"expected 'YYYY-MM-DD HH:MM:SS[.fraction][+HH:MM]', got {raw!r}"
        )

    def _parse_head(self, name: str, line: int, raw: str, head: str) -> int:
        m = _HEAD.fullmatch(head)
        if m is None:
            raise self._error(name, line, raw)
        date, hh, mm, ss = m.groups()
        try:
            day = _dt.date.fromisoformat(date).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            raise self._error(name, line, raw, "invalid date") from None
        h, mi, s = int(hh), int(mm), int(ss)
        if h > 23 or mi > 59 or s > 60:
            raise self._error(name, line, raw, "invalid time of day")
        return day * 86400 + h * 3600 + mi * 60 + s

    def parse(self, name: str, line: int, raw: str) -> tuple[int, float]:
        head = raw[:19]
        if head != self._head:
            self._head_secs = self._parse_head(name, line, raw, head)
            self._head = head
        secs = self._head_secs
        tail = raw[19:]
        if not tail:
            return secs, 0.0
        m = _TAIL.fullmatch(tail)
        if m is None:
            raise self._error(name, line, raw)
        frac, tz = m.groups()
        if tz:
            offset = self._offsets.get(tz)
            if offset is None:
                if tz.upper() == "Z":
                    offset = 0
                else:
                    digits = tz[1:].replace(":", "")
                    offset = (-1 if tz[0] == "-" else 1) * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
                self._offsets[tz] = offset
            secs -= offset
        return secs, (int(frac) / 10 ** len(frac) if frac else 0.0)


# ---------------------------------------------------------------------------------------------
# Readers


def _finish(
    name: str,
    columns: tuple[str, str, str],
    secs: np.ndarray,
    frac: np.ndarray,
    prompts: list[int],
    outputs: list[int],
    lines: list[int],
    nonpositive: Nonpositive,
    sort: bool,
    rezero: bool,
) -> Trace:
    """Shared checks (order, zero lengths) and assembly of a Trace from parsed columns."""
    if not lines:
        raise _csv.no_rows(name)
    p = np.asarray(prompts, dtype=np.int64)
    o = np.asarray(outputs, dtype=np.int64)
    line_no = np.asarray(lines, dtype=np.int64)
    # Times relative to the first row, exact in whole seconds, plus the fractions.
    rel = (secs - secs[0]).astype(np.float64) + (frac - frac[0])
    i = first_unsorted(rel)
    if i >= 0:
        if not sort:
            raise ValueError(
                f"{name}:{line_no[i]}: column {columns[0]!r}: arrival times must be non-decreasing, this row "
                f"is {rel[i - 1] - rel[i]:.6g} s earlier than line {line_no[i - 1]} (pass sort=True to sort)"
            )
        order = np.argsort(rel, kind="stable")
        secs, frac, rel, p, o, line_no = (
            secs[order],
            frac[order],
            rel[order],
            p[order],
            o[order],
            line_no[order],
        )
    bad = (p < 1) | (o < 1)
    rejected = int(bad.sum())
    if rejected:
        j = int(np.flatnonzero(bad)[0])
        col, val = (columns[1], p[j]) if p[j] < 1 else (columns[2], o[j])
        if nonpositive == "error":
            raise ValueError(
                f"{name}:{line_no[j]}: column {col!r}: expected a token count >= 1, got {val} "
                f"({rejected} row(s) have a zero token count; pass nonpositive='drop' to skip them)"
            )
        first_lines = ", ".join(str(x) for x in line_no[bad][:5])
        warnings.warn(
            f"{name}: dropped {rejected} of {p.size} rows with a zero token count (lines {first_lines}"
            f"{', ...' if rejected > 5 else ''})",
            stacklevel=3,
        )
        keep = ~bad
        secs, frac, rel, p, o = secs[keep], frac[keep], rel[keep], p[keep], o[keep]
        if p.size == 0:
            raise ValueError(f"{name}: every row has a zero token count")
    if rezero:
        t = rel - rel[0]
    else:
        t = secs.astype(np.float64) + frac
    return Trace(t, p, o, source=name, rejected_rows=rejected)


def _check_policy(nonpositive: str) -> None:
    if nonpositive not in ("error", "drop"):
        raise ValueError(f"nonpositive must be 'error' or 'drop', got {nonpositive!r}")


def read_azure_llm_csv(
    path: str | Path, *, nonpositive: Nonpositive = "error", sort: bool = False, rezero: bool = True
) -> Trace:
    """Read an Azure LLM inference trace (2023 or 2024): ``TIMESTAMP,ContextTokens,GeneratedTokens``."""
    _check_policy(nonpositive)
    clock = _AzureClock()
    secs: list[int] = []
    frac: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    lines: list[int] = []
    with _csv.open_csv(path) as (name, header, rows):
        it, ip, io = _csv.find_columns(name, header, AZURE_LLM_COLUMNS)
        for line, fields in rows:
            s, f = clock.parse(name, line, _csv.field(name, line, fields, it, "TIMESTAMP"))
            secs.append(s)
            frac.append(f)
            raw_p = _csv.field(name, line, fields, ip, "ContextTokens")
            raw_o = _csv.field(name, line, fields, io, "GeneratedTokens")
            prompts.append(_csv.nonneg_int(name, line, "ContextTokens", raw_p))
            outputs.append(_csv.nonneg_int(name, line, "GeneratedTokens", raw_o))
            lines.append(line)
    return _finish(
        name,
        AZURE_LLM_COLUMNS,
        np.asarray(secs, dtype=np.int64),
        np.asarray(frac, dtype=np.float64),
        prompts,
        outputs,
        lines,
        nonpositive,
        sort,
        rezero,
    )


def read_vidur_trace_csv(
    path: str | Path, *, nonpositive: Nonpositive = "error", sort: bool = False, rezero: bool = True
) -> Trace:
    """Read a Vidur/Splitwise processed trace: ``arrived_at,num_prefill_tokens,num_decode_tokens``."""
    _check_policy(nonpositive)
    times: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    lines: list[int] = []
    with _csv.open_csv(path) as (name, header, rows):
        it, ip, io = _csv.find_columns(name, header, VIDUR_COLUMNS)
        for line, fields in rows:
            times.append(
                _csv.nonneg_float(name, line, "arrived_at", _csv.field(name, line, fields, it, "arrived_at"))
            )
            raw_p = _csv.field(name, line, fields, ip, "num_prefill_tokens")
            raw_o = _csv.field(name, line, fields, io, "num_decode_tokens")
            prompts.append(_csv.nonneg_int(name, line, "num_prefill_tokens", raw_p))
            outputs.append(_csv.nonneg_int(name, line, "num_decode_tokens", raw_o))
            lines.append(line)
    t = np.asarray(times, dtype=np.float64)
    return _finish(
        name,
        VIDUR_COLUMNS,
        np.zeros(t.size, dtype=np.int64),
        t,
        prompts,
        outputs,
        lines,
        nonpositive,
        sort,
        rezero,
    )


def _header(path: str | Path) -> tuple[str, list[str]]:
    with _csv.open_csv(path) as (name, header, _rows):
        return name, header


def read_trace(
    path: str | Path, *, nonpositive: Nonpositive = "error", sort: bool = False, rezero: bool = True
) -> Trace:
    """Read an LLM trace in any supported format, recognised by its header.

    A header with ``TIMESTAMP`` is read as Azure LLM, one with ``arrived_at`` as Vidur (so a
    file that lacks a column gets an error naming it).
    """
    name, header = _header(path)
    lower = {h.lower() for h in header}
    kwargs = {"nonpositive": nonpositive, "sort": sort, "rezero": rezero}
    if "timestamp" in lower:
        return read_azure_llm_csv(path, **kwargs)  # type: ignore[arg-type]
    if "arrived_at" in lower:
        return read_vidur_trace_csv(path, **kwargs)  # type: ignore[arg-type]
    if "hashfunction" in lower:
        raise ValueError(
            f"{name}: this is an Azure Functions invocation-count file (no token lengths); "
            "use read_azure_functions_counts(path, rng)"
        )
    raise ValueError(
        f"{name}:1: unrecognised trace header {','.join(header)!r}; expected "
        f"{','.join(AZURE_LLM_COLUMNS)!r} (Azure LLM) or {','.join(VIDUR_COLUMNS)!r} (Vidur)"
    )
