"""Multi-objective metrics of offloading controllers on MecOffload-v0 / DnnSplit-v0.

A controller is run for ``episodes`` seeds at every preference ``w`` of a fixed grid (the env
kwarg ``preference=w``; default grid 0:0.1:1, 11 values; the reference's policy sweep is
0:0.02:1, ``POLICY_PREFERENCES``, as in mec_morl). Every task's delay, device energy and
deadline miss is logged. Reported (../shared/reference/autoscaling_mec.md E2 "Metrics", D2):

- mean / p95 / p99 task delay, deadline-miss ratio and mean device energy per task, pooled
  over all tasks of all episodes at all preferences;
- the point (mean delay, mean energy) per w, and the 2-D **hypervolume** of their
  non-dominated front (both objectives minimised) with the fixed reference point
  ``REFERENCE_POINT = (1.0 s, 2.0 J)``. Every heuristic on every preset lies inside this box
  except all-cloud where a far or faded cell pushes its mean delay past 1 s, i.e. past every
  deadline (deadlines are drawn in [0.1, 1] s); 2 J is above the worst mean energy of any
  heuristic (all-local on "llm-prompts", about 1.6 J). The hypervolume is **normalised by the
  reference box**: coordinates are divided by the reference point, so HV is the fraction of
  [0, 1 s] x [0, 2 J] dominated by the front, in [0, 1]. Points outside the box count for
  nothing;
- the **expected utility** ``EU = mean_w u_w`` with ``u_w = -(w T_w / T_ref + (1 - w) E_w / E_ref)``,
  where (T_w, E_w) is the point at w and T_ref = 0.5 s, E_ref = 0.5 J are the env's reward
  normalisers; ``u_w`` is the env's mean per-task reward at w without its deadline-miss term,
  so EU <= 0 (higher is better).

CLI: ``python -m servegym.experiments.mec_metrics --scenario multi-edge-busy --episodes 3``
prints the markdown table of every MecOffload heuristic (and Neurosurgeon on DnnSplit-v0, which
sees the same task sequence for the same seed).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

import servegym  # noqa: F401  (registers the env ids)
from servegym import baselines
from servegym.baselines.mec import MEC_ENV, SPLIT_ENV
from servegym.envs.edge.rules import DELAY_REF_S, ENERGY_REF_J, scalarised_cost

DEFAULT_PREFERENCES: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 10))  # 0:0.1:1
POLICY_PREFERENCES: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 51), 10))  # 0:0.02:1
REFERENCE_POINT: tuple[float, float] = (1.0, 2.0)  # (mean delay s, mean energy J), see above


# -- per-task statistics ---------------------------------------------------------------------------
def task_metrics(delay: Sequence[float], energy: Sequence[float], missed: Sequence[bool]) -> dict[str, float]:
    """Mean/p95/p99 delay (s), deadline-miss ratio and mean device energy per task (J)."""
    d, e, m = (np.asarray(x, dtype=float) for x in (delay, energy, missed))
    if d.size == 0:
        raise ValueError("no tasks to summarise")
    return {
        "mean_delay_s": float(d.mean()),
        "p95_delay_s": float(np.percentile(d, 95)),
        "p99_delay_s": float(np.percentile(d, 99)),
        "miss_ratio": float(m.mean()),
        "energy_per_task_j": float(e.mean()),
    }


# -- Pareto front, hypervolume, expected utility --------------------------------------------------
def _points(points: Iterable[Sequence[float]]) -> np.ndarray:
    p = np.asarray(list(points), dtype=float).reshape(-1, 2)
    if not np.isfinite(p).all():
        raise ValueError("points must be finite (delay, energy) pairs")
    return p


def pareto_front(points: Iterable[Sequence[float]]) -> np.ndarray:
    """The non-dominated points (both objectives minimised), sorted by the first objective;
    duplicates are kept once."""
    p = _points(points)
    front: list[np.ndarray] = []
    best_second = np.inf
    for q in p[np.lexsort((p[:, 1], p[:, 0]))]:  # by delay, then energy
        if q[1] < best_second:
            front.append(q)
            best_second = q[1]
    return np.array(front).reshape(-1, 2)


def hypervolume_2d(
    points: Iterable[Sequence[float]],
    reference: Sequence[float] = REFERENCE_POINT,
    normalize: bool = True,
) -> float:
    """Area dominated by ``points`` inside the box [0, ref_d] x [0, ref_e] (minimisation).

    With the non-dominated points inside the box sorted by delay ascending,
    ``HV = sum_i (d_{i+1} - d_i) (ref_e - e_i)`` with ``d_{n+1} = ref_d`` (reference D2).
    ``normalize`` divides by the box area ``ref_d * ref_e`` (a fraction in [0, 1]).
    """
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (2,) or not (np.isfinite(ref).all() and (ref > 0).all()):
        raise ValueError(f"reference must be two positive numbers, got {reference!r}")
    p = _points(points)
    front = pareto_front(p[(p[:, 0] < ref[0]) & (p[:, 1] < ref[1])])
    if front.size == 0:
        return 0.0
    d_next = np.append(front[1:, 0], ref[0])
    hv = float(np.sum((d_next - front[:, 0]) * (ref[1] - front[:, 1])))
    return hv / float(ref[0] * ref[1]) if normalize else hv


def scalarised_utility(
    delay: np.ndarray | float,
    energy: np.ndarray | float,
    w: np.ndarray | float,
    delay_ref_s: float = DELAY_REF_S,
    energy_ref_j: float = ENERGY_REF_J,
) -> np.ndarray | float:
    """``-(w T / T_ref + (1 - w) E / E_ref)``: the env's per-task reward for delay T, energy E."""
    w, delay, energy = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (w, delay, energy)))
    cost = scalarised_cost(delay.ravel(), energy.ravel(), w.ravel(), float(delay_ref_s), float(energy_ref_j))
    return -cost.reshape(delay.shape) if delay.ndim else -float(cost[0])


def expected_utility(
    points: Iterable[Sequence[float]],
    preferences: Sequence[float],
    delay_ref_s: float = DELAY_REF_S,
    energy_ref_j: float = ENERGY_REF_J,
) -> float:
    """Mean over the preferences of the scalarised utility of the point reached at each w."""
    p, w = _points(points), np.asarray(preferences, dtype=float)
    if len(p) != len(w) or len(w) == 0:
        raise ValueError(f"need one point per preference, got {len(p)} points and {len(w)} preferences")
    return float(np.mean(scalarised_utility(p[:, 0], p[:, 1], w, delay_ref_s, energy_ref_j)))


# -- running controllers ---------------------------------------------------------------------------
@dataclass
class SweepResult:
    """A controller run at every preference of a grid: per-w points and pooled task logs."""

    controller: str
    env_id: str
    scenario: str
    preferences: np.ndarray  # [W]
    points: np.ndarray  # [W, 2]: (mean delay s, mean energy J) at each w
    mean_reward: np.ndarray  # [W]: the env's mean per-task reward at each w
    delay: np.ndarray  # every task, all w and episodes
    energy: np.ndarray
    missed: np.ndarray
    reference: tuple[float, float] = REFERENCE_POINT
    delay_ref_s: float = DELAY_REF_S
    energy_ref_j: float = ENERGY_REF_J
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def front(self) -> np.ndarray:
        return pareto_front(self.points)

    @property
    def hypervolume(self) -> float:
        return hypervolume_2d(self.points, self.reference)

    @property
    def expected_utility(self) -> float:
        return expected_utility(self.points, self.preferences, self.delay_ref_s, self.energy_ref_j)

    def summary(self) -> dict[str, float]:
        return {
            **task_metrics(self.delay, self.energy, self.missed),
            "front_points": float(len(self.front)),
            "hypervolume": self.hypervolume,
            "expected_utility": self.expected_utility,
        }


def run_tasks(env: gym.Env, controller: Any, seeds: Iterable[int]) -> dict[str, np.ndarray]:
    """Episodes of ``controller`` (one per seed); every task's delay, energy, miss and reward.
    A masked (rejected) action is an error: heuristics must respect the mask."""
    log: dict[str, list] = {"delay": [], "energy": [], "missed": [], "reward": []}
    for seed in seeds:
        obs, info = env.reset(seed=int(seed))
        controller.reset(int(seed))
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(controller.act(obs, info))
            if "rejected_action" in info:
                raise RuntimeError(f"{controller.name}: {info['rejected_action']}")
            log["delay"].append(info["delay_s"])
            log["energy"].append(info["energy_j"])
            log["missed"].append(info["deadline_missed"])
            log["reward"].append(reward)
            done = terminated or truncated
    return {k: np.asarray(v, dtype=bool if k == "missed" else float) for k, v in log.items()}


def sweep(
    controller: str | Any,
    scenario: str = "default",
    episodes: int = 3,
    preferences: Sequence[float] = DEFAULT_PREFERENCES,
    seed: int = 0,
    env_id: str | None = None,
    reference: Sequence[float] = REFERENCE_POINT,
    **env_kwargs: Any,
) -> SweepResult:
    """Run ``controller`` (a registry name or a Controller) for ``episodes`` seeds
    (``seed .. seed + episodes - 1``, the same at every w) at each fixed preference w.
    ``env_id`` defaults to the registry's env for a name, else MecOffload-v0."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    prefs = np.asarray(preferences, dtype=float)
    if prefs.size == 0 or ((prefs < 0) | (prefs > 1)).any():
        raise ValueError(f"preferences must be a non-empty list in [0, 1], got {preferences!r}")
    if isinstance(controller, str):
        label = controller
        env_id = env_id or baselines.describe(controller)[0]
        controller = baselines.make(controller)
    else:
        label = controller.name
        env_id = env_id or MEC_ENV
    delay_ref = float(env_kwargs.get("delay_ref_s", DELAY_REF_S))
    energy_ref = float(env_kwargs.get("energy_ref_j", ENERGY_REF_J))
    points, rewards, logs = [], [], []
    for w in prefs:
        env = gym.make(env_id, scenario=scenario, preference=float(w), **env_kwargs)
        log = run_tasks(env, controller, range(seed, seed + episodes))
        points.append((log["delay"].mean(), log["energy"].mean()))
        rewards.append(log["reward"].mean())
        logs.append(log)
        env.close()
    return SweepResult(
        controller=label,
        env_id=env_id,
        scenario=scenario,
        preferences=prefs,
        points=np.array(points),
        mean_reward=np.array(rewards),
        delay=np.concatenate([g["delay"] for g in logs]),
        energy=np.concatenate([g["energy"] for g in logs]),
        missed=np.concatenate([g["missed"] for g in logs]),
        reference=(float(reference[0]), float(reference[1])),
        delay_ref_s=delay_ref,
        energy_ref_j=energy_ref,
    )


def heuristic_names(include_split: bool = True) -> list[str]:
    """Registered MecOffload heuristics (and the DnnSplit ones), in registry order; no oracles."""
    return baselines.heuristics(MEC_ENV) + (baselines.heuristics(SPLIT_ENV) if include_split else [])


TABLE_COLUMNS = (
    ("mean_delay_s", "mean T (ms)", 1e3, ".1f"),
    ("p95_delay_s", "p95 T (ms)", 1e3, ".1f"),
    ("miss_ratio", "miss %", 1e2, ".1f"),
    ("energy_per_task_j", "E/task (mJ)", 1e3, ".1f"),
    ("front_points", "front", 1, ".0f"),
    ("hypervolume", "HV", 1, ".3f"),
    ("expected_utility", "EU", 1, ".3f"),
)


def format_markdown(results: Sequence[SweepResult]) -> str:
    """One markdown row per controller (``TABLE_COLUMNS``)."""
    head = "| controller | " + " | ".join(label for _, label, _, _ in TABLE_COLUMNS) + " |"
    lines = [head, "|---" + "|---:" * len(TABLE_COLUMNS) + "|"]
    for r in results:
        s = r.summary()
        name = r.controller + (" (DnnSplit)" if r.env_id == SPLIT_ENV else "")
        cells = [format(s[key] * scale, fmt) for key, _, scale, fmt in TABLE_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def heuristics_table(
    scenario: str = "default",
    episodes: int = 3,
    preferences: Sequence[float] = DEFAULT_PREFERENCES,
    seed: int = 0,
    controllers: Sequence[str] | None = None,
    reference: Sequence[float] = REFERENCE_POINT,
    **env_kwargs: Any,
) -> str:
    """Markdown table of every heuristic (default: ``heuristic_names()``) on a preset, with a
    caption line giving the scenario, seeds, preference grid and HV reference point."""
    names = list(controllers) if controllers is not None else heuristic_names()
    results = [
        sweep(name, scenario, episodes, preferences, seed, reference=reference, **env_kwargs)
        for name in names
    ]
    prefs = np.asarray(preferences, dtype=float)
    caption = (
        f"**{scenario}**: {episodes} episode(s) x {prefs.size} preferences "
        f"(w = {prefs.min():g}..{prefs.max():g}), seeds {seed}..{seed + episodes - 1}; "
        f"HV ref ({reference[0]:g} s, {reference[1]:g} J), normalised by the box; "
        f"EU with T_ref {DELAY_REF_S:g} s, E_ref {ENERGY_REF_J:g} J"
    )
    return caption + "\n\n" + format_markdown(results)


def _grid(step: float) -> tuple[float, ...]:
    n = round(1.0 / step)
    if n < 1 or not np.isclose(n * step, 1.0):
        raise ValueError(f"--preference-step must divide 1 (e.g. 0.1, 0.02), got {step}")
    return tuple(np.round(np.linspace(0.0, 1.0, n + 1), 10))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m servegym.experiments.mec_metrics",
        description="Delay/energy metrics, hypervolume and expected utility of the MEC heuristics.",
    )
    parser.add_argument("--scenario", default="default", help="MecOffload preset (default: default)")
    parser.add_argument("--episodes", type=int, default=3, help="episodes (seeds) per preference")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--preference-step", type=float, default=0.1, help="w grid step (0.02: 51 w)")
    parser.add_argument("--controllers", default="", help="comma-separated registry names (default: all)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.controllers.split(",") if n.strip()] or None
    print(heuristics_table(args.scenario, args.episodes, _grid(args.preference_step), args.seed, names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
