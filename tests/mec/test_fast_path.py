"""The single-system fast path (plain Python, used by MecOffload-v0) against the batched numpy
path (used by the vector and multi-agent envs): identical values, bit for bit, in busy states
with queues, backfilling and full queue rings."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from servegym.envs.edge.system import QUEUE_SLOTS, MecBatch, MecConfig
from servegym.envs.mec_offload import MecOffloadEnv, encode_mec_observation, system_metrics

BUSY = {"arrival_rate": 300.0, "edge_device": "Raspberry-Pi-5", "num_edges": 3, "max_edges": 4}


def _state(system: MecBatch) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in vars(system).items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("kwargs", [{}, BUSY, {**BUSY, "edge_distance_m": (400.0, 1000.0)}])
def test_single_system_fast_path_equals_the_batched_path(kwargs):
    system = MecBatch(MecConfig(**kwargs), 1)
    rng, policy = np.random.default_rng(3), np.random.default_rng(4)
    system.reset(rng)
    t, waited, full = system.tables, 0, 0
    for _ in range(400):
        delay, energy = system.predict()
        j, exists = system.dnn[0], system.edge_exists[0]
        idle = t.input_bits[j] / np.maximum(system.rates[0, 1:], 1e-9) + t.edge_time[j] / system.edge_speed[0]
        waited += bool((delay[0, 2:][exists] > idle[exists] * (1 + 1e-9)).any())
        fast_delay, fast_energy = system.predict_one()
        np.testing.assert_array_equal(fast_delay, delay[0])
        np.testing.assert_array_equal(fast_energy, energy[0])
        for fast, batched in zip(system.queue_features_one(), system.queue_features(), strict=True):
            np.testing.assert_array_equal(fast, batched[0])
        mask = system.action_mask_one()
        np.testing.assert_array_equal(mask, system.action_masks()[0])
        action = int(policy.choice(np.flatnonzero(mask)))
        batched, batched_rng = copy.deepcopy(system), copy.deepcopy(rng)
        d, e, missed, done = batched.apply(np.array([action]), batched_rng)
        assert system.apply_one(action, rng) == (d[0], e[0], missed[0], done[0])
        for name, value in _state(batched).items():
            np.testing.assert_array_equal(getattr(system, name), value, err_msg=name)
        assert rng.bit_generator.state == batched_rng.bit_generator.state
        full += bool((system.queue_features_one()[1] >= QUEUE_SLOTS).any())
    if kwargs:  # the busy systems exercise queueing and full rings
        assert waited > 20 and full > 20


@pytest.mark.parametrize("kwargs", [{}, BUSY])
def test_scalar_env_observation_and_metrics_equal_the_batched_encoder(kwargs):
    env = MecOffloadEnv(**kwargs)
    obs, info = env.reset(seed=7)
    rng = np.random.default_rng(8)
    for step in range(300):
        batched = system_metrics(env.system)
        np.testing.assert_array_equal(obs, encode_mec_observation(batched, env.config)[0])
        assert set(info["metrics"]) == set(batched)
        for k, v in batched.items():
            fast = info["metrics"][k]
            assert type(fast) is (type(v[0].item()) if np.ndim(v[0]) == 0 else np.ndarray), k
            np.testing.assert_array_equal(fast, v[0], err_msg=k)
            assert np.asarray(fast).dtype == v.dtype or np.ndim(v[0]) == 0, k
        np.testing.assert_array_equal(info["action_mask"], env.system.action_masks()[0])
        mask = env.action_masks()
        action = int(rng.choice(np.flatnonzero(mask))) if step % 5 else 2  # edge 0: queues build up
        obs, _, _, truncated, info = env.step(action if mask[action] else 0)
        if truncated:
            obs, info = env.reset()


@pytest.mark.parametrize("kwargs", [{}, BUSY])
def test_observation_from_metrics_reproduces_the_observation(kwargs):
    env = MecOffloadEnv(**kwargs)
    obs, info = env.reset(seed=11)
    rng = np.random.default_rng(12)
    for _ in range(200):
        assert np.array_equal(env.observation_from_metrics(info["metrics"]), obs)
        obs, _, _, truncated, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
        if truncated:
            obs, info = env.reset()


def test_handed_out_metrics_are_never_modified_by_the_env():
    """The fast path shares precomputed (read-only) arrays between infos: what a caller kept stays
    as it was handed out, across steps, new blocks of tasks and new episodes."""
    env = MecOffloadEnv(**BUSY, episode_tasks=300)  # > TASK_BLOCK: blocks are redrawn mid-episode
    kept, snapshots = [], []
    _, info = env.reset(seed=5)
    rng = np.random.default_rng(6)
    for _ in range(700):
        kept.append(info)
        snapshots.append(copy.deepcopy(info))
        _, _, _, truncated, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
        if truncated:
            _, info = env.reset()
    for old, snap in zip(kept, snapshots, strict=True):
        np.testing.assert_array_equal(old["action_mask"], snap["action_mask"])
        for k, v in snap["metrics"].items():
            np.testing.assert_array_equal(old["metrics"][k], v, err_msg=k)
    assert not info["metrics"]["edge_exists"].flags.writeable
    assert info["metrics"]["edge_wait_s"].flags.writeable  # built per step
