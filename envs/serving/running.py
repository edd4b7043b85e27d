"""The running requests: the decode table, the prefill table and the waiting queue.

Decoding requests live in column-major tables (one contiguous row per field), so a decode
iteration touches each field once whatever the batch size. Requests in the middle of their
prefill are columns of the prefill table in admission order. The waiting queue is a ring buffer
of request ids; a preempted request goes back to its head. A request's decode-table fields are
written back to the request table when it leaves the decode table.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .requests import R_GENERATED, R_LAST_TOKEN, R_MAX_GAP, R_OUTPUT, R_SLOW_GAPS
from .state import (
    D_ID,
    D_KV,
    D_LAST_TOKEN_S,
    D_MAX_GAP_S,
    D_REMAINING,
    D_SLOW_GAPS,
    NO_DECODES,
    S_DECODING,
    S_KV_SUM,
    S_MIN_REMAINING,
    S_PREFILLING,
    S_WAIT_HEAD,
    S_WAIT_LEN,
)

# -- the waiting queue --------------------------------------------------------------------------


@njit(cache=True)
def waiting_front(state) -> int:  # pragma: no cover - compiled
    return state.waiting[state.scalars[S_WAIT_HEAD]]


@njit(cache=True)
def waiting_pop_front(state) -> int:  # pragma: no cover - compiled
    s = state.scalars
    rid = state.waiting[s[S_WAIT_HEAD]]
    s[S_WAIT_HEAD] = (s[S_WAIT_HEAD] + 1) % len(state.waiting)
    s[S_WAIT_LEN] -= 1
    return rid


@njit(cache=True)
def waiting_push_back(state, rid) -> None:  # pragma: no cover - compiled
    s = state.scalars
    state.waiting[(s[S_WAIT_HEAD] + s[S_WAIT_LEN]) % len(state.waiting)] = rid
    s[S_WAIT_LEN] += 1


@njit(cache=True)
def waiting_push_front(state, rid) -> None:  # pragma: no cover - compiled
    s = state.scalars
    s[S_WAIT_HEAD] = (s[S_WAIT_HEAD] - 1) % len(state.waiting)
    state.waiting[s[S_WAIT_HEAD]] = rid
    s[S_WAIT_LEN] += 1


def waiting_ids(state) -> np.ndarray:
    """The waiting queue's request ids, head first (a copy)."""
    head, length = int(state.scalars[S_WAIT_HEAD]), int(state.scalars[S_WAIT_LEN])
    return state.waiting[(head + np.arange(length)) % len(state.waiting)]


# -- the decode table ---------------------------------------------------------------------------


@njit(cache=True)
def refresh_aggregates(state) -> None:  # pragma: no cover - compiled
    """Recompute Σ KV tokens and the smallest tokens-left over the decode columns."""
    s = state.scalars
    nd = s[S_DECODING]
    s[S_KV_SUM] = state.dec_ints[D_KV, :nd].sum()
    s[S_MIN_REMAINING] = state.dec_ints[D_REMAINING, :nd].min() if nd else NO_DECODES


@njit(cache=True)
def write_back(state, col) -> int:  # pragma: no cover - compiled
    """Copy one decode column's state to the request table; return its request id."""
    di, df = state.dec_ints, state.dec_floats
    rid = di[D_ID, col]
    state.req_ints[R_GENERATED, rid] = state.req_ints[R_OUTPUT, rid] - di[D_REMAINING, col]
    state.req_ints[R_SLOW_GAPS, rid] = di[D_SLOW_GAPS, col]
    state.req_floats[R_LAST_TOKEN, rid] = df[D_LAST_TOKEN_S, col]
    state.req_floats[R_MAX_GAP, rid] = df[D_MAX_GAP_S, col]
    return rid


@njit(cache=True)
def keep_columns(state, keep) -> None:  # pragma: no cover - compiled
    """Compact the decode table to the columns where ``keep`` is true (order kept)."""
    nd = state.scalars[S_DECODING]
    di, df = state.dec_ints, state.dec_floats
    j = 0
    for i in range(nd):
        if keep[i]:
            if j != i:
                for row in range(di.shape[0]):
                    di[row, j] = di[row, i]
                for row in range(df.shape[0]):
                    df[row, j] = df[row, i]
            j += 1
    state.scalars[S_DECODING] = j
    refresh_aggregates(state)


@njit(cache=True)
def running_count(state) -> int:  # pragma: no cover - compiled
    return state.scalars[S_DECODING] + state.scalars[S_PREFILLING]
