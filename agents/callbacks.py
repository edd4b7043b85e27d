"""Training callbacks: the env's KPIs as TensorBoard scalars, and metadata in every saved zip."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from .bundle import PolicyMetadata, write_zip_metadata
from .scores import MaskedPredictor

MetadataFn = Callable[[], PolicyMetadata]


def record_kpis(logger, prefix: str, kpis: Mapping[str, Any]) -> None:
    for name, value in kpis.items():
        if isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value):
            logger.record_mean(f"{prefix}/{name}", float(value))


class KpiLogger(BaseCallback):
    """Logs ``info["episode_kpis"]`` of finished training episodes as ``kpi/<name>`` (means)."""

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            kpis = info.get("episode_kpis")
            if kpis:
                record_kpis(self.logger, "kpi", kpis)
        return True


class HeldOutEval(BaseCallback):
    """Scores the deterministic, action-masked policy on held-out scenarios every ``eval_freq`` calls.

    Logs ``eval/mean_reward`` and ``eval_kpi/<name>``, appends to ``evaluations.npz`` and keeps
    the best policy as ``best_model.zip`` (with metadata). Masks are applied as the deployed
    controller applies them, so a masked argmax never stalls an episode.
    """

    def __init__(
        self,
        eval_env: VecEnv,
        episodes: int,
        eval_freq: int,
        out: str | os.PathLike,
        metadata: MetadataFn,
        resume: bool = False,
    ) -> None:
        super().__init__()
        self.eval_env, self.episodes, self.eval_freq = eval_env, episodes, eval_freq
        self.out, self.metadata = os.fspath(out), metadata
        self.history: dict[str, list] = {"timesteps": [], "results": [], "ep_lengths": []}
        earlier = os.path.join(self.out, "evaluations.npz")
        if resume and os.path.exists(earlier):  # carry on the earlier evaluations and their best
            with np.load(earlier) as data:
                self.history = {k: list(data[k]) for k in self.history}
        self.best = max((float(np.mean(r)) for r in self.history["results"]), default=-np.inf)

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq == 0:
            self.evaluate()
        return True

    def evaluate(self) -> float:
        if self.model.get_vec_normalize_env() is not None:
            sync_envs_normalization(self.training_env, self.eval_env)

        def collect(locals_: dict[str, Any], _globals: dict[str, Any]) -> None:
            kpis = locals_["info"].get("episode_kpis") if locals_["done"] else None
            if kpis:
                record_kpis(self.logger, "eval_kpi", kpis)

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
        np.savez(
            os.path.join(self.out, "evaluations.npz"), **{k: np.array(v) for k, v in self.history.items()}
        )
        self.logger.record("eval/mean_reward", mean)
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        self.logger.dump(self.num_timesteps)
        if mean > self.best:
            self.best = mean
            path = os.path.join(self.out, "best_model.zip")
            self.model.save(path)
            write_zip_metadata(path, self.metadata())
        return mean


class MetadataCheckpoint(CheckpointCallback):
    """SB3's checkpoints (zip + VecNormalize pickle), each zip also carrying servegym's metadata."""

    def __init__(self, save_freq: int, save_path: str, metadata: MetadataFn) -> None:
        super().__init__(save_freq, save_path, name_prefix="rl_model", save_vecnormalize=True)
        self.metadata = metadata

    def _on_step(self) -> bool:
        result = super()._on_step()
        if self.n_calls % self.save_freq == 0:
            write_zip_metadata(self._checkpoint_path(extension="zip"), self.metadata())
        return result
