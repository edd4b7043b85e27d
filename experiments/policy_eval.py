"""A trained policy beside the env's heuristics on the same scenario and seeds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from servegym import baselines
from servegym.agents.controller import LearnedController

from .compare import BEST_OF_KEY, EpisodeResult, compare_controllers, format_table, heuristic_names, is_oracle


def evaluate_model(
    model: str | Path | LearnedController,
    env_id: str | None = None,
    *,
    scenario: str | None = None,
    episodes: int = 3,
    seed: int = 1000,
    env_kwargs: dict[str, Any] | None = None,
    heuristics: Sequence[str] | None = None,
    oracles: bool = False,
) -> tuple[list[EpisodeResult], str]:
    """Episodes of the policy and of each heuristic (and, with ``oracles``, each of the env's
    oracles) on the same seeds; returns them and the best heuristic's name (highest mean return)."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    controller = (
        model if isinstance(model, LearnedController) else LearnedController.load(model, env_id=env_id)
    )
    env_id = env_id or controller.metadata.env_id
    if env_id != controller.metadata.env_id:
        raise ValueError(f"the policy was trained on {controller.metadata.env_id}, not {env_id}")
    kwargs = {**controller.metadata.env_kwargs, **(env_kwargs or {})}
    if scenario:
        kwargs["scenario"] = scenario
    seeds = range(seed, seed + episodes)
    names = list(heuristics) if heuristics is not None else heuristic_names(env_id)
    if oracles:
        names += [n for n in baselines.list(env_id) if is_oracle(n)]
    results = compare_controllers(env_id, [controller, *names], seeds, **kwargs)
    best = best_controller(
        [r for r in results if r.controller != controller.name and not is_oracle(r.controller)]
    )
    return results, best


def headroom_captured(results: Sequence[EpisodeResult], policy: str, best: str) -> str | None:
    """One line: the share of the oracle's headroom over the best heuristic that the policy
    captures, on mean return (None without an oracle, or when the oracle has no headroom)."""
    means = {
        name: float(np.mean([r.kpis[BEST_OF_KEY] for r in results if r.controller == name]))
        for name in dict.fromkeys(r.controller for r in results)
    }
    found = [n for n in means if is_oracle(n)]
    if not found:
        return None
    oracle = max(found, key=means.get)
    gap = means[oracle] - means[best]
    if gap <= 1e-9 * max(abs(means[best]), 1.0):
        return f"headroom: {oracle} is no better than {best} here ({means[oracle]:.4g} vs {means[best]:.4g})"
    share = (means[policy] - means[best]) / gap
    return (
        f"headroom: {oracle} {means[oracle]:.4g}, {best} {means[best]:.4g}, the policy {means[policy]:.4g}: "
        f"it captures {100 * share:.0f}% of the oracle's headroom over the best heuristic"
    )


def best_controller(results: Sequence[EpisodeResult]) -> str:
    names = list(dict.fromkeys(r.controller for r in results))
    means = {n: np.mean([r.kpis[BEST_OF_KEY] for r in results if r.controller == n]) for n in names}
    return max(means, key=means.get)


def format_comparison(
    results: Sequence[EpisodeResult],
    policy: str,
    best: str,
    everything: bool = False,
    title: str | None = None,
) -> str:
    """The policy and the best heuristic (or every controller), then the verdict line."""
    shown = results if everything else [r for r in results if r.controller in (policy, best)]
    return format_table(shown, policy=policy, title=title)
