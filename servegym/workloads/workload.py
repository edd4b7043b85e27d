"""A workload = an arrival process + a length distribution; sampling it gives :class:`Requests`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import request_arrays
from .arrivals import ArrivalProcess, Replay
from .lengths import EmpiricalLengths, LengthDistribution
from .traces import Trace


@dataclass(frozen=True, eq=False)
class Requests:
    """Requests as a struct of arrays: arrival time (s), prompt and output tokens (>= 1)."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    def __post_init__(self) -> None:
        t, p, o = request_arrays("Requests", self.arrival_s, self.prompt_tokens, self.output_tokens)
        object.__setattr__(self, "arrival_s", t)
        object.__setattr__(self, "prompt_tokens", p)
        object.__setattr__(self, "output_tokens", o)

    def __len__(self) -> int:
        return int(self.arrival_s.size)


@dataclass(frozen=True)
class Workload:
    """Arrivals from ``arrivals``, (prompt, output) lengths from ``lengths``.

    With ``paired=True`` (what :meth:`from_trace` builds) ``arrivals`` must be a :class:`Replay`
    and ``lengths`` an :class:`EmpiricalLengths` over the same trace rows: each replayed arrival
    keeps its own recorded lengths instead of a resampled pair.
    """

    arrivals: ArrivalProcess
    lengths: LengthDistribution
    paired: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.arrivals, ArrivalProcess):
            raise ValueError(
                f"Workload.arrivals must be an ArrivalProcess, got {type(self.arrivals).__name__}"
            )
        if not isinstance(self.lengths, LengthDistribution):
            raise ValueError(
                f"Workload.lengths must be a LengthDistribution, got {type(self.lengths).__name__}"
            )
        if self.paired:
            if not isinstance(self.arrivals, Replay) or not isinstance(self.lengths, EmpiricalLengths):
                raise ValueError(
                    "Workload.paired needs arrivals=Replay(...) and lengths=EmpiricalLengths(...)"
                )
            if len(self.lengths) != self.arrivals.timestamps.size:
                raise ValueError(
                    f"Workload.paired: Replay has {self.arrivals.timestamps.size} timestamps but "
                    f"EmpiricalLengths has {len(self.lengths)} pairs"
                )

    @classmethod
    def from_trace(cls, trace: Trace, rate_scale: float = 1.0, start_s: float = 0.0) -> Workload:
        """Replay ``trace`` from its time ``start_s`` on, ``rate_scale`` times faster.

        Each replayed request keeps its recorded lengths (``paired=True``).
        """
        arrivals = Replay(trace.arrival_s, rate_scale=rate_scale, start_offset_s=start_s)
        lengths = EmpiricalLengths(trace.prompt_tokens, trace.output_tokens, source=trace.source)
        return cls(arrivals, lengths, paired=True)

    @property
    def mean_rate(self) -> float:
        return self.arrivals.mean_rate

    def scaled(self, factor: float) -> Workload:
        """The same workload with the arrival rate multiplied by ``factor``."""
        return Workload(self.arrivals.scaled(factor), self.lengths, self.paired)

    def sample(self, rng: np.random.Generator, horizon_s: float, start_s: float = 0.0) -> Requests:
        """Requests arriving in ``[start_s, start_s + horizon_s)``."""
        if self.paired:
            assert isinstance(self.arrivals, Replay) and isinstance(self.lengths, EmpiricalLengths)
            times, idx = self.arrivals.sample_with_index(rng, horizon_s, start_s)
            lengths = self.lengths
            hi_p = lengths.max_prompt if lengths.max_prompt is not None else np.iinfo(np.int64).max
            hi_o = lengths.max_output if lengths.max_output is not None else np.iinfo(np.int64).max
            prompts = np.minimum(lengths.prompts[idx], hi_p)
            outputs = np.minimum(lengths.outputs[idx], hi_o)
            return Requests(times, prompts, outputs)
        times = self.arrivals.sample(rng, horizon_s, start_s)
        prompts, outputs = self.lengths.sample(rng, times.size)
        return Requests(times, prompts, outputs)


@dataclass(frozen=True)
class ShiftingMix:
    """Arrivals whose lengths come from ``first`` or ``second``, the second's share of the
    arrivals following ``share_steps`` (``(time_s, share)`` pairs in increasing time; the share
    is 0 before the first step): e.g. a chat service that takes long documents at times.

    Each arrival at time t draws "second" with probability share(t); its lengths are drawn from
    that distribution. Sampling gives :class:`Requests`, like :meth:`Workload.sample`.
    """

    arrivals: ArrivalProcess
    first: LengthDistribution
    second: LengthDistribution
    share_steps: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        steps = tuple((float(t), float(s)) for t, s in self.share_steps)
        times = [t for t, _ in steps]
        if not steps or times != sorted(times) or any(not 0.0 <= s <= 1.0 for _, s in steps):
            raise ValueError(
                f"ShiftingMix.share_steps must be (time_s, share in [0, 1]) pairs in increasing "
                f"time, got {self.share_steps!r}"
            )
        object.__setattr__(self, "share_steps", steps)

    @property
    def mean_rate(self) -> float:
        return self.arrivals.mean_rate

    def share_at(self, t_s: np.ndarray) -> np.ndarray:
        """The second distribution's share at times ``t_s``."""
        times = np.array([t for t, _ in self.share_steps])
        shares = np.array([0.0, *(s for _, s in self.share_steps)])
        return shares[np.searchsorted(times, np.asarray(t_s, dtype=float), side="right")]

    def sample(self, rng: np.random.Generator, horizon_s: float, start_s: float = 0.0) -> Requests:
        times = self.arrivals.sample(rng, horizon_s, start_s)
        second = rng.random(times.size) < self.share_at(times)
        prompts = np.empty(times.size, dtype=np.int64)
        outputs = np.empty(times.size, dtype=np.int64)
        prompts[~second], outputs[~second] = self.first.sample(rng, int(np.count_nonzero(~second)))
        prompts[second], outputs[second] = self.second.sample(rng, int(np.count_nonzero(second)))
        return Requests(times, prompts, outputs)
