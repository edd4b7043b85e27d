"""The MEC offloading heuristics (servegym.baselines.mec): validity, optimality claims, registry."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import servegym  # noqa: F401  (registers the ids)
from servegym import baselines
from servegym.baselines.mec import (
    GreedyDelay,
    GreedyEnergy,
    GreedyWeighted,
    Lyapunov,
    Neurosurgeon,
    RandomOffload,
    RoundRobin,
)
from servegym.controller import Controller

MEC_ID = "servegym/MecOffload-v0"
SPLIT_ID = "servegym/DnnSplit-v0"
MEC_NAMES = {
    "all-local",
    "all-cloud",
    "random-offload",
    "round-robin",
    "least-loaded",
    "greedy-delay",
    "greedy-energy",
    "greedy-weighted",
    "lyapunov",
}
SPLIT_NAMES = {"neurosurgeon", "neurosurgeon-energy", "neurosurgeon-weighted"}
ORACLE_NAMES = {MEC_ID: {"mec-lookahead-oracle"}, SPLIT_ID: {"split-lookahead-oracle"}}


def rollout(env: gym.Env, controller: Any, seeds, shadows: dict[str, Any] | None = None) -> list[dict]:
    """Run ``controller`` for one episode per seed. Per step: the decision's metrics and mask, the
    action, the outcome, and the actions ``shadows`` (stateless controllers) would take."""
    shadows = shadows or {}
    steps = []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        controller.reset(seed)
        done = False
        while not done:
            a = controller.act(obs, info)
            record = {
                "metrics": info["metrics"],
                "mask": info["action_mask"].copy(),
                "action": a,
                "shadow": {k: c.act(obs, info) for k, c in shadows.items()},
            }
            obs, _, terminated, truncated, info = env.step(a)
            assert "rejected_action" not in info
            record.update(delay=info["delay_s"], energy=info["energy_j"])
            steps.append(record)
            done = terminated or truncated
    return steps


def mec_env(**kwargs: Any) -> gym.Env:
    return gym.make(MEC_ID, invalid_action="raise", **kwargs)


# -- validity -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MEC_NAMES))
def test_heuristic_picks_only_valid_actions_on_random_edge_counts(name):
    env = mec_env(scenario="default", episode_tasks=30)  # 10 episodes, 1..10 edges each
    steps = rollout(env, baselines.make(name), range(10))
    assert len(steps) == 300
    assert len({int(s["metrics"]["num_edges"]) for s in steps}) >= 4  # the masks really vary
    for s in steps:
        assert isinstance(s["action"], int) and s["mask"][s["action"]], (name, s["action"], s["mask"])


@pytest.mark.parametrize("name", sorted(MEC_NAMES))
def test_heuristic_respects_arbitrary_masks(name):
    """Masks stricter than the env's (no local, no cloud, a few edges) are still obeyed."""
    env = gym.make(MEC_ID, scenario="multi-edge-busy", episode_tasks=50)
    controller = baselines.make(name)
    rng = np.random.default_rng(1)
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        controller.reset(seed)
        done = False
        while not done:
            mask = info["action_mask"] & (rng.random(info["action_mask"].size) < 0.4)
            if not mask.any():
                mask[rng.choice(np.flatnonzero(info["action_mask"]))] = True
            a = controller.act(obs, {**info, "action_mask": mask})
            assert mask[a], (name, a, mask)
            obs, _, terminated, truncated, info = env.step(a)
            done = terminated or truncated
    with pytest.raises(ValueError, match="every action is masked"):
        controller.act(obs, {**info, "action_mask": np.zeros_like(info["action_mask"])})


@pytest.mark.parametrize("name", sorted(SPLIT_NAMES))
def test_neurosurgeon_picks_valid_argmin_splits(name):
    env = gym.make(SPLIT_ID, scenario="default", invalid_action="raise", episode_tasks=100)
    steps = rollout(env, baselines.make(name), range(3))
    key = "split_delay_estimate_s" if name == "neurosurgeon" else "split_energy_estimate_j"
    assert len({int(s["mask"].sum()) for s in steps}) >= 3  # DNNs with different layer counts
    for s in steps:
        assert s["mask"][s["action"]]
        m = s["metrics"]
        values = m[key]
        if name == "neurosurgeon-weighted":  # the env's task cost, with the episode's w
            d, e, w = m["split_delay_estimate_s"], m["split_energy_estimate_j"], m["preference"]
            with np.errstate(invalid="ignore"):
                values = w * d / 0.5 + (1 - w) * e / 0.5 + 1.0 * (d > m["deadline_s"])
        assert values[s["action"]] == pytest.approx(values[s["mask"]].min(), rel=1e-12)
    # The estimates are exact in this simulator: the outcome equals the chosen estimate.
    for s in steps:
        assert s["delay"] == pytest.approx(s["metrics"]["split_delay_estimate_s"][s["action"]])
        assert s["energy"] == pytest.approx(s["metrics"]["split_energy_estimate_j"][s["action"]])
    actions = {s["action"] for s in steps}
    assert len(actions) > 1  # the split really depends on the task


def test_neurosurgeon_delay_beats_energy_objective_and_vice_versa():
    env = gym.make(SPLIT_ID, scenario="multi-edge-busy")
    fast = rollout(env, Neurosurgeon("delay"), range(2))
    frugal = rollout(env, Neurosurgeon("energy"), range(2))
    assert np.mean([s["delay"] for s in fast]) < np.mean([s["delay"] for s in frugal])
    assert np.mean([s["energy"] for s in frugal]) < np.mean([s["energy"] for s in fast])


def test_mec_heuristic_on_the_split_env_is_refused():
    env = gym.make(SPLIT_ID)
    obs, info = env.reset(seed=0)
    with pytest.raises(ValueError, match="is this controller running on the env it was made for"):
        GreedyDelay().act(obs, info)
    env = gym.make(MEC_ID)
    obs, info = env.reset(seed=0)
    with pytest.raises(ValueError, match="DnnSplit"):
        Neurosurgeon().act(obs, info)


# -- optimality claims on a fixed-seed preset ------------------------------------------------------
@pytest.fixture(scope="module")
def busy_runs() -> dict[str, list[dict]]:
    env = mec_env(scenario="multi-edge-busy", preference=0.5)
    return {name: rollout(env, baselines.make(name), (0, 1)) for name in sorted(MEC_NAMES)}


def _mean(steps, key):
    return float(np.mean([s[key] for s in steps]))


def test_greedy_delay_has_the_lowest_mean_delay(busy_runs):
    delays = {name: _mean(steps, "delay") for name, steps in busy_runs.items()}
    assert min(delays, key=delays.get) == "greedy-delay", delays
    # and by a margin over the runner-up
    assert sorted(delays.values())[1] > 1.2 * delays["greedy-delay"], delays


def test_greedy_energy_has_the_lowest_energy(busy_runs):
    energies = {name: _mean(steps, "energy") for name, steps in busy_runs.items()}
    assert min(energies, key=energies.get) == "greedy-energy", energies
    assert all(e >= energies["greedy-energy"] for e in energies.values())


def test_all_runs_see_the_same_tasks(busy_runs):
    """The premise of the comparisons above: the task stream does not depend on the actions."""
    ref = [(s["metrics"]["task_bits"], s["metrics"]["deadline_s"]) for s in busy_runs["all-local"]]
    for steps in busy_runs.values():
        assert [(s["metrics"]["task_bits"], s["metrics"]["deadline_s"]) for s in steps] == ref


def test_all_local_energy_is_the_sum_of_local_energies(busy_runs):
    steps = busy_runs["all-local"]
    assert all(s["action"] == 0 for s in steps)
    used = sum(s["energy"] for s in steps)
    assert used == pytest.approx(sum(s["metrics"]["local_energy_j"] for s in steps), rel=1e-12)
    assert used > 0


def test_all_cloud_sends_every_task_to_the_cloud(busy_runs):
    assert all(s["action"] == 1 for s in busy_runs["all-cloud"])


# -- the weighted greedy and Lyapunov ---------------------------------------------------------------
@pytest.mark.parametrize(("w", "twin"), [(1.0, "delay"), (0.0, "energy")])
def test_greedy_weighted_at_extreme_preferences_matches_the_single_objective_greedy(w, twin):
    env = mec_env(scenario="default", preference=w, episode_tasks=50, miss_penalty=0.0)
    shadow = GreedyDelay() if twin == "delay" else GreedyEnergy()
    steps = rollout(env, GreedyWeighted(miss_penalty=0.0), range(4), shadows={"twin": shadow})
    assert all(s["action"] == s["shadow"]["twin"] for s in steps)


def test_greedy_weighted_in_between_differs_from_both():
    env = mec_env(scenario="multi-edge-busy", preference=0.5)
    steps = rollout(env, GreedyWeighted(), (0,), shadows={"d": GreedyDelay(), "e": GreedyEnergy()})
    assert any(s["action"] != s["shadow"]["d"] for s in steps)
    assert any(s["action"] != s["shadow"]["e"] for s in steps)
    # and it minimises the scalarised cost of each task
    for s in steps:
        m, mask = s["metrics"], s["mask"]
        cost = 0.5 * m["delay_estimate_s"] / 0.5 + 0.5 * m["energy_estimate_j"] / 0.5
        cost = cost + 1.0 * (m["delay_estimate_s"] > m["deadline_s"])  # the deadline-miss penalty
        assert cost[s["action"]] == pytest.approx(cost[mask].min())


def test_greedy_weighted_reads_the_episode_preference_unless_fixed():
    env = gym.make(MEC_ID, scenario="multi-edge-busy")  # w drawn per episode
    steps = rollout(env, GreedyWeighted(preference=1.0), range(3), shadows={"d": GreedyDelay()})
    assert len({s["metrics"]["preference"] for s in steps}) == 3
    assert all(s["action"] == s["shadow"]["d"] for s in steps)


def test_lyapunov_with_huge_v_is_greedy_delay():
    env = mec_env(scenario="multi-edge-busy", preference=0.5)
    steps = rollout(env, Lyapunov(V=1e9, budget_j=0.0), range(2), shadows={"d": GreedyDelay()})
    agree = np.mean([s["action"] == s["shadow"]["d"] for s in steps])
    assert agree >= 0.99
    greedy = rollout(env, GreedyDelay(), range(2))
    assert _mean(steps, "delay") == pytest.approx(_mean(greedy, "delay"), rel=0.01)


def test_lyapunov_queue_follows_the_lodco_update_and_trades_delay_for_energy():
    env = mec_env(scenario="multi-edge-busy", preference=0.5)
    lyap = Lyapunov(V=0.1, budget_j=0.03)
    obs, info = env.reset(seed=0)
    lyap.reset(0)
    q = 0.0
    for _ in range(100):
        a = lyap.act(obs, info)
        m = info["metrics"]
        cost = 0.1 * m["delay_estimate_s"] + q * m["energy_estimate_j"]
        score = np.where(info["action_mask"], cost, np.inf)
        assert score[a] == pytest.approx(score.min())
        q = max(q + m["energy_estimate_j"][a] - 0.03, 0.0)
        assert lyap.queue_j == pytest.approx(q)
        obs, _, _, truncated, info = env.step(a)
        assert info["energy_j"] == pytest.approx(m["energy_estimate_j"][a])
    assert truncated
    lyap.reset(1)
    assert lyap.queue_j == 0.0
    frugal = rollout(env, Lyapunov(V=0.1, budget_j=0.03), range(2))
    fast = rollout(env, GreedyDelay(), range(2))
    assert _mean(frugal, "energy") < 0.6 * _mean(fast, "energy")
    assert _mean(frugal, "energy") < 0.05  # near its 0.03 J budget


# -- stateful rules ------------------------------------------------------------------------------------
def test_round_robin_cycles_through_existing_edges_and_restarts_each_episode():
    env = mec_env(scenario="multi-edge-busy", episode_tasks=12)  # 5 edges
    steps = rollout(env, RoundRobin(), (0, 1))
    cycle = [2, 3, 4, 5, 6, 2, 3, 4, 5, 6, 2, 3]
    assert [s["action"] for s in steps] == cycle + cycle


def test_least_loaded_picks_the_edge_with_the_least_queued_work():
    env = mec_env(scenario="multi-edge-busy")
    steps = rollout(env, baselines.make("least-loaded"), (0,))
    waits = [s["metrics"]["edge_wait_s"] for s in steps]
    assert any(np.ptp(w[:5]) > 0 for w in waits)  # queues differ at some decisions
    for s, w in zip(steps, waits, strict=True):
        valid = np.flatnonzero(np.asarray(s["mask"])[2:7])  # existing edges not in outage
        assert s["action"] >= 2 and w[s["action"] - 2] == w[valid].min()


def test_random_offload_is_seeded_by_reset_and_uniform_over_valid_actions():
    env = mec_env(scenario="multi-edge-busy", episode_tasks=100)
    first = [s["action"] for s in rollout(env, RandomOffload(), (0, 1, 2))]
    again = [s["action"] for s in rollout(env, RandomOffload(seed=99), (0, 1, 2))]
    other = [s["action"] for s in rollout(env, RandomOffload(), (5, 6, 7))]
    assert first == again and first != other
    counts = np.bincount(first, minlength=12)
    assert counts[7:].sum() == 0  # edges 5.. do not exist
    assert (counts[:7] > 20).all()  # 300 draws over 7 valid actions: ~43 each


# -- registry -----------------------------------------------------------------------------------------
def test_registry_lists_the_mec_heuristics_with_their_env_ids():
    assert set(baselines.list(MEC_ID)) == MEC_NAMES | ORACLE_NAMES[MEC_ID]
    assert set(baselines.list(SPLIT_ID)) == SPLIT_NAMES | ORACLE_NAMES[SPLIT_ID]
    assert MEC_NAMES | SPLIT_NAMES <= set(baselines.list())
    for name in MEC_NAMES | SPLIT_NAMES:
        env_id, text = baselines.describe(name)
        assert env_id == (SPLIT_ID if name in SPLIT_NAMES else MEC_ID) and text


@pytest.mark.parametrize("name", sorted(MEC_NAMES | SPLIT_NAMES))
def test_make_builds_a_controller(name):
    controller = baselines.make(name)
    assert isinstance(controller, Controller) and controller.name
    copy.deepcopy(controller)  # picklable state (vector envs, subprocess runners)


def test_make_passes_and_checks_parameters():
    assert baselines.make("lyapunov", V=2.0, budget_j=0.1).V == 2.0
    assert baselines.make("Greedy_Weighted", energy_ref_j=1.0).energy_ref_j == 1.0
    assert baselines.make("neurosurgeon", objective="energy").objective == "energy"
    assert baselines.make("neurosurgeon-energy").objective == "energy"
    for name, params in [
        ("lyapunov", {"V": 0}),
        ("lyapunov", {"budget_j": -1}),
        ("greedy-weighted", {"delay_ref_s": 0}),
        ("greedy-weighted", {"preference": 2}),
        ("neurosurgeon", {"objective": "cost"}),
        ("all-local", {"x": 1}),
    ]:
        with pytest.raises(ValueError):
            baselines.make(name, **params)
