"""Training callbacks: KPIs as TensorBoard scalars, held-out evaluation, checkpoints, progress.

Evaluations and checkpoints happen between rollouts (after an update, before the next
rollout), when the step count has passed the next multiple of their frequency. Their schedules
count env steps, not callback calls, so a resumed run keeps the uninterrupted run's schedule,
and a tiny run gets at most one of each per rollout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from .bundle import PolicyMetadata, write_zip_metadata
from .checkpoint import replace_atomically
from .scores import MaskedPredictor

MetadataFn = Callable[[], PolicyMetadata]


def record_kpis(logger, prefix: str, kpis: Mapping[str, Any]) -> None:
    for name, value in kpis.items():
        if isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value):
            logger.record_mean(f"{prefix}/{name}", float(value))


def next_multiple(steps: int, every: int) -> int:
    """The first multiple of ``every`` above ``steps``."""
    return (steps // every + 1) * every


class KpiLogger(BaseCallback):
    """Logs ``info["episode_kpis"]`` of finished training episodes as ``kpi/<name>`` (means) and
    counts actions the env rejected as masked (``train/rejected_actions``)."""

    def __init__(self) -> None:
        super().__init__()
        self.rejected = 0

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            if "rejected_action" in info:
                self.rejected += 1
            kpis = info.get("episode_kpis")
            if kpis:
                record_kpis(self.logger, "kpi", kpis)
        self.logger.record("train/rejected_actions", self.rejected)
        return True


class BetweenRollouts(BaseCallback):
    """Runs ``act()`` between rollouts whenever the step count has passed ``next_due``."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.next_due: int | None = None  # restored on resume; else the first multiple above the start

    def _on_training_start(self) -> None:
        if self.next_due is None:
            self.next_due = next_multiple(self.num_timesteps, self.every)

    def _on_rollout_start(self) -> None:
        self._maybe_act()

    def _on_training_end(self) -> None:
        self._maybe_act()

    def _on_step(self) -> bool:
        return True

    def _maybe_act(self) -> None:
        if self.num_timesteps >= self.next_due:
            self.next_due = next_multiple(self.num_timesteps, self.every)
            self.act()

    def act(self) -> None:
        raise NotImplementedError


class HeldOutEval(BetweenRollouts):
    """Scores the deterministic, action-masked policy on held-out scenarios.

    Every evaluation runs the same seeded episodes (``seed``), so evaluations compare like with
    like and carry no state from one to the next. Logs ``eval/mean_reward`` and
    ``eval_kpi/<name>``, writes ``evaluations.npz`` and keeps the best policy as
    ``best_model.zip`` (with metadata), both replaced atomically. Masks are applied as the deployed
    controller applies them, so a masked argmax never stalls an episode.
    """

    def __init__(
        self,
        eval_env: VecEnv,
        episodes: int,
        every: int,
        seed: int,
        out: str | os.PathLike,
        metadata: MetadataFn,
    ) -> None:
        super().__init__(every)
        self.eval_env, self.episodes, self.seed = eval_env, episodes, seed
        self.out, self.metadata = Path(out), metadata
        self.history: dict[str, list] = {"timesteps": [], "results": [], "ep_lengths": []}
        self.best = -np.inf

    def state(self) -> dict[str, Any]:
        return {"history": self.history, "best": self.best, "next_due": self.next_due}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.best, self.next_due = state["best"], state["next_due"]
        self.write_history()

    def act(self) -> None:
        if self.model.get_vec_normalize_env() is not None:
            sync_envs_normalization(self.training_env, self.eval_env)

        def collect(locals_: dict[str, Any], _globals: dict[str, Any]) -> None:
            kpis = locals_["info"].get("episode_kpis") if locals_["done"] else None
            if kpis:
                record_kpis(self.logger, "eval_kpi", kpis)

        self.eval_env.seed(self.seed)
        rewards, lengths = evaluate_policy(
            MaskedPredictor(self.model, self.eval_env),
            self.eval_env,
            n_eval_episodes=self.episodes,
            deterministic=True,
            return_episode_rewards=True,
            warn=False,
            callback=collect,
        )
        mean = float(np.mean(rewards))
        for key, value in (("timesteps", self.num_timesteps), ("results", rewards), ("ep_lengths", lengths)):
            self.history[key].append(value)
        self.write_history()
        self.logger.record("eval/mean_reward", mean)
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        self.logger.dump(self.num_timesteps)
        if mean > self.best:
            self.best = mean
            save_model(self.model, self.out / "best_model.zip", self.metadata())

    def write_history(self) -> None:
        arrays = {k: np.array(v) for k, v in self.history.items()}
        replace_atomically(self.out / "evaluations.npz", lambda path: np.savez(path, **arrays))


class Checkpoints(BetweenRollouts):
    """Calls ``save(steps)`` between rollouts every ``every`` env steps (see ``train``)."""

    def __init__(self, every: int, save: Callable[[int], None]) -> None:
        super().__init__(every)
        self.save = save

    def act(self) -> None:
        self.save(self.num_timesteps)


class StepProgress(BaseCallback):
    """A progress bar over the steps this run will take; it never passes its total."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total

    def _on_training_start(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            "steps",
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "training", total=self.total, completed=min(self.num_timesteps, self.total)
        )

    def _on_step(self) -> bool:
        self.progress.update(self.task, completed=min(self.num_timesteps, self.total))
        return True

    def _on_training_end(self) -> None:
        self.progress.update(self.task, completed=min(self.num_timesteps, self.total))
        self.progress.stop()


def save_model(model, path: Path, metadata: PolicyMetadata) -> None:
    """``model.save`` plus servegym's metadata, replacing ``path`` atomically."""

    def write(tmp: Path) -> None:
        model.save(tmp)
        write_zip_metadata(tmp, metadata)

    replace_atomically(path, write)
