"""Vectorised training and evaluation envs for SB3, with servegym's held-out scenarios."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor, VecNormalize

import servegym  # noqa: F401 - registers the ids
from servegym.registration import check_env_id

from .vec_env import has_batched_env, make_sb3_vec_env

HELD_OUT_SCENARIOS: dict[str, tuple[str, ...]] = {
    # the held-out presets of experiments/suites/chunked-prefill.yaml and spec-decode.yaml
    "servegym/ChunkedPrefill-v0": (
        "llama2-70b-a100x4-code",
        "llama3-8b-l4-overload",
        "llama3-8b-a100-bursty",
    ),
    "servegym/SpecDecode-v0": (
        "llama2-7b-68m-mixed-domains",
        "llama2-7b-68m-drift-tight",
        "llama2-7b-68m-diurnal",
    ),
    # the camera fleets of experiments/suites/mec.yaml; the GMORL-style presets (another
    # observation size) for a policy trained on the default
    "servegym/MecOffload-v0": ("camera-fleet", "camera-fleet-busy", "multi-edge-busy", "far-cell"),
    "servegym/DnnSplit-v0": ("camera-fleet", "camera-fleet-busy", "multi-edge-busy", "far-cell"),
    "servegym/Autoscale-v0": ("llama3-8b-a100-bursty", "qwen2.5-7b-h100-mmpp"),
}
"""Presets an agent is scored on during training (never its training scenario; only those with
the training scenario's observation and action spaces)."""


__all__ = ["check_env_id", "eval_scenarios", "make_eval_env", "make_train_env"]


def make_train_env(env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any]) -> VecEnv:
    """``n_envs`` copies of the env in one process, episode statistics recorded."""
    check_env_id(env_id)
    if has_batched_env(env_id):  # a numpy-batched vector env trains in one process
        venv = make_sb3_vec_env(env_id, n_envs, **env_kwargs)
        venv.seed(seed)
        return VecMonitor(venv)
    # DummyVecEnv: SubprocVecEnv is slower than in-process envs for these cheap envs on 2 cores.
    # render_mode=None: make_vec_env asks for "rgb_array", which the envs do not offer (a warning)
    kwargs = {"render_mode": None, **env_kwargs}
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=kwargs, vec_env_cls=DummyVecEnv)


def eval_scenarios(
    env_id: str,
    train_scenario: str | None,
    requested: Sequence[str] | None,
    env_kwargs: dict[str, Any] | None = None,
) -> list[str]:
    """The held-out scenarios to score on: the requested ones, else the defaults minus the
    training one, keeping those whose spaces match the training env's."""
    if requested:
        return list(requested)
    kwargs = {k: v for k, v in (env_kwargs or {}).items() if k != "scenario"}

    def spaces(scenario: str | None) -> tuple[Any, Any]:
        env = gym.make(env_id, **kwargs, **({"scenario": scenario} if scenario else {}))
        try:
            return env.observation_space, env.action_space
        finally:
            env.close()

    mine = spaces(train_scenario)
    fitting = [s for s in HELD_OUT_SCENARIOS.get(env_id, ()) if s != train_scenario and spaces(s) == mine]
    return fitting or [train_scenario or ""]


def make_eval_env(
    env_id: str, scenarios: Sequence[str], seed: int, env_kwargs: dict[str, Any], normalize: bool
) -> VecEnv:
    """One env per held-out scenario (``""`` = the env's default); frozen normalisation if used."""
    kwargs = {k: v for k, v in env_kwargs.items() if k != "scenario"}
    fns = [_env_fn(env_id, {**kwargs, **({"scenario": s} if s else {})}) for s in scenarios]
    venv = VecMonitor(DummyVecEnv(fns))
    venv.seed(seed)
    if normalize:
        venv = VecNormalize(venv, training=False, norm_reward=False)
    return venv


def _env_fn(env_id: str, kwargs: dict[str, Any]):
    def make() -> gym.Env:
        return gym.make(env_id, **kwargs)

    return make
