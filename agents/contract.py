"""What a policy's env expects from a live system: metrics, actions, and the checks on both.

``EnvContract.of(env_id, env_kwargs)`` builds the env once (never steps it) and reads its
declared ``METRICS`` (``servegym.metric_spec``), the shape of each metric, the scenario values
that fill omitted scenario metrics, and the meaning of each action. ``LearnedController`` checks
a loaded policy's shapes against it and validates ``act_from_metrics`` input with it; the
decision service and ``servegym export`` publish it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

import servegym  # noqa: F401 - registers the ids
from servegym.metric_spec import Metric, check_metrics
from servegym.registration import check_env_id

from .bundle import PolicyMetadata


@dataclass
class EnvContract:
    env_id: str
    env_kwargs: dict[str, Any]
    obs_shape: tuple[int, ...]
    n_actions: int
    metrics: tuple[Metric, ...]
    shapes: dict[str, tuple[int, ...]]
    scenario_values: dict[str, Any]  # what an omitted scenario metric takes
    action_meanings: list[str]
    _env: Any = field(repr=False, default=None)

    @classmethod
    def of(cls, env_id: str, env_kwargs: Mapping[str, Any] | None = None, where: str = "") -> EnvContract:
        """The contract of ``env_id`` built with ``env_kwargs``; ``where`` prefixes errors (a file)."""
        prefix = f"{where}: " if where else ""
        try:
            check_env_id(env_id)
        except ValueError as err:
            raise ValueError(f"{prefix}the policy's env: {err}") from None
        try:
            env = gym.make(env_id, **dict(env_kwargs or {})).unwrapped
        except (TypeError, ValueError) as err:
            raise ValueError(f"{prefix}cannot build {env_id} with {dict(env_kwargs or {})}: {err}") from None
        spec = tuple(getattr(env, "METRICS", ()))
        _, info = env.reset(seed=0)
        first = info.get("metrics", {})
        shapes = {m.name: tuple(np.shape(first[m.name])) for m in spec if m.name in first}
        scenario = [m.name for m in spec if m.scenario and m.name in first]
        values: dict[str, Any] = {}
        if scenario and dict(env_kwargs or {}).get("scenario") != "random":  # same in every episode
            _, again = env.reset(seed=1)
            values = {n: float(first[n]) for n in scenario if float(again["metrics"][n]) == float(first[n])}
        n = int(getattr(env.action_space, "n", 0))
        meanings = env.get_action_meanings() if hasattr(env, "get_action_meanings") else [""] * n
        return cls(
            env_id,
            dict(env_kwargs or {}),
            tuple(env.observation_space.shape),
            n,
            spec,
            shapes,
            values,
            list(meanings),
            env,
        )

    def check_policy(self, meta: PolicyMetadata, where: str) -> None:
        """Refuse a policy whose input or output size does not fit the env."""
        if tuple(meta.obs_shape) != self.obs_shape or meta.n_actions != self.n_actions:
            raise ValueError(
                f"{where}: the policy takes observations of shape {tuple(meta.obs_shape)} and has "
                f"{meta.n_actions} actions, but {self.env_id} has observations of shape {self.obs_shape} "
                f"and {self.n_actions} actions"
            )

    def encode(self, metrics: Any) -> np.ndarray:
        """The observation of a live system's metrics, validated first (``MetricsError`` lists every
        problem); keys the env does not read are ignored."""
        if not self.metrics:
            raise ValueError(f"{self.env_id} declares no metrics; act_from_metrics is unavailable")
        values = check_metrics(self.metrics, metrics, self.shapes, self.scenario_values)
        return self._env.observation_from_metrics(values)

    def describe(self) -> dict[str, Any]:
        """The contract as JSON: metrics (name, unit, shape, range, required or the default) and actions."""
        return {
            "env_id": self.env_id,
            "metrics": [
                {
                    "name": m.name,
                    "unit": m.unit,
                    "description": m.description,
                    "shape": list(self.shapes.get(m.name, ())),
                    "per": m.per,
                    "range": m.range_text(),
                    "required": m.name not in self.scenario_values,
                    "default": self.scenario_values.get(m.name),
                }
                for m in self.metrics
            ],
            "actions": [{"index": i, "meaning": text} for i, text in enumerate(self.action_meanings)],
        }

    def tables(self) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
        """(metric headers, metric rows, action headers, action rows) for printing."""
        metric_rows = []
        for m in self.describe()["metrics"]:
            shape = (
                "number"
                if not m["shape"]
                else f"{m['shape']} per {m['per']}"
                if m["per"]
                else str(m["shape"])
            )
            need = "required" if m["required"] else f"optional (scenario: {m['default']:g})"
            metric_rows.append([m["name"], m["unit"], shape, m["range"], need, m["description"]])
        action_rows = [[str(i), text] for i, text in enumerate(self.action_meanings)]
        return (
            ["metric", "unit", "shape", "valid range", "required", "meaning"],
            metric_rows,
            ["action", "meaning"],
            action_rows,
        )
