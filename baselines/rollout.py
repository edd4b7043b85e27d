"""A fortified roll-out oracle over the exact simulator, for any env with ``advance`` and copies.

The oracle keeps an *incumbent*: a whole episode's action sequence with its exact return. It
starts as the best of the given base controllers and of every constant action, each simulated
to the end of the episode on a copy of the env (the copy holds the true future arrivals and
acceptance draws, so the simulation is what would happen). Every ``replan_every`` decisions it
tries each action held until the next planning point, followed by the incumbent's remaining
actions: a short screening roll-out (``screen_steps`` decisions) ranks the candidates by the
requests that can still meet their SLOs (``env.still_possible()``), and the best ``verify`` of
those that screen above the incumbent are rolled out to the end of the episode. A candidate
whose exact return beats the incumbent's replaces it (fortified roll-out, Bertsekas: the
incumbent's return never decreases), and the oracle plays the incumbent's next action.

The env is deterministic given its seed and the actions, so the oracle's return equals its
final incumbent's, which is at least the best base controller's return: an upper bound on
those controllers by construction, per seed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from servegym.controller import Controller


@dataclass
class Plan:
    """A whole episode's actions and the cumulative reward before each of them."""

    actions: list[int]
    cumulative: list[float]  # cumulative[i] = reward of steps 0 .. i-1; one more entry than actions

    @property
    def total(self) -> float:
        return self.cumulative[-1]

    def action(self, step: int) -> int:
        return self.actions[min(step, len(self.actions) - 1)]


def _play(
    sim: Any, first: Sequence[int], plan: Plan, start: int, steps: int | None
) -> tuple[list[int], list[float], bool]:
    """Run ``sim`` (an unwrapped env copy) with ``first`` then the plan's actions from step
    ``start + len(first)``, for ``steps`` decisions (None: to the end). Returns the actions,
    the rewards and whether the episode ended."""
    actions: list[int] = []
    rewards: list[float] = []
    done = False
    limit = np.inf if steps is None else steps
    while not done and len(actions) < limit:
        i = len(actions)
        a = first[i] if i < len(first) else plan.action(start + i)
        reward, done = sim.advance(a)
        actions.append(a)
        rewards.append(reward)
    return actions, rewards, done


def play_to_end(sim: Any, controller: Controller, obs: Any, info: Mapping[str, Any]) -> Plan:
    """Step ``sim`` (an env, changed in place) with ``controller`` from ``obs``/``info`` to the end
    of its episode."""
    actions: list[int] = []
    cumulative = [0.0]
    done = False
    while not done:
        a = int(controller.act(obs, info))
        obs, reward, terminated, truncated, info = sim.step(a)
        actions.append(a)
        cumulative.append(cumulative[-1] + reward)
        done = terminated or truncated
    return Plan(actions, cumulative)


def best_by_rollout(
    env: Any, candidates: Sequence[Any], make: Callable[[Any, Any], Controller], info: Mapping[str, Any]
) -> Any:
    """The candidate (e.g. an oracle's parameters) whose controller, built by ``make(copy,
    candidate)`` on a copy of the env, earns the most from the current state to the episode's
    end; the first on ties."""
    best, best_total = candidates[0], -np.inf
    for candidate in candidates:
        sim = copy.deepcopy(env.unwrapped)
        probe = make(sim, candidate)
        probe.reset()
        total = play_to_end(sim, probe, None, dict(info)).total
        if total > best_total:
            best, best_total = candidate, total
    return best


class LookaheadOracle:
    """Fortified roll-out with the exact simulator (see the module docstring).

    ``env``: the env it controls (read through ``env.unwrapped``, copied for roll-outs, never
    stepped). ``bases``: factories of the controllers whose whole episodes seed the incumbent.
    ``replan_every``: decisions between planning points. ``screen_steps``: decisions of each
    screening roll-out. ``verify``: candidates rolled out to the end per planning point.
    """

    name = "LookaheadOracle"

    def __init__(
        self,
        env: Any,
        bases: Sequence[Callable[[], Controller]] = (),
        replan_every: int = 8,
        screen_steps: int = 40,
        verify: int = 2,
    ) -> None:
        if replan_every < 1 or screen_steps < 1 or verify < 0:
            raise ValueError(
                f"need replan_every >= 1, screen_steps >= 1 and verify >= 0, got {replan_every}, "
                f"{screen_steps}, {verify}"
            )
        self.env = env
        self.bases = tuple(bases)
        self.replan_every, self.screen_steps, self.verify = replan_every, screen_steps, verify
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.seed = seed
        self.plan: Plan | None = None
        self.base_returns: dict[str, float] = {}
        self.step = 0
        self.improvements = 0

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        if self.plan is None:
            self._initial_plan(obs, info)
        elif self.step % self.replan_every == 0:
            self._improve()
        action = self.plan.action(self.step)
        self.step += 1
        return action

    # -- the incumbent ---------------------------------------------------------------------------
    def _initial_plan(self, obs: np.ndarray, info: Mapping[str, Any]) -> None:
        """The best whole episode among the base controllers and every constant action."""
        core = self.env.unwrapped
        best: Plan | None = None
        runs: list[tuple[str, Plan]] = []
        for factory in self.bases:
            controller = factory()
            controller.reset(self.seed)
            runs.append((controller.name, self._episode(core, controller, obs, info)))
        for a in range(core.action_space.n):
            sim = copy.deepcopy(core)
            actions, rewards, _ = _play(sim, [a], Plan([a], [0.0, 0.0]), 0, None)
            runs.append((f"constant {a}", Plan(actions, [0.0, *np.cumsum(rewards).tolist()])))
        for name, plan in runs:
            self.base_returns[name] = plan.total
            if best is None or plan.total > best.total:
                best = plan
        self.plan = best

    @staticmethod
    def _episode(core: Any, controller: Controller, obs: np.ndarray, info: Mapping[str, Any]) -> Plan:
        """A controller's whole episode from the current state, on a copy."""
        return play_to_end(copy.deepcopy(core), controller, obs, info)

    # -- improving it ----------------------------------------------------------------------------
    def _improve(self) -> None:
        core, plan, t = self.env.unwrapped, self.plan, self.step
        hold = self.replan_every
        incumbent = [plan.action(t + i) for i in range(hold)]
        screened: list[tuple[float, int, Any, list[int], list[float], bool]] = []
        reference = None
        for a in range(core.action_space.n):
            first = [a] * hold
            sim = copy.deepcopy(core)
            actions, rewards, done = _play(sim, first, plan, t, self.screen_steps)
            score = sim.good_so_far() if done else sim.still_possible()
            if first == incumbent:
                reference = score
                continue
            screened.append((score, a, sim, actions, rewards, done))
        if reference is None:  # the incumbent holds no single action: screen it too
            sim = copy.deepcopy(core)
            _, _, done = _play(sim, incumbent, plan, t, self.screen_steps)
            reference = sim.good_so_far() if done else sim.still_possible()
        screened.sort(key=lambda item: (-item[0], item[1]))
        incumbent_tail = plan.total - plan.cumulative[t]
        best_tail, best_run = incumbent_tail, None
        for score, _a, sim, actions, rewards, done in screened[: self.verify]:
            if score <= reference:
                break
            if not done:
                more_actions, more_rewards, _ = _play(sim, [], plan, t + len(actions), None)
                actions, rewards = actions + more_actions, rewards + more_rewards
            tail = float(np.sum(rewards))
            if tail > best_tail + 1e-9:
                best_tail, best_run = tail, (actions, rewards)
        if best_run is not None:
            actions, rewards = best_run
            base = plan.cumulative[t]
            self.plan = Plan(
                plan.actions[:t] + actions, plan.cumulative[: t + 1] + (base + np.cumsum(rewards)).tolist()
            )
            self.improvements += 1
