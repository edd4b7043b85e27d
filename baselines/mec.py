"""Offloading heuristics for MecOffload-v0 and the Neurosurgeon split for DnnSplit-v0.

Rules from ../shared/reference/autoscaling_mec.md E2 ("Baselines") and D4 (Neurosurgeon).
Every controller reads only ``info["metrics"]`` and ``info["action_mask"]`` and never returns
a masked action. MecOffload actions are ``0 = local, 1 = cloud, 2 + i = edge i``; the
per-action estimates ``delay_estimate_s`` / ``energy_estimate_j`` are what the device and the
edge sites can predict before the decision (exact in this simulator, so the greedy rules are
"greedy with a perfect one-step model", not oracles over the future).

Ties between equal scores are broken by a second objective, then by the lowest action index,
so every rule is deterministic. When a rule's own choice is masked (e.g. all-cloud under a
mask that forbids the cloud) it falls back to the lowest-index valid action.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from servegym.envs.edge.rules import (
    CLOUD,
    DELAY_REF_S,
    ENERGY_REF_J,
    FIRST_EDGE,
    LOCAL,
    MISS_PENALTY,
    task_cost,
)

MEC_ENV = "servegym/MecOffload-v0"
SPLIT_ENV = "servegym/DnnSplit-v0"


# -- helpers ------------------------------------------------------------------------------------
def _mask(info: Mapping[str, Any], size: int | None = None, what: str = "") -> np.ndarray:
    """The action mask as a bool array, checked against the size of the action set."""
    mask = np.asarray(info["action_mask"], dtype=bool).reshape(-1)
    if size is not None and mask.size != size:
        raise ValueError(
            f"action mask has {mask.size} entries but {what} has {size}: "
            f"is this controller running on the env it was made for?"
        )
    if not mask.any():
        raise ValueError("every action is masked: nothing valid to choose")
    return mask


def _argmin_valid(score: np.ndarray, mask: np.ndarray, tiebreak: np.ndarray | None = None) -> int:
    """The valid action with the lowest ``score`` (NaN counts as +inf); ties go to the lowest
    ``tiebreak``, then to the lowest index."""
    idx = np.flatnonzero(mask)
    primary = np.nan_to_num(np.asarray(score, dtype=float)[idx], nan=np.inf)
    keys = [idx, primary] if tiebreak is None else [idx, np.asarray(tiebreak, float)[idx], primary]
    return int(idx[np.lexsort(keys)[0]])


def _mec_estimates(info: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(delay [A], energy [A], mask [A]) of a MecOffload decision."""
    m = info["metrics"]
    delay = np.asarray(m["delay_estimate_s"], dtype=float)
    energy = np.asarray(m["energy_estimate_j"], dtype=float)
    return delay, energy, _mask(info, delay.size, "delay_estimate_s")


def _first_valid(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")


class _Stateless:
    name = ""

    def reset(self, seed: int | None = None) -> None:
        pass


# -- fixed targets and load balancing -------------------------------------------------------------
class AllLocal(_Stateless):
    """Every task runs on its user's device (action 0)."""

    name = "AllLocal"

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        _, _, mask = _mec_estimates(info)
        return LOCAL if mask[LOCAL] else _first_valid(mask)


class AllCloud(_Stateless):
    """Every task goes to the cloud (action 1)."""

    name = "AllCloud"

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        _, _, mask = _mec_estimates(info)
        return CLOUD if mask[CLOUD] else _first_valid(mask)


class RandomOffload:
    """Uniform over the valid actions (local, cloud and the existing edges).

    The stream is ``numpy.random.default_rng(seed)`` from ``reset(seed)``; ``reset(None)``
    keeps the current stream (seeded by the constructor's ``seed``).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.name = "RandomOffload"
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        _, _, mask = _mec_estimates(info)
        return int(self._rng.choice(np.flatnonzero(mask)))


def _edge_candidates(info: Mapping[str, Any], mask: np.ndarray) -> np.ndarray:
    """Indices (0-based edge numbers) of edges that exist and are not masked."""
    exists = np.asarray(info["metrics"]["edge_exists"], dtype=bool)
    return np.flatnonzero(exists & mask[FIRST_EDGE:])


class RoundRobin:
    """Cycle through the existing (valid) edges in index order, one task each; the cycle
    restarts at edge 0 every episode. With no valid edge, the lowest-index valid action."""

    def __init__(self) -> None:
        self.name = "RoundRobin"
        self._last = -1

    def reset(self, seed: int | None = None) -> None:
        self._last = -1

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        _, _, mask = _mec_estimates(info)
        edges = _edge_candidates(info, mask)
        if edges.size == 0:
            return _first_valid(mask)
        later = edges[edges > self._last]
        self._last = int(later[0] if later.size else edges[0])
        return FIRST_EDGE + self._last


class LeastLoaded(_Stateless):
    """The existing edge with the least queued work (``edge_wait_s``); ties go to the fewer
    queued tasks, then the lowest index. With no valid edge, the lowest-index valid action."""

    name = "LeastLoaded"

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        _, _, mask = _mec_estimates(info)
        edges = _edge_candidates(info, mask)
        if edges.size == 0:
            return _first_valid(mask)
        m = info["metrics"]
        wait = np.asarray(m["edge_wait_s"], dtype=float)[edges]
        queued = np.asarray(m["edge_queued"], dtype=float)[edges]
        return FIRST_EDGE + int(edges[np.lexsort((edges, queued, wait))[0]])


# -- greedy rules -----------------------------------------------------------------------------------
class GreedyDelay(_Stateless):
    """argmin over valid actions of the predicted delay ``delay_estimate_s`` (E2 "greedy min-T̂");
    ties go to the lower energy."""

    name = "GreedyDelay"

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        delay, energy, mask = _mec_estimates(info)
        return _argmin_valid(delay, mask, energy)


class GreedyEnergy(_Stateless):
    """argmin over valid actions of the predicted device energy ``energy_estimate_j``
    (E2 "greedy min-Ê"); ties go to the lower delay."""

    name = "GreedyEnergy"

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        delay, energy, mask = _mec_estimates(info)
        return _argmin_valid(energy, mask, delay)


class GreedyWeighted(_Stateless):
    """argmin over valid actions of ``w T̂/T_ref + (1 - w) Ê/E_ref + miss_penalty [T̂ > deadline]``
    (E2, with the deadline), the env's cost of this one task (``rules.task_cost``). ``w`` is the
    episode's preference (``metrics["preference"]``) unless ``preference`` fixes it.
    ``delay_ref_s`` / ``energy_ref_j`` / ``miss_penalty`` default to the env's (0.5 s, 0.5 J, 1).
    Ties go to the objective with the smaller weight (energy when w >= 0.5). With
    ``miss_penalty=0``, w = 1 makes the choices of greedy-delay and w = 0 those of greedy-energy.

    It minimises each task's own cost exactly and ignores what its choice costs later tasks (the
    queue and uplink time it takes from them): the gap the oracles and learned policies can win."""

    def __init__(
        self,
        delay_ref_s: float = DELAY_REF_S,
        energy_ref_j: float = ENERGY_REF_J,
        preference: float | None = None,
        miss_penalty: float = MISS_PENALTY,
    ) -> None:
        _check_positive(delay_ref_s=delay_ref_s, energy_ref_j=energy_ref_j)
        if not (isinstance(miss_penalty, (int, float)) and np.isfinite(miss_penalty) and miss_penalty >= 0):
            raise ValueError(f"miss_penalty must be a number >= 0, got {miss_penalty!r}")
        self.miss_penalty = float(miss_penalty)
        if preference is not None and not 0.0 <= preference <= 1.0:
            raise ValueError(f"preference must be in [0, 1] (or None for the episode's), got {preference!r}")
        self.delay_ref_s, self.energy_ref_j = float(delay_ref_s), float(energy_ref_j)
        self.preference = preference
        fixed = "" if preference is None else f", w={preference:g}"
        self.name = f"GreedyWeighted(T_ref={delay_ref_s:g}, E_ref={energy_ref_j:g}{fixed})"

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        delay, energy, mask = _mec_estimates(info)
        w = float(info["metrics"]["preference"] if self.preference is None else self.preference)
        score = np.full(delay.shape, np.inf)
        # Only valid actions are scored: masked edges carry delay = inf, and 0 * inf is NaN.
        deadline = float(info["metrics"]["deadline_s"])
        score[mask] = task_cost(
            delay[mask], energy[mask], w, deadline, self.delay_ref_s, self.energy_ref_j, self.miss_penalty
        )
        return _argmin_valid(score, mask, energy if w >= 0.5 else delay)


class Lyapunov:
    """Drift-plus-penalty with a virtual energy queue, in LODCO form (Mao, Zhang, Letaief 2016).

    The long-run constraint "mean device energy per task <= ``budget_j``" becomes a virtual
    queue ``Q`` (joules) with ``Q <- max(Q + E(a) - budget_j, 0)`` after every decision, where
    ``E(a)`` is the chosen action's ``energy_estimate_j`` (exact in this simulator). Each task
    takes ``argmin_a V T̂(a) + Q Ê(a)`` over the valid actions (ties to the lower delay).

    - ``V`` (J²/s, default 0.1) weighs delay against the queue: large V tends to greedy-delay
      (V -> inf is greedy-delay), small V to greedy-energy whenever Q > 0. With the default, a
      backlog of Q = 0.1 J trades 0.1 J of energy for about 0.1 s of delay.
    - ``budget_j`` (J per task, default 0.03) is the energy target: between the mean energy of
      greedy-energy (about 0.007-0.03 J per task on the presets) and that of greedy-delay
      (about 0.08-0.12 J).

    Q starts at 0 every episode. The preference w is not used (V is this rule's trade-off knob).
    """

    def __init__(self, V: float = 0.1, budget_j: float = 0.03) -> None:
        _check_positive(V=V)
        if not (isinstance(budget_j, (int, float)) and np.isfinite(budget_j) and budget_j >= 0):
            raise ValueError(f"budget_j must be a number >= 0, got {budget_j!r}")
        self.V, self.budget_j = float(V), float(budget_j)
        self.queue_j = 0.0
        self.name = f"Lyapunov(V={V:g}, budget={budget_j:g} J)"

    def reset(self, seed: int | None = None) -> None:
        self.queue_j = 0.0

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        delay, energy, mask = _mec_estimates(info)
        score = np.full(delay.shape, np.inf)
        score[mask] = self.V * delay[mask] + self.queue_j * energy[mask]
        a = _argmin_valid(score, mask, delay)
        self.queue_j = max(self.queue_j + float(energy[a]) - self.budget_j, 0.0)
        return a


# -- DNN split ---------------------------------------------------------------------------------------
class Neurosurgeon(_Stateless):
    """Neurosurgeon's runtime split choice (D4) for DnnSplit-v0: the valid split k with the lowest
    predicted delay ``split_delay_estimate_s`` (``objective="delay"``) or device energy
    ``split_energy_estimate_j`` (``objective="energy"``); ties go to the other objective."""

    def __init__(self, objective: str = "delay") -> None:
        if objective not in ("delay", "energy"):
            raise ValueError(f"objective must be 'delay' or 'energy', got {objective!r}")
        self.objective = objective
        self.name = f"Neurosurgeon({objective})"

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        _, delay, energy, mask = _split_estimates(info, "Neurosurgeon")
        if self.objective == "delay":
            return _argmin_valid(delay, mask, energy)
        return _argmin_valid(energy, mask, delay)


def _split_estimates(
    info: Mapping[str, Any], who: str
) -> tuple[Mapping[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    """DnnSplit-v0's metrics, per-split delay and energy estimates, and the valid-split mask."""
    m = info["metrics"]
    if "split_delay_estimate_s" not in m:
        raise ValueError(f"{who} needs DnnSplit-v0 (metrics['split_delay_estimate_s'])")
    delay = np.asarray(m["split_delay_estimate_s"], dtype=float)
    energy = np.asarray(m["split_energy_estimate_j"], dtype=float)
    return m, delay, energy, _mask(info, delay.size, "split_delay_estimate_s")


class NeurosurgeonWeighted(_Stateless):
    """Neurosurgeon's runtime split choice (D4) on DnnSplit-v0's own objective: the valid split k
    with the lowest ``w T̂_k/T_ref + (1 - w) Ê_k/E_ref + miss_penalty [T̂_k > deadline]`` from
    ``split_delay_estimate_s`` / ``split_energy_estimate_j`` and the episode's preference w (the
    preference-aware variant: single-objective Neurosurgeon is not judged by a weighted reward).
    Ties go to the lower delay. Defaults: the env's normalisers and miss penalty."""

    def __init__(
        self,
        delay_ref_s: float = DELAY_REF_S,
        energy_ref_j: float = ENERGY_REF_J,
        miss_penalty: float = MISS_PENALTY,
    ) -> None:
        _check_positive(delay_ref_s=delay_ref_s, energy_ref_j=energy_ref_j)
        if not (isinstance(miss_penalty, (int, float)) and np.isfinite(miss_penalty) and miss_penalty >= 0):
            raise ValueError(f"miss_penalty must be a number >= 0, got {miss_penalty!r}")
        self.delay_ref_s, self.energy_ref_j = float(delay_ref_s), float(energy_ref_j)
        self.miss_penalty = float(miss_penalty)
        self.name = "Neurosurgeon(weighted)"

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        m, delay, energy, mask = _split_estimates(info, "NeurosurgeonWeighted")
        score = np.full(delay.shape, np.inf)
        score[mask] = task_cost(
            delay[mask], energy[mask], float(m["preference"]), float(m["deadline_s"]), self.delay_ref_s,
            self.energy_ref_j, self.miss_penalty,
        )  # fmt: skip
        return _argmin_valid(score, mask, delay)


__all__ = [
    "MEC_ENV",
    "SPLIT_ENV",
    "AllCloud",
    "AllLocal",
    "GreedyDelay",
    "GreedyEnergy",
    "GreedyWeighted",
    "LeastLoaded",
    "Lyapunov",
    "Neurosurgeon",
    "NeurosurgeonWeighted",
    "RandomOffload",
    "RoundRobin",
]
