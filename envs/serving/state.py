"""The serving engine's state as arrays, laid out for compiled code.

Everything the scheduler and the execution step read or write lives in the numpy arrays of one
``EngineState`` tuple, so a compiled function takes the whole engine as one argument, a copy of
the engine is a copy of its arrays, and it pickles. Each array's rows or entries are named by
the index constants below.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .metrics import HIST_BINS

# -- scalars (int64) ----------------------------------------------------------------------------
(
    S_N,  # requests known to the engine (submitted so far)
    S_NEXT_ARRIVAL,  # first request that has not arrived yet
    S_FREE_BLOCKS,  # free KV blocks
    S_WAIT_HEAD,  # waiting queue: ring-buffer start and length
    S_WAIT_LEN,
    S_SEQ,  # admission counter
    S_DECODING,  # decode-table columns in use
    S_PREFILLING,  # prefill-table columns in use
    S_ITERATIONS,
    S_DECODES_CURRENT,  # 1: every decode column emitted at the end of the previous iteration
    S_KV_SUM,  # Σ KV tokens over the decode columns (kept up to date)
    S_MIN_REMAINING,  # smallest tokens-left over the decode columns (NO_DECODES when empty)
    S_TOKEN_BUDGET,  # the knobs
    S_SPEC_TOKENS,
    S_REJECTED_TOO_LONG,
) = range(15)
N_SCALARS = 15
NO_DECODES = 1 << 62

# -- configuration (int64 / float64) ------------------------------------------------------------
(
    C_PREFILL_FIRST,  # 1: vLLM V0 / Orca policy; 0: decode-first hybrid batching
    C_MAX_NUM_SEQS,
    C_BLOCK_SIZE,
    C_MAX_LEN,  # max_model_len
    C_WATERMARK,  # free blocks kept back at admission
    C_CAPACITY_BLOCKS,
    C_NGRAM,  # 1: n-gram proposals (no draft model)
    C_DRAFT_MAX_LEN,  # the draft model's context (0: no limit)
    C_HAS_DRAFT_MODEL,
) = range(9)
N_CONFIG_INTS = 9
CF_TBT_SLO, CF_TTFT_SLO, CF_NGRAM_HIT_RATE = range(3)
N_CONFIG_FLOATS = 3

# -- the decode table: one column per decoding request ------------------------------------------
D_ID, D_KV, D_REMAINING, D_KV_SLOTS, D_SLOW_GAPS, D_SEQ = range(6)  # int64 rows
D_LAST_TOKEN_S, D_MAX_GAP_S, D_ALPHA = range(3)  # float64 rows
# -- the prefill table: one column per request in the middle of its prefill, in admission order --
P_ID, P_SEQ, P_TARGET, P_DONE, P_KV_SLOTS = range(5)

# -- window counters ----------------------------------------------------------------------------
WINDOW_INTS = (
    "iterations",
    "prefill_tokens",
    "decode_tokens",
    "first_tokens",
    "first_tokens_late",
    "decode_steps",
    "slow_steps",
    "tokens_within_slo",
    "arrivals",
    "finished",
    "rejected",
    "preemptions",
    "drafted",
    "accepted",
    "verify_steps",
    "decode_only_iterations",
    "batch_size_sum",
)
WINDOW_FLOATS = ("start_s", "busy_s", "max_iteration_s", "ttft_excess", "tbt_excess", "draft_s")
(
    W_ITERATIONS,
    W_PREFILL_TOKENS,
    W_DECODE_TOKENS,
    W_FIRST_TOKENS,
    W_FIRST_TOKENS_LATE,
    W_DECODE_STEPS,
    W_SLOW_STEPS,
    W_TOKENS_WITHIN_SLO,
    W_ARRIVALS,
    W_FINISHED,
    W_REJECTED,
    W_PREEMPTIONS,
    W_DRAFTED,
    W_ACCEPTED,
    W_VERIFY_STEPS,
    W_DECODE_ONLY_ITERATIONS,
    W_BATCH_SIZE_SUM,
) = range(len(WINDOW_INTS))
WF_START_S, WF_BUSY_S, WF_MAX_ITERATION_S, WF_TTFT_EXCESS, WF_TBT_EXCESS, WF_DRAFT_S = range(
    len(WINDOW_FLOATS)
)
MAX_POSITIONS = 32  # draft positions counted per window


class EngineState(NamedTuple):
    """The arrays of one engine (see the index constants of this module)."""

    scalars: np.ndarray  # int64[N_SCALARS]
    now: np.ndarray  # float64[1]: the clock, seconds
    rng: np.ndarray  # uint64[4]: PCG64 state (pcg64.py)
    req_ints: np.ndarray  # int64[requests.N_INT_FIELDS, capacity]
    req_floats: np.ndarray  # float64[requests.N_FLOAT_FIELDS, capacity]
    waiting: np.ndarray  # int64[capacity]: ring buffer of request ids
    dec_ints: np.ndarray  # int64[6, max_num_seqs]
    dec_floats: np.ndarray  # float64[3, max_num_seqs]
    prefill: np.ndarray  # int64[5, max_num_seqs]
    win_ints: np.ndarray  # int64[len(WINDOW_INTS)]
    win_floats: np.ndarray  # float64[len(WINDOW_FLOATS)]
    accepted_at_position: np.ndarray  # int64[MAX_POSITIONS]
    drafted_at_position: np.ndarray  # int64[MAX_POSITIONS]
    gap_hist: np.ndarray  # int64[HIST_BINS]: token gaps
    iteration_hist: np.ndarray  # int64[HIST_BINS]: iteration times
    plan_cols: np.ndarray  # int64[max_num_seqs]: scratch for the scheduler's batch plan
    plan_proposals: np.ndarray  # int64[max_num_seqs]
    plan_chunks: np.ndarray  # int64[max_num_seqs]


class EngineConfigArrays(NamedTuple):
    """The configuration compiled code reads."""

    ints: np.ndarray  # int64[N_CONFIG_INTS]
    floats: np.ndarray  # float64[N_CONFIG_FLOATS]
    drift_times: np.ndarray  # float64[m]: acceptance drift steps (time_s, multiplier)
    drift_multipliers: np.ndarray  # float64[m]


def new_window_arrays() -> tuple[np.ndarray, ...]:
    """Zeroed window counters: ints, floats, per-position counts and the two histograms."""
    return (
        np.zeros(len(WINDOW_INTS), dtype=np.int64),
        np.zeros(len(WINDOW_FLOATS)),
        np.zeros(MAX_POSITIONS, dtype=np.int64),
        np.zeros(MAX_POSITIONS, dtype=np.int64),
        np.zeros(HIST_BINS, dtype=np.int64),
        np.zeros(HIST_BINS, dtype=np.int64),
    )
