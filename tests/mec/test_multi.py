"""MecOffloadParallelEnv: PettingZoo API conformance, determinism, per-agent tasks and rewards, and
the coupling of the agents through the shared edge queues."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test
from pettingzoo.utils.conversions import parallel_to_aec

from servegym.envs.mec_multi import MecOffloadParallelEnv, parallel_env
from servegym.envs.mec_offload import encode_mec_observation, estimates_at, observation_size


def _no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fn(*args, **kwargs)
    assert [str(w.message) for w in record] == []


@pytest.mark.parametrize("kwargs", [{}, {"num_users": 3, "episode_tasks": 10, "scenario": "far-cell"}])
def test_parallel_api_test(kwargs):
    # random unmasked actions: many are rejected, so agents finish at different steps
    _no_warnings(parallel_api_test, MecOffloadParallelEnv(**kwargs), num_cycles=1000)


def test_aec_api_test_through_the_conversion():
    _no_warnings(api_test, parallel_to_aec(MecOffloadParallelEnv(episode_tasks=15)), num_cycles=200)


def test_parallel_seed_test():
    _no_warnings(parallel_seed_test, lambda: parallel_env(num_users=4), num_cycles=100)


def _rollout(env: MecOffloadParallelEnv, seed: int, masked_every: int = 7):
    rng = np.random.default_rng(seed)
    out = [env.reset(seed=seed)]
    step = 0
    while env.agents:
        actions = {}
        for agent in env.agents:
            mask = out[-1][-1][agent]["action_mask"].astype(bool)
            if step % masked_every == 0 and not mask.all():
                actions[agent] = int(np.flatnonzero(~mask)[0])
            else:
                actions[agent] = int(rng.choice(np.flatnonzero(mask)))
        out.append(env.step(actions))
        step += 1
    return out


def _same(a, b, path=""):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), path
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"


def test_same_seed_same_episode_and_different_seed_differs():
    a = _rollout(MecOffloadParallelEnv(num_users=4, episode_tasks=30), seed=1)
    b = _rollout(MecOffloadParallelEnv(num_users=4, episode_tasks=30), seed=1)
    _same(a, b)
    assert len(a) > 31  # rejections delayed some agents
    c = MecOffloadParallelEnv(num_users=4, episode_tasks=30).reset(seed=2)
    assert not np.array_equal(a[0][0]["user_0"], c[0]["user_0"])
    env = MecOffloadParallelEnv(num_users=4)  # reset(seed) restarts the same episode
    first, _ = env.reset(seed=1)
    env.step(dict.fromkeys(env.agents, 0))
    again, _ = env.reset(seed=1)
    _same(first, again)
    _same(first, a[0][0])


def test_agents_spaces_and_own_tasks():
    env = MecOffloadParallelEnv(num_users=5, num_edges=3)
    assert env.possible_agents == [f"user_{i}" for i in range(5)]
    assert env.agents == []
    obs, infos = env.reset(seed=3)
    assert env.agents == env.possible_agents and set(obs) == set(infos) == set(env.agents)
    size = observation_size(env.config)
    s = env.system
    s.observe()
    expected = encode_mec_observation(s.metrics(), env.config)
    for i, agent in enumerate(env.agents):
        assert env.observation_space(agent) is env.observation_space(agent)
        assert env.action_space(agent).n == 12 and env.observation_space(agent).shape == (size,)
        assert obs[agent] in env.observation_space(agent)
        np.testing.assert_array_equal(obs[agent], expected[i])
        assert s.user[i] == i  # each agent's pending task is its own user's
        assert infos[agent]["metrics"]["device_type"] == s.user_device[0, i]
        assert infos[agent]["action_mask"].dtype == np.int8
        np.testing.assert_array_equal(infos[agent]["action_mask"], env.action_masks()[agent])
        assert infos[agent]["action_mask"][5:].sum() == 0  # 3 edges
    # one system: same w, edges, speeds, clock and queues for every agent
    for name in ("preference", "num_edges", "edge_speed", "cloud_speed", "now", "edge_busy"):
        values = getattr(s, name)
        assert np.all(values == values[:1]), name
    assert len({o[estimates_at(env.config) - 2] for o in obs.values()}) == 1
    assert env.state().shape == (5 * size,) and env.state() in env.state_space


def test_rewards_are_each_agents_scalarised_reward():
    env = MecOffloadParallelEnv(num_users=4, episode_tasks=40)
    obs, infos = env.reset(seed=4)
    rng = np.random.default_rng(4)
    w = env.system.preference[0]
    while env.agents:
        actions = {a: int(rng.choice(np.flatnonzero(infos[a]["action_mask"]))) for a in env.agents}
        obs, rewards, terms, _, infos = env.step(actions)
        for agent, r in rewards.items():
            info = infos[agent]
            d, e = info["delay_s"], info["energy_j"]
            np.testing.assert_array_equal(info["reward_vec"], [-d, -e])
            assert info["reward_weights"] == {"delay": w, "energy": 1 - w, "deadline_miss": 1.0}
            missed = 1.0 if info["deadline_missed"] else 0.0
            assert r == pytest.approx(w * (-d / 0.5) + (1 - w) * (-e / 0.5) - missed, rel=1e-12)
            weights = info["reward_weights"]
            weighted = sum(weights[k] * v for k, v in info["reward_terms"].items())
            assert r == pytest.approx(weighted, rel=1e-12)
            assert np.isfinite(r) and obs[agent] in env.observation_space(agent)
            assert not terms[agent]


def test_agents_on_the_same_edge_queue_behind_each_other():
    """Both agents send to edge 0 in the same step: user_1 (executed second) waits for user_0's
    task; its observation (taken before the step) could not know. A local decision of user_0
    leaves user_1 unaffected."""
    coupled = 0
    for seed in range(100):
        for first in (2, 0):
            env = MecOffloadParallelEnv(num_users=2, num_edges=1, edge_distance_m=(50.0, 60.0))
            _, infos = env.reset(seed=seed)
            s, t = env.system, env.system.tables
            exec0, exec1 = t.edge_time[s.dnn[:2]] / s.edge_speed[0, 0]  # before the step moves on
            est = [infos[a]["metrics"]["delay_estimate_s"][2] for a in env.agents]
            _, _, _, _, out = env.step({"user_0": first, "user_1": 2})
            d0, d1 = out["user_0"]["delay_s"], out["user_1"]["delay_s"]
            if first == 2:
                assert d0 == pytest.approx(est[0], rel=1e-12)
                # user_1 waits for user_0's task unless its data arrives after it, or it fits
                # in the idle gap before user_0's data arrives (backfilling)
                arrive1 = est[1] - exec1
                start0 = d0 - exec0
                backfilled = arrive1 + exec1 <= start0
                assert d1 == pytest.approx(est[1] if backfilled else max(arrive1, d0) + exec1, rel=1e-12)
                coupled += d1 > est[1] * (1 + 1e-9)
            else:
                assert d1 == pytest.approx(est[1], rel=1e-12)
    assert coupled >= 5


def test_next_observation_shows_the_queued_work_to_every_agent():
    env = MecOffloadParallelEnv(num_users=3, num_edges=2, edge_distance_m=(50.0, 60.0), arrival_rate=1000.0)
    env.reset(seed=5)
    _, _, _, _, infos = env.step({"user_0": 3, "user_1": 3, "user_2": 0})
    busy_until = env.system.edge_busy[0, 1]
    now = env.system.slot_s
    assert busy_until > now  # slots ~3 ms apart: the edge is still busy
    for agent in env.agents:
        metrics = infos[agent]["metrics"]
        assert metrics["edge_wait_s"][1] == pytest.approx(busy_until - now)
        assert metrics["edge_queued"][1] == 2 and metrics["edge_queued"][0] == 0


def test_load_mean_slot_gap_is_num_users_over_arrival_rate():
    env = MecOffloadParallelEnv(num_users=2, arrival_rate=5.0, episode_tasks=2000)
    env.reset(seed=6)
    for _ in range(1500):
        env.step(dict.fromkeys(env.agents, 0))
    assert env.system.slot_s / 1500 == pytest.approx(2 / 5.0, rel=0.1)  # 4 standard errors
    assert np.all(env.system.now == env.system.slot_s)


def test_truncation_after_episode_tasks_per_agent():
    env = MecOffloadParallelEnv(num_users=3, num_edges=2, episode_tasks=5)
    env.reset(seed=7)
    # user_0's first action is rejected (edge 5 does not exist): it finishes one step later
    _, rewards, _, _, infos = env.step({"user_0": 7, "user_1": 0, "user_2": 0})
    assert rewards["user_0"] == -1.0 and "edge 5" in infos["user_0"]["rejected_action"]
    for step in range(2, 6):
        _, _, terms, truncs, _ = env.step(dict.fromkeys(env.agents, 0))
        assert not any(terms.values())
        assert truncs == {"user_0": False, "user_1": step == 5, "user_2": step == 5}
    assert env.agents == ["user_0"]
    obs, _, _, truncs, _ = env.step({"user_0": 0})
    assert set(obs) == {"user_0"} and truncs == {"user_0": True} and env.agents == []
    np.testing.assert_array_equal(env.system.tasks_done, [5, 5, 5])
    with pytest.raises(RuntimeError):
        env.step({})


def test_rejected_task_stays_pending_and_raise_mode():
    env = MecOffloadParallelEnv(num_users=3, num_edges=2, invalid_action_penalty=0.3)
    env.reset(seed=8)
    s = env.system
    before = (s.dnn[0], s.deadline[0], s.rates[0].copy())
    _, rewards, _, _, infos = env.step({"user_0": 9, "user_1": 0, "user_2": 1 if s.rates[2, 0] >= 1e6 else 0})
    assert rewards["user_0"] == -0.3 and infos["user_0"]["reward_terms"] == {"invalid_action": -0.3}
    assert "reward_vec" not in infos["user_0"] and "reward_vec" in infos["user_1"]
    np.testing.assert_array_equal(s.tasks_done, [0, 1, 1])
    assert (s.dnn[0], s.deadline[0]) == before[:2] and np.array_equal(s.rates[0], before[2])
    assert s.now[0] == s.slot_s  # offered again at the next step

    env = MecOffloadParallelEnv(num_users=3, num_edges=2, invalid_action="raise")
    env.reset(seed=8)
    with pytest.raises(ValueError, match="user_2: action 9 is masked: edge 7"):
        env.step({"user_0": 0, "user_1": 0, "user_2": 9})
    np.testing.assert_array_equal(env.system.tasks_done, [0, 0, 0])  # nothing ran
    env.step({"user_0": 0, "user_1": 0, "user_2": 0})


def test_bad_input():
    with pytest.raises(ValueError, match="presets"):
        MecOffloadParallelEnv(scenario="nope")
    with pytest.raises(ValueError, match="unknown MEC option"):
        MecOffloadParallelEnv(num_agents=3)
    with pytest.raises(ValueError, match="num_users"):
        MecOffloadParallelEnv(num_users=0)
    with pytest.raises(ValueError, match="invalid_action_penalty"):
        MecOffloadParallelEnv(invalid_action_penalty=-1)
    with pytest.raises(ValueError, match="invalid_action"):
        MecOffloadParallelEnv(invalid_action="ignore")
    with pytest.raises(ValueError, match="render_mode"):
        MecOffloadParallelEnv(render_mode="human")
    env = MecOffloadParallelEnv(num_users=2)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step({"user_0": 0, "user_1": 0})
    env.reset(seed=0)
    for actions, err in [
        ({"user_0": 0}, ValueError),  # user_1 missing
        ({"user_0": 0, "user_1": 0, "user_7": 0}, ValueError),
        ({"user_0": 0, "user_1": 12}, ValueError),
        ({"user_0": -1, "user_1": 0}, ValueError),
        ({"user_0": 0.5, "user_1": 0}, ValueError),
        ({"user_0": "a", "user_1": 0}, ValueError),
        ([0, 0], TypeError),
    ]:
        with pytest.raises(err):
            env.step(actions)
    np.testing.assert_array_equal(env.system.tasks_done, [0, 0])
    env.step({"user_0": np.int64(0), "user_1": np.array(0)})
    assert MecOffloadParallelEnv(render_mode="ansi").render().startswith("t=")


def test_pickle_round_trip_continues_identically():
    import pickle

    env = MecOffloadParallelEnv(num_users=3, scenario="multi-edge-busy")
    env.reset(seed=9)
    for _ in range(5):
        env.step(dict.fromkeys(env.agents, 2))
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(20):
        actions = dict.fromkeys(env.agents, 3)
        _same(env.step(actions), clone.step(actions))
