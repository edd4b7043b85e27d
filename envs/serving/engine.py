"""An iteration-level simulator of one LLM serving instance.

Each ``step()`` composes one batch (the scheduling policy), asks the latency model how long the
forward pass takes, advances the clock and applies the results. Per-token statistics are folded
into online counters and a fixed-size histogram, so memory grows with requests, never with
tokens.

How it stays fast: requests that are decoding live in a column-major table (one contiguous
numpy row per field: KV tokens, tokens left, KV capacity, ...), so a decode iteration is a dozen
whole-array operations whatever the batch size; the few requests in the middle of their prefill
are a short Python list handled with scalar arithmetic; the latency model answers in O(1) from
batch aggregates; and while every decoding request ran in the previous iteration (the usual
case) all their token gaps equal the iteration time and are recorded as one histogram entry.
A request's row is written back to the per-request arrays when it leaves the table.

Request life: future -> waiting (arrived) -> running (KV allocated: prefilling, then decoding)
-> finished, or rejected at arrival (longer than ``max_model_len``). A running request may be
preempted by recompute (KV freed, prefill restarts over prompt + generated tokens, back to the
head of the queue); the victim is the last admitted (vLLM's rule).
"""

from __future__ import annotations

import copy
import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from servegym.hardware import IterationBatch
from servegym.workloads import request_arrays

from .config import WATERMARK_FRACTION, EngineConfig, kv_capacity_blocks
from .metrics import LogHistogram, WindowCounters
from .speculation import acceptance_preset, drift_multiplier, sample_accepted

FUTURE, WAITING, RUNNING, FINISHED, REJECTED = 0, 1, 2, 3, 4
# Decode table rows (fields); columns are requests.
D_ID, D_KV, D_REM, D_CAP, D_SLOW, D_SEQ = range(6)  # int64: id, KV tokens, tokens left, KV slots held
F_LAST, F_MAXGAP, F_ALPHA = range(3)  # float64: last token time, largest gap, acceptance rate
# A prefilling request: [id, admission seq, prefill target, tokens prefilled, KV slots held].
P_ID, P_SEQ, P_TARGET, P_DONE, P_CAP = range(5)
_min = np.minimum.reduce  # without the wrapper of ndarray.min (hot path)


class RequestArrays(Protocol):
    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray


@dataclass
class StepResult:
    """What one ``step()`` did: the iteration's duration and batch composition."""

    duration_s: float
    prefill_tokens: int
    decode_seqs: int
    prefill_seqs: int
    spec_tokens: int
    idle_s: float = 0.0


class ServingEngine:
    """One serving instance (model, device, TP) driven iteration by iteration.

    ``requests`` holds every request of the episode (arrays ``arrival_s`` sorted,
    ``prompt_tokens``, ``output_tokens``); ``rng`` drives acceptance and n-gram matches.
    The knobs ``token_budget`` and ``spec_tokens`` may be changed between any two steps.
    """

    def __init__(self, config: EngineConfig, requests: RequestArrays, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.lm = config.latency_model()
        self.draft_lm = config.draft_latency_model()
        self.draft_max_len = self.draft_lm.model.max_context if self.draft_lm is not None else 0
        self.uses_ngram = (config.draft or "").lower() == "ngram"
        self.capacity_blocks = kv_capacity_blocks(config)
        self.free_blocks = self.capacity_blocks
        self.watermark = int(WATERMARK_FRACTION * self.capacity_blocks)
        self.block_size = config.block_size
        self.max_len = config.context_limit()
        self._set_requests(requests)
        self._token_budget = 0
        self.token_budget = config.token_budget
        self._spec_tokens = 0
        self.spec_tokens = config.spec_tokens
        self.now = 0.0
        cap = config.max_num_seqs
        self.di = np.zeros((6, cap), dtype=np.int64)
        self.df = np.zeros((3, cap), dtype=np.float64)
        self.nd = 0  # decoding requests: columns 0..nd-1
        self.prefilling: list[list[int]] = []  # admission order
        self.seq = 0  # admission counter
        self._decodes_current = True  # every decode row emitted at the previous iteration's end
        # Aggregates of the decode table kept up to date instead of recomputed per iteration.
        self._kv_sum = 0  # sum of D_KV over the decode columns
        self._min_rem = math.inf  # smallest D_REM over the decode columns
        self.waiting: deque[int] = deque()
        self.next_arrival = 0
        self.iterations = 0
        self.rejected = Counter()
        self.window = WindowCounters()
        self._totals = WindowCounters()

    # -- setup -------------------------------------------------------------------------------
    def _set_requests(self, requests: RequestArrays) -> None:
        try:
            arrival, prompt, output = request_arrays(
                "requests", requests.arrival_s, requests.prompt_tokens, requests.output_tokens
            )
        except AttributeError as err:
            raise ValueError(f"requests need arrival_s, prompt_tokens and output_tokens: {err}") from None
        if len(arrival) and arrival[0] < 0:
            raise ValueError(f"requests.arrival_s[0] must be >= 0, got {arrival[0]}")
        n = len(arrival)
        self.n = n
        self.arrival, self.prompt, self.output = arrival, prompt, output
        self.target = prompt.copy()  # tokens to prefill (prompt, or prompt + generated after preemption)
        self.gen = np.zeros(n, dtype=np.int64)  # output tokens emitted (written back on leaving)
        self.status = np.zeros(n, dtype=np.int8)
        self.first_t = np.full(n, np.nan)
        self.last_t = np.full(n, np.nan)
        self.sched_t = np.full(n, np.nan)
        self.finish_t = np.full(n, np.nan)
        self.max_gap = np.zeros(n)
        self.slow_gaps = np.zeros(n, dtype=np.int64)
        self.preemptions = np.zeros(n, dtype=np.int64)
        if self.config.draft is not None:
            preset = acceptance_preset(self.config.acceptance)
            self.alpha = self.rng.beta(preset.a, preset.b, n)
        else:
            self.alpha = np.zeros(n)

    # -- knobs -------------------------------------------------------------------------------
    @property
    def token_budget(self) -> int:
        return self._token_budget

    @token_budget.setter
    def token_budget(self, value: int) -> None:
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"token_budget must be an integer >= 1, got {value!r}")
        self._token_budget = int(value)

    @property
    def spec_tokens(self) -> int:
        return self._spec_tokens

    @spec_tokens.setter
    def spec_tokens(self, value: int) -> None:
        kmax = self.config.max_spec_tokens
        if not isinstance(value, (int, np.integer)) or not 0 <= value <= kmax:
            raise ValueError(f"spec_tokens must be an integer in 0..{kmax}, got {value!r}")
        if value and self.config.draft is None:
            raise ValueError("spec_tokens > 0 needs a draft: set EngineConfig.draft ('ngram' or a model)")
        self._spec_tokens = int(value)

    # -- queries -----------------------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return self.nd + len(self.prefilling)

    @property
    def done(self) -> bool:
        return self.next_arrival >= self.n and not self.waiting and not self.num_running

    @property
    def kv_utilization(self) -> float:
        return 1.0 - self.free_blocks / self.capacity_blocks

    def decode_contexts(self) -> np.ndarray:
        """KV tokens of each decoding request (a copy)."""
        return self.di[D_KV, : self.nd].copy()

    def running_view(self) -> dict[str, np.ndarray]:
        """The running requests' state in admission order (copies; for observations and tests)."""
        nd, di = self.nd, self.di
        ids = np.concatenate([di[D_ID, :nd], [p[P_ID] for p in self.prefilling]]).astype(np.int64)
        seq = np.concatenate([di[D_SEQ, :nd], [p[P_SEQ] for p in self.prefilling]])
        kv = np.concatenate([di[D_KV, :nd], [p[P_DONE] for p in self.prefilling]]).astype(np.int64)
        cap = np.concatenate([di[D_CAP, :nd], [p[P_CAP] for p in self.prefilling]]).astype(np.int64)
        gen = np.concatenate(
            [self.output[di[D_ID, :nd]] - di[D_REM, :nd], [self.gen[p[P_ID]] for p in self.prefilling]]
        ).astype(np.int64)
        decoding = np.concatenate([np.ones(nd, bool), np.zeros(len(self.prefilling), bool)])
        order = np.argsort(seq, kind="stable")
        return {
            "id": ids[order],
            "kv": kv[order],
            "kv_slots": cap[order],
            "generated": gen[order],
            "decoding": decoding[order],
            "alpha": self.alpha[ids[order]],
        }

    def counts(self) -> dict[str, int]:
        """Requests by state; they always add up to the arrived ones (conservation)."""
        arrived = self.next_arrival
        return {
            "arrived": arrived,
            "waiting": len(self.waiting),
            "running": self.num_running,
            "finished": int((self.status[:arrived] == FINISHED).sum()),
            "rejected": int((self.status[:arrived] == REJECTED).sum()),
        }

    def clone(self) -> ServingEngine:
        """An independent copy (state, RNG and counters) for look-ahead controllers."""
        return copy.deepcopy(self)

    # -- the loop ----------------------------------------------------------------------------
    def run_until(self, t_end: float) -> None:
        """Step until the clock reaches ``t_end`` or every request is done."""
        while self.now < t_end and not self.done:
            self.step(t_end)

    def run_to_completion(self) -> None:
        while not self.done:
            self.step()

    def _arrive(self) -> None:
        if self.next_arrival >= self.n or self.arrival[self.next_arrival] > self.now:
            return
        j = int(np.searchsorted(self.arrival, self.now, side="right"))
        ids = np.arange(self.next_arrival, j)
        too_long = self.prompt[ids] + self.output[ids] > self.max_len
        self.status[ids] = WAITING
        if too_long.any():
            bad = ids[too_long]
            self.status[bad] = REJECTED
            self.rejected["prompt + output longer than max_model_len"] += len(bad)
            self.window.rejected += len(bad)
            ids = ids[~too_long]
        self.waiting.extend(ids.tolist())
        self.window.arrivals += j - self.next_arrival
        self.next_arrival = j

    def step(self, t_limit: float = math.inf) -> StepResult:
        """Run one iteration (or jump idle time to the next arrival, at most to ``t_limit``)."""
        self._arrive()
        idle = 0.0
        if not self.num_running and not self.waiting:
            if self.next_arrival >= self.n:
                return StepResult(0.0, 0, 0, 0, 0)
            target = min(float(self.arrival[self.next_arrival]), t_limit)
            idle = max(0.0, target - self.now)
            self.now = max(self.now, target)
            self._arrive()
            if not self.waiting:
                return StepResult(0.0, 0, 0, 0, 0, idle_s=idle)
        result = None
        if self.config.policy == "prefill_first" and self.waiting:
            result = self._prefill_first_step()
        if result is None:
            result = self._hybrid_step(allow_prefill=self.config.policy == "decode_first")
        result.idle_s = idle
        return result

    # -- admission and preemption ------------------------------------------------------------
    def _can_admit(self, rid: int) -> bool:
        need = -(-int(self.target[rid]) // self.block_size)
        return self.num_running < self.config.max_num_seqs and need <= self.free_blocks - self.watermark

    def _admit(self, rid: int) -> list[int]:
        """Allocate the whole prefill target's blocks (Sarathi's rule); start prefilling."""
        target = int(self.target[rid])
        blocks = -(-target // self.block_size)
        self.free_blocks -= blocks
        self.status[rid] = RUNNING
        if math.isnan(self.sched_t[rid]):
            self.sched_t[rid] = self.now
        entry = [rid, self.seq, target, 0, blocks * self.block_size]
        self.seq += 1
        self.prefilling.append(entry)
        return entry

    def _write_back(self, cols) -> np.ndarray:
        """Copy decode columns' state to the per-request arrays; return their ids."""
        ids = self.di[D_ID, cols]
        self.gen[ids] = self.output[ids] - self.di[D_REM, cols]
        self.slow_gaps[ids] = self.di[D_SLOW, cols]
        self.last_t[ids] = self.df[F_LAST, cols]
        self.max_gap[ids] = self.df[F_MAXGAP, cols]
        return ids

    def _keep_columns(self, keep: np.ndarray) -> None:
        nd2 = int(np.count_nonzero(keep))
        self.di[:, :nd2] = self.di[:, : self.nd][:, keep]
        self.df[:, :nd2] = self.df[:, : self.nd][:, keep]
        self.nd = nd2
        self._refresh_aggregates()

    def _refresh_aggregates(self) -> None:
        nd = self.nd
        self._kv_sum = int(self.di[D_KV, :nd].sum())
        self._min_rem = int(_min(self.di[D_REM, :nd])) if nd else math.inf

    def _preempt_last(self) -> None:
        """Recompute preemption of the last-admitted running request."""
        nd = self.nd
        last_decode = int(np.argmax(self.di[D_SEQ, :nd])) if nd else -1
        decode_seq = int(self.di[D_SEQ, last_decode]) if nd else -1
        if self.prefilling and self.prefilling[-1][P_SEQ] > decode_seq:
            entry = self.prefilling.pop()
            victim, slots = entry[P_ID], entry[P_CAP]
        else:
            victim = int(self._write_back(np.array([last_decode]))[0])
            slots = int(self.di[D_CAP, last_decode])
            keep = np.ones(nd, dtype=bool)
            keep[last_decode] = False
            self._keep_columns(keep)
        self.free_blocks += slots // self.block_size
        # Recompute the prompt and every token produced so far (vLLM, Vidur); the prefill that
        # completes the recompute samples the next token.
        self.target[victim] = self.prompt[victim] + int(self.gen[victim])
        self.status[victim] = WAITING
        self.preemptions[victim] += 1
        self.window.preemptions += 1
        self.waiting.appendleft(victim)

    # -- scheduling --------------------------------------------------------------------------
    def _prefill_first_step(self) -> StepResult | None:
        """vLLM V0 / Orca: whole new prompts alone, if any can be admitted (decodes stall)."""
        budget = self._token_budget
        batch: list[tuple[list[int], int]] = []
        used = 0
        while self.waiting:
            rid = self.waiting[0]
            tokens = int(self.target[rid])
            if batch and used + tokens > budget:
                break
            if not self._can_admit(rid):
                break
            self.waiting.popleft()
            batch.append((self._admit(rid), tokens))
            used += tokens
        if not batch:
            return None
        if self.nd:
            self._decodes_current = False  # the decodes stall this iteration
        return self._execute(None, 0, None, batch)

    def _hybrid_step(self, allow_prefill: bool) -> StepResult:
        """Decode-first hybrid batch: running decodes, ongoing chunks, then new prompts."""
        budget = self._token_budget
        k = min(self._spec_tokens, budget - 1)  # drafts are cut to fit the budget (vLLM V1)
        bs = self.block_size
        while True:
            nd = self.nd
            cols = None  # None: every decode column runs
            proposals = None
            if k > 0 and nd:
                if self.uses_ngram:
                    proposals = np.where(self.rng.random(nd) < self.config.ngram_hit_rate, k, 0)
                else:
                    proposals = np.full(nd, k, dtype=np.int64)
                    if self.draft_max_len:  # no proposals past the draft model's context (vLLM)
                        proposals[self.di[D_KV, :nd] + k + 1 > self.draft_max_len] = 0
                total = int(proposals.sum()) + nd
            else:
                total = nd
            if total > budget:  # the budget caps decodes too (vLLM V1): the oldest run
                order = np.argsort(self.di[D_SEQ, :nd], kind="stable")
                cost = np.ones(nd, dtype=np.int64) if proposals is None else proposals[order] + 1
                fits = int(np.searchsorted(np.cumsum(cost), budget, side="right"))
                cols = np.sort(order[:fits])
                if proposals is not None:
                    proposals = proposals[cols]
                total = int(cost[:fits].sum())
            kv = self.di[D_KV, :nd] if cols is None else self.di[D_KV, cols]
            cap = self.di[D_CAP, :nd] if cols is None else self.di[D_CAP, cols]
            if proposals is None:  # one new token each: a new block exactly where the slots are full
                grow = kv == cap
                need = int(np.count_nonzero(grow))
            else:
                grow = np.maximum(kv + 1 + proposals - cap + (bs - 1), 0) // bs  # new blocks per decode
                need = int(grow.sum())
            if need <= self.free_blocks or not self.num_running:
                break
            self._preempt_last()
        if need:
            if cols is None:
                self.di[D_CAP, :nd] += grow * bs
            else:
                self.di[D_CAP, cols] += grow * bs
            self.free_blocks -= need
        if cols is not None and self.nd:
            self._decodes_current = False
        used = total
        batch: list[tuple[list[int], int]] = []
        if allow_prefill:
            for entry in self.prefilling:
                if used >= budget:
                    break
                chunk = min(entry[P_TARGET] - entry[P_DONE], budget - used)
                batch.append((entry, chunk))
                used += chunk
            while self.waiting and used < budget and self._can_admit(self.waiting[0]):
                entry = self._admit(self.waiting.popleft())
                chunk = min(entry[P_TARGET], budget - used)
                batch.append((entry, chunk))
                used += chunk
        n_dec = self.nd if cols is None else len(cols)
        return self._execute(cols, n_dec, proposals, batch)

    # -- one forward pass --------------------------------------------------------------------
    def _execute(self, cols, n_dec: int, proposals, prefill: list[tuple[list[int], int]]) -> StepResult:
        """Time and apply one iteration: ``n_dec`` decode columns (``cols``; None: the first
        ``n_dec``) with their ``proposals``, and the ``(entry, chunk)`` prefill pieces."""
        batch = IterationBatch()
        completed: list[list[int]] = []
        for entry, chunk in prefill:
            cached = entry[P_DONE]
            batch.prefill_seqs += 1
            batch.prefill_tokens += chunk
            batch.prefill_chunk_context += chunk * cached
            batch.prefill_chunk_sq += chunk * chunk
            batch.prefill_context += cached
            if cached + chunk >= entry[P_TARGET]:
                batch.sampled_prefills += 1
                completed.append(entry)
        k = 0
        kv = None
        if n_dec:
            kv = self.di[D_KV, :n_dec] if cols is None else self.di[D_KV, cols]
            batch.decode_seqs = n_dec
            batch.decode_context = float(self._kv_sum if cols is None else kv.sum())
            if proposals is not None:
                k = int(proposals.max())
                batch.spec_tokens = k
                verifying = proposals > 0
                n_verifying = int(np.count_nonzero(verifying))
                if k and n_verifying < n_dec:
                    batch.spec_seqs = n_verifying
                    batch.spec_context = float(kv[verifying].sum())
        duration = self.lm.iteration_time(batch)
        if k and self.draft_lm is not None:
            n_draft = batch.verifying_seqs
            ctx = batch.decode_context if batch.spec_seqs < 0 else batch.spec_context
            draft_s = self._draft_time(batch, n_draft, ctx, k) if n_draft else 0.0
            duration += draft_s
            self.window.draft_s += draft_s
        previous_end = self.now
        self.now += duration
        now = self.now
        w = self.window
        w.iterations += 1
        w.busy_s += duration
        if duration > w.max_iteration_s:
            w.max_iteration_s = duration
        w.iteration_times.add_one(duration)
        w.batch_size_sum += n_dec + batch.prefill_seqs
        self.iterations += 1
        if not prefill:
            w.decode_only_iterations += 1
        finished = False
        if n_dec:
            finished = self._decode_update(cols, n_dec, proposals, k, now, previous_end)
        elif self.nd == 0:
            self._decodes_current = True
        for entry, chunk in prefill:
            entry[P_DONE] += chunk
        w.prefill_tokens += batch.prefill_tokens
        if completed:
            self._prefill_complete(completed, now)
        if finished:
            self._finish_decodes(now)
        return StepResult(duration, batch.prefill_tokens, n_dec, batch.prefill_seqs, k)

    def _decode_update(self, cols, n_dec: int, proposals, k: int, now: float, previous_end: float) -> bool:
        """Emit the decode columns' tokens; True if some request has produced all its output."""
        cfg, w = self.config, self.window
        sel = slice(0, n_dec) if cols is None else cols
        di, df = self.di, self.df
        if k:
            accepted = self._accept(sel, proposals, k, now)
            emitted = np.minimum(accepted + 1, di[D_REM, sel])
            di[D_KV, sel] += 1 + accepted
            di[D_REM, sel] -= emitted
            n_tokens = int(emitted.sum())
        else:
            emitted = None
            di[D_KV, sel] += 1
            di[D_REM, sel] -= 1
            n_tokens = n_dec
            if cols is None:  # every column advanced by one token
                self._kv_sum += n_dec
                self._min_rem -= 1
        slo = cfg.tbt_slo_s
        if self._decodes_current and cols is None:  # every gap is this iteration's duration
            gap = now - previous_end
            w.gaps.add_one(gap, n_dec)
            np.maximum(df[F_MAXGAP, :n_dec], gap, out=df[F_MAXGAP, :n_dec])
            if gap > slo:
                di[D_SLOW, :n_dec] += 1
                w.slow_steps += n_dec
                w.tbt_excess += n_dec * (gap - slo) / slo
            else:
                w.tokens_within_slo += n_tokens
        else:
            gaps = now - df[F_LAST, sel]
            df[F_MAXGAP, sel] = np.maximum(df[F_MAXGAP, sel], gaps)
            slow = gaps > slo
            n_slow = int(np.count_nonzero(slow))
            w.gaps.add(gaps)
            if n_slow:
                di[D_SLOW, sel] += slow
                w.slow_steps += n_slow
                w.tbt_excess += float((gaps[slow] - slo).sum() / slo)
            slow_tokens = n_slow if emitted is None else int(emitted[slow].sum())
            w.tokens_within_slo += n_tokens - slow_tokens
        df[F_LAST, sel] = now
        w.decode_steps += n_dec
        w.decode_tokens += n_tokens
        if k or cols is not None:
            self._refresh_aggregates()
        if cols is None:
            self._decodes_current = True
        return self._min_rem <= 0

    def _prefill_complete(self, entries: list[list[int]], now: float) -> None:
        """Completed prefills sample a token (the first, or the next after a recompute) and
        join the decode table, or finish if that was their last token."""
        cfg, w = self.config, self.window
        done_ids = {id(e) for e in entries}
        self.prefilling = [e for e in self.prefilling if id(e) not in done_ids]
        joining = []
        for entry in entries:
            rid = entry[P_ID]
            if self.gen[rid] == 0:
                self.first_t[rid] = now
                ttft = now - self.arrival[rid]
                w.first_tokens += 1
                if ttft > cfg.ttft_slo_s:
                    w.first_tokens_late += 1
                    w.ttft_excess += (ttft - cfg.ttft_slo_s) / cfg.ttft_slo_s
                else:
                    w.tokens_within_slo += 1
            else:  # resumed after preemption: the gap includes the requeueing
                gap = now - self.last_t[rid]
                self.max_gap[rid] = max(self.max_gap[rid], gap)
                w.gaps.add_one(gap)
                w.decode_steps += 1
                w.decode_tokens += 1
                if gap > cfg.tbt_slo_s:
                    self.slow_gaps[rid] += 1
                    w.slow_steps += 1
                    w.tbt_excess += (gap - cfg.tbt_slo_s) / cfg.tbt_slo_s
                else:
                    w.tokens_within_slo += 1
            self.gen[rid] += 1
            self.last_t[rid] = now
            if self.gen[rid] >= self.output[rid]:
                self._finished([rid], now)
                self.free_blocks += entry[P_CAP] // self.block_size
            else:
                joining.append(entry)
        if joining:
            nd, m = self.nd, len(joining)
            ids = np.array([e[P_ID] for e in joining], dtype=np.int64)
            self.di[D_ID, nd : nd + m] = ids
            self.di[D_KV, nd : nd + m] = [e[P_TARGET] for e in joining]
            self.di[D_REM, nd : nd + m] = self.output[ids] - self.gen[ids]
            self.di[D_CAP, nd : nd + m] = [e[P_CAP] for e in joining]
            self.di[D_SLOW, nd : nd + m] = self.slow_gaps[ids]
            self.di[D_SEQ, nd : nd + m] = [e[P_SEQ] for e in joining]
            self.df[F_LAST, nd : nd + m] = now
            self.df[F_MAXGAP, nd : nd + m] = self.max_gap[ids]
            self.df[F_ALPHA, nd : nd + m] = self.alpha[ids]
            self.nd = nd + m
            self._kv_sum += int(self.di[D_KV, nd : nd + m].sum())
            self._min_rem = min(self._min_rem, int(_min(self.di[D_REM, nd : nd + m])))

    def _finish_decodes(self, now: float) -> None:
        nd = self.nd
        done = self.di[D_REM, :nd] <= 0
        cols = np.flatnonzero(done)
        ids = self._write_back(cols)
        self.free_blocks += int(self.di[D_CAP, cols].sum()) // self.block_size
        self._finished(ids, now)
        self._keep_columns(~done)

    def _finished(self, ids, now: float) -> None:
        self.status[ids] = FINISHED
        self.finish_t[ids] = now
        self.window.finished += len(ids)

    def _draft_time(self, batch: IterationBatch, n: int, ctx: float, k: int) -> float:
        """k sequential draft passes over the decoding sequences, plus the draft's prefill."""
        t = 0.0
        for i in range(k):
            t += self.draft_lm.iteration_time(IterationBatch(decode_seqs=n, decode_context=ctx + i * n))
        if batch.prefill_tokens:
            t += self.draft_lm.iteration_time(
                IterationBatch(
                    prefill_seqs=batch.prefill_seqs,
                    prefill_tokens=batch.prefill_tokens,
                    prefill_chunk_context=batch.prefill_chunk_context,
                    prefill_chunk_sq=batch.prefill_chunk_sq,
                    prefill_context=batch.prefill_context,
                )
            )
        return t

    def _accept(self, sel, proposals: np.ndarray, k: int, now: float) -> np.ndarray:
        """Accepted drafts per decode column (leading successes of Bernoulli(alpha_r), capped)."""
        alpha = self.df[F_ALPHA, sel]
        if self.config.acceptance_drift:
            alpha = np.minimum(alpha * drift_multiplier(self.config.acceptance_drift, now), 1.0)
        accepted = sample_accepted(self.rng, alpha, proposals)
        w = self.window
        verifying = int(np.count_nonzero(proposals))
        w.drafted += verifying * k  # proposals are k or 0
        w.accepted += int(accepted.sum())
        w.verify_steps += verifying
        w.drafted_at_position[:k] += verifying
        # accepted_at_position[j] counts requests whose first j+1 drafts were all accepted
        at_least = np.bincount(accepted, minlength=k + 1)[::-1].cumsum()[::-1]
        w.accepted_at_position[:k] += at_least[1 : k + 1]
        return accepted

    # -- windows -----------------------------------------------------------------------------
    def take_window(self) -> WindowCounters:
        """The counters since the last call; starts a new window."""
        w = self.window
        _merge(self._totals, w)
        self.window = WindowCounters(start_s=self.now)
        return w

    def totals(self) -> WindowCounters:
        """Counters over the whole run so far."""
        total = copy.deepcopy(self._totals)
        _merge(total, self.window)
        return total


_ADDED_FIELDS = tuple(
    name
    for name, value in vars(WindowCounters()).items()
    if name not in ("start_s", "max_iteration_s") and not isinstance(value, LogHistogram)
)


def _merge(into: WindowCounters, w: WindowCounters) -> None:
    for name in _ADDED_FIELDS:
        setattr(into, name, getattr(into, name) + getattr(w, name))
    into.max_iteration_s = max(into.max_iteration_s, w.max_iteration_s)
    into.gaps.merge(w.gaps)
    into.iteration_times.merge(w.iteration_times)
