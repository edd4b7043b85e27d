"""The numpy-batched MecOffload-v0 (vector_entry_point) and its SB3 VecEnv adapter."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import servegym  # noqa: F401  (registers the ids)
from servegym.agents.vec_env import make_sb3_vec_env
from servegym.envs.edge.system import MecConfig
from servegym.envs.mec_offload import MecOffloadEnv, estimates_at
from servegym.envs.mec_vector import MecOffloadVectorEnv

MEC_ID = "servegym/MecOffload-v0"
N = 8
PREF = estimates_at(MecConfig()) - 2  # the preference w
# no local queueing, no deadline-miss term
LIGHT_LOCAL = {"preference": 0.5, "arrival_rate": 2.0, "num_users": 200, "miss_penalty": 0.0}


def make_vec(**kwargs) -> MecOffloadVectorEnv:
    env = gym.make_vec(MEC_ID, num_envs=N, vectorization_mode="vector_entry_point", **kwargs)
    assert isinstance(env, MecOffloadVectorEnv)
    return env


def test_make_vec_spaces_and_step():
    env = make_vec()
    single = MecOffloadEnv()
    assert env.num_envs == N
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    assert env.action_space == gym.spaces.MultiDiscrete([12] * N)
    obs, info = env.reset(seed=0)
    assert obs.shape == (N, 177) and obs.dtype == np.float32 and obs in env.observation_space
    assert isinstance(info, dict)
    np.testing.assert_array_equal(info["action_mask"], env.action_masks())
    masks = env.action_masks()
    assert masks.shape == (N, 12) and masks[:, 0].all()
    assert not (masks[:, 2:] & ~env.system.edge_exists).any()
    np.testing.assert_array_equal(env.system.edge_exists.sum(axis=1), env.system.num_edges)
    obs, reward, terminated, truncated, info = env.step(np.zeros(N, dtype=np.int64))
    assert obs in env.observation_space
    assert reward.shape == (N,) and reward.dtype == np.float64 and np.all(np.isfinite(reward))
    assert terminated.dtype == truncated.dtype == bool and not terminated.any() and not truncated.any()
    assert np.all(np.isfinite(info["delay_s"])) and not info["rejected_action"].any()


def test_infos_carry_the_action_masks_like_a_vector_of_scalar_envs():
    """Reset and step infos hold ``action_mask`` (and ``_action_mask``), as gymnasium's vector of
    the scalar env does; the masks are those of the pending tasks (after autoreset)."""
    batched = make_vec()
    sync = gym.make_vec(MEC_ID, num_envs=N, vectorization_mode="sync")
    _, b_info = batched.reset(seed=0)
    _, s_info = sync.reset(seed=0)
    for info in (b_info, s_info):
        assert info["action_mask"].shape == (N, 12) and info["action_mask"].dtype == bool
        assert info["_action_mask"].all()
    rng = np.random.default_rng(0)
    for _ in range(120):  # past the autoreset after 100 tasks
        masks = batched.action_masks()
        *_, info = batched.step(np.argmax(masks * rng.random(masks.shape), axis=1))
        np.testing.assert_array_equal(info["action_mask"], batched.action_masks())
        np.testing.assert_array_equal(info["action_mask"], batched.system.action_masks())
        assert info["_action_mask"].all()
        info["action_mask"][:] = False  # a copy: the env's masks do not change
        assert batched.action_masks()[:, 0].all()
    _, _, _, _, s_info = sync.step(np.zeros(N, dtype=np.int64))
    assert {"action_mask", "_action_mask"} <= set(s_info)


def test_autoreset_after_100_tasks_with_final_obs():
    env = make_vec()
    obs, _ = env.reset(seed=1)
    local = np.zeros(N, dtype=np.int64)
    for _ in range(99):
        obs, _, _, truncated, info = env.step(local)
        assert not truncated.any() and "final_obs" not in info
    w_before = env.system.preference.copy()
    obs, _, terminated, truncated, info = env.step(local)
    assert truncated.all() and not terminated.any()
    assert info["_final_obs"].all() and info["final_obs"].shape == (N, 177)
    assert all(row in env.single_observation_space for row in info["final_obs"])
    assert not np.array_equal(info["final_obs"], obs)  # the new episodes' first observations
    np.testing.assert_allclose(info["final_obs"][:, PREF], w_before, atol=1e-6)
    assert (env.system.tasks_done == 0).all()
    assert not np.allclose(env.system.preference, w_before)  # re-drawn per episode
    np.testing.assert_allclose(obs[:, PREF], env.system.preference, atol=1e-6)
    _, _, _, truncated, info = env.step(local)
    assert not truncated.any() and "final_obs" not in info


def test_rejected_actions_do_not_count_and_leave_the_task_pending():
    env = make_vec(num_edges=2, invalid_action_penalty=0.5)
    env.reset(seed=2)
    actions = np.zeros(N, dtype=np.int64)
    actions[:3] = 9  # edge 7 does not exist
    s = env.system
    before = {k: getattr(s, k).copy() for k in ("now", "user", "dnn", "deadline", "rates", "local_busy")}
    _, reward, _, truncated, info = env.step(actions)
    np.testing.assert_array_equal(info["rejected_action"], np.arange(N) < 3)
    np.testing.assert_array_equal(reward[:3], -0.5)
    assert np.isnan(info["delay_s"][:3]).all() and np.isfinite(info["delay_s"][3:]).all()
    np.testing.assert_array_equal(s.tasks_done, (np.arange(N) >= 3).astype(int))
    for key, value in before.items():  # rejected rows: untouched; the others moved on
        np.testing.assert_array_equal(getattr(s, key)[:3], value[:3], err_msg=key)
    assert np.all(s.now[3:] > before["now"][3:])
    for _ in range(99):  # rows 0-2 need one more task to finish their episode
        _, _, _, truncated, info = env.step(np.zeros(N, dtype=np.int64))
    np.testing.assert_array_equal(truncated, np.arange(N) >= 3)
    np.testing.assert_array_equal(info["_final_obs"], np.arange(N) >= 3)
    _, _, _, truncated, _ = env.step(np.zeros(N, dtype=np.int64))
    np.testing.assert_array_equal(truncated, np.arange(N) < 3)


def test_one_env_vector_reproduces_the_scalar_env_exactly():
    """Same seed, batch of one: the same random stream, so identical trajectories (including
    rejected actions, autoresets and final observations)."""
    vec, scalar = MecOffloadVectorEnv(1), MecOffloadEnv()
    v_obs, _ = vec.reset(seed=4)
    s_obs, _ = scalar.reset(seed=4)
    np.testing.assert_array_equal(v_obs[0], s_obs)
    rng = np.random.default_rng(0)
    resets = rejected = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(260):
            a = int(rng.integers(12))
            v_obs, v_r, v_term, v_trunc, v_info = vec.step(np.array([a]))
            s_obs, s_r, s_term, s_trunc, s_info = scalar.step(a)
            assert v_r[0] == s_r and v_trunc[0] == s_trunc and v_term[0] == s_term
            assert bool(v_info["rejected_action"][0]) == ("rejected_action" in s_info)
            rejected += "rejected_action" in s_info
            mask = s_info["action_mask"]
            if s_trunc:
                np.testing.assert_array_equal(v_info["final_obs"][0], s_obs)
                s_obs, reset_info = scalar.reset()
                mask = reset_info["action_mask"]  # the vector env's info is after its autoreset
                resets += 1
            np.testing.assert_array_equal(v_info["action_mask"][0], mask)
            if "delay_s" in s_info:
                assert v_info["delay_s"][0] == s_info["delay_s"]
                assert v_info["energy_j"][0] == s_info["energy_j"]
            else:
                assert np.isnan(v_info["delay_s"][0])
            np.testing.assert_array_equal(v_obs[0], s_obs)
    assert resets >= 1 and rejected >= 10


def test_seeding():
    a, b, c = make_vec(), make_vec(), make_vec()
    oa, ob, oc = a.reset(seed=5)[0], b.reset(seed=5)[0], c.reset(seed=6)[0]
    np.testing.assert_array_equal(oa, ob)
    assert not np.array_equal(oa, oc)
    assert len({row.tobytes() for row in oa}) == N  # independent systems
    rng = np.random.default_rng(1)
    for _ in range(150):
        act = np.array([rng.choice(np.flatnonzero(m)) for m in a.action_masks()])
        sa, sb = a.step(act), b.step(act)
        for x, y in zip(sa[:4], sb[:4], strict=True):
            np.testing.assert_array_equal(x, y)


def test_bad_input():
    with pytest.raises(ValueError, match="num_envs"):
        MecOffloadVectorEnv(0)
    with pytest.raises(ValueError, match="presets"):
        MecOffloadVectorEnv(2, scenario="nope")
    with pytest.raises(ValueError, match="unknown MEC option"):
        MecOffloadVectorEnv(2, bogus=1)
    with pytest.raises(ValueError, match="preference"):
        MecOffloadVectorEnv(2, preference=1.5)
    env = MecOffloadVectorEnv(2)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros(2, dtype=int))
    env.reset(seed=0)
    for bad in (np.zeros(3, dtype=int), np.array([0, 12]), np.array([-1, 0])):
        with pytest.raises(ValueError, match="actions"):
            env.step(bad)


def test_vector_env_validates_the_penalty_like_the_scalar_env():
    with pytest.raises(ValueError, match="invalid_action_penalty"):
        MecOffloadVectorEnv(2, invalid_action_penalty=-1.0)


def test_vector_env_rejects_non_integer_actions_like_the_scalar_env():
    env = MecOffloadVectorEnv(2)
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(np.array([0.5, 1.7]))


# -- in distribution: the batch of 8 behaves like 8 scalar envs ---------------------------------------
def _policy(masks: np.ndarray, name: str) -> np.ndarray:
    """[B] actions: all local, or the cloud unless its uplink is masked (outage), else local."""
    return np.where(masks[:, 1], 1, 0) if name == "cloud" else np.zeros(len(masks), dtype=np.int64)


def _episode_stats(kwargs, policy, vec_steps, scalar_steps, seed):
    """Per-episode (mean reward, median delay, miss rate) from 8 vector and 8 scalar envs
    (the policies never pick masked actions, so every 100 steps of an env are one episode)."""

    def per_episode(reward, delay, missed):  # [tasks] of one env, 100-task episodes
        shape = (-1, 100)
        return np.stack(
            [
                reward.reshape(shape).mean(1),
                np.median(delay.reshape(shape), 1),
                missed.reshape(shape).mean(1),
            ],
            axis=1,
        )

    vec = MecOffloadVectorEnv(N, **kwargs)
    vec.reset(seed=seed)
    rec = []
    for _ in range(vec_steps):
        _, r, _, _, info = vec.step(_policy(vec.action_masks(), policy))
        assert not info["rejected_action"].any()
        rec.append((r, info["delay_s"], info["deadline_missed"]))
    r, d, m = (np.array(x) for x in zip(*rec, strict=True))
    v = np.concatenate([per_episode(r[:, i], d[:, i], m[:, i]) for i in range(N)])
    s = []
    for i in range(N):
        env = MecOffloadEnv(**kwargs)
        env.reset(seed=seed + 1 + i)
        rec = []
        for _ in range(scalar_steps):
            _, rew, _, truncated, info = env.step(int(_policy(env.action_masks()[None], policy)[0]))
            rec.append((rew, info["delay_s"], info["deadline_missed"]))
            if truncated:
                env.reset()
        s.append(per_episode(*(np.array(x) for x in zip(*rec, strict=True))))
    return v, np.concatenate(s)


def _assert_same_mean(v, s, names, z_max=4.0, rel_max=None):
    mv, ms = v.mean(0), s.mean(0)
    se = np.sqrt(v.var(0, ddof=1) / len(v) + s.var(0, ddof=1) / len(s))
    for i, name in enumerate(names):
        assert abs(mv[i] - ms[i]) <= z_max * se[i], f"{name}: vector {mv[i]:.4g} vs scalar {ms[i]:.4g}"
        if rel_max is not None:
            assert abs(mv[i] - ms[i]) <= rel_max * abs(ms[i]), f"{name}: {mv[i]:.4g} vs {ms[i]:.4g}"


NAMES = ("mean reward", "median delay", "miss rate")


def test_vector_matches_scalar_envs_in_distribution():
    """Statistics of whole episodes (the independent units) agree within 4 standard errors."""
    v, s = _episode_stats(LIGHT_LOCAL, "local", vec_steps=1500, scalar_steps=300, seed=10)
    _assert_same_mean(v, s, NAMES)
    # all-local on idle devices: the reward's expectation is the table average
    t = MecOffloadEnv(**LIGHT_LOCAL).config.tables
    expected = np.mean(0.5 * (-t.local_time / 0.5) + 0.5 * (-t.local_energy / 0.5))
    assert v[:, 0].mean() == pytest.approx(expected, rel=0.05)
    assert s[:, 0].mean() == pytest.approx(expected, rel=0.08)
    v, s = _episode_stats({"preference": 0.5}, "cloud", vec_steps=1500, scalar_steps=300, seed=20)
    _assert_same_mean(v[:, 1:], s[:, 1:], NAMES[1:])


@pytest.mark.slow
def test_vector_matches_scalar_envs_in_distribution_within_a_few_percent():
    v, s = _episode_stats(LIGHT_LOCAL, "local", vec_steps=6000, scalar_steps=2500, seed=30)
    _assert_same_mean(v[:, :2], s[:, :2], NAMES[:2], rel_max=0.04)
    v, s = _episode_stats({"preference": 0.5}, "cloud", vec_steps=3000, scalar_steps=1500, seed=40)
    _assert_same_mean(v[:, 1:], s[:, 1:], NAMES[1:], rel_max=0.05)


# -- SB3 adapter ---------------------------------------------------------------------------------------
ENV_ID = "servegym/MecOffload-v0"


def test_sb3_adapter_protocol():
    from stable_baselines3.common.vec_env import VecEnv

    venv = make_sb3_vec_env(ENV_ID, N)
    assert isinstance(venv, VecEnv) and venv.num_envs == N
    assert venv.observation_space.shape == (177,) and venv.action_space == gym.spaces.Discrete(12)
    venv.seed(3)
    obs = venv.reset()
    venv.seed(3)
    np.testing.assert_array_equal(venv.reset(), obs)
    masks = venv.env_method("action_masks")
    assert len(masks) == N
    np.testing.assert_array_equal(np.stack(masks), venv.venv.action_masks())
    assert len(venv.env_method("action_masks", indices=[1, 4])) == 2
    assert venv.get_attr("config")[0] is venv.venv.config
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * N
    for step in range(100):
        obs, rewards, dones, infos = venv.step(np.zeros(N, dtype=np.int64))
        assert rewards.dtype == np.float32 and obs.shape == (N, 177)
        assert dones.all() == (step == 99)
    for info in infos:
        assert info["TimeLimit.truncated"] is True
        assert info["terminal_observation"].shape == (177,)
        assert not np.array_equal(info["terminal_observation"], obs[0])
    venv.close()


def _record_rejections(venv) -> list[np.ndarray]:
    record: list[np.ndarray] = []
    inner_step = venv.venv.step

    def step(actions):
        out = inner_step(actions)
        record.append(out[4]["rejected_action"].copy())
        return out

    venv.venv.step = step
    return record


@pytest.mark.parametrize("algo", ["PPO", "MaskablePPO"])
def test_sb3_learns_on_the_adapter(algo):
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    venv = make_sb3_vec_env(ENV_ID, N)
    rejected = _record_rejections(venv)
    cls = {"PPO": PPO, "MaskablePPO": MaskablePPO}[algo]
    model = cls("MlpPolicy", venv, n_steps=64, batch_size=128, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=512)
    assert model.num_timesteps == 512 and len(rejected) == 64
    if algo == "MaskablePPO":  # the masks reach the policy through env_method("action_masks")
        assert not np.any(rejected)
    else:
        assert np.any(rejected)
    obs = venv.reset()
    kwargs = {"action_masks": np.stack(venv.env_method("action_masks"))} if algo == "MaskablePPO" else {}
    actions, _ = model.predict(obs, **kwargs)
    assert actions.shape == (N,) and venv.action_space.contains(int(actions[0]))


def test_vector_env_reports_the_scalar_envs_episode_kpis() -> None:
    import gymnasium as gym

    env = gym.make("servegym/MecOffload-v0").unwrapped
    vec = MecOffloadVectorEnv(1)
    env.reset(seed=5)
    vec.reset(seed=5)
    for _ in range(100):
        action = int(np.flatnonzero(env.action_masks())[-1])
        _, _, _, truncated, info = env.step(action)
        _, _, _, vec_truncated, vec_info = vec.step(np.array([action]))
    assert truncated and vec_truncated[0]
    assert vec_info["episode_kpis"][0] == info["episode_kpis"]
    sb3 = make_sb3_vec_env(ENV_ID, 3)
    sb3.reset()
    for _ in range(100):
        masks = np.stack(sb3.env_method("action_masks"))
        _, _, dones, infos = sb3.step(masks.argmax(axis=1))
    assert dones.all() and all(i["episode_kpis"]["tasks"] == 100 for i in infos)


def test_pickle_round_trip_continues_identically():
    """The system's buffers are views rebuilt after unpickling: the clone steps exactly as the
    original, through autoresets."""
    import pickle

    env = MecOffloadVectorEnv(4, scenario="multi-edge-busy")
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    for _ in range(30):
        env.step(np.argmax(env.action_masks() * rng.random((4, 12)), axis=1))
    clone = pickle.loads(pickle.dumps(env))
    np.testing.assert_array_equal(clone.action_masks(), env.action_masks())
    for _ in range(100):
        actions = np.argmax(env.action_masks() * rng.random((4, 12)), axis=1)
        for a, b in zip(env.step(actions), clone.step(actions), strict=True):
            if isinstance(a, dict):
                assert a.keys() == b.keys()
                for k in a:
                    if a[k].dtype != object:
                        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
            else:
                np.testing.assert_array_equal(a, b)
    clone.system.observe()
    assert np.shares_memory(clone.system.delay_estimate, clone.system.reported)
