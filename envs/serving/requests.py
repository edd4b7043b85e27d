"""The request table: every request the engine knows, one column per request id.

Request life: future -> waiting (arrived) -> running (KV allocated: prefilling, then decoding)
-> finished, or rejected at arrival (longer than ``max_model_len``). While a request decodes,
its changing fields live in the engine's decode table and are written back here when it
leaves that table (finished or preempted).
"""

from __future__ import annotations

import numpy as np

from .state import S_N, EngineState

FUTURE, WAITING, RUNNING, FINISHED, REJECTED = range(5)
STATUS_NAMES = ("future", "waiting", "running", "finished", "rejected")

# int64 rows
R_PROMPT, R_OUTPUT, R_TARGET, R_GENERATED, R_STATUS, R_SLOW_GAPS, R_PREEMPTIONS = range(7)
N_INT_FIELDS = 7
# float64 rows
R_ARRIVAL, R_FIRST_TOKEN, R_LAST_TOKEN, R_SCHEDULED, R_FINISHED, R_MAX_GAP, R_ALPHA = range(7)
N_FLOAT_FIELDS = 7


def new_request_arrays(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty request columns: times NaN until they happen, counters zero."""
    ints = np.zeros((N_INT_FIELDS, capacity), dtype=np.int64)
    floats = np.full((N_FLOAT_FIELDS, capacity), np.nan)
    floats[R_MAX_GAP] = 0.0
    floats[R_ALPHA] = 0.0
    return ints, floats


def write_requests(
    ints: np.ndarray, floats: np.ndarray, start: int, arrival_s, prompt, output, alpha
) -> None:
    """Fill columns ``start..start+len(arrival_s)`` with new (future) requests."""
    end = start + len(arrival_s)
    floats[R_ARRIVAL, start:end] = arrival_s
    ints[R_PROMPT, start:end] = prompt
    ints[R_OUTPUT, start:end] = output
    ints[R_TARGET, start:end] = prompt  # tokens to prefill: the prompt (+ generated after preemption)
    floats[R_ALPHA, start:end] = alpha


class RequestTable:
    """Named views of the engine's request columns (``0..n-1``); writes go to the engine."""

    __slots__ = ("_floats", "_ints", "n")

    def __init__(self, state: EngineState) -> None:
        self.n = int(state.scalars[S_N])
        self._ints, self._floats = state.req_ints, state.req_floats

    def __len__(self) -> int:
        return self.n

    @property
    def arrival_s(self) -> np.ndarray:
        return self._floats[R_ARRIVAL, : self.n]

    @property
    def prompt_tokens(self) -> np.ndarray:
        return self._ints[R_PROMPT, : self.n]

    @property
    def output_tokens(self) -> np.ndarray:
        return self._ints[R_OUTPUT, : self.n]

    @property
    def prefill_target(self) -> np.ndarray:
        """Tokens to prefill: the prompt, or prompt + generated tokens after a preemption."""
        return self._ints[R_TARGET, : self.n]

    @property
    def generated(self) -> np.ndarray:
        """Output tokens emitted (up to date for requests outside the decode table)."""
        return self._ints[R_GENERATED, : self.n]

    @property
    def status(self) -> np.ndarray:
        """FUTURE, WAITING, RUNNING, FINISHED or REJECTED."""
        return self._ints[R_STATUS, : self.n]

    @property
    def slow_gaps(self) -> np.ndarray:
        """Token gaps above the TBT SLO."""
        return self._ints[R_SLOW_GAPS, : self.n]

    @property
    def preemptions(self) -> np.ndarray:
        return self._ints[R_PREEMPTIONS, : self.n]

    @property
    def first_token_s(self) -> np.ndarray:
        return self._floats[R_FIRST_TOKEN, : self.n]

    @property
    def last_token_s(self) -> np.ndarray:
        return self._floats[R_LAST_TOKEN, : self.n]

    @property
    def scheduled_s(self) -> np.ndarray:
        """First admission (KV allocated)."""
        return self._floats[R_SCHEDULED, : self.n]

    @property
    def finished_s(self) -> np.ndarray:
        return self._floats[R_FINISHED, : self.n]

    @property
    def max_gap_s(self) -> np.ndarray:
        """Largest gap between two of the request's tokens."""
        return self._floats[R_MAX_GAP, : self.n]

    @property
    def alpha(self) -> np.ndarray:
        """Per-token draft acceptance rate (0 without speculation)."""
        return self._floats[R_ALPHA, : self.n]
