"""LearnedController in simulators and on live metrics; input validation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from servegym.agents.controller import LearnedController
from servegym.controller import Controller
from servegym.experiments.compare import compare_controllers
from servegym.experiments.policy_eval import evaluate_model, format_comparison

from .conftest import SHORT


def test_it_is_a_controller_and_runs_episodes_beside_heuristics(trained) -> None:
    controller = LearnedController.load(trained("servegym/MecOffload-v0", "ppo").model_path)
    assert isinstance(controller, Controller)
    results, best = evaluate_model(controller, episodes=2, seed=50)
    names = {r.controller for r in results}
    assert controller.name in names and best in names and best != controller.name
    assert all(np.isfinite(r.kpis["return"]) and r.kpis["tasks"] == 100 for r in results)
    table = format_comparison(results, controller.name, best)
    lines = table.splitlines()
    assert controller.name in lines[2]  # the policy's row comes first
    assert f"★   {best}" in table and len(lines) == 6
    assert (
        lines[-1].startswith(f"verdict: {controller.name} is ")
        and f"{best} (the best heuristic)" in lines[-1]
    )


@pytest.mark.parametrize(
    "env_id", ["servegym/MecOffload-v0", "servegym/DnnSplit-v0", "servegym/ChunkedPrefill-v0"]
)
def test_act_from_metrics_equals_act_on_the_observation(trained, env_id: str) -> None:
    controller = LearnedController.load(trained(env_id, "ppo").model_path)
    env = gym.make(env_id, **SHORT[env_id])
    obs, info = env.reset(seed=7)
    for _ in range(40):
        action = controller.act(obs, info)
        assert controller.act_from_metrics(info["metrics"], info["action_mask"]) == action
        assert info["action_mask"][action]
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            obs, info = env.reset()


def test_learned_controllers_never_take_masked_mec_actions(trained) -> None:
    controller = LearnedController.load(trained("servegym/MecOffload-v0", "ppo").model_path)
    results = compare_controllers("servegym/MecOffload-v0", [controller], [3])
    assert results[0].kpis["tasks"] == 100  # a masked argmax would be rejected and stall the task


def test_bad_observations_and_masks_are_named(trained) -> None:
    controller = LearnedController.load(trained("servegym/MecOffload-v0", "ppo").model_path)
    n = controller.obs_size
    with pytest.raises(ValueError, match=f"observation has shape \\(3,\\).*expects {n} values"):
        controller.act([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        controller.act(np.full(n, np.nan))
    with pytest.raises(ValueError, match="action mask has 2 entries"):
        controller.act(np.zeros(n), {"action_mask": [True, False]})
    with pytest.raises(ValueError, match="task_bits: missing; local_time_s: missing"):
        controller.act_from_metrics({"deadline_s": 1.0})
    with pytest.raises(ValueError, match=r"action mask has shape \(1, 2\)"):
        controller.act_batch(np.zeros((1, n)), np.ones((1, 2), dtype=bool))
