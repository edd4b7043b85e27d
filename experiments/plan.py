"""A suite as units of work: evaluation cells and the training runs they wait for.

A cell is one (env, scenario, controller, seed): ``episodes`` seeded episodes of the controller.
Every controller of a (scenario, seed) sees the same episode seeds (common random numbers), and
seeds never overlap between cells or with training. A learned controller's cells wait for its
training run of that seed, trained once on its training scenario. Each unit has a config hash
over everything that changes its result, so a finished unit is reused only when nothing did.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from servegym._version import __version__

from .suite import MAX_EPISODES, ControllerSpec, EnvSuite, Latency, Suite

FORMAT = 1
"""Version of the result files' layout (part of every hash)."""


@dataclass(frozen=True)
class TrainJob:
    """One training run of a learned controller: (env, label, seed)."""

    env_id: str
    label: str
    seed: int
    algo: str
    timesteps: int
    n_envs: int
    env_kwargs: dict[str, Any]
    hyperparams: dict[str, Any]
    eval_scenario: str  # the training scenario's preset ("" = the kwargs alone)
    eval_points: int
    eval_episodes: int
    config_hash: str

    @property
    def key(self) -> str:
        return f"{self.env_id}/{self.label}/seed {self.seed}"

    @property
    def path(self) -> tuple[str, ...]:
        """Folders under ``models/``; the hash keeps a changed configuration apart."""
        return (self.env_id.split("/")[-1], self.label, f"seed_{self.seed}-{self.config_hash[:10]}")


@dataclass(frozen=True)
class Trace:
    """What the first seed's cells record for the figures."""

    series: dict[str, str]
    latency: Latency | None


@dataclass(frozen=True)
class Cell:
    env_id: str
    scenario: str
    role: str
    controller: ControllerSpec
    seed: int
    env_kwargs: dict[str, Any]
    episode_seeds: tuple[int, ...]
    trace: Trace | None
    config_hash: str
    train: TrainJob | None = None  # the run whose policy this cell evaluates

    @property
    def key(self) -> str:
        return f"{self.env_id}/{self.scenario}/{self.controller.label}/seed {self.seed}"

    @property
    def path(self) -> tuple[str, ...]:
        """Folders and file name under ``cells/``."""
        return (self.env_id.split("/")[-1], self.scenario, self.controller.label, f"seed_{self.seed}.json")


@dataclass(frozen=True)
class Plan:
    suite: Suite
    cells: list[Cell]
    jobs: list[TrainJob]


def make_plan(suite: Suite) -> Plan:
    """Every cell of the suite, in a stable order, and the training runs they need."""
    cells: list[Cell] = []
    jobs: dict[tuple[str, str, int], TrainJob] = {}
    for env in suite.envs:
        for seed_index, seed in enumerate(suite.seeds):
            for controller in env.controllers:
                job = None
                if controller.trains:
                    job = jobs.setdefault(
                        (env.env_id, controller.label, seed), _train_job(env, controller, seed)
                    )
                for scenario in env.scenarios:
                    cells.append(_cell(suite, env, scenario.name, controller, seed, seed_index, job))
    return Plan(suite, cells, list(jobs.values()))


def episode_seeds(suite: Suite, env: EnvSuite, seed: int) -> tuple[int, ...]:
    return tuple(suite.eval_seed + seed * MAX_EPISODES + e for e in range(env.episodes))


def _cell(
    suite: Suite,
    env: EnvSuite,
    scenario_name: str,
    controller: ControllerSpec,
    seed: int,
    seed_index: int,
    job: TrainJob | None,
) -> Cell:
    scenario = env.scenario(scenario_name)
    trace = Trace(dict(env.series), env.latency) if seed_index == 0 else None
    seeds = episode_seeds(suite, env, seed)
    kwargs = {**scenario.kwargs, **controller.env_kwargs}
    identity = {
        "format": FORMAT,
        "servegym": __version__,
        "env_id": env.env_id,
        "env_kwargs": kwargs,
        "controller": _controller_identity(controller, job),
        "seed": seed,
        "episode_seeds": seeds,
        "trace": asdict(trace) if trace else None,
    }
    return Cell(
        env.env_id, scenario.name, scenario.role, controller, seed, kwargs, seeds, trace,
        config_hash(identity), job,
    )  # fmt: skip


def _controller_identity(controller: ControllerSpec, job: TrainJob | None) -> dict[str, Any]:
    if controller.kind != "learned":
        return {"kind": controller.kind, "name": controller.name, "params": controller.params}
    if job is None:
        return {"kind": "learned", "model": controller.model, "model_sha256": _file_hash(controller.model)}
    return {"kind": "learned", "training": job.config_hash, "checkpoint": controller.checkpoint}


def _train_job(env: EnvSuite, controller: ControllerSpec, seed: int) -> TrainJob:
    scenario = env.scenario(controller.train_scenario)
    kwargs = {**scenario.kwargs, **controller.env_kwargs}
    identity = {
        "format": FORMAT,
        "servegym": __version__,
        "env_id": env.env_id,
        "algo": controller.algo,
        "timesteps": controller.timesteps,
        "n_envs": controller.n_envs,
        "env_kwargs": kwargs,
        "hyperparams": controller.hyperparams,
        "eval_points": controller.eval_points,
        "eval_episodes": controller.eval_episodes,
        "seed": seed,
    }
    return TrainJob(
        env_id=env.env_id,
        label=controller.label,
        seed=seed,
        algo=controller.algo,
        timesteps=controller.timesteps,
        n_envs=controller.n_envs,
        env_kwargs=kwargs,
        hyperparams=dict(controller.hyperparams),
        eval_scenario=str(kwargs.get("scenario", "")),
        eval_points=controller.eval_points,
        eval_episodes=controller.eval_episodes,
        config_hash=config_hash(identity),
    )


def config_hash(identity: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a unit's configuration."""
    text = json.dumps(identity, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _file_hash(path: str) -> str:
    """The file's SHA-256 (a moved or deleted policy file counts as a changed one)."""
    if not Path(path).is_file():
        return f"missing: {path}"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
