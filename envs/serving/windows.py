"""Closing a window of counters: what happened since the last call, and the queue right now.

A controller decides once per window. ``close_window`` reads the window's counters, their
quantiles and the engine's current queue in one compiled call, adds the window to the run's
totals and starts the next window, so a decision costs one call however much is reported.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .metrics import HIST_EDGES
from .requests import R_ARRIVAL, R_TARGET
from .running import running_count
from .state import (
    C_CAPACITY_BLOCKS,
    D_KV,
    MAX_POSITIONS,
    S_DECODING,
    S_FREE_BLOCKS,
    S_PREFILLING,
    S_WAIT_HEAD,
    S_WAIT_LEN,
    WF_MAX_ITERATION_S,
    WF_START_S,
    WINDOW_FLOATS,
    WINDOW_INTS,
)

SUMMARY_FIELDS = (
    *WINDOW_INTS,
    *WINDOW_FLOATS,
    "p50_gap_s",  # token gaps in the window (histogram bin upper edges)
    "p99_gap_s",
    "p99_iteration_s",
    "running",  # the queue at the end of the window
    "decoding",
    "prefilling",
    "waiting",
    "waiting_prompt_tokens",
    "oldest_wait_s",
    "kv_utilization",
    "mean_context",  # KV tokens of the decoding requests
    "p90_context",
    "now_s",
    *(f"accepted_at_position_{i}" for i in range(MAX_POSITIONS)),
    *(f"drafted_at_position_{i}" for i in range(MAX_POSITIONS)),
)
"""Names of ``close_window``'s summary vector."""


class _SummaryIndex:
    """``SUMMARY.<name>``: the position of each ``SUMMARY_FIELDS`` entry (read per decision, so
    a summary is a plain list indexed by these constants rather than a dict built each time)."""

    def __init__(self) -> None:
        for i, name in enumerate(SUMMARY_FIELDS):
            setattr(self, name, i)
        self.accepted_at_position = SUMMARY_FIELDS.index("accepted_at_position_0")
        self.drafted_at_position = SUMMARY_FIELDS.index("drafted_at_position_0")


SUMMARY = _SummaryIndex()
_N_INTS, _N_FLOATS = len(WINDOW_INTS), len(WINDOW_FLOATS)
_QUANTILES = _N_INTS + _N_FLOATS
_QUEUE = _QUANTILES + 3
_POSITIONS = _QUEUE + 10
N_SUMMARY = len(SUMMARY_FIELDS)


@njit(cache=True)
def hist_quantile(counts, total, q) -> float:  # pragma: no cover - compiled
    """Upper edge of the bin holding the q-quantile (0.0 when empty)."""
    if total == 0:
        return 0.0
    target = q * total
    cum = 0
    i = 0
    while i < len(counts):  # first bin whose cumulative count reaches q x total
        cum += counts[i]
        if cum >= target:
            break
        i += 1
    if i == 0:
        return HIST_EDGES[0]
    return HIST_EDGES[min(i, len(HIST_EDGES) - 1)]


@njit(cache=True)
def _add_and_clear(total, window) -> None:  # pragma: no cover - compiled
    for i in range(len(window)):
        total[i] += window[i]
        window[i] = 0


@njit(cache=True)
def close_window(state, cfg, totals, gaps_out, iterations_out, summary) -> None:  # pragma: no cover
    """Write the window's summary (``SUMMARY_FIELDS``) and its two histograms into the ``*_out``
    arrays, add the window to ``totals`` (the six window arrays of the run so far) and start a
    new window at the current time."""
    wi, wf = state.win_ints, state.win_floats
    for i in range(_N_INTS):
        summary[i] = wi[i]
    for i in range(_N_FLOATS):
        summary[_N_INTS + i] = wf[i]
    gaps_out[:] = state.gap_hist
    iterations_out[:] = state.iteration_hist
    n_gaps, n_iterations = state.gap_hist.sum(), state.iteration_hist.sum()
    summary[_QUANTILES] = hist_quantile(state.gap_hist, n_gaps, 0.5)
    summary[_QUANTILES + 1] = hist_quantile(state.gap_hist, n_gaps, 0.99)
    summary[_QUANTILES + 2] = hist_quantile(state.iteration_hist, n_iterations, 0.99)
    for i in range(MAX_POSITIONS):
        summary[_POSITIONS + i] = state.accepted_at_position[i]
        summary[_POSITIONS + MAX_POSITIONS + i] = state.drafted_at_position[i]
    # the queue now
    s = state.scalars
    now = state.now[0]
    nd = s[S_DECODING]
    waiting_tokens = 0
    head, n_waiting = s[S_WAIT_HEAD], s[S_WAIT_LEN]
    queue, targets = state.waiting, state.req_ints[R_TARGET]
    for j in range(n_waiting):
        waiting_tokens += targets[queue[(head + j) % len(queue)]]
    contexts = np.sort(state.dec_ints[D_KV, :nd])
    q = _QUEUE
    summary[q] = running_count(state)
    summary[q + 1] = nd
    summary[q + 2] = s[S_PREFILLING]
    summary[q + 3] = n_waiting
    summary[q + 4] = float(waiting_tokens)
    summary[q + 5] = now - state.req_floats[R_ARRIVAL, state.waiting[head]] if n_waiting else 0.0
    summary[q + 6] = 1.0 - s[S_FREE_BLOCKS] / cfg.ints[C_CAPACITY_BLOCKS]
    summary[q + 7] = contexts.sum() / nd if nd else 0.0
    summary[q + 8] = float(contexts[int(0.9 * (nd - 1))]) if nd else 0.0
    summary[q + 9] = now
    # into the totals, and a new window
    run_max = max(totals[1][WF_MAX_ITERATION_S], wf[WF_MAX_ITERATION_S])
    _add_and_clear(totals[0], wi)
    _add_and_clear(totals[1], wf)
    _add_and_clear(totals[2], state.accepted_at_position)
    _add_and_clear(totals[3], state.drafted_at_position)
    _add_and_clear(totals[4], state.gap_hist)
    _add_and_clear(totals[5], state.iteration_hist)
    totals[1][WF_START_S] = 0.0
    totals[1][WF_MAX_ITERATION_S] = run_max
    wf[WF_START_S] = now
