"""Seeded request-arrival processes.

Every process is a frozen dataclass with ``sample(rng, horizon_s, start_s=0.0)``, returning the
sorted float64 arrival times in ``[start_s, start_s + horizon_s)``, a ``mean_rate`` (req/s) and
``scaled(factor)`` (the same process with its rate multiplied by ``factor``).

``start_s`` is absolute time. Time-varying processes (:class:`Diurnal`, :class:`PiecewiseRate`,
:class:`Replay`) return the part of their schedule that falls in the window, so consecutive
windows continue one another. Stationary processes (:class:`Poisson`, :class:`GammaArrivals`,
:class:`MMPP2`) start in their stationary state at ``start_s``: the first gap of a Gamma renewal
process is the equilibrium forward-recurrence time and MMPP2's first state is drawn from the
stationary distribution, so the expected count in any window is exactly ``mean_rate * horizon_s``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._checks import (
    first_unsorted,
    float_array,
    in_range,
    integer,
    nonnegative,
    positive,
    real,
    rng_check,
    sample_budget,
)


class ArrivalProcess(ABC):
    """Base class: argument checks and windowing around each process's ``_sample``.

    Subclasses provide ``mean_rate`` (req/s) as a property or, for :class:`Diurnal`, a field.
    """

    mean_rate: float

    @abstractmethod
    def scaled(self, factor: float) -> ArrivalProcess:
        """The same process with its rate multiplied by ``factor`` (> 0)."""

    @abstractmethod
    def _sample(self, rng: np.random.Generator, start: float, end: float) -> np.ndarray:
        """Sorted arrival times covering at least ``[start, end)``."""

    def _peak_rate(self) -> float:
        """An upper bound of the rate, used to refuse draws that would exhaust memory."""
        return self.mean_rate

    def sample(self, rng: np.random.Generator, horizon_s: float, start_s: float = 0.0) -> np.ndarray:
        """Sorted float64 arrival times in ``[start_s, start_s + horizon_s)``."""
        rng_check(rng)
        horizon = nonnegative("horizon_s", horizon_s)
        start = real("start_s", start_s)
        end = start + horizon
        if horizon == 0.0 or end <= start:
            return np.empty(0, dtype=np.float64)
        sample_budget(type(self).__name__, self._peak_rate() * horizon)
        times = self._sample(rng, start, end)
        return _window(times, start, end)


def _window(times: np.ndarray, start: float, end: float) -> np.ndarray:
    """The sorted times inside ``[start, end)`` (guards against float round-off at the edges)."""
    times = np.asarray(times, dtype=np.float64)
    lo = int(np.searchsorted(times, start, side="left"))
    hi = int(np.searchsorted(times, end, side="left"))
    return np.array(times[lo:hi], dtype=np.float64)


def _poisson_on_intervals(
    rng: np.random.Generator, starts: np.ndarray, lengths: np.ndarray, rates: np.ndarray
) -> np.ndarray:
    """Sorted arrivals of independent homogeneous Poisson processes, one per interval."""
    counts = rng.poisson(rates * lengths)
    seg = np.repeat(np.arange(starts.size), counts)
    times = starts[seg] + rng.random(seg.size) * lengths[seg]
    times.sort()
    return times


def _factor(factor: float) -> float:
    return positive("factor", factor)


@dataclass(frozen=True)
class Poisson(ArrivalProcess):
    """Homogeneous Poisson arrivals at ``rate`` req/s (exponential gaps, CV 1)."""

    rate: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", positive("Poisson.rate", self.rate))

    @property
    def mean_rate(self) -> float:
        return self.rate

    def scaled(self, factor: float) -> Poisson:
        return Poisson(self.rate * _factor(factor))

    def _sample(self, rng: np.random.Generator, start: float, end: float) -> np.ndarray:
        one = np.ones(1)
        return _poisson_on_intervals(rng, one * start, one * (end - start), one * self.rate)


@dataclass(frozen=True)
class GammaArrivals(ArrivalProcess):
    """Renewal process with Gamma gaps of mean ``1/rate`` and coefficient of variation ``cv``.

    Shape ``1/cv²``, scale ``cv²/rate``; ``cv = 1`` is Poisson, ``cv > 1`` is bursty (Sarathi and
    Vidur's "gamma" generator; BurstGPT's synthetic generator uses shape 0.5, i.e. cv 1.41).
    """

    rate: float
    cv: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", positive("GammaArrivals.rate", self.rate))
        object.__setattr__(self, "cv", positive("GammaArrivals.cv", self.cv))

    @property
    def mean_rate(self) -> float:
        return self.rate

    @property
    def shape(self) -> float:
        return 1.0 / self.cv**2

    @property
    def scale_s(self) -> float:
        return self.cv**2 / self.rate

    def scaled(self, factor: float) -> GammaArrivals:
        return GammaArrivals(self.rate * _factor(factor), self.cv)

    def _sample(self, rng: np.random.Generator, start: float, end: float) -> np.ndarray:
        k, theta = self.shape, self.scale_s
        # Equilibrium start: the forward-recurrence time is U times a length-biased gap,
        # and the length-biased Gamma(k, θ) is Gamma(k + 1, θ).
        last = start + rng.gamma(k + 1.0, theta) * rng.random()
        pieces = [np.array([last])]
        while last < end:
            remaining = (end - last) * self.rate
            m = int(remaining + 4.0 * math.sqrt(remaining) * max(self.cv, 1.0) + 16)
            chunk = last + np.cumsum(rng.gamma(k, theta, m))
            pieces.append(chunk)
            last = float(chunk[-1])
        return np.concatenate(pieces)


@dataclass(frozen=True)
class MMPP2(ArrivalProcess):
    """Two-state Markov-modulated Poisson process.

    The state alternates between "low" and "high" with exponential sojourns of the given means;
    arrivals are Poisson at the state's rate. The first state is drawn from the stationary
    distribution (P(low) = s_low / (s_low + s_high)). A rate may be 0 (an on/off source), but
    not both.
    """

    rate_low: float
    rate_high: float
    mean_sojourn_low_s: float
    mean_sojourn_high_s: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_low", nonnegative("MMPP2.rate_low", self.rate_low))
        object.__setattr__(self, "rate_high", nonnegative("MMPP2.rate_high", self.rate_high))
        if self.rate_low == 0.0 and self.rate_high == 0.0:
            raise ValueError("MMPP2: rate_low and rate_high must not both be 0")
        for name in ("mean_sojourn_low_s", "mean_sojourn_high_s"):
            object.__setattr__(self, name, positive(f"MMPP2.{name}", getattr(self, name)))

    @property
    def p_low(self) -> float:
        """Stationary probability of the low state."""
        return self.mean_sojourn_low_s / (self.mean_sojourn_low_s + self.mean_sojourn_high_s)

    @property
    def mean_rate(self) -> float:
        p = self.p_low
        return p * self.rate_low + (1.0 - p) * self.rate_high

    def _peak_rate(self) -> float:
        return max(self.rate_low, self.rate_high)

    def scaled(self, factor: float) -> MMPP2:
        f = _factor(factor)
        return MMPP2(self.rate_low * f, self.rate_high * f, self.mean_sojourn_low_s, self.mean_sojourn_high_s)

    def _sample(self, rng: np.random.Generator, start: float, end: float) -> np.ndarray:
        horizon = end - start
        cycle = self.mean_sojourn_low_s + self.mean_sojourn_high_s
        sample_budget("MMPP2 (state changes)", 2.0 * horizon / cycle)
        high_first = rng.random() >= self.p_low
        order = (self.mean_sojourn_high_s, self.mean_sojourn_low_s)
        rate_order = (self.rate_high, self.rate_low)
        if not high_first:
            order, rate_order = order[::-1], rate_order[::-1]
        durations: list[np.ndarray] = []
        covered = 0.0
        while covered < horizon:
            pairs = int((horizon - covered) / cycle + 4.0 * math.sqrt((horizon - covered) / cycle) + 4)
            d = rng.exponential(1.0, (pairs, 2)) * np.asarray(order)
            durations.append(d.ravel())
            covered += float(d.sum())
        dur = np.concatenate(durations)
        seg_end = start + np.cumsum(dur)
        seg_start = seg_end - dur
        n = min(int(np.searchsorted(seg_end, end, side="left")) + 1, dur.size)
        seg_start, seg_end = seg_start[:n], np.minimum(seg_end[:n], end)
        rates = np.resize(np.asarray(rate_order), n)
        return _poisson_on_intervals(rng, seg_start, seg_end - seg_start, rates)


@dataclass(frozen=True)
class Diurnal(ArrivalProcess):
    """Poisson arrivals at ``mean_rate * (1 + amplitude * cos(2π (t - phase_s) / period_s))``.

    The rate peaks at ``t = phase_s`` (mod ``period_s``) and is lowest half a period later;
    sampled by thinning a Poisson process at the peak rate.
    """

    mean_rate: float
    amplitude: float
    period_s: float
    phase_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean_rate", positive("Diurnal.mean_rate", self.mean_rate))
        object.__setattr__(self, "amplitude", in_range("Diurnal.amplitude", self.amplitude, 0.0, 1.0))
        object.__setattr__(self, "period_s", positive("Diurnal.period_s", self.period_s))
        object.__setattr__(self, "phase_s", real("Diurnal.phase_s", self.phase_s))

    def rate_at(self, t_s: np.ndarray | float) -> np.ndarray:
        """Instantaneous rate (req/s) at time(s) ``t_s``."""
        t = np.asarray(t_s, dtype=np.float64)
        return self.mean_rate * (
            1.0 + self.amplitude * np.cos(2.0 * np.pi * (t - self.phase_s) / self.period_s)
        )

    def _peak_rate(self) -> float:
        return self.mean_rate * (1.0 + self.amplitude)

    def scaled(self, factor: float) -> Diurnal:
        return Diurnal(self.mean_rate * _factor(factor), self.amplitude, self.period_s, self.phase_s)

    def _sample(self, rng: np.random.Generator, start: float, end: float) -> np.ndarray:
        peak = self._peak_rate()
        one = np.ones(1)
        cand = _poisson_on_intervals(rng, one * start, one * (end - start), one * peak)
        keep = rng.random(cand.size) * peak < self.rate_at(cand)
        return cand[keep]


@dataclass(frozen=True)
class PiecewiseRate(ArrivalProcess):
    """Poisson arrivals with a piecewise-constant rate schedule.

    ``rates[i]`` (req/s, >= 0) applies on ``[breakpoints_s[i], breakpoints_s[i + 1])``, so there is
    one more breakpoint than rates. With ``repeat=True`` the schedule repeats with period
    ``breakpoints_s[-1] - breakpoints_s[0]``; otherwise the rate is 0 outside it. ``mean_rate`` is
    the average over one pass of the schedule.
    """

    breakpoints_s: Sequence[float]
    rates: Sequence[float]
    repeat: bool = True

    def __post_init__(self) -> None:
        b = tuple(real(f"PiecewiseRate.breakpoints_s[{i}]", v) for i, v in enumerate(self.breakpoints_s))
        r = tuple(nonnegative(f"PiecewiseRate.rates[{i}]", v) for i, v in enumerate(self.rates))
        if not r:
            raise ValueError("PiecewiseRate.rates must hold at least one rate")
        if len(b) != len(r) + 1:
            raise ValueError(
                f"PiecewiseRate.breakpoints_s must have len(rates) + 1 = {len(r) + 1} entries "
                f"(segment edges), got {len(b)}"
            )
        for i in range(1, len(b)):
            if b[i] <= b[i - 1]:
                raise ValueError(
                    f"PiecewiseRate.breakpoints_s must be strictly increasing; "
                    f"breakpoints_s[{i}] = {b[i]:g} <= breakpoints_s[{i - 1}] = {b[i - 1]:g}"
                )
        if max(r) == 0.0:
            raise ValueError("PiecewiseRate.rates must include at least one rate > 0")
        object.__setattr__(self, "breakpoints_s", b)
        object.__setattr__(self, "rates", r)
        object.__setattr__(self, "repeat", bool(self.repeat))

    @property
    def period_s(self) -> float:
        return self.breakpoints_s[-1] - self.breakpoints_s[0]

    @property
    def mean_rate(self) -> float:
        widths = np.diff(self.breakpoints_s)
        return float(np.dot(widths, self.rates) / self.period_s)

    def _peak_rate(self) -> float:
        return max(self.rates)

    def rate_at(self, t_s: np.ndarray | float) -> np.ndarray:
        """Instantaneous rate (req/s) at time(s) ``t_s``."""
        t = np.asarray(t_s, dtype=np.float64)
        b0, b = self.breakpoints_s[0], np.asarray(self.breakpoints_s)
        if self.repeat:
            t = b0 + np.mod(t - b0, self.period_s)
        i = np.searchsorted(b, t, side="right") - 1
        inside = (i >= 0) & (i < len(self.rates))
        return np.where(inside, np.asarray(self.rates)[np.clip(i, 0, len(self.rates) - 1)], 0.0)

    def scaled(self, factor: float) -> PiecewiseRate:
        f = _factor(factor)
        return PiecewiseRate(self.breakpoints_s, tuple(r * f for r in self.rates), self.repeat)

    def _sample(self, rng: np.random.Generator, start: float, end: float) -> np.ndarray:
        b = np.asarray(self.breakpoints_s)
        rates = np.asarray(self.rates)
        if self.repeat:
            p = self.period_s
            k0 = math.floor((start - b[0]) / p)
            k1 = math.floor((end - b[0]) / p)
            sample_budget("PiecewiseRate (segments)", (k1 - k0 + 1) * rates.size)
            shifts = np.arange(k0, k1 + 1, dtype=np.float64) * p
            lo = (b[:-1][None, :] + shifts[:, None]).ravel()
            hi = (b[1:][None, :] + shifts[:, None]).ravel()
            rates = np.tile(rates, shifts.size)
        else:
            lo, hi = b[:-1], b[1:]
        lo, hi = np.maximum(lo, start), np.minimum(hi, end)
        use = hi > lo
        return _poisson_on_intervals(rng, lo[use], hi[use] - lo[use], rates[use])


@dataclass(frozen=True)
class Periodic(ArrivalProcess):
    """Timer-triggered arrivals: ``batch`` invocations each time a timer fires, every ``period_s``
    seconds from ``phase_s``, each delayed by U(0, ``jitter_s``) (dispatch delay after the tick).

    In the Azure Functions 2019 trace, 15.6% of functions are timer-triggered and 95% of those
    fire at most once a minute (Shahrad et al., ATC'20). ``scaled(f)`` fires ``f`` times as often.
    """

    period_s: float
    phase_s: float = 0.0
    jitter_s: float = 0.0
    batch: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "period_s", positive("Periodic.period_s", self.period_s))
        object.__setattr__(self, "phase_s", real("Periodic.phase_s", self.phase_s))
        object.__setattr__(self, "jitter_s", nonnegative("Periodic.jitter_s", self.jitter_s))
        object.__setattr__(self, "batch", integer("Periodic.batch", self.batch, 1))
        if self.jitter_s >= self.period_s:
            raise ValueError(
                f"Periodic.jitter_s must be < period_s = {self.period_s:g}, got {self.jitter_s:g}"
            )

    @property
    def mean_rate(self) -> float:
        return self.batch / self.period_s

    def _peak_rate(self) -> float:
        return self.mean_rate

    def scaled(self, factor: float) -> Periodic:
        return Periodic(self.period_s / _factor(factor), self.phase_s, self.jitter_s, self.batch)

    def _sample(self, rng: np.random.Generator, start: float, end: float) -> np.ndarray:
        k0 = math.floor((start - self.jitter_s - self.phase_s) / self.period_s)
        k1 = math.ceil((end - self.phase_s) / self.period_s)
        sample_budget("Periodic", (k1 - k0 + 1) * self.batch)
        fires = self.phase_s + self.period_s * np.arange(k0, k1 + 1, dtype=np.float64)
        times = np.repeat(fires, self.batch) + rng.random(fires.size * self.batch) * self.jitter_s
        times.sort()
        return times


@dataclass(frozen=True, eq=False)
class Replay(ArrivalProcess):
    """Replays recorded arrival times.

    Timestamps before ``start_offset_s`` are dropped, the rest shifted by ``-start_offset_s`` and
    divided by ``rate_scale`` (2.0 replays twice as fast). With ``loop=True`` the replay repeats
    with period ``last + mean gap`` (in replay time), so the seam has a typical gap. ``mean_rate``
    is the replay's count divided by that period. The ``rng`` passed to ``sample`` is not used.
    """

    timestamps: np.ndarray
    rate_scale: float = 1.0
    start_offset_s: float = 0.0
    loop: bool = False
    _times: np.ndarray = field(init=False, repr=False)
    _index: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ts = float_array("Replay.timestamps", self.timestamps)
        if ts.size == 0:
            raise ValueError("Replay.timestamps must not be empty")
        i = first_unsorted(ts)
        if i >= 0:
            raise ValueError(
                f"Replay.timestamps must be sorted; "
                f"timestamps[{i}] = {float(ts[i])!r} < timestamps[{i - 1}] = {float(ts[i - 1])!r}"
            )
        scale = positive("Replay.rate_scale", self.rate_scale)
        offset = real("Replay.start_offset_s", self.start_offset_s)
        first = int(np.searchsorted(ts, offset, side="left"))
        times = (ts[first:] - offset) / scale
        if times.size < 2 or times[-1] <= times[0]:
            raise ValueError(
                f"Replay needs at least two distinct timestamps at or after start_offset_s = {offset:g}, "
                f"found {times.size}"
            )
        times.flags.writeable = False
        index = np.arange(first, ts.size, dtype=np.int64)
        index.flags.writeable = False
        object.__setattr__(self, "timestamps", ts)
        object.__setattr__(self, "rate_scale", scale)
        object.__setattr__(self, "start_offset_s", offset)
        object.__setattr__(self, "loop", bool(self.loop))
        object.__setattr__(self, "_times", times)
        object.__setattr__(self, "_index", index)

    @property
    def period_s(self) -> float:
        """Replay-time length of one pass: last arrival plus the mean gap."""
        t = self._times
        return float(t[-1] + (t[-1] - t[0]) / (t.size - 1))

    @property
    def mean_rate(self) -> float:
        return self._times.size / self.period_s

    def scaled(self, factor: float) -> Replay:
        return Replay(self.timestamps, self.rate_scale * _factor(factor), self.start_offset_s, self.loop)

    def _peak_rate(self) -> float:
        return self.mean_rate

    def sample_with_index(
        self, rng: np.random.Generator, horizon_s: float, start_s: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Arrival times as ``sample`` returns them, and the index of each in ``timestamps``."""
        rng_check(rng)
        horizon = nonnegative("horizon_s", horizon_s)
        start = real("start_s", start_s)
        end = start + horizon
        if horizon == 0.0 or end <= start:
            return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int64)
        base, index = self._times, self._index
        if not self.loop:
            lo = int(np.searchsorted(base, start, side="left"))
            hi = int(np.searchsorted(base, end, side="left"))
            return np.array(base[lo:hi]), np.array(index[lo:hi])
        p = self.period_s
        k0 = max(math.floor(start / p), 0)
        k1 = max(math.floor(end / p), 0)
        sample_budget("Replay", (k1 - k0 + 1) * base.size)
        shifts = np.arange(k0, k1 + 1, dtype=np.float64) * p
        times = (base[None, :] + shifts[:, None]).ravel()
        idx = np.tile(index, shifts.size)
        lo = int(np.searchsorted(times, start, side="left"))
        hi = int(np.searchsorted(times, end, side="left"))
        return times[lo:hi].copy(), idx[lo:hi].copy()

    def _sample(self, rng: np.random.Generator, start: float, end: float) -> np.ndarray:
        return self.sample_with_index(rng, end - start, start)[0]
