"""Online serving metrics: a fixed-size histogram of token gaps and per-window counters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
from numba import njit

HIST_LOW, HIST_HIGH, HIST_PER_DECADE = 1e-5, 1e4, 40
_LOG_LOW = math.log10(HIST_LOW)
_N_EDGES = round(math.log10(HIST_HIGH / HIST_LOW) * HIST_PER_DECADE) + 1
HIST_EDGES = HIST_LOW * 10.0 ** (np.arange(_N_EDGES) / HIST_PER_DECADE)
HIST_BINS = _N_EDGES + 1


@njit(cache=True)
def hist_add_one(counts, value, count) -> None:  # pragma: no cover - compiled
    """Count ``count`` copies of one value (bin found by arithmetic, checked on the edges); NaN
    is not counted."""
    edges = HIST_EDGES
    n = len(edges)
    if value != value:
        return
    if value < edges[0]:
        i = 0
    else:
        i = int((math.log10(value) - _LOG_LOW) * HIST_PER_DECADE) + 1
        if i > n:
            i = n
        elif value < edges[i - 1]:  # float rounding at a bin edge
            i -= 1
        elif i < n and value >= edges[i]:
            i += 1
    counts[i] += count


@njit(cache=True)
def hist_add(counts, values) -> None:  # pragma: no cover - compiled
    """Count each of ``values`` (bins by binary search on the edges)."""
    idx = np.searchsorted(HIST_EDGES, values, side="right")
    for i in idx:
        counts[i] += 1


class LogHistogram:
    """Counts of positive values in log-spaced bins (40 per decade, 1e-5 s .. 1e4 s).

    Memory stays fixed however many tokens are recorded; quantiles are exact to within one
    bin (a 6% relative step). A single value's bin is found by arithmetic (the engine records
    one per iteration); arrays go through ``searchsorted``.
    """

    LOW, HIGH, PER_DECADE = HIST_LOW, HIST_HIGH, HIST_PER_DECADE
    edges = HIST_EDGES  # shared by all instances

    def __init__(self, counts: np.ndarray | None = None) -> None:
        # under- and overflow bins at the ends
        self._counts = np.zeros(HIST_BINS, dtype=np.int64) if counts is None else counts
        self.total = int(self._counts.sum())

    @property
    def counts(self) -> np.ndarray:
        return self._counts

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float)
        hist_add(self._counts, values)
        self.total += len(values)

    def add_one(self, value: float, count: int = 1) -> None:
        """Record ``count`` copies of one value."""
        hist_add_one(self._counts, float(value), int(count))
        self.total += count

    def quantile(self, q: float) -> float:
        """Upper edge of the bin holding the q-quantile (0.0 when empty)."""
        if self.total == 0:
            return 0.0
        cum = np.cumsum(self.counts)
        i = int(np.searchsorted(cum, q * self.total, side="left"))
        if i == 0:
            return float(self.edges[0])
        return float(self.edges[min(i, len(self.edges) - 1)])

    def fraction_above(self, threshold: float) -> float:
        if self.total == 0:
            return 0.0
        i = int(np.searchsorted(self.edges, threshold, side="right"))
        return float(self.counts[i:].sum() / self.total)

    def merge(self, other: LogHistogram) -> None:
        self._counts += other._counts
        self.total += other.total

    def reset(self) -> None:
        self._counts[:] = 0
        self.total = 0


@dataclass
class WindowCounters:
    """What happened since the last ``EngineStats.take_window()``; controllers read these."""

    start_s: float = 0.0
    iterations: int = 0
    busy_s: float = 0.0
    max_iteration_s: float = 0.0
    prefill_tokens: int = 0
    decode_tokens: int = 0  # output tokens emitted by decode steps (incl. accepted drafts)
    first_tokens: int = 0
    first_tokens_late: int = 0  # TTFT over the SLO
    ttft_excess: float = 0.0  # sum over first tokens of max(0, TTFT - SLO) / SLO
    decode_steps: int = 0  # request-steps that emitted tokens
    slow_steps: int = 0  # steps whose gap exceeded the TBT SLO
    tbt_excess: float = 0.0  # sum over steps of max(0, gap - SLO) / SLO
    tokens_within_slo: int = 0
    arrivals: int = 0
    finished: int = 0
    rejected: int = 0
    preemptions: int = 0
    drafted: int = 0
    accepted: int = 0
    draft_s: float = 0.0
    verify_steps: int = 0
    decode_only_iterations: int = 0
    batch_size_sum: int = 0
    accepted_at_position: np.ndarray = field(default_factory=lambda: np.zeros(32, dtype=np.int64))
    drafted_at_position: np.ndarray = field(default_factory=lambda: np.zeros(32, dtype=np.int64))
    gaps: LogHistogram = field(default_factory=LogHistogram)
    iteration_times: LogHistogram = field(default_factory=LogHistogram)

    def as_dict(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)):
                out[f.name] = value
        return out
