"""Record seeded MEC runs and compare them with a recording: a refactor check, bit for bit.

    python tools/mec_golden.py record /tmp/mec_before.pkl
    python tools/mec_golden.py compare /tmp/mec_before.pkl

Runs MecOffload-v0 and DnnSplit-v0 on every preset (random valid actions, a masked one now and
then, episodes past one block of drawn tasks), the vector env (64 envs x 300 steps, some masked
actions), the PettingZoo env, and every MEC heuristic through ``experiments.mec_metrics``. Every
observation, reward, flag and info (including ``metrics`` and ``episode_kpis``) is kept with its
type. ``compare`` reports each difference (path, and the largest absolute difference of floats)
and exits 1 if there is one. The recording depends on the hardware catalog (compute times), so
it is only meaningful against the same catalog: keep it out of the repository.
"""

from __future__ import annotations

import math
import pickle
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

import servegym  # noqa: F401  (registers the ids)
from servegym.envs.mec_multi import MecOffloadParallelEnv
from servegym.envs.mec_offload import PRESETS
from servegym.experiments import mec_metrics

MEC_ID, SPLIT_ID = "servegym/MecOffload-v0", "servegym/DnnSplit-v0"


def _copy(x: Any) -> Any:
    """A deep copy keeping types (infos may share arrays between steps)."""
    if isinstance(x, Mapping):
        return {k: _copy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_copy(v) for v in x)
    if isinstance(x, np.ndarray):
        return np.array(x, copy=True) if x.dtype != object else np.array([_copy(v) for v in x], dtype=object)
    return x


def scalar_run(env_id: str, seed: int, steps: int, masked_every: int, **kwargs: Any) -> list:
    env = gym.make(env_id, **kwargs)
    rng = np.random.default_rng(seed + 1000)
    out = [_copy(env.reset(seed=seed))]
    for i in range(steps):
        mask = env.unwrapped.action_masks()
        if masked_every and i % masked_every == 0 and not mask.all():
            action = int(np.flatnonzero(~mask)[0])
        else:
            action = int(rng.choice(np.flatnonzero(mask)))
        step = env.step(action)
        out.append(_copy(step))
        if step[2] or step[3]:
            out.append(_copy(env.reset()))
    out.append(env.unwrapped.render() if env.unwrapped.render_mode else None)
    return out


def vector_run(num_envs: int, steps: int, seed: int, **kwargs: Any) -> list:
    env = gym.make_vec(MEC_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    rng = np.random.default_rng(seed)
    out = [_copy(env.reset(seed=seed))]
    for i in range(steps):
        masks = env.action_masks()
        actions = np.argmax(np.where(masks, rng.random(masks.shape), -1.0), axis=1)
        if i % 7 == 0:  # a few masked actions (where any)
            bad = np.argmax(~masks, axis=1)
            pick = (~masks).any(axis=1) & (rng.random(num_envs) < 0.3)
            actions = np.where(pick, bad, actions)
        out.append(_copy(env.step(actions)))
    return out


def multi_run(seed: int, **kwargs: Any) -> list:
    env = MecOffloadParallelEnv(**kwargs)
    rng = np.random.default_rng(seed)
    out = [_copy(env.reset(seed=seed))]
    infos = out[0][1]
    step = 0
    while env.agents:
        actions = {}
        for agent in env.agents:
            mask = infos[agent]["action_mask"].astype(bool)
            if step % 7 == 0 and not mask.all():
                actions[agent] = int(np.flatnonzero(~mask)[0])
            else:
                actions[agent] = int(rng.choice(np.flatnonzero(mask)))
        out.append(_copy(env.step(actions)))
        infos = out[-1][-1]
        out.append(env.state())
        step += 1
    return out


def heuristics_run() -> dict[str, Any]:
    out = {}
    for scenario in ("single-edge-light", "multi-edge-busy"):
        for name in mec_metrics.heuristic_names():
            r = mec_metrics.sweep(name, scenario, episodes=1, preferences=(0.0, 0.3, 1.0), seed=0)
            out[f"{scenario}/{name}"] = (r.points, r.mean_reward, r.delay, r.energy, r.missed, r.summary())
    return out


def record_all() -> dict[str, Any]:
    runs: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for env_id in (MEC_ID, SPLIT_ID):
            for i, scenario in enumerate(sorted(PRESETS)):
                runs[f"{env_id}/{scenario}"] = scalar_run(env_id, i, 330, 13, scenario=scenario)
            runs[f"{env_id}/long-episodes"] = scalar_run(
                env_id, 7, 700, 29, episode_tasks=300, arrival_rate=300.0, render_mode="ansi"
            )
            runs[f"{env_id}/busy-pi-edges"] = scalar_run(
                env_id, 8, 400, 0, arrival_rate=300.0, edge_device="Raspberry-Pi-5", num_edges=3, max_edges=4
            )
        runs["vector/default"] = vector_run(64, 300, 0)
        runs["vector/multi-edge-busy"] = vector_run(64, 300, 1, scenario="multi-edge-busy")
        runs["vector/busy-pi-edges"] = vector_run(
            16, 300, 2, arrival_rate=300.0, edge_device="Raspberry-Pi-5", num_edges=3, max_edges=4
        )
        runs["multi/default"] = multi_run(1, num_users=4, episode_tasks=30)
        runs["multi/busy"] = multi_run(2, num_users=10, episode_tasks=60, scenario="multi-edge-busy")
        runs["multi/far-cell-50"] = multi_run(3, num_users=50, episode_tasks=20, scenario="far-cell")
        runs["heuristics"] = heuristics_run()
    return runs


# Keys the refactor adds on purpose (issue 14: the vector env's infos carry the action masks, as a
# vector of scalar envs does); they are dropped from the new recording before comparing.
ADDED_KEYS = {"vector/": {"action_mask", "_action_mask"}}


def drop_added_keys(runs: dict[str, Any]) -> dict[str, Any]:
    def drop(x: Any, keys: set[str]) -> Any:
        if isinstance(x, Mapping):
            return {k: drop(v, keys) for k, v in x.items() if k not in keys}
        if isinstance(x, (list, tuple)):
            return type(x)(drop(v, keys) for v in x)
        return x

    out = {}
    for name, run in runs.items():
        keys = set().union(*(k for prefix, k in ADDED_KEYS.items() if name.startswith(prefix)))
        out[name] = drop(run, keys) if keys else run
    return out


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Every place where ``b`` differs from ``a`` (type, shape, value; NaN equals NaN)."""
    if type(a) is not type(b):
        return [f"{path}: type {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, Mapping):
        if set(a) != set(b):
            return [f"{path}: keys differ {sorted(map(str, set(a) ^ set(b)))}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} vs {len(b)}"]
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")
        ]
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{path}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"]
        if a.dtype == object:
            return [
                d
                for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{path}[{i}]")
            ]
        if np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
            return []
        if a.dtype.kind == "f":
            both = np.isfinite(a) & np.isfinite(b)
            diff = np.abs(a[both].astype(float) - b[both]).max() if both.any() else np.nan
            return [f"{path}: {int((a != b).sum())} entries differ, max abs diff {diff:.3g}"]
        return [f"{path}: {int((a != b).sum())} entries differ"]
    if isinstance(a, float) and math.isnan(a):
        return [] if math.isnan(b) else [f"{path}: nan vs {b!r}"]
    if a != b:
        diff = f" (abs diff {abs(a - b):.3g})" if isinstance(a, float) else ""
        return [f"{path}: {a!r} vs {b!r}{diff}"]
    return []


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("record", "compare"):
        print(__doc__)
        return 2
    runs = record_all()
    if argv[0] == "record":
        with open(argv[1], "wb") as f:
            pickle.dump(runs, f)
        print(f"recorded {len(runs)} runs to {argv[1]}")
        return 0
    with open(argv[1], "rb") as f:
        before = pickle.load(f)
    found = differences(before, drop_added_keys(runs))
    for line in found[:50]:
        print(line)
    print(f"{len(runs)} runs compared: {'identical' if not found else f'{len(found)} differences'}")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
