"""The scheduler: which requests run in the next iteration, and with how many tokens.

It composes a batch plan within the token budget and ``max_num_seqs`` and keeps the KV cache
consistent with it (admission, block growth, preemption):

- ``decode_first`` (Sarathi-Serve / vLLM V1 hybrid batching): running decodes (with their
  speculative proposals), then ongoing prefill chunks, then new prompts FCFS; the budget caps
  decodes too (the oldest run) and drafts are cut to fit it.
- ``prefill_first`` (vLLM V0 / Orca): whole new prompts run alone whenever one can be admitted;
  decodes stall.

When a decode cannot grow its KV cache, the last-admitted running request is preempted by
recompute (vLLM's rule): its blocks are freed and it returns to the head of the queue to
prefill its prompt and every token generated so far.

A plan is the tuple ``(all_decodes, decodes, proposes, first_piece, pieces)`` plus the state's
scratch rows: with ``all_decodes`` every decode column runs, else the ``decodes`` columns in
``plan_cols``; if ``proposes``, ``plan_proposals`` holds the drafts each of them verifies;
``plan_chunks`` holds the tokens of the prefill-table columns ``first_piece ..
first_piece + pieces - 1``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .kv_blocks import allocate, blocks_for, fits_past_watermark, release_slots
from .pcg64 import next_double
from .requests import (
    R_GENERATED,
    R_PREEMPTIONS,
    R_PROMPT,
    R_SCHEDULED,
    R_STATUS,
    R_TARGET,
    RUNNING,
    WAITING,
)
from .running import (
    keep_columns,
    running_count,
    waiting_front,
    waiting_pop_front,
    waiting_push_front,
    write_back,
)
from .state import (
    C_BLOCK_SIZE,
    C_DRAFT_MAX_LEN,
    C_MAX_NUM_SEQS,
    C_NGRAM,
    CF_NGRAM_HIT_RATE,
    D_KV,
    D_KV_SLOTS,
    D_SEQ,
    P_DONE,
    P_ID,
    P_KV_SLOTS,
    P_SEQ,
    P_TARGET,
    S_DECODES_CURRENT,
    S_DECODING,
    S_FREE_BLOCKS,
    S_PREFILLING,
    S_SEQ,
    S_SPEC_TOKENS,
    S_TOKEN_BUDGET,
    S_WAIT_LEN,
    W_PREEMPTIONS,
)


@njit(cache=True)
def can_admit(state, cfg, rid) -> bool:  # pragma: no cover - compiled
    return running_count(state) < cfg.ints[C_MAX_NUM_SEQS] and fits_past_watermark(
        state, cfg, state.req_ints[R_TARGET, rid]
    )


@njit(cache=True)
def admit(state, cfg, rid) -> int:  # pragma: no cover - compiled
    """Allocate the whole prefill target's blocks (Sarathi's rule); start prefilling. Returns
    the request's prefill-table column."""
    s = state.scalars
    bs = cfg.ints[C_BLOCK_SIZE]
    target = state.req_ints[R_TARGET, rid]
    blocks = blocks_for(target, bs)
    allocate(state, blocks)
    state.req_ints[R_STATUS, rid] = RUNNING
    if math.isnan(state.req_floats[R_SCHEDULED, rid]):
        state.req_floats[R_SCHEDULED, rid] = state.now[0]
    col = s[S_PREFILLING]
    p = state.prefill
    p[P_ID, col] = rid
    p[P_SEQ, col] = s[S_SEQ]
    p[P_TARGET, col] = target
    p[P_DONE, col] = 0
    p[P_KV_SLOTS, col] = blocks * bs
    s[S_SEQ] += 1
    s[S_PREFILLING] += 1
    return col


@njit(cache=True)
def preempt_last(state, cfg) -> None:  # pragma: no cover - compiled
    """Recompute preemption of the last-admitted running request."""
    s = state.scalars
    nd = s[S_DECODING]
    di = state.dec_ints
    last_decode = -1
    decode_seq = -1
    if nd:
        last_decode = np.argmax(di[D_SEQ, :nd])
        decode_seq = di[D_SEQ, last_decode]
    n_pre = s[S_PREFILLING]
    if n_pre and state.prefill[P_SEQ, n_pre - 1] > decode_seq:
        victim = state.prefill[P_ID, n_pre - 1]
        slots = state.prefill[P_KV_SLOTS, n_pre - 1]
        s[S_PREFILLING] -= 1
    else:
        victim = write_back(state, last_decode)
        slots = di[D_KV_SLOTS, last_decode]
        keep = np.ones(nd, dtype=np.bool_)
        keep[last_decode] = False
        keep_columns(state, keep)
    release_slots(state, cfg, slots)
    # Recompute the prompt and every token produced so far (vLLM, Vidur); the prefill that
    # completes the recompute samples the next token.
    ri = state.req_ints
    ri[R_TARGET, victim] = ri[R_PROMPT, victim] + ri[R_GENERATED, victim]
    ri[R_STATUS, victim] = WAITING
    ri[R_PREEMPTIONS, victim] += 1
    state.win_ints[W_PREEMPTIONS] += 1
    waiting_push_front(state, victim)


@njit(cache=True)
def propose(state, cfg, k, nd) -> int:  # pragma: no cover - compiled
    """Drafts each decode column proposes this iteration into ``plan_proposals``; returns their
    total. n-gram lookup proposes k on a match (probability ``ngram_hit_rate``), else nothing; a
    draft model proposes k unless that would pass its context length (vLLM)."""
    props = state.plan_proposals
    total = 0
    if cfg.ints[C_NGRAM]:
        hit = cfg.floats[CF_NGRAM_HIT_RATE]
        for i in range(nd):
            props[i] = k if next_double(state.rng) < hit else 0
            total += props[i]
    else:
        limit = cfg.ints[C_DRAFT_MAX_LEN]
        kv = state.dec_ints[D_KV]
        for i in range(nd):
            props[i] = 0 if limit and kv[i] + k + 1 > limit else k
            total += props[i]
    return total


@njit(cache=True)
def schedule_prefill_first(state, cfg):  # pragma: no cover - compiled
    """vLLM V0 / Orca: whole new prompts alone, if any can be admitted (decodes stall).
    Returns a plan with no decodes, or ``pieces == 0`` when no prompt can start."""
    s = state.scalars
    budget = s[S_TOKEN_BUDGET]
    first = s[S_PREFILLING]
    pieces = 0
    used = 0
    while s[S_WAIT_LEN]:
        rid = waiting_front(state)
        tokens = state.req_ints[R_TARGET, rid]
        if pieces and used + tokens > budget:
            break
        if not can_admit(state, cfg, rid):
            break
        waiting_pop_front(state)
        admit(state, cfg, rid)
        state.plan_chunks[pieces] = tokens
        pieces += 1
        used += tokens
    if pieces and s[S_DECODING]:
        s[S_DECODES_CURRENT] = 0  # the decodes stall this iteration
    return True, 0, False, first, pieces


@njit(cache=True)
def schedule_hybrid(state, cfg, allow_prefill):  # pragma: no cover - compiled
    """Decode-first hybrid batch: running decodes, ongoing chunks, then new prompts.

    Returns ``(all_decodes, decodes, proposes, first_piece, pieces)``: with ``all_decodes``
    every decode column runs, else the first ``decodes`` entries of ``plan_cols``;
    ``proposes``: ``plan_proposals`` holds their drafts."""
    s = state.scalars
    budget = s[S_TOKEN_BUDGET]
    k = min(s[S_SPEC_TOKENS], budget - 1)  # drafts are cut to fit the budget (vLLM V1)
    bs = cfg.ints[C_BLOCK_SIZE]
    di = state.dec_ints
    cols = state.plan_cols
    props = state.plan_proposals
    while True:
        nd = s[S_DECODING]
        all_decodes = True
        proposes = k > 0 and nd > 0
        total = propose(state, cfg, k, nd) + nd if proposes else nd
        n_cols = nd
        if total > budget:  # the budget caps decodes too (vLLM V1): the oldest run
            order = np.argsort(di[D_SEQ, :nd], kind="mergesort")
            used = 0
            fits = 0
            for j in range(nd):
                cost = props[order[j]] + 1 if proposes else 1
                if used + cost > budget:
                    break
                used += cost
                fits += 1
            chosen = np.sort(order[:fits])
            if proposes:
                picked = props[chosen].copy()
                props[:fits] = picked
            cols[:fits] = chosen
            n_cols = fits
            all_decodes = False
            total = used
        need = 0
        for j in range(n_cols):
            c = j if all_decodes else cols[j]
            if proposes:
                grow = max(di[D_KV, c] + 1 + props[j] - di[D_KV_SLOTS, c] + (bs - 1), 0) // bs
            else:
                grow = 1 if di[D_KV, c] == di[D_KV_SLOTS, c] else 0
            need += grow
        if need <= s[S_FREE_BLOCKS] or not running_count(state):
            break
        preempt_last(state, cfg)
    if need:
        for j in range(n_cols):
            c = j if all_decodes else cols[j]
            if proposes:
                grow = max(di[D_KV, c] + 1 + props[j] - di[D_KV_SLOTS, c] + (bs - 1), 0) // bs
            else:
                grow = 1 if di[D_KV, c] == di[D_KV_SLOTS, c] else 0
            di[D_KV_SLOTS, c] += grow * bs
        allocate(state, need)
    if not all_decodes and s[S_DECODING]:
        s[S_DECODES_CURRENT] = 0
    used = total
    pieces = 0
    if allow_prefill:
        p = state.prefill
        for col in range(s[S_PREFILLING]):
            if used >= budget:
                break
            chunk = min(p[P_TARGET, col] - p[P_DONE, col], budget - used)
            state.plan_chunks[pieces] = chunk
            pieces += 1
            used += chunk
        while s[S_WAIT_LEN] and used < budget and can_admit(state, cfg, waiting_front(state)):
            col = admit(state, cfg, waiting_pop_front(state))
            chunk = min(state.prefill[P_TARGET, col], budget - used)
            state.plan_chunks[pieces] = chunk
            pieces += 1
            used += chunk
    return all_decodes, n_cols, proposes, 0, pieces
