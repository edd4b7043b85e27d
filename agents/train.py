"""Train an SB3 / sb3-contrib agent on a servegym env: one call, one run directory.

Run directory::

    OUT/config.yml              everything used (hyperparameters, env kwargs, versions, command)
    OUT/model.zip               final policy + servegym.json (env, spaces, normalisation)
    OUT/best_model.zip          best on the held-out scenarios (same format)
    OUT/vecnormalize.pkl        SB3's normalisation pickle (for resuming and rl_zoo3 tools)
    OUT/evaluations.npz         held-out returns per evaluation
    OUT/checkpoints/            rl_model_<steps>_steps.zip (+ _vecnormalize_ pickles)
    OUT/tb/<ALGO>_1/            TensorBoard: SB3 scalars, kpi/*, eval/*, eval_kpi/*
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import yaml
from stable_baselines3.common.vec_env import VecNormalize

from servegym._version import __version__

from .algos import ALGOS, OFF_POLICY, check_action_space, resolve_algo
from .bundle import Normalization, PolicyMetadata, write_zip_metadata
from .callbacks import HeldOutEval, KpiLogger, MetadataCheckpoint
from .envs import check_env_id, eval_scenarios, make_eval_env, make_train_env
from .hyperparams import ZOO_KEYS, Hyperparams, load_hyperparams, parse_entry


@dataclass
class TrainResult:
    out: Path
    model_path: Path
    best_model_path: Path | None
    tensorboard_dir: Path
    timesteps: int
    seconds: float


def default_out(algo: str, env_id: str, seed: int) -> Path:
    return Path("runs") / f"{algo}_{env_id.split('/')[-1]}_{seed}"


def train(
    env_id: str,
    algo: str = "ppo",
    *,
    timesteps: int | None = None,
    n_envs: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    scenario: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    conf_file: str | Path | None = None,
    hyperparams: dict[str, Any] | None = None,
    eval_scenarios_: list[str] | None = None,
    eval_freq: int | None = None,
    eval_episodes: int = 1,
    checkpoint_freq: int | None = None,
    resume: bool = False,
    progress_bar: bool = False,
    verbose: int = 0,
    torch_threads: int = 1,
) -> TrainResult:
    """Train ``algo`` on ``env_id``; hyperparameters from the shipped (or given) rl_zoo3 YAML.

    ``hyperparams`` overrides entries of the YAML (zoo syntax); ``eval_freq`` and
    ``checkpoint_freq`` count env steps (0 disables them; default: 10 evaluations and 5
    checkpoints per run); ``resume`` continues the newest checkpoint in ``out`` up to
    ``timesteps`` in all.
    """
    check_env_id(env_id)
    algo = resolve_algo(algo)
    hp = _resolve_hyperparams(algo, env_id, conf_file, hyperparams)
    kwargs = {**hp.env_kwargs, **(env_kwargs or {})}
    if scenario:
        kwargs["scenario"] = scenario
    probe = gym.make(env_id, **kwargs)  # validates the kwargs before anything is written
    check_action_space(algo, probe.action_space, env_id)
    obs_shape, n_actions = tuple(probe.observation_space.shape), int(probe.action_space.n)
    probe.close()
    n_envs = hp.n_envs if n_envs is None else n_envs
    total = hp.n_timesteps if timesteps is None else timesteps
    if n_envs < 1 or total < 1:
        raise ValueError(f"--n-envs and --timesteps must be >= 1, got {n_envs} and {total}")
    out = Path(out) if out else default_out(algo, env_id, seed)
    torch.set_num_threads(max(int(torch_threads), 1))

    venv = make_train_env(env_id, n_envs, seed, kwargs)
    gamma = float(hp.algo_kwargs.get("gamma", 0.99))
    cls = ALGOS[algo]
    checkpoint, stats = _latest_checkpoint(out, env_id, algo) if resume else (None, None)
    if hp.normalize is not None:
        venv = (
            VecNormalize.load(str(stats), venv) if stats else VecNormalize(venv, gamma=gamma, **hp.normalize)
        )
    if checkpoint:
        model = cls.load(checkpoint, env=venv, device="cpu", tensorboard_log=str(out / "tb"))
        print(f"resuming {checkpoint} at {model.num_timesteps} steps", file=sys.stderr)
    else:
        out.mkdir(parents=True, exist_ok=True)
        model = cls(
            hp.policy,
            venv,
            seed=seed,
            verbose=verbose,
            device="cpu",
            tensorboard_log=str(out / "tb"),
            **hp.model_kwargs(),
        )
    held_out = eval_scenarios(env_id, kwargs.get("scenario"), eval_scenarios_)
    _write_config(out, env_id, algo, hp, kwargs, n_envs, total, seed, held_out)

    def metadata() -> PolicyMetadata:
        return PolicyMetadata(
            env_id=env_id,
            algo=algo,
            obs_shape=obs_shape,
            n_actions=n_actions,
            env_kwargs=kwargs,
            normalization=Normalization.from_vec_normalize(model.get_vec_normalize_env()),
            timesteps=int(model.num_timesteps),
        )

    callbacks: list[Any] = [KpiLogger()]
    eval_every = total // 10 if eval_freq is None else eval_freq
    if eval_every > 0:
        eval_env = make_eval_env(env_id, held_out, seed + 10_000, kwargs, hp.normalize is not None)
        callbacks.append(
            HeldOutEval(
                eval_env, eval_episodes * len(held_out), max(eval_every // n_envs, 1), out, metadata, resume
            )
        )
    save_every = total // 5 if checkpoint_freq is None else checkpoint_freq
    if save_every > 0:
        callbacks.append(MetadataCheckpoint(max(save_every // n_envs, 1), str(out / "checkpoints"), metadata))

    remaining = total - model.num_timesteps
    start = time.perf_counter()
    if remaining > 0:
        model.learn(
            remaining,
            callback=callbacks,
            progress_bar=progress_bar,
            tb_log_name=algo.upper(),
            reset_num_timesteps=not resume,
        )
    seconds = time.perf_counter() - start
    model_path = out / "model.zip"
    model.save(model_path)
    write_zip_metadata(model_path, metadata())
    if model.get_vec_normalize_env() is not None:
        model.get_vec_normalize_env().save(str(out / "vecnormalize.pkl"))
    best = out / "best_model.zip"
    return TrainResult(
        out, model_path, best if best.exists() else None, out / "tb", int(model.num_timesteps), seconds
    )


def parse_key_values(items: list[str] | None, what: str) -> dict[str, Any]:
    """rl_zoo3's ``key:value`` command-line pairs (values read as YAML)."""
    result: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ValueError(f"{what}: expected key:value, got {item!r}")
        try:
            result[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"{what}: cannot read the value of {item!r}: {err}") from err
    return result


def _resolve_hyperparams(
    algo: str, env_id: str, conf_file: str | Path | None, overrides: dict[str, Any] | None
) -> Hyperparams:
    hp = load_hyperparams(algo, env_id, conf_file)
    if not overrides:
        return hp
    extra = parse_entry(dict(overrides), "--hyperparams")
    for key in overrides:
        if key in ZOO_KEYS:
            setattr(hp, key, getattr(extra, key))
    hp.algo_kwargs.update(extra.algo_kwargs)
    hp.raw.update(overrides)
    if algo in OFF_POLICY and "n_steps" in hp.algo_kwargs:
        raise ValueError(f"{algo} has no n_steps (it is off-policy); use train_freq")
    return hp


def _latest_checkpoint(out: Path, env_id: str, algo: str) -> tuple[Path, Path | None]:
    config = out / "config.yml"
    if not config.is_file():
        raise FileNotFoundError(f"cannot resume: {config} does not exist (no earlier run in {out})")
    saved = yaml.safe_load(config.read_text(encoding="utf-8"))
    for key, value in (("env_id", env_id), ("algo", algo)):
        if saved.get(key) != value:
            raise ValueError(
                f"cannot resume: {config} was a run with {key}={saved.get(key)!r}, not {value!r}"
            )
    zips = sorted(
        (out / "checkpoints").glob("rl_model_*_steps.zip"),
        key=lambda p: int(re.search(r"_(\d+)_steps", p.name).group(1)),
    )
    if zips:
        steps = re.search(r"_(\d+)_steps", zips[-1].name).group(1)
        stats = out / "checkpoints" / f"rl_model_vecnormalize_{steps}_steps.pkl"
        return zips[-1], stats if stats.exists() else None
    if (out / "model.zip").exists():
        stats = out / "vecnormalize.pkl"
        return out / "model.zip", stats if stats.exists() else None
    raise FileNotFoundError(
        f"cannot resume: no checkpoint in {out / 'checkpoints'} and no {out / 'model.zip'}"
    )


def _write_config(
    out: Path,
    env_id: str,
    algo: str,
    hp: Hyperparams,
    env_kwargs: dict[str, Any],
    n_envs: int,
    timesteps: int,
    seed: int,
    held_out: list[str],
) -> None:
    config = {
        "env_id": env_id,
        "algo": algo,
        "timesteps": timesteps,
        "n_envs": n_envs,
        "seed": seed,
        "env_kwargs": env_kwargs,
        "eval_scenarios": held_out,
        "hyperparams": {"source": hp.source, **hp.raw},
        "command": " ".join(sys.argv),
        "versions": _versions(),
    }
    (out / "config.yml").write_text(yaml.safe_dump(_plain(config), sort_keys=False), encoding="utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return str(value)  # also str subclasses such as torch's version


def _versions() -> dict[str, str]:
    import gymnasium
    import sb3_contrib
    import stable_baselines3

    return {
        "servegym": __version__,
        "stable_baselines3": stable_baselines3.__version__,
        "sb3_contrib": sb3_contrib.__version__,
        "gymnasium": gymnasium.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
