"""MecOffload-v0 and DnnSplit-v0: env checkers, determinism, pickling, fuzzing, masks, bad input
and the scalarised reward."""

from __future__ import annotations

import copy
import math
import pickle
import warnings
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import servegym  # noqa: F401  (registers the ids)
from servegym.envs.mec_offload import PRESETS, DnnSplitEnv, MecOffloadEnv, estimates_at, observation_size

MEC_ID, SPLIT_ID = "servegym/MecOffload-v0", "servegym/DnnSplit-v0"
ENV_IDS = (MEC_ID, SPLIT_ID)


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Recursive exact equality of observations, rewards and infos (NaN equals NaN)."""
    if isinstance(a, Mapping):
        assert isinstance(b, Mapping) and set(a) == set(b), f"{path}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, f"{path}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), f"{path}: {a} != {b}"
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"


def random_valid_action(env: gym.Env, rng: np.random.Generator) -> int:
    return int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))


def rollout(env: gym.Env, seed: int, steps: int, masked_every: int = 0) -> list[tuple]:
    """Steps with random valid actions (and a masked one every ``masked_every`` steps)."""
    rng = np.random.default_rng(seed + 1000)
    out = [env.reset(seed=seed)]
    for i in range(steps):
        mask = env.unwrapped.action_masks()
        if masked_every and i % masked_every == 0 and not mask.all():
            action = int(np.flatnonzero(~mask)[0])
        else:
            action = random_valid_action(env, rng)
        step = env.step(action)
        out.append(step)
        if step[2] or step[3]:
            out.append(env.reset())
    return out


def _user_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


# -- checkers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)
    # the checker steps random (possibly masked) actions: those are rejected, nothing else warns
    assert all("rejected; see action_masks()" in w for w in _user_warnings(record)), _user_warnings(record)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        sb3_check_env(env.unwrapped, warn=True)
    assert all("rejected; see action_masks()" in w for w in _user_warnings(record)), _user_warnings(record)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_and_info(env_id):
    env = gym.make(env_id)
    cfg = env.unwrapped.config
    obs, info = env.reset(seed=0)
    if env_id == MEC_ID:
        assert env.action_space == gym.spaces.Discrete(cfg.max_edges + 2) == gym.spaces.Discrete(12)
        assert env.observation_space.shape == (observation_size(cfg),) == (4 + 3 + 1 + 13 * 11 + 2 + 2 * 12,)
    else:
        layers = int(env.unwrapped.system.tables.num_layers.max())
        assert env.action_space == gym.spaces.Discrete(layers + 1)
        assert env.observation_space.shape == (observation_size(cfg) + 2 * (layers + 1),)
    assert env.observation_space.dtype == np.float32 and obs in env.observation_space
    assert info["action_mask"].dtype == bool and info["action_mask"].shape == (env.action_space.n,)
    obs, reward, terminated, truncated, info = env.step(random_valid_action(env, np.random.default_rng(0)))
    assert isinstance(reward, float) and not terminated and not truncated
    assert {"metrics", "action_mask", "reward_vec", "reward_terms", "reward_weights"} <= set(info)
    assert {"delay_s", "energy_j", "deadline_missed"} <= set(info)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observation_carries_the_per_action_estimates(env_id):
    """Per action: predicted delay / deadline clipped to [0, 1], and the squashed task cost (with
    the deadline-miss penalty)."""
    env = gym.make(env_id, arrival_rate=15.0)
    cfg, rng = env.unwrapped.config, np.random.default_rng(1)
    at, n = estimates_at(cfg), cfg.max_edges + 2
    obs, info = env.reset(seed=2)
    for _ in range(150):
        m = info["metrics"]
        with np.errstate(invalid="ignore"):
            delay = np.clip(np.nan_to_num(m["delay_estimate_s"] / m["deadline_s"], posinf=1.0), 0, 1)
        np.testing.assert_array_equal(obs[at : at + n], delay.astype(np.float32))
        w = m["preference"]
        with np.errstate(invalid="ignore"):
            cost = w * m["delay_estimate_s"] / 0.5 + (1 - w) * m["energy_estimate_j"] / 0.5
            cost = cost + cfg.miss_penalty * (m["delay_estimate_s"] > m["deadline_s"])
            squashed = np.where(np.isfinite(cost), cost / (1 + cost), 1.0)
        np.testing.assert_allclose(obs[at + n : at + 2 * n], squashed, rtol=1e-6, atol=1e-6)
        # the squashed cost keeps the order: its argmin over available actions is greedy-weighted's
        valid = np.isfinite(cost)
        best = np.flatnonzero(valid)[np.argmin(cost[valid])]
        assert obs[at + n + best] == obs[at + n : at + 2 * n][valid].min()
        assert np.all(obs[at : at + 2 + cfg.max_edges][2:][~np.asarray(m["edge_exists"])] == 1.0)
        obs, _, _, truncated, info = env.step(random_valid_action(env, rng))
        if truncated:
            obs, info = env.reset()


# -- determinism, pickling -------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = rollout(gym.make(env_id), seed=3, steps=230, masked_every=17)
        b = rollout(gym.make(env_id), seed=3, steps=230, masked_every=17)
        c = rollout(gym.make(env_id), seed=4, steps=5)
    assert sum(len(s) == 2 for s in a) == 3  # two autoresets (100-task episodes) happened
    assert_same(a, b)
    assert not np.array_equal(a[0][0], c[0][0])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_round_trip_continues_identically(env_id):
    env = gym.make(env_id, scenario="multi-edge-busy")
    rollout(env, seed=1, steps=40)  # queues are non-empty
    clone = pickle.loads(pickle.dumps(env))
    assert clone.unwrapped.config == env.unwrapped.config
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(80):
        step_a = env.step(random_valid_action(env, rng_a))
        step_b = clone.step(random_valid_action(clone, rng_b))
        assert_same(step_a, step_b)


# -- fuzzing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", sorted(PRESETS))
def test_fuzz_random_valid_actions(scenario):
    """1,000 random valid actions per preset (5,000 over the presets): finite, in-space, sane."""
    env = MecOffloadEnv(scenario)
    rng = np.random.default_rng(sorted(PRESETS).index(scenario))
    obs, info = env.reset(seed=int(rng.integers(2**31)))
    for _ in range(1000):
        action = random_valid_action(env, rng)
        est_d = info["metrics"]["delay_estimate_s"][action]
        est_e = info["metrics"]["energy_estimate_j"][action]
        obs, reward, terminated, truncated, info = env.step(action)
        assert "rejected_action" not in info
        assert np.isfinite(reward) and not terminated
        assert obs in env.observation_space
        assert info["delay_s"] == est_d and info["energy_j"] == est_e  # the estimate is exact
        assert 0 < info["delay_s"] < np.inf and 0 <= info["energy_j"] < np.inf
        if truncated:
            obs, info = env.reset()


def test_fuzz_dnn_split():
    env = DnnSplitEnv(scenario="far-cell")
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    for _ in range(1000):
        obs, reward, _, truncated, info = env.step(random_valid_action(env, rng))
        assert np.isfinite(reward) and obs in env.observation_space and "rejected_action" not in info
        if truncated:
            obs, info = env.reset()


def test_deadline_missed_and_episode_length():
    env = MecOffloadEnv(episode_tasks=30)
    _, info = env.reset(seed=2)
    rng = np.random.default_rng(2)
    for i in range(30):
        deadline = info["metrics"]["deadline_s"]
        _, _, terminated, truncated, info = env.step(random_valid_action(env, rng))
        assert info["deadline_missed"] == (info["delay_s"] > deadline)
        assert not terminated and truncated == (i == 29)


# -- masks -----------------------------------------------------------------------------------------
def expected_mask(env: MecOffloadEnv) -> np.ndarray:
    """Local always; cloud and existing edges unless the uplink is in outage (if configured)."""
    s = env.system
    up = s.rates[0] >= getattr(env.config, "min_rate_bps", 0.0)
    return np.concatenate([[True], up[:1], s.edge_exists[0] & up[1:]])


def test_nonexistent_edges_are_masked():
    env = MecOffloadEnv()
    seen = set()
    for seed in range(30):
        _, info = env.reset(seed=seed)
        n = info["metrics"]["num_edges"]
        seen.add(n)
        exists = np.arange(10) < n
        mask = env.action_masks()
        assert mask[0] and not mask[2:][~exists].any()
        np.testing.assert_array_equal(mask, expected_mask(env))
        np.testing.assert_array_equal(info["action_mask"], mask)
        np.testing.assert_array_equal(info["metrics"]["edge_exists"], exists)
        np.testing.assert_array_equal(np.isinf(info["metrics"]["delay_estimate_s"][2:]), ~exists)
    assert len(seen) >= 5  # 1..10 edges are drawn per episode
    env = MecOffloadEnv(num_edges=3, edge_distance_m=(50.0, 60.0))  # close: no outage
    env.reset(seed=0)
    for _ in range(20):
        np.testing.assert_array_equal(env.action_masks(), np.arange(12) < 5)
        env.step(0)


def _pending(env: MecOffloadEnv) -> dict[str, Any]:
    s = env.system
    names = ("now", "user", "dnn", "deadline", "rates", "tasks_done", "edge_busy", "local_busy")
    return {k: getattr(s, k).copy() for k in names}


@pytest.mark.parametrize("penalty", [1.0, 0.25])
def test_masked_action_is_rejected_not_executed(penalty):
    kwargs = {} if penalty == 1.0 else {"invalid_action_penalty": penalty}
    env = gym.make(MEC_ID, num_edges=3, edge_distance_m=(50.0, 60.0), **kwargs)
    obs, _ = env.reset(seed=5)
    env.step(2)  # something in the queues
    obs, *_ = env.step(0)
    assert env.unwrapped.system.tasks_done[0] == 2
    before = _pending(env.unwrapped)
    with pytest.warns(UserWarning, match="edge 5 is not available"):
        obs2, reward, terminated, truncated, info = env.step(7)
    assert reward == -penalty and not terminated and not truncated
    assert "edge 5" in info["rejected_action"] and "masked" in info["rejected_action"]
    assert info["reward_terms"] == {"invalid_action": -penalty}
    assert "reward_vec" not in info
    assert_same(_pending(env.unwrapped), before)  # the task is still pending, nothing ran
    np.testing.assert_array_equal(obs2, obs)
    _, reward, *_ = env.step(4)  # the same task is then executed normally
    assert reward > -10 and env.unwrapped.system.tasks_done[0] == 3


def test_rejections_warn_once_per_env():
    env = MecOffloadEnv(num_edges=1)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="later rejections are reported only in info"):
        env.step(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, _, _, info = env.step(5)
    assert "masked" in info["rejected_action"]


def test_masked_action_raises_with_invalid_action_raise():
    env = MecOffloadEnv(num_edges=2, invalid_action="raise", edge_distance_m=(50.0, 60.0))
    env.reset(seed=0)
    before = _pending(env)
    with pytest.raises(ValueError, match=r"edge 2 is not available"):
        env.step(4)
    assert_same(_pending(env), before)
    env.step(3)  # edge 1 exists
    assert env.system.tasks_done[0] == 1


def test_dnn_split_masks_layers_beyond_the_dnn():
    env = DnnSplitEnv(dnns=("MobileNetV2", "BERT-base"))  # 21 and 14 layers
    _, info = env.reset(seed=0)
    for _ in range(40):
        layers = env.system.tables.num_layers[env.system.dnn[0]]
        mask = env.action_masks()
        np.testing.assert_array_equal(mask, np.arange(env.action_space.n) <= layers)
        if layers < env.action_space.n - 1:
            with warnings.catch_warnings():  # warned once per env (see the next test)
                warnings.simplefilter("ignore")
                _, reward, *_, info = env.step(env.action_space.n - 1)
            assert reward == -1.0 and f"the DNN has {layers}" in info["rejected_action"]
        env.step(int(layers))


# -- bad input -------------------------------------------------------------------------------------
def test_unknown_scenario_lists_presets():
    with pytest.raises(ValueError, match="unknown MEC scenario") as err:
        gym.make(MEC_ID, scenario="nope")
    for name in PRESETS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="multi-edge-busy"):
        DnnSplitEnv(scenario="nope")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_userz": 3}, r"unknown MEC option.*num_userz"),
        ({"num_users": 0}, "num_users"),
        ({"num_users": 2.5}, "num_users"),
        ({"tx_power_w": -0.1}, "tx_power_w"),
        ({"tx_power_w": float("nan")}, "tx_power_w"),
        ({"preference": 1.5}, "preference"),
        ({"deadline_s": (0.0, 1.0)}, "deadline_s"),
        ({"deadline_s": (1.0, 0.5)}, "deadline_s"),
        ({"edge_distance_m": (-5.0, 10.0)}, "edge_distance_m"),
        ({"num_edges": 11}, "num_edges"),
        ({"max_edges": 0}, "max_edges"),
        ({"episode_tasks": 0}, "episode_tasks"),
        ({"speed_spread": 1.0}, "speed_spread"),
        ({"arrival_rate": -1.0}, "arrival_rate"),
        ({"dnns": ()}, "dnns"),
        ({"invalid_action": "ignore"}, "invalid_action"),
        ({"invalid_action_penalty": -1.0}, "invalid_action_penalty"),
    ],
)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_options_raise(env_id, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make(env_id, **kwargs)


def test_unknown_device_or_dnn_names_fail_at_construction():
    with pytest.raises((KeyError, ValueError)):
        MecOffloadEnv(user_devices=("NoSuchPhone",))
    with pytest.raises((KeyError, ValueError)):
        MecOffloadEnv(dnns=("NoSuchNet",))


@pytest.mark.parametrize("action", [12, -1, 100, 1.5, np.array([0, 1]), "a"])
def test_out_of_range_or_malformed_action(action):
    env = MecOffloadEnv()
    env.reset(seed=0)
    before = _pending(env)
    with pytest.raises((ValueError, TypeError)):
        env.step(action)
    assert_same(_pending(env), before)
    env.step(np.int64(0))  # numpy integers are fine


def test_step_before_reset():
    with pytest.raises(RuntimeError, match="before reset"):
        MecOffloadEnv().step(0)


# -- reward ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [(MEC_ID, {}), (MEC_ID, {"preference": 0.8}), (SPLIT_ID, {}), (MEC_ID, {"delay_ref_s": 0.2})],
)
def test_reward_is_the_task_cost_and_its_terms_add_up(env_id, kwargs):
    """reward = -(w d / T_ref + (1 - w) e / E_ref + miss_penalty [missed]), the terms add up to it,
    and the return is -episode_tasks x the primary KPI cost_per_task."""
    env = gym.make(env_id, **kwargs)
    cfg = env.unwrapped.config
    assert (cfg.delay_ref_s, cfg.energy_ref_j) == (kwargs.get("delay_ref_s", 0.5), 0.5)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    ws, total = set(), 0.0
    for _ in range(250):
        w = info["metrics"]["preference"]  # observed before the decision
        pref = obs[estimates_at(cfg) - 2 : estimates_at(cfg)]  # the estimates follow
        np.testing.assert_allclose(pref, [w, 1 - w], atol=1e-6)
        obs, reward, _, truncated, info = env.step(random_valid_action(env, rng))
        d, e = info["delay_s"], info["energy_j"]
        np.testing.assert_array_equal(info["reward_vec"], [-d, -e])
        weights = info["reward_weights"]
        assert weights == pytest.approx({"delay": w, "energy": 1 - w, "deadline_miss": cfg.miss_penalty})
        missed = -1.0 if info["deadline_missed"] else 0.0
        terms = {"delay": -d / cfg.delay_ref_s, "energy": -e / 0.5, "deadline_miss": missed}
        assert info["reward_terms"] == pytest.approx(terms, rel=1e-12, abs=1e-15)
        weighted = sum(weights[k] * v for k, v in info["reward_terms"].items())
        assert reward == pytest.approx(weighted, rel=1e-12, abs=1e-15)
        ws.add(w)
        total += reward
        if truncated:
            kpis = info["episode_kpis"]
            assert total == pytest.approx(-kpis["cost_per_task"] * cfg.episode_tasks, rel=1e-9)
            total = 0.0
            obs, info = env.reset()
    assert len(ws) == (1 if "preference" in kwargs else 3)  # w ~ U(0, 1) per episode


def test_local_energy_and_delay_in_the_env_come_from_the_latency_model():
    from servegym.hardware import get_device
    from servegym.hardware.dnn import DNNLatency

    env = MecOffloadEnv(arrival_rate=0.5, num_users=50)  # idle devices: no local queue
    _, info = env.reset(seed=1)
    cfg = env.config
    for _ in range(30):
        device = cfg.user_devices[info["metrics"]["device_type"]]
        dnn = cfg.dnns[env.system.dnn[0]]
        seconds = DNNLatency(dnn, device).time()
        wait = info["metrics"]["local_wait_s"]
        _, _, _, _, info = env.step(0)
        assert info["energy_j"] == pytest.approx(get_device(device).active_power_w * seconds, rel=1e-12)
        assert info["delay_s"] == pytest.approx(wait + seconds, rel=1e-12)


def test_render_ansi():
    env = MecOffloadEnv(render_mode="ansi")
    env.reset(seed=0)
    assert "edges=" in env.render()
    assert MecOffloadEnv().render() is None


# -- metrics and observation_from_metrics ----------------------------------------------------------
BUSY = {"arrival_rate": 300.0, "edge_device": "Raspberry-Pi-5", "num_edges": 3, "max_edges": 4}


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("kwargs", [{}, BUSY])
def test_observation_from_metrics_reproduces_the_observation(env_id, kwargs):
    env = gym.make(env_id, **kwargs).unwrapped
    obs, info = env.reset(seed=11)
    rng = np.random.default_rng(12)
    queued = 0
    for _ in range(200):
        assert np.array_equal(env.observation_from_metrics(info["metrics"]), obs)
        queued += int(np.sum(info["metrics"]["edge_queued"]))
        obs, _, _, truncated, info = env.step(random_valid_action(env, rng))
        if truncated:
            obs, info = env.reset()
    assert queued > (200 if kwargs else 0)  # the busy system has queues to encode


def _as_json(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics as a live system sends them in JSON: lists, and no infinity (1e300 instead)."""
    return {k: np.nan_to_num(np.asarray(v, dtype=float), posinf=1e300).tolist() for k, v in metrics.items()}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observation_from_json_metrics_has_no_overflow_warning(env_id):
    """A missing edge's delay estimate sent as 1e300 gives the same observation as +inf, and
    nothing overflows on the way to float32 (entries are clipped before they are rounded)."""
    env = gym.make(env_id, num_edges=2).unwrapped
    obs, info = env.reset(seed=3)
    assert np.isinf(info["metrics"]["delay_estimate_s"]).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(30):
            np.testing.assert_array_equal(env.observation_from_metrics(_as_json(info["metrics"])), obs)
            obs, *_, info = env.step(random_valid_action(env, np.random.default_rng(0)))


def test_observation_from_metrics_names_missing_and_misshapen_metrics():
    env = MecOffloadEnv(max_edges=4)
    _, info = env.reset(seed=0)
    metrics = dict(info["metrics"])
    del metrics["edge_wait_s"], metrics["preference"]
    with pytest.raises(ValueError, match=r"lack 'edge_wait_s', 'preference' \(the observation needs"):
        env.observation_from_metrics(metrics)
    metrics = {**info["metrics"], "edge_histogram": np.zeros((4, 7))}
    with pytest.raises(ValueError, match=r"'edge_histogram' has shape \(4, 7\) per task, expected \(4, 8\)"):
        env.observation_from_metrics(metrics)
    metrics = {**info["metrics"], "delay_estimate_s": [0.1] * 12}  # 10-edge env's estimates
    with pytest.raises(ValueError, match=r"delay_estimate_s.*max_edges = 4"):
        env.observation_from_metrics(metrics)


def test_handed_out_observations_and_metrics_are_never_modified_by_the_env():
    """What a caller kept stays as it was handed out, across steps, new blocks of tasks (episodes
    longer than a block) and new episodes."""
    env = MecOffloadEnv(**BUSY, episode_tasks=300)
    kept, snapshots = [], []
    obs, info = env.reset(seed=5)
    rng = np.random.default_rng(6)
    for _ in range(700):
        kept.append((obs, info))
        snapshots.append(copy.deepcopy((obs, info)))
        obs, _, _, truncated, info = env.step(random_valid_action(env, rng))
        if truncated:
            obs, info = env.reset()
    for old, snap in zip(kept, snapshots, strict=True):
        assert_same(old, snap)


def test_scalar_env_metrics_are_the_systems_metrics():
    """info["metrics"] holds the system's metrics of the pending task, Python numbers for scalars."""
    env = MecOffloadEnv(**BUSY)
    _, info = env.reset(seed=7)
    rng = np.random.default_rng(8)
    for _ in range(150):
        batched = env.system.metrics()
        assert set(info["metrics"]) == set(batched)
        for k, v in batched.items():
            got = info["metrics"][k]
            assert type(got) is (type(v[0].item()) if np.ndim(v[0]) == 0 else np.ndarray), k
            np.testing.assert_array_equal(got, v[0], err_msg=k)
        np.testing.assert_array_equal(info["action_mask"], env.system.action_masks()[0])
        _, _, _, truncated, info = env.step(random_valid_action(env, rng))
        if truncated:
            _, info = env.reset()
