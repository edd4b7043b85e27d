"""An iteration-level simulator of one LLM serving instance.

Each step lets arrived requests join the waiting queue, asks the scheduler (``scheduler.py``)
for a batch plan, and executes it (``execution.py``): the latency model times the forward pass,
the clock advances and the tokens are emitted. Idle time jumps to the next arrival.

The state is a tuple of numpy arrays (``state.py``) and the loop is compiled with numba, so a
simulated iteration costs about a microsecond and many engines run side by side; the Python
class below is the interface: knobs, queries, windows of counters, cloning. Per-token
statistics are folded into counters and fixed-size histograms, so memory grows with requests,
never with tokens.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numba import njit

from servegym.hardware.latency import LatencyTables
from servegym.workloads import request_arrays

from .config import EngineConfig
from .execution import execute
from .kv_blocks import WATERMARK_FRACTION
from .metrics import HIST_BINS, LogHistogram, WindowCounters
from .pcg64 import state_array, write_state
from .requests import (
    FINISHED,
    FUTURE,
    R_ARRIVAL,
    R_OUTPUT,
    R_PROMPT,
    R_STATUS,
    REJECTED,
    RUNNING,
    WAITING,
    RequestTable,
    new_request_arrays,
    write_requests,
)
from .running import running_count, waiting_ids, waiting_push_back
from .scheduler import schedule_hybrid, schedule_prefill_first
from .speculation import acceptance_preset, drift_arrays
from .state import (
    C_BLOCK_SIZE,
    C_CAPACITY_BLOCKS,
    C_DRAFT_MAX_LEN,
    C_HAS_DRAFT_MODEL,
    C_MAX_LEN,
    C_MAX_NUM_SEQS,
    C_NGRAM,
    C_PREFILL_FIRST,
    C_WATERMARK,
    CF_NGRAM_HIT_RATE,
    CF_TBT_SLO,
    CF_TTFT_SLO,
    D_ID,
    D_KV,
    D_KV_SLOTS,
    D_REMAINING,
    D_SEQ,
    MAX_POSITIONS,
    N_CONFIG_FLOATS,
    N_CONFIG_INTS,
    N_SCALARS,
    NO_DECODES,
    P_DONE,
    P_ID,
    P_KV_SLOTS,
    P_SEQ,
    S_DECODES_CURRENT,
    S_DECODING,
    S_FREE_BLOCKS,
    S_ITERATIONS,
    S_MIN_REMAINING,
    S_N,
    S_NEXT_ARRIVAL,
    S_PREFILLING,
    S_REJECTED_TOO_LONG,
    S_SPEC_TOKENS,
    S_TOKEN_BUDGET,
    S_WAIT_HEAD,
    S_WAIT_LEN,
    W_ARRIVALS,
    W_REJECTED,
    WF_MAX_ITERATION_S,
    WF_START_S,
    WINDOW_FLOATS,
    WINDOW_INTS,
    EngineConfigArrays,
    EngineState,
    new_window_arrays,
)
from .windows import N_SUMMARY, SUMMARY, close_window

__all__ = [
    "FINISHED",
    "FUTURE",
    "REJECTED",
    "RUNNING",
    "WAITING",
    "WATERMARK_FRACTION",
    "ServingEngine",
    "StepResult",
]

TOO_LONG = "prompt + output longer than max_model_len"
_ACCEPTED = slice(SUMMARY.accepted_at_position, SUMMARY.accepted_at_position + MAX_POSITIONS)
_DRAFTED = slice(SUMMARY.drafted_at_position, SUMMARY.drafted_at_position + MAX_POSITIONS)


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


# -- the compiled loop ------------------------------------------------------------------------


@njit(cache=True)
def arrive(state, cfg) -> None:  # pragma: no cover - compiled
    """Requests whose arrival time has come join the waiting queue (or are rejected if longer
    than ``max_model_len``)."""
    s = state.scalars
    first, n = s[S_NEXT_ARRIVAL], s[S_N]
    arrival = state.req_floats[R_ARRIVAL]
    now = state.now[0]
    if first >= n or arrival[first] > now:
        return
    last = np.searchsorted(arrival[:n], now, side="right")
    ri = state.req_ints
    for rid in range(first, last):
        if ri[R_PROMPT, rid] + ri[R_OUTPUT, rid] > cfg.ints[C_MAX_LEN]:
            ri[R_STATUS, rid] = REJECTED
            s[S_REJECTED_TOO_LONG] += 1
            state.win_ints[W_REJECTED] += 1
        else:
            ri[R_STATUS, rid] = WAITING
            waiting_push_back(state, rid)
    state.win_ints[W_ARRIVALS] += last - first
    s[S_NEXT_ARRIVAL] = last


@njit(cache=True)
def is_done(scalars) -> bool:  # pragma: no cover - compiled
    """Every request has arrived and none is waiting or running."""
    s = scalars
    return s[S_NEXT_ARRIVAL] >= s[S_N] and s[S_WAIT_LEN] == 0 and s[S_DECODING] + s[S_PREFILLING] == 0


@njit(cache=True)
def step(state, cfg, lm, draft, t_limit):  # pragma: no cover - compiled
    """One iteration, or a jump over idle time to the next arrival (at most to ``t_limit``).
    Returns ``(duration_s, prefill_tokens, decode_seqs, prefill_seqs, spec_tokens, idle_s)``."""
    s = state.scalars
    arrive(state, cfg)
    idle = 0.0
    if running_count(state) == 0 and s[S_WAIT_LEN] == 0:
        if s[S_NEXT_ARRIVAL] >= s[S_N]:
            return 0.0, 0, 0, 0, 0, 0.0
        now = state.now[0]
        target = min(state.req_floats[R_ARRIVAL, s[S_NEXT_ARRIVAL]], t_limit)
        idle = max(0.0, target - now)
        state.now[0] = max(now, target)
        arrive(state, cfg)
        if s[S_WAIT_LEN] == 0:
            return 0.0, 0, 0, 0, 0, idle
    if cfg.ints[C_PREFILL_FIRST] and s[S_WAIT_LEN]:
        all_decodes, n_dec, proposes, first, pieces = schedule_prefill_first(state, cfg)
        if pieces:
            d, pt, nd, ps, k = execute(state, cfg, lm, draft, all_decodes, n_dec, proposes, first, pieces)
            return d, pt, nd, ps, k, idle
    all_decodes, n_dec, proposes, first, pieces = schedule_hybrid(state, cfg, not cfg.ints[C_PREFILL_FIRST])
    d, pt, nd, ps, k = execute(state, cfg, lm, draft, all_decodes, n_dec, proposes, first, pieces)
    return d, pt, nd, ps, k, idle


@njit(cache=True)
def run_until(state, cfg, lm, draft, t_end) -> None:  # pragma: no cover - compiled
    while state.now[0] < t_end and not is_done(state.scalars):
        step(state, cfg, lm, draft, t_end)


@njit(cache=True)
def run_iterations(state, cfg, lm, draft, count, t_limit) -> int:  # pragma: no cover - compiled
    """Up to ``count`` iterations that did work (idle jumps don't count), stopping at ``t_limit``."""
    ran = 0
    while ran < count and not is_done(state.scalars) and state.now[0] < t_limit:
        if step(state, cfg, lm, draft, t_limit)[0] > 0:
            ran += 1
    return ran


@njit(cache=True)
def run_and_close_window(
    state, cfg, lm, draft, totals, iterations, t_end, gaps_out, iterations_out, summary
) -> None:  # pragma: no cover - compiled
    """One decision's worth of simulation and its window, in one call: ``iterations`` > 0 runs
    that many working iterations (stopping at ``t_end``), else runs until ``t_end``."""
    if iterations > 0:
        run_iterations(state, cfg, lm, draft, iterations, t_end)
    else:
        run_until(state, cfg, lm, draft, t_end)
    close_window(state, cfg, totals, gaps_out, iterations_out, summary)


# -- the interface ----------------------------------------------------------------------------


class ServingEngine:
    """One serving instance (model, device, TP) driven iteration by iteration.

    ``requests`` holds the requests known at the start (arrays ``arrival_s`` sorted,
    ``prompt_tokens``, ``output_tokens``; more can be ``submit``-ted later); ``rng`` (a PCG64
    ``Generator``, e.g. ``numpy.random.default_rng``) draws acceptance rates and n-gram matches.
    The knobs ``token_budget`` and ``spec_tokens`` may be changed between any two steps.
    """

    def __init__(self, config: EngineConfig, requests: RequestArrays, rng: np.random.Generator) -> None:
        self.config = config
        self.lm = config.latency_model()
        self.draft_lm = config.draft_latency_model()
        self.uses_ngram = (config.draft or "").lower() == "ngram"
        self.capacity_blocks = config.capacity_blocks
        self.block_size = config.block_size
        self.max_len = config.context_limit()
        self._rng = rng
        arrival, prompt, output = self._checked(requests)
        if len(arrival) and arrival[0] < 0:
            raise ValueError(f"requests.arrival_s[0] must be >= 0, got {arrival[0]}")
        n, seqs = len(arrival), config.max_num_seqs
        capacity = max(n, 16)
        req_ints, req_floats = new_request_arrays(capacity)
        write_requests(req_ints, req_floats, 0, arrival, prompt, output, self._draw_alpha(n))
        scalars = np.zeros(N_SCALARS, dtype=np.int64)
        scalars[S_N] = n
        scalars[S_FREE_BLOCKS] = self.capacity_blocks
        scalars[S_DECODES_CURRENT] = 1
        scalars[S_MIN_REMAINING] = NO_DECODES
        self._state = EngineState(
            scalars,
            np.zeros(1),
            state_array(rng),
            req_ints,
            req_floats,
            np.zeros(capacity, dtype=np.int64),
            np.zeros((6, seqs), dtype=np.int64),
            np.zeros((3, seqs)),
            np.zeros((5, seqs), dtype=np.int64),
            *new_window_arrays(),
            np.zeros(seqs, dtype=np.int64),
            np.zeros(seqs, dtype=np.int64),
            np.zeros(seqs, dtype=np.int64),
        )
        self._totals = new_window_arrays()
        self._scratch_hists = (np.zeros(HIST_BINS, dtype=np.int64), np.zeros(HIST_BINS, dtype=np.int64))
        self._cfg = self._config_arrays()
        self._tables_for = -1
        self.token_budget = config.token_budget
        self.spec_tokens = config.spec_tokens

    def _checked(self, requests: RequestArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            return request_arrays(
                "requests", requests.arrival_s, requests.prompt_tokens, requests.output_tokens
            )
        except AttributeError as err:
            raise ValueError(f"requests need arrival_s, prompt_tokens and output_tokens: {err}") from None

    def _draw_alpha(self, n: int) -> np.ndarray:
        """Per-request acceptance rates, drawn from the engine's generator (zeros without a draft)."""
        if self.config.draft is None:
            return np.zeros(n)
        preset = acceptance_preset(self.config.acceptance)
        if not hasattr(self, "_state"):
            return self._rng.beta(preset.a, preset.b, n)
        rng = self.rng  # synchronised with the compiled stream
        alpha = rng.beta(preset.a, preset.b, n)
        self._state.rng[:] = state_array(rng)
        return alpha

    def _config_arrays(self) -> EngineConfigArrays:
        cfg = self.config
        ints = np.zeros(N_CONFIG_INTS, dtype=np.int64)
        ints[C_PREFILL_FIRST] = cfg.policy == "prefill_first"
        ints[C_MAX_NUM_SEQS] = cfg.max_num_seqs
        ints[C_BLOCK_SIZE] = cfg.block_size
        ints[C_MAX_LEN] = self.max_len
        ints[C_WATERMARK] = int(WATERMARK_FRACTION * self.capacity_blocks)
        ints[C_CAPACITY_BLOCKS] = self.capacity_blocks
        ints[C_NGRAM] = self.uses_ngram
        ints[C_DRAFT_MAX_LEN] = self.draft_lm.model.max_context if self.draft_lm is not None else 0
        ints[C_HAS_DRAFT_MODEL] = self.draft_lm is not None
        floats = np.zeros(N_CONFIG_FLOATS)
        floats[CF_TBT_SLO] = cfg.tbt_slo_s
        floats[CF_TTFT_SLO] = cfg.ttft_slo_s
        floats[CF_NGRAM_HIT_RATE] = cfg.ngram_hit_rate
        return EngineConfigArrays(ints, floats, *drift_arrays(cfg.acceptance_drift))

    def _ensure_tables(self) -> None:
        """Latency tables large enough for any iteration the knobs allow: at most the budget,
        or one whole prompt under prefill-first, of tokens."""
        bound = max(self._token_budget, self.max_len) + 1
        if bound <= self._tables_for:
            return
        self.lm.ensure_tables(bound)
        if self.draft_lm is not None:
            self.draft_lm.ensure_tables(bound)
        self._lm_tables: LatencyTables = self.lm.tables
        self._draft_tables: LatencyTables = (
            self.draft_lm.tables if self.draft_lm is not None else self.lm.tables
        )
        self._tables_for = bound

    # -- knobs -------------------------------------------------------------------------------
    @property
    def token_budget(self) -> int:
        return self._token_budget

    @token_budget.setter
    def token_budget(self, value: int) -> None:
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"token_budget must be an integer >= 1, got {value!r}")
        self._token_budget = int(value)
        self._state.scalars[S_TOKEN_BUDGET] = value
        self._ensure_tables()

    @property
    def spec_tokens(self) -> int:
        return int(self._state.scalars[S_SPEC_TOKENS])

    @spec_tokens.setter
    def spec_tokens(self, value: int) -> None:
        kmax = self.config.max_spec_tokens
        if not isinstance(value, (int, np.integer)) or not 0 <= value <= kmax:
            raise ValueError(f"spec_tokens must be an integer in 0..{kmax}, got {value!r}")
        if value and self.config.draft is None:
            raise ValueError("spec_tokens > 0 needs a draft: set EngineConfig.draft ('ngram' or a model)")
        self._state.scalars[S_SPEC_TOKENS] = value

    # -- the loop ----------------------------------------------------------------------------
    def step(self, t_limit: float = math.inf) -> StepResult:
        """Run one iteration (or jump idle time to the next arrival, at most to ``t_limit``)."""
        return StepResult(*step(self._state, self._cfg, self._lm_tables, self._draft_tables, float(t_limit)))

    def run_until(self, t_end: float) -> None:
        """Step until the clock reaches ``t_end`` or every request is done."""
        run_until(self._state, self._cfg, self._lm_tables, self._draft_tables, float(t_end))

    def run_iterations(self, count: int, t_limit: float = math.inf) -> int:
        """Run up to ``count`` iterations that do work, stopping at ``t_limit``; returns how many ran."""
        return run_iterations(
            self._state, self._cfg, self._lm_tables, self._draft_tables, count, float(t_limit)
        )

    def run_to_completion(self) -> None:
        self.run_until(math.inf)

    def submit(self, arrival_s, prompt_tokens, output_tokens) -> np.ndarray:
        """Add requests that arrive later (times sorted, not before the last known arrival);
        returns their ids. A router uses this to hand requests to a replica."""
        arrival, prompt, output = request_arrays("submit", arrival_s, prompt_tokens, output_tokens)
        n, m = self.n, len(arrival)
        if m == 0:
            return np.zeros(0, dtype=np.int64)
        last = self._state.req_floats[R_ARRIVAL, n - 1] if n else 0.0
        if arrival[0] < last or arrival[0] < 0:
            raise ValueError(
                f"submit: arrival_s must not precede the last known arrival {last}, got {arrival[0]}"
            )
        if n + m > self._state.req_ints.shape[1]:
            self._grow(n + m)
        st = self._state
        write_requests(st.req_ints, st.req_floats, n, arrival, prompt, output, self._draw_alpha(m))
        st.scalars[S_N] = n + m
        return np.arange(n, n + m)

    def _grow(self, needed: int) -> None:
        """Double the request capacity (the waiting ring buffer is re-laid from its head)."""
        st = self._state
        capacity = max(needed, 2 * st.req_ints.shape[1])
        ints, floats = new_request_arrays(capacity)
        old = st.req_ints.shape[1]
        ints[:, :old], floats[:, :old] = st.req_ints, st.req_floats
        waiting = np.zeros(capacity, dtype=np.int64)
        queued = waiting_ids(st)
        waiting[: len(queued)] = queued
        st.scalars[S_WAIT_HEAD] = 0
        self._state = st._replace(req_ints=ints, req_floats=floats, waiting=waiting)

    # -- queries -----------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return float(self._state.now[0])

    @property
    def done(self) -> bool:
        return bool(is_done(self._state.scalars))

    @property
    def n(self) -> int:
        return int(self._state.scalars[S_N])

    @property
    def next_arrival(self) -> int:
        return int(self._state.scalars[S_NEXT_ARRIVAL])

    @property
    def iterations(self) -> int:
        return int(self._state.scalars[S_ITERATIONS])

    @property
    def free_blocks(self) -> int:
        return int(self._state.scalars[S_FREE_BLOCKS])

    @property
    def num_decoding(self) -> int:
        return int(self._state.scalars[S_DECODING])

    @property
    def num_prefilling(self) -> int:
        return int(self._state.scalars[S_PREFILLING])

    @property
    def num_running(self) -> int:
        return self.num_decoding + self.num_prefilling

    @property
    def num_waiting(self) -> int:
        return int(self._state.scalars[S_WAIT_LEN])

    @property
    def waiting(self) -> list[int]:
        """Ids of the waiting requests, head of the queue first (a copy)."""
        return waiting_ids(self._state).tolist()

    @property
    def kv_utilization(self) -> float:
        return 1.0 - self.free_blocks / self.capacity_blocks

    @property
    def requests(self) -> RequestTable:
        """Per-request state (views); fields of decoding requests are current once they leave."""
        return RequestTable(self._state)

    @property
    def rejected(self) -> Counter:
        """Rejected requests by reason."""
        count = int(self._state.scalars[S_REJECTED_TOO_LONG])
        return Counter({TOO_LONG: count}) if count else Counter()

    @property
    def rng(self) -> np.random.Generator:
        """The engine's generator, at the state the simulation has reached."""
        write_state(self._rng, self._state.rng)
        return self._rng

    def decode_contexts(self) -> np.ndarray:
        """KV tokens of each decoding request (a copy)."""
        return self._state.dec_ints[D_KV, : self.num_decoding].copy()

    def running_view(self) -> dict[str, np.ndarray]:
        """The running requests' state in admission order (copies; for observations and tests)."""
        st, nd, npre = self._state, self.num_decoding, self.num_prefilling
        di, p = st.dec_ints, st.prefill
        req = self.requests
        ids = np.concatenate([di[D_ID, :nd], p[P_ID, :npre]])
        seq = np.concatenate([di[D_SEQ, :nd], p[P_SEQ, :npre]])
        kv = np.concatenate([di[D_KV, :nd], p[P_DONE, :npre]])
        slots = np.concatenate([di[D_KV_SLOTS, :nd], p[P_KV_SLOTS, :npre]])
        generated = np.concatenate(
            [req.output_tokens[di[D_ID, :nd]] - di[D_REMAINING, :nd], req.generated[p[P_ID, :npre]]]
        )
        decoding = np.concatenate([np.ones(nd, bool), np.zeros(npre, bool)])
        order = np.argsort(seq, kind="stable")
        return {
            "id": ids[order],
            "kv": kv[order],
            "kv_slots": slots[order],
            "generated": generated[order],
            "decoding": decoding[order],
            "alpha": req.alpha[ids[order]],
        }

    def counts(self) -> dict[str, int]:
        """Requests by state; they always add up to the arrived ones (conservation)."""
        arrived = self.next_arrival
        status = self.requests.status[:arrived]
        return {
            "arrived": arrived,
            "waiting": self.num_waiting,
            "running": self.num_running,
            "finished": int(np.count_nonzero(status == FINISHED)),
            "rejected": int(np.count_nonzero(status == REJECTED)),
        }

    def clone(self) -> ServingEngine:
        """An independent copy (state, RNG and counters) for look-ahead controllers; the
        configuration and latency model are shared (immutable)."""
        twin = copy.copy(self)
        twin._state = EngineState(*(a.copy() for a in self._state))
        twin._totals = tuple(a.copy() for a in self._totals)
        twin._rng = copy.deepcopy(self._rng)
        return twin

    def __deepcopy__(self, memo: dict) -> ServingEngine:
        return self.clone()

    # -- windows -----------------------------------------------------------------------------
    def take_window(self) -> WindowCounters:
        """The counters since the last call; starts a new window."""
        gaps, iterations = np.zeros(HIST_BINS, dtype=np.int64), np.zeros(HIST_BINS, dtype=np.int64)
        summary = self._close_window(gaps, iterations)
        n_ints, n_floats = len(WINDOW_INTS), len(WINDOW_FLOATS)
        return WindowCounters(
            **dict(zip(WINDOW_INTS, summary[:n_ints].astype(np.int64).tolist(), strict=True)),
            **dict(zip(WINDOW_FLOATS, summary[n_ints : n_ints + n_floats].tolist(), strict=True)),
            accepted_at_position=summary[_ACCEPTED].astype(np.int64),
            drafted_at_position=summary[_DRAFTED].astype(np.int64),
            gaps=LogHistogram(gaps),
            iteration_times=LogHistogram(iterations),
        )  # fmt: skip

    def take_window_summary(self) -> list[float]:
        """The window's counters, quantiles and the queue now (indexed by ``windows.SUMMARY``;
        what an env reports per decision); starts a new window."""
        return self._close_window(*self._scratch_hists).tolist()

    def run_for_window(self, *, until: float, iterations: int = 0) -> list[float]:
        """Run until the clock reaches ``until`` (or, with ``iterations`` > 0, that many working
        iterations, stopping at ``until``), then take the window summary: a controller's
        decision interval in one compiled call."""
        summary = np.empty(N_SUMMARY)
        run_and_close_window(
            self._state, self._cfg, self._lm_tables, self._draft_tables, self._totals, int(iterations),
            float(until), *self._scratch_hists, summary,
        )  # fmt: skip
        return summary.tolist()

    def _close_window(self, gaps: np.ndarray, iterations: np.ndarray) -> np.ndarray:
        summary = np.empty(N_SUMMARY)
        close_window(self._state, self._cfg, self._totals, gaps, iterations, summary)
        return summary

    def totals(self) -> WindowCounters:
        """Counters over the whole run so far."""
        st = self._state
        window = (st.win_ints, st.win_floats, st.accepted_at_position, st.drafted_at_position, st.gap_hist,
                  st.iteration_hist)  # fmt: skip
        arrays = [t + w for t, w in zip(self._totals, window, strict=True)]
        arrays[1][WF_START_S] = 0.0
        arrays[1][WF_MAX_ITERATION_S] = max(
            self._totals[1][WF_MAX_ITERATION_S], st.win_floats[WF_MAX_ITERATION_S]
        )
        return _counters(*arrays)


def _counters(
    ints, floats, accepted_at_position, drafted_at_position, gaps, iteration_times
) -> WindowCounters:
    return WindowCounters(
        **dict(zip(WINDOW_INTS, ints.tolist(), strict=True)),
        **dict(zip(WINDOW_FLOATS, floats.tolist(), strict=True)),
        accepted_at_position=accepted_at_position.copy(),
        drafted_at_position=drafted_at_position.copy(),
        gaps=LogHistogram(gaps.copy()),
        iteration_times=LogHistogram(iteration_times.copy()),
    )
