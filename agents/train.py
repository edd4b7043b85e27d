"""Train an SB3 / sb3-contrib agent on a servegym env: one call, one run directory.

Run directory::

    OUT/config.yml              everything used (hyperparameters, env kwargs, versions, command)
    OUT/model.zip               final policy + servegym.json (env, spaces, policy, normalisation)
    OUT/best_model.zip          best on the held-out scenarios (same format)
    OUT/vecnormalize.pkl        SB3's normalisation pickle (for rl_zoo3 tools)
    OUT/evaluations.npz         held-out returns per evaluation
    OUT/checkpoints/step_<N>/   complete checkpoints (see ``checkpoint``)
    OUT/tb/<ALGO>_1/            TensorBoard: SB3 scalars, kpi/*, eval/*, eval_kpi/*

``resume=True`` continues the newest complete checkpoint: the model and optimiser, the
normalisation statistics, the training envs mid-episode, the RNG states, the step count and
the evaluation and checkpoint schedules. Checkpoints are taken between rollouts, so a resumed
seeded run reproduces the uninterrupted one: the same final weights and ``evaluations.npz``.
"""

from __future__ import annotations

import math
import pickle
import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

from servegym._version import __version__

from .algos import ALGOS, OFF_POLICY, check_action_space, resolve_algo
from .bundle import Normalization, PolicyMetadata, read_zip_metadata, write_zip_metadata
from .callbacks import Checkpoints, HeldOutEval, KpiLogger, StepProgress, save_model
from .checkpoint import (
    MODEL,
    REPLAY,
    STATE,
    STATS,
    ResumePoint,
    find_resume_point,
    prune_replay_buffers,
    write_checkpoint,
)
from .envs import check_env_id, eval_scenarios, make_eval_env, make_train_env
from .hyperparams import ZOO_KEYS, Hyperparams, check_algo_kwargs, load_hyperparams, parse_entry
from .sb3_zip import policy_kwargs_to_json

MASKED_ACTION_WARNING = r".*is masked.*rejected"
"""The envs' once-per-env warning about a rejected masked action: training counts them instead."""


@dataclass
class TrainResult:
    out: Path
    model_path: Path
    best_model_path: Path | None
    tensorboard_dir: Path
    timesteps: int  # the run's total step count
    seconds: float
    steps_this_process: int = 0
    resumed_from: Path | None = None
    skipped: tuple[tuple[str, str], ...] = ()  # checkpoints passed over on resume, with the reason
    rejected_actions: int = 0  # masked actions the env rejected during this process's training


@dataclass
class _Source:
    """Where a resumed run continues from: a checkpoint, or (inexactly) a finished run's model.zip."""

    model: Path
    stats: Path | None
    state: Path | None
    replay: Path | None
    steps: int
    skipped: list[tuple[str, str]]


@dataclass
class _Settings:
    """A run's resolved settings (after the YAML, the overrides and the checks)."""

    env_id: str
    algo: str
    hp: Hyperparams
    env_kwargs: dict[str, Any]
    n_envs: int
    total: int
    seed: int
    out: Path
    obs_shape: tuple[int, ...]
    n_actions: int
    held_out: list[str]
    eval_every: int
    eval_episodes: int
    save_every: int
    progress_bar: bool
    verbose: int
    log: Callable[[str], None]


@dataclass
class _Callbacks:
    kpis: KpiLogger
    evaluator: HeldOutEval | None = None
    checkpoints: Checkpoints | None = None


def default_out(algo: str, env_id: str, seed: int) -> Path:
    return Path("runs") / f"{algo}_{env_id.split('/')[-1]}_{seed}"


def run_directory(out: str | Path | None, default: Path, resume: bool) -> Path:
    """The run directory: ``out`` must be new or empty unless resuming; the default gets the next
    free number (``runs/ppo_X_0``, ``runs/ppo_X_0_2``, ...) as rl_zoo3 numbers its runs, and
    ``resume`` continues the newest of them."""
    if out is not None:
        out = Path(out)
        if not resume and out.exists() and any(out.iterdir()):
            raise ValueError(
                f"{out} already holds a run ({', '.join(sorted(p.name for p in out.iterdir())[:4])}); "
                "pass --resume to continue it, or choose another --out"
            )
        return out
    numbered = [default, *(default.with_name(f"{default.name}_{i}") for i in range(2, 10_000))]
    used = [p for p in numbered if p.exists() and any(p.iterdir())]
    if resume:
        return used[-1] if used else default
    return next(p for p in numbered if p not in used)


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
    log=print,
) -> TrainResult:
    """Train ``algo`` on ``env_id``; hyperparameters from the shipped (or given) rl_zoo3 YAML.

    ``hyperparams`` overrides entries of the YAML (zoo syntax); ``eval_freq`` and
    ``checkpoint_freq`` count env steps (0 disables them; default: 10 evaluations and 5
    checkpoints per run); ``resume`` continues the newest complete checkpoint in ``out`` up to
    ``timesteps`` in all. ``log`` receives notes (resume decisions, budget rounding).
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
    for flag, value in (("--timesteps", total), ("--n-envs", n_envs)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    for flag, value in (("--eval-freq", eval_freq), ("--checkpoint-freq", checkpoint_freq)):
        if value is not None and value < 0:
            raise ValueError(f"{flag} must be >= 0 (0 turns it off), got {value}")
    if eval_episodes < 1:
        raise ValueError(f"--eval-episodes must be >= 1, got {eval_episodes}")
    out = run_directory(out, default_out(algo, env_id, seed), resume)
    source = _resume_source(out, env_id, algo, seed, n_envs, kwargs, log) if resume else None
    torch.set_num_threads(max(int(torch_threads), 1))
    run = _Settings(
        env_id=env_id,
        algo=algo,
        hp=hp,
        env_kwargs=kwargs,
        n_envs=n_envs,
        total=total,
        seed=seed,
        out=out,
        obs_shape=obs_shape,
        n_actions=n_actions,
        held_out=eval_scenarios(env_id, kwargs.get("scenario"), eval_scenarios_, kwargs),
        eval_every=total // 10 if eval_freq is None else eval_freq,
        eval_episodes=eval_episodes,
        save_every=total // 5 if checkpoint_freq is None else checkpoint_freq,
        progress_bar=progress_bar,
        verbose=verbose,
        log=log,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=MASKED_ACTION_WARNING)
        return _run(run, source)


def _build_model(run: _Settings, source: _Source | None) -> BaseAlgorithm:
    """A new model, or the source's with its replay buffer, on fresh training envs."""
    venv: VecEnv = make_train_env(run.env_id, run.n_envs, run.seed, run.env_kwargs)
    if source is not None and source.stats is not None:
        venv = VecNormalize.load(str(source.stats), venv)
    elif source is None and run.hp.normalize is not None:
        venv = VecNormalize(venv, gamma=float(run.hp.algo_kwargs.get("gamma", 0.99)), **run.hp.normalize)
    cls, tb = ALGOS[run.algo], str(run.out / "tb")
    if source is None:
        return cls(
            run.hp.policy, venv, seed=run.seed, verbose=run.verbose, device="cpu", tensorboard_log=tb,
            **run.hp.model_kwargs(),
        )  # fmt: skip
    # force_reset=False keeps the checkpoint's last observation: its envs are restored later
    # (a finished run's model.zip has no env state, so its envs start afresh)
    model = cls.load(
        source.model, env=venv, device="cpu", tensorboard_log=tb, force_reset=source.state is None
    )
    if source.replay is not None:
        model.load_replay_buffer(source.replay)
    return model


def _run(run: _Settings, source: _Source | None) -> TrainResult:
    out, algo, total = run.out, run.algo, run.total
    out.mkdir(parents=True, exist_ok=True)
    model = _build_model(run, source)
    _write_config(out, run.env_id, algo, run.hp, run.env_kwargs, run.n_envs, total, run.seed, run.held_out)
    policy_kwargs = policy_kwargs_to_json(model.policy_kwargs)

    def metadata() -> PolicyMetadata:
        return PolicyMetadata(
            env_id=run.env_id,
            algo=algo,
            obs_shape=run.obs_shape,
            n_actions=run.n_actions,
            env_kwargs=run.env_kwargs,
            normalization=Normalization.from_vec_normalize(model.get_vec_normalize_env()),
            timesteps=int(model.num_timesteps),
            policy=run.hp.policy,
            policy_kwargs=policy_kwargs,
        )

    parts = _Callbacks(KpiLogger())
    if run.eval_every > 0:
        normalized = model.get_vec_normalize_env() is not None
        eval_env = make_eval_env(run.env_id, run.held_out, run.seed + 10_000, run.env_kwargs, normalized)
        episodes = run.eval_episodes * len(run.held_out)
        parts.evaluator = HeldOutEval(eval_env, episodes, run.eval_every, run.seed + 10_000, out, metadata)
    if run.save_every > 0:
        parts.checkpoints = Checkpoints(
            run.save_every, lambda steps: _save_checkpoint(run, steps, model, metadata(), parts)
        )
    callbacks: list[Any] = [c for c in (parts.kpis, parts.evaluator, parts.checkpoints) if c is not None]
    if source is not None and source.state is not None:
        _restore_state(source.state, model, parts)

    start_steps = int(model.num_timesteps)
    planned = _planned_steps(model, start_steps, total)
    if planned - total > 0.05 * (total - start_steps) and start_steps < total:  # a budget below a rollout
        run.log(
            f"note: {algo} updates after whole rollouts of {model.n_steps * model.n_envs:,} steps (n_steps "
            f"{model.n_steps} x {model.n_envs} envs), so this run stops at {planned:,} steps, not {total:,}"
        )
    if run.progress_bar and planned > start_steps:
        callbacks.append(StepProgress(planned))
    started = time.perf_counter()
    if start_steps < total:
        model.learn(
            total - start_steps,
            callback=callbacks,
            tb_log_name=algo.upper(),
            reset_num_timesteps=source is None,
        )
    else:
        run.log(f"the run already has {start_steps:,} steps (>= --timesteps {total:,}); nothing to train")
    seconds = time.perf_counter() - started
    model_path = out / "model.zip"
    save_model(model, model_path, metadata())
    if model.get_vec_normalize_env() is not None:
        model.get_vec_normalize_env().save(str(out / "vecnormalize.pkl"))
    best = out / "best_model.zip"
    return TrainResult(
        out,
        model_path,
        best if best.exists() else None,
        out / "tb",
        int(model.num_timesteps),
        seconds,
        steps_this_process=int(model.num_timesteps) - start_steps,
        resumed_from=source.model if source is not None else None,
        skipped=tuple(source.skipped) if source is not None else (),
        rejected_actions=parts.kpis.rejected,
    )


def _planned_steps(model: BaseAlgorithm, start: int, total: int) -> int:
    """The step count the run will stop at: on-policy algorithms stop after whole rollouts."""
    if isinstance(model, OnPolicyAlgorithm) and start < total:
        rollout = model.n_steps * model.n_envs
        return start + math.ceil((total - start) / rollout) * rollout
    return max(total, start)


def _save_checkpoint(
    run: _Settings, steps: int, model: BaseAlgorithm, meta: PolicyMetadata, parts: _Callbacks
) -> None:
    normalizer = model.get_vec_normalize_env()

    def write_model(path: Path) -> None:
        model.save(path)
        write_zip_metadata(path, meta)

    def write_state(path: Path) -> None:
        state = {
            "venv": _venv_state(model.get_env()),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),  # noqa: NPY002 - SB3 draws from the global RNG
                "torch": torch.get_rng_state(),
            },
            # what SB3's zip leaves out: the action space's RNG (re-seeded by load; off-policy
            # exploration samples it) and a recurrent policy's LSTM state between rollouts
            "action_space_rng": model.action_space.np_random,
            "lstm_states": getattr(model, "_last_lstm_states", None),
            "eval": parts.evaluator.state() if parts.evaluator else None,
            "checkpoint_next_due": parts.checkpoints.next_due,
        }
        with open(path, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)

    writers = {MODEL: write_model}
    if normalizer is not None:
        writers[STATS] = lambda path: normalizer.save(str(path))
    off_policy = run.algo in OFF_POLICY
    if off_policy:
        writers[REPLAY] = model.save_replay_buffer
    writers[STATE] = write_state
    info = {
        "env_id": run.env_id,
        "algo": run.algo,
        "seed": run.seed,
        "n_envs": model.n_envs,
        "env_kwargs": _plain(run.env_kwargs),
        "normalize": normalizer is not None,
        "off_policy": off_policy,
        "servegym": __version__,
    }
    write_checkpoint(run.out / "checkpoints", steps, writers, info)
    if off_policy:
        prune_replay_buffers(run.out / "checkpoints")


def _venv_state(venv: VecEnv) -> dict[str, Any]:
    """The training envs' state: each wrapper's attributes and the innermost envs themselves."""
    layers = []
    while isinstance(venv, VecEnvWrapper):
        layers.append({k: v for k, v in vars(venv).items() if k not in ("venv", "class_attributes")})
        venv = venv.venv
    return {"layers": layers, "base": venv}


def _restore_state(path: Path, model: BaseAlgorithm, parts: _Callbacks) -> None:
    with open(path, "rb") as f:  # the run's own checkpoint (see checkpoint.py)
        state = pickle.load(f)
    venv, layers = model.get_env(), state["venv"]["layers"]
    chain = []
    while isinstance(venv, VecEnvWrapper):
        chain.append(venv)
        venv = venv.venv
    if len(chain) != len(layers):
        raise ValueError(
            f"{path}: the training envs have {len(chain)} wrappers, the checkpoint {len(layers)}"
        )
    for wrapper, saved in zip(chain, layers, strict=True):
        vars(wrapper).update(saved)
    if chain:
        chain[-1].venv = state["venv"]["base"]
    else:
        model.env = state["venv"]["base"]
    if parts.evaluator is not None and state["eval"] is not None:
        parts.evaluator.restore(state["eval"])
    if parts.checkpoints is not None and state["checkpoint_next_due"] is not None:
        parts.checkpoints.next_due = state["checkpoint_next_due"]
    model.action_space._np_random = state["action_space_rng"]
    if state["lstm_states"] is not None:
        model._last_lstm_states = state["lstm_states"]
    rng = state["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])  # noqa: NPY002 - SB3 draws from the global RNG
    torch.set_rng_state(rng["torch"])


def _resume_source(
    out: Path, env_id: str, algo: str, seed: int, n_envs: int, env_kwargs: dict[str, Any], log
) -> _Source:
    """The newest complete checkpoint of the run in ``out`` (skipped ones reported to ``log``), or a
    finished run's model.zip; refuses a run of another env, algorithm, seed or env count, and a
    run whose normalisation statistics are missing."""
    config = out / "config.yml"
    if not config.is_file():
        raise FileNotFoundError(f"cannot resume: {config} does not exist (no earlier run in {out})")
    point, skipped = find_resume_point(out / "checkpoints")
    for name, reason in skipped:
        log(f"resume: skipped checkpoints/{name}: {reason}")
    if point is not None:
        _check_same_run(point, env_id, algo, seed, n_envs, env_kwargs)
        log(f"resume: continuing checkpoints/{point.path.name} at {point.steps:,} steps")
        return _Source(
            point.path / MODEL,
            point.file(STATS),
            point.path / STATE,
            point.file(REPLAY),
            point.steps,
            skipped,
        )
    model = out / "model.zip"
    if not model.is_file():
        raise FileNotFoundError(
            f"cannot resume: no complete checkpoint in {out / 'checkpoints'} and no {model}"
        )
    meta = read_zip_metadata(model)
    _check_same_run_meta(meta, env_id, algo, model)
    stats = out / "vecnormalize.pkl"
    if meta.normalization is not None and not stats.is_file():
        raise FileNotFoundError(
            f"cannot resume: {model} was trained with observation normalisation but {stats} is missing; "
            "resuming would restart the statistics from scratch"
        )
    log(
        f"resume: no complete checkpoint; continuing {model} at {meta.timesteps:,} steps (its envs and "
        "random state start afresh, so the result will differ from an uninterrupted run)"
    )
    return _Source(model, stats if stats.is_file() else None, None, None, meta.timesteps, skipped)


def _check_same_run(
    point: ResumePoint, env_id: str, algo: str, seed: int, n_envs: int, env_kwargs: dict[str, Any]
) -> None:
    m = point.manifest
    for key, flag, value in (
        ("env_id", "the env id", env_id),
        ("algo", "--algo", algo),
        ("seed", "--seed", seed),
        ("n_envs", "--n-envs", n_envs),
        ("env_kwargs", "--env-kwargs/--scenario", _plain(env_kwargs)),
    ):
        if m.get(key) != value:
            raise ValueError(
                f"cannot resume: checkpoints/{point.path.name} was a run with {key}={m.get(key)!r}, "
                f"not {value!r} (pass the same {flag} as the run)"
            )


def _check_same_run_meta(meta: PolicyMetadata, env_id: str, algo: str, where: Path) -> None:
    for key, value in (("env_id", env_id), ("algo", algo)):
        if getattr(meta, key) != value:
            raise ValueError(
                f"cannot resume: {where} was a run with {key}={getattr(meta, key)!r}, not {value!r}"
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
    check_algo_kwargs(algo, hp.algo_kwargs, hp.source)
    if not overrides:
        return hp
    extra = parse_entry(dict(overrides), "--hyperparams")
    check_algo_kwargs(algo, extra.algo_kwargs, "--hyperparams")
    for key in overrides:
        if key in ZOO_KEYS:
            setattr(hp, key, getattr(extra, key))
    hp.algo_kwargs.update(extra.algo_kwargs)
    hp.raw.update(overrides)
    if algo in OFF_POLICY and "n_steps" in hp.algo_kwargs:
        raise ValueError(f"{algo} has no n_steps (it is off-policy); use train_freq")
    return hp


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
