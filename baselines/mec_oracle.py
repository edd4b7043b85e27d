"""A fortified roll-out oracle for MecOffload-v0 and DnnSplit-v0 over copies of the exact system.

Every task of an episode (arrival times, users, DNNs, deadlines, each link's fading) is drawn at
``reset`` and does not depend on the decisions, so a copy of the env's system holds the true
future. The oracle keeps an *incumbent*: a whole episode's actions with each task's exact cost.
It starts as the best whole episode of the base controllers (every registered heuristic, each
run on a copy). At every decision it rolls out, for each valid action ``a``, two continuations
to the end of the episode, all rows of one batched copy of the system stepped together:
``a`` then the greedy rule on the true per-task cost (``rules.task_cost``, GreedyWeighted's and
Neurosurgeon-weighted's rule), and ``a`` then the incumbent's remaining actions (always valid:
masks depend on the drawn links, not on decisions). A continuation whose total cost is lower
than the incumbent's remaining cost replaces it (fortified roll-out, Bertsekas), and the oracle
plays the incumbent's next action.

The env is deterministic given its seed and the actions, so the oracle's episode cost equals its
final incumbent's, which is at most every base controller's: an upper bound on those
controllers by construction, per seed. It sees what greedy does not: the queue and uplink time a
choice takes from the tasks that arrive after it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from servegym.controller import Controller
from servegym.envs.edge import rules
from servegym.envs.edge.system import MecBatch


def _greedy(delay: np.ndarray, energy: np.ndarray, mask: np.ndarray, b: MecBatch) -> np.ndarray:
    """Per row, the valid action with the lowest true task cost (ties: the lowest index)."""
    cfg = b.config
    with np.errstate(invalid="ignore"):
        cost = rules.task_cost(
            delay, energy, b.preference[:, None], b.deadline[:, None], cfg.delay_ref_s, cfg.energy_ref_j,
            cfg.miss_penalty,
        )  # fmt: skip
    return np.argmin(np.where(mask, cost, np.inf), axis=1)


class MecRolloutOracle:
    """Fortified roll-out over the exact MEC system (see the module docstring).

    ``env``: the MecOffload-v0 or DnnSplit-v0 env it controls (read through ``env.unwrapped``,
    copied for roll-outs, never stepped). ``bases``: factories of the controllers whose whole
    episodes seed the incumbent.
    """

    def __init__(self, env: Any, bases: Sequence[Callable[[], Controller]] = ()) -> None:
        self.env = env
        self.bases = tuple(bases)
        self.split = hasattr(env.unwrapped, "num_splits")
        self.name = "SplitRolloutOracle" if self.split else "MecRolloutOracle"
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.seed = seed
        self.actions: np.ndarray | None = None  # the incumbent's actions, one per task
        self.costs: np.ndarray | None = None  # and each task's cost
        self.base_costs: dict[str, float] = {}
        self.step = 0
        self.improvements = 0

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        core = self.env.unwrapped
        if self.actions is None:
            self._initial(core, obs, info)
        self._improve(core, np.flatnonzero(info["action_mask"]))
        action = int(self.actions[self.step])
        self.step += 1
        return action

    # -- the incumbent ---------------------------------------------------------------------------
    def _initial(self, core: Any, obs: np.ndarray, info: Mapping[str, Any]) -> None:
        """The best whole episode of the base controllers, each on a copy of the env."""
        best: tuple[float, np.ndarray, np.ndarray] | None = None
        for factory in self.bases:
            controller = factory()
            controller.reset(self.seed)
            sim = copy.deepcopy(core)
            o, i, actions, costs, done = obs, info, [], [], False
            while not done:
                a = int(controller.act(o, i))
                o, reward, terminated, truncated, i = sim.step(a)
                if "rejected_action" in i:
                    raise RuntimeError(f"{controller.name} chose the masked action {a}")
                actions.append(a)
                costs.append(-reward)
                done = terminated or truncated
            total = float(np.sum(costs))
            self.base_costs[controller.name] = total
            if best is None or total < best[0]:
                best = (total, np.array(actions), np.array(costs))
        if best is None:  # no bases: the greedy roll-out alone
            n = core.config.episode_tasks - int(core.system.tasks_done[0])
            best = (np.inf, np.zeros(n, dtype=np.int64), np.full(n, np.inf))
        self.actions, self.costs = best[1], best[2]

    # -- improving it ----------------------------------------------------------------------------
    def _observe(self, b: MecBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(delay, energy, mask) per row and action of the batch's pending tasks."""
        if self.split:
            b.observe_splits()
            return b.split_delay, b.split_energy, b.split_mask
        return b.delay_estimate, b.energy_estimate, b.mask

    def _execute(self, b: MecBatch, actions: np.ndarray, rng: np.random.Generator) -> None:
        if self.split:
            b.apply_split(actions, rng)
            b.observe()
        else:
            b.step(actions, rng)

    def _improve(self, core: Any, valid: np.ndarray) -> None:
        """Roll out every valid first action with greedy and with the incumbent's tail; keep the
        best continuation if it beats the incumbent's."""
        t, k = self.step, len(valid)
        left = len(self.actions) - t
        b = core.system.tile(0, 2 * k)
        rng = np.random.default_rng(0)  # never drawn from: the episode's tasks are all drawn
        taken = np.zeros((left, 2 * k), dtype=np.int64)
        spent = np.zeros((left, 2 * k))
        greedy_rows = np.arange(2 * k) < k
        actions = np.concatenate([valid, valid]).astype(np.int64)
        for s in range(left):
            if s > 0:
                delay, energy, mask = self._observe(b)
                actions = np.where(greedy_rows, _greedy(delay, energy, mask, b), self.actions[t + s])
            self._execute(b, actions, rng)
            taken[s], spent[s] = actions, b.result[:, rules.R_COST]
        tails = spent.sum(axis=0)
        j = int(np.argmin(tails))
        if tails[j] < self.costs[t:].sum() - 1e-9:
            self.actions = np.concatenate([self.actions[:t], taken[:, j]])
            self.costs = np.concatenate([self.costs[:t], spent[:, j]])
            self.improvements += 1


__all__ = ["MecRolloutOracle"]
