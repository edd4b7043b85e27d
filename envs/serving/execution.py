"""Executing a batch plan: time the forward pass, then emit its tokens and account for them.

The iteration's duration comes from the latency model (plus the draft model's passes under
speculative decoding). Decodes emit one token each, or their accepted drafts plus a bonus token;
completed prefills sample a first token (or, after a preemption, the next one) and join the
decode table; requests with all their output leave it and free their KV blocks. Every token gap
and first token is folded into the window counters as it happens, so memory never grows with
tokens.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from servegym.hardware.latency import iteration_seconds

from .kv_blocks import release_slots
from .metrics import hist_add, hist_add_one
from .requests import (
    FINISHED,
    R_ALPHA,
    R_ARRIVAL,
    R_FINISHED,
    R_FIRST_TOKEN,
    R_GENERATED,
    R_LAST_TOKEN,
    R_MAX_GAP,
    R_OUTPUT,
    R_SLOW_GAPS,
    R_STATUS,
)
from .running import keep_columns, refresh_aggregates, write_back
from .speculation import draw_accepted, drift_at
from .state import (
    C_HAS_DRAFT_MODEL,
    CF_TBT_SLO,
    CF_TTFT_SLO,
    D_ALPHA,
    D_ID,
    D_KV,
    D_KV_SLOTS,
    D_LAST_TOKEN_S,
    D_MAX_GAP_S,
    D_REMAINING,
    D_SEQ,
    D_SLOW_GAPS,
    P_DONE,
    P_ID,
    P_KV_SLOTS,
    P_SEQ,
    P_TARGET,
    S_DECODES_CURRENT,
    S_DECODING,
    S_ITERATIONS,
    S_KV_SUM,
    S_MIN_REMAINING,
    S_PREFILLING,
    W_ACCEPTED,
    W_BATCH_SIZE_SUM,
    W_DECODE_ONLY_ITERATIONS,
    W_DECODE_STEPS,
    W_DECODE_TOKENS,
    W_DRAFTED,
    W_FINISHED,
    W_FIRST_TOKENS,
    W_FIRST_TOKENS_LATE,
    W_ITERATIONS,
    W_PREFILL_TOKENS,
    W_SLOW_STEPS,
    W_TOKENS_WITHIN_SLO,
    W_VERIFY_STEPS,
    WF_BUSY_S,
    WF_DRAFT_S,
    WF_MAX_ITERATION_S,
    WF_TBT_EXCESS,
    WF_TTFT_EXCESS,
)


@njit(cache=True)
def _block_sum(values, lo, n) -> float:  # pragma: no cover - compiled
    if n < 8:
        total = 0.0
        for i in range(lo, lo + n):
            total += values[i]
        return total
    r = values[lo : lo + 8].copy()
    i = 8
    while i < n - (n % 8):
        for j in range(8):
            r[j] += values[lo + i + j]
        i += 8
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        total += values[lo + i]
        i += 1
    return total


@njit(cache=True)
def pairwise_sum(values, lo, n) -> float:  # pragma: no cover - compiled
    """NumPy's float64 ``sum``: blocks of up to 128 summed 8-way unrolled, halves (cut at a
    multiple of 8) added pairwise, so totals kept here add up exactly as NumPy's would. The
    recursion runs on an explicit stack (numba cannot cache recursive functions)."""
    todo_lo = np.empty(128, dtype=np.int64)
    todo_n = np.empty(128, dtype=np.int64)  # -1: add the two partial sums on top of the stack
    partial = np.empty(128)
    todo_lo[0], todo_n[0] = lo, n
    n_todo = 1
    n_partial = 0
    while n_todo:
        n_todo -= 1
        a, m = todo_lo[n_todo], todo_n[n_todo]
        if m < 0:
            n_partial -= 1
            partial[n_partial - 1] = partial[n_partial - 1] + partial[n_partial]
        elif m <= 128:
            partial[n_partial] = _block_sum(values, a, m)
            n_partial += 1
        else:
            half = m // 2
            half -= half % 8
            todo_n[n_todo] = -1
            todo_lo[n_todo + 1], todo_n[n_todo + 1] = a + half, m - half
            todo_lo[n_todo + 2], todo_n[n_todo + 2] = a, half
            n_todo += 3
    return partial[0]


@njit(cache=True)
def planned_columns(state, all_decodes, n_dec) -> np.ndarray:  # pragma: no cover - compiled
    """The decode columns the plan runs (hot loops index this local array; reading fields of
    the state tuple inside a loop costs a reference-count update each time)."""
    return np.arange(n_dec) if all_decodes else state.plan_cols[:n_dec]


@njit(cache=True)
def draft_seconds(
    draft, prefill_seqs, prefill_tokens, chunk_context, chunk_sq, prefill_context, n, context, k
) -> float:  # pragma: no cover - compiled
    """k sequential draft passes over ``n`` decoding sequences, plus the draft's prefill."""
    t = 0.0
    for i in range(k):
        t += iteration_seconds(draft, 0, 0, 0.0, 0.0, 0.0, 0, n, context + i * n, 0, -1, 0.0)
    if prefill_tokens:
        t += iteration_seconds(
            draft,
            prefill_seqs,
            prefill_tokens,
            chunk_context,
            chunk_sq,
            prefill_context,
            0,
            0,
            0.0,
            0,
            -1,
            0.0,
        )
    return t


@njit(cache=True)
def execute(state, cfg, lm, draft, all_decodes, n_dec, proposes, first, pieces):  # pragma: no cover
    """Time and apply one iteration of the plan (see ``scheduler``). Returns ``(duration_s,
    prefill_tokens, decode_seqs, prefill_seqs, spec_tokens)``."""
    s, p, chunks = state.scalars, state.prefill, state.plan_chunks
    prefill_seqs = prefill_tokens = sampled = 0
    chunk_context = chunk_sq = prefill_context = 0.0
    for j in range(pieces):
        cached, chunk = p[P_DONE, first + j], chunks[j]
        prefill_seqs += 1
        prefill_tokens += chunk
        chunk_context += chunk * cached
        chunk_sq += chunk * chunk
        prefill_context += cached
        if cached + chunk >= p[P_TARGET, first + j]:
            sampled += 1
    k = 0
    decode_context = spec_context = 0.0
    spec_seqs = -1
    if n_dec:
        kv = state.dec_ints[D_KV]
        if all_decodes:
            decode_context = float(s[S_KV_SUM])
        else:
            decode_context = float(kv[state.plan_cols[:n_dec]].sum())
        if proposes:
            props = state.plan_proposals[:n_dec]
            k = props.max()
            cols = planned_columns(state, all_decodes, n_dec)
            n_verifying = 0
            verifying_context = 0
            for j in range(n_dec):
                if props[j] > 0:
                    n_verifying += 1
                    verifying_context += kv[cols[j]]
            if k and n_verifying < n_dec:
                spec_seqs = n_verifying
                spec_context = float(verifying_context)
    duration = iteration_seconds(
        lm, prefill_seqs, prefill_tokens, chunk_context, chunk_sq, prefill_context, sampled,
        n_dec, decode_context, k, spec_seqs, spec_context,
    )  # fmt: skip
    wi, wf = state.win_ints, state.win_floats
    if k and cfg.ints[C_HAS_DRAFT_MODEL]:
        n_draft = n_dec if spec_seqs < 0 else spec_seqs
        context = decode_context if spec_seqs < 0 else spec_context
        draft_s = 0.0
        if n_draft:
            draft_s = draft_seconds(
                draft,
                prefill_seqs,
                prefill_tokens,
                chunk_context,
                chunk_sq,
                prefill_context,
                n_draft,
                context,
                k,
            )
        duration += draft_s
        wf[WF_DRAFT_S] += draft_s
    previous_end = state.now[0]
    now = previous_end + duration
    state.now[0] = now
    wi[W_ITERATIONS] += 1
    wf[WF_BUSY_S] += duration
    if duration > wf[WF_MAX_ITERATION_S]:
        wf[WF_MAX_ITERATION_S] = duration
    hist_add_one(state.iteration_hist, duration, 1)
    wi[W_BATCH_SIZE_SUM] += n_dec + prefill_seqs
    s[S_ITERATIONS] += 1
    if pieces == 0:
        wi[W_DECODE_ONLY_ITERATIONS] += 1
    finished = False
    if n_dec:
        finished = emit_decode_tokens(state, cfg, all_decodes, n_dec, k, now, previous_end)
    elif s[S_DECODING] == 0:
        s[S_DECODES_CURRENT] = 1
    for j in range(pieces):
        p[P_DONE, first + j] += chunks[j]
    wi[W_PREFILL_TOKENS] += prefill_tokens
    if sampled:
        complete_prefills(state, cfg, first, pieces, now)
    if finished:
        finish_decodes(state, cfg, now)
    return duration, prefill_tokens, n_dec, prefill_seqs, k


@njit(cache=True)
def accept_drafts(state, cfg, all_decodes, n_dec, k, now) -> np.ndarray:  # pragma: no cover
    """Accepted drafts per verifying decode (leading successes of Bernoulli(alpha_r), capped at
    its proposals), counted per draft position."""
    alpha = state.dec_floats[D_ALPHA][planned_columns(state, all_decodes, n_dec)]
    if len(cfg.drift_times):
        m = drift_at(cfg.drift_times, cfg.drift_multipliers, now)
        for j in range(n_dec):
            alpha[j] = min(alpha[j] * m, 1.0)
    props = state.plan_proposals[:n_dec]
    accepted = np.zeros(n_dec, dtype=np.int64)
    draw_accepted(state.rng, alpha, props, accepted)
    wi = state.win_ints
    verifying = 0
    at_least = np.zeros(k + 1, dtype=np.int64)
    for j in range(n_dec):
        if props[j]:
            verifying += 1
        at_least[accepted[j]] += 1
    for j in range(k - 1, -1, -1):  # at_least[j]: requests whose first j drafts were all accepted
        at_least[j] += at_least[j + 1]
    wi[W_DRAFTED] += verifying * k  # proposals are k or 0
    wi[W_ACCEPTED] += accepted.sum()
    wi[W_VERIFY_STEPS] += verifying
    state.drafted_at_position[:k] += verifying
    state.accepted_at_position[:k] += at_least[1 : k + 1]
    return accepted


@njit(cache=True)
def emit_decode_tokens(state, cfg, all_decodes, n_dec, k, now, previous_end) -> bool:  # pragma: no cover
    """Emit the planned decode columns' tokens; True if some request has produced all its output."""
    s, di, df = state.scalars, state.dec_ints, state.dec_floats
    wi, wf = state.win_ints, state.win_floats
    cols = planned_columns(state, all_decodes, n_dec)
    emitted = np.ones(n_dec, dtype=np.int64)
    if k:
        accepted = accept_drafts(state, cfg, all_decodes, n_dec, k, now)
        n_tokens = 0
        for j in range(n_dec):
            c = cols[j]
            emitted[j] = min(accepted[j] + 1, di[D_REMAINING, c])
            di[D_KV, c] += 1 + accepted[j]
            di[D_REMAINING, c] -= emitted[j]
            n_tokens += emitted[j]
    else:
        for j in range(n_dec):
            c = cols[j]
            di[D_KV, c] += 1
            di[D_REMAINING, c] -= 1
        n_tokens = n_dec
        if all_decodes:  # every column advanced by one token
            s[S_KV_SUM] += n_dec
            s[S_MIN_REMAINING] -= 1
    slo = cfg.floats[CF_TBT_SLO]
    if s[S_DECODES_CURRENT] and all_decodes:  # every gap is this iteration's duration
        gap = now - previous_end
        hist_add_one(state.gap_hist, gap, n_dec)
        max_gaps = df[D_MAX_GAP_S]
        for c in range(n_dec):
            max_gaps[c] = max(max_gaps[c], gap)
        if gap > slo:
            slow_gaps = di[D_SLOW_GAPS]
            for c in range(n_dec):
                slow_gaps[c] += 1
            wi[W_SLOW_STEPS] += n_dec
            wf[WF_TBT_EXCESS] += n_dec * (gap - slo) / slo
        else:
            wi[W_TOKENS_WITHIN_SLO] += n_tokens
    else:
        gaps = np.empty(n_dec)
        excess = np.empty(n_dec)
        n_slow = slow_tokens = 0
        for j in range(n_dec):
            c = cols[j]
            gaps[j] = now - df[D_LAST_TOKEN_S, c]
            df[D_MAX_GAP_S, c] = max(df[D_MAX_GAP_S, c], gaps[j])
            if gaps[j] > slo:
                di[D_SLOW_GAPS, c] += 1
                excess[n_slow] = gaps[j] - slo
                n_slow += 1
                slow_tokens += emitted[j]
        hist_add(state.gap_hist, gaps)
        if n_slow:
            wi[W_SLOW_STEPS] += n_slow
            wf[WF_TBT_EXCESS] += pairwise_sum(excess, 0, n_slow) / slo
        wi[W_TOKENS_WITHIN_SLO] += n_tokens - slow_tokens
    for j in range(n_dec):
        df[D_LAST_TOKEN_S, cols[j]] = now
    wi[W_DECODE_STEPS] += n_dec
    wi[W_DECODE_TOKENS] += n_tokens
    if k or not all_decodes:
        refresh_aggregates(state)
    if all_decodes:
        s[S_DECODES_CURRENT] = 1
    return s[S_MIN_REMAINING] <= 0


@njit(cache=True)
def _finish(state, rid, now) -> None:  # pragma: no cover - compiled
    state.req_ints[R_STATUS, rid] = FINISHED
    state.req_floats[R_FINISHED, rid] = now
    state.win_ints[W_FINISHED] += 1


@njit(cache=True)
def complete_prefills(state, cfg, first, pieces, now) -> None:  # pragma: no cover - compiled
    """Completed prefills sample a token (the first, or the next after a recompute) and join
    the decode table, or finish if that was their last token."""
    s, p = state.scalars, state.prefill
    ri, rf = state.req_ints, state.req_floats
    wi, wf = state.win_ints, state.win_floats
    done = np.zeros(s[S_PREFILLING], dtype=np.bool_)
    completed = np.empty((4, pieces), dtype=np.int64)  # id, target, KV slots, admission seq
    m = 0
    for j in range(pieces):
        col = first + j
        if p[P_DONE, col] >= p[P_TARGET, col]:
            done[col] = True
            completed[0, m], completed[1, m] = p[P_ID, col], p[P_TARGET, col]
            completed[2, m], completed[3, m] = p[P_KV_SLOTS, col], p[P_SEQ, col]
            m += 1
    kept = 0
    for col in range(s[S_PREFILLING]):
        if not done[col]:
            if kept != col:
                for row in range(p.shape[0]):
                    p[row, kept] = p[row, col]
            kept += 1
    s[S_PREFILLING] = kept
    ttft_slo, tbt_slo = cfg.floats[CF_TTFT_SLO], cfg.floats[CF_TBT_SLO]
    nd = s[S_DECODING]
    di, df = state.dec_ints, state.dec_floats
    joined = 0
    for j in range(m):
        rid = completed[0, j]
        if ri[R_GENERATED, rid] == 0:
            rf[R_FIRST_TOKEN, rid] = now
            ttft = now - rf[R_ARRIVAL, rid]
            wi[W_FIRST_TOKENS] += 1
            if ttft > ttft_slo:
                wi[W_FIRST_TOKENS_LATE] += 1
                wf[WF_TTFT_EXCESS] += (ttft - ttft_slo) / ttft_slo
            else:
                wi[W_TOKENS_WITHIN_SLO] += 1
        else:  # resumed after preemption: the gap includes the requeueing
            gap = now - rf[R_LAST_TOKEN, rid]
            rf[R_MAX_GAP, rid] = max(rf[R_MAX_GAP, rid], gap)
            hist_add_one(state.gap_hist, gap, 1)
            wi[W_DECODE_STEPS] += 1
            wi[W_DECODE_TOKENS] += 1
            if gap > tbt_slo:
                ri[R_SLOW_GAPS, rid] += 1
                wi[W_SLOW_STEPS] += 1
                wf[WF_TBT_EXCESS] += (gap - tbt_slo) / tbt_slo
            else:
                wi[W_TOKENS_WITHIN_SLO] += 1
        ri[R_GENERATED, rid] += 1
        rf[R_LAST_TOKEN, rid] = now
        if ri[R_GENERATED, rid] >= ri[R_OUTPUT, rid]:
            _finish(state, rid, now)
            release_slots(state, cfg, completed[2, j])
        else:
            c = nd + joined
            di[D_ID, c] = rid
            di[D_KV, c] = completed[1, j]
            di[D_REMAINING, c] = ri[R_OUTPUT, rid] - ri[R_GENERATED, rid]
            di[D_KV_SLOTS, c] = completed[2, j]
            di[D_SLOW_GAPS, c] = ri[R_SLOW_GAPS, rid]
            di[D_SEQ, c] = completed[3, j]
            df[D_LAST_TOKEN_S, c] = now
            df[D_MAX_GAP_S, c] = rf[R_MAX_GAP, rid]
            df[D_ALPHA, c] = rf[R_ALPHA, rid]
            joined += 1
    if joined:
        s[S_DECODING] = nd + joined
        s[S_KV_SUM] += di[D_KV, nd : nd + joined].sum()
        s[S_MIN_REMAINING] = min(s[S_MIN_REMAINING], di[D_REMAINING, nd : nd + joined].min())


@njit(cache=True)
def finish_decodes(state, cfg, now) -> None:  # pragma: no cover - compiled
    """Requests with all their output leave the decode table and free their KV blocks."""
    nd = state.scalars[S_DECODING]
    di = state.dec_ints
    keep = np.ones(nd, dtype=np.bool_)
    slots = 0
    finished = np.empty(nd, dtype=np.int64)
    m = 0
    for c in range(nd):
        if di[D_REMAINING, c] <= 0:
            keep[c] = False
            finished[m] = write_back(state, c)
            slots += di[D_KV_SLOTS, c]
            m += 1
    release_slots(state, cfg, slots)
    for j in range(m):
        _finish(state, finished[j], now)
    keep_columns(state, keep)
