"""MecOffloadParallel: the MecOffload system with one agent per user (PettingZoo ``ParallelEnv``)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from .edge.system import MecBatch, MecConfig
from .mec_offload import (
    check_invalid_action_options,
    describe_action,
    observation_size,
    reward_terms,
    scenario_config,
)

# Arrays that describe the one shared system (drawn once per episode) and its queues (moved by
# every executed task); every row of the agents' batch holds the same values.
_SYSTEM = (
    "num_edges",
    "edge_exists",
    "edge_speed",
    "cloud_speed",
    "user_device",
    "edge_distance",
    "user_snr",
    "user_nearest",
    "arrival_rate",
    "preference",
)
_QUEUES = ("edge_busy", "edge_ring", "edge_ring_start", "ring_pos", "local_busy")


class _AgentRows(MecBatch):
    """One MEC system seen by its ``num_users`` agents: row ``i`` holds user ``i``'s pending task,
    which arrives at ``slot_s``; the system arrays are equal across rows, and so are the queue
    arrays between steps (during a step, executed tasks join the queues of row 0)."""

    def __init__(self, config: MecConfig) -> None:
        super().__init__(config, config.num_users)
        self.slot_s = 0.0

    def _draw_users(self, rng: np.random.Generator, rows: np.ndarray, size: int) -> np.ndarray:
        """Each row's tasks come from the row's own agent."""
        return np.broadcast_to(rows[:, None], (len(rows), size))

    def _new_block(self, rng: np.random.Generator, rows: np.ndarray) -> None:
        super()._new_block(rng, rows)
        self.now[rows] = self.slot_s

    def execute(self, row: int, action: int, rng: np.random.Generator) -> list[float]:
        """Run agent ``row``'s task through the shared queues (row 0); its next task arrives at
        the current slot. Returns ``result[row]`` (``rules.R_*``)."""
        result = self.apply_one(row, action, rng, queue_row=0)
        self.now[row] = self.slot_s
        return result

    def new_episode(self, rng: np.random.Generator) -> None:
        """Draw one system (in row 0), share it, and give every agent its first task at t = 0."""
        self.slot_s = 0.0
        self.reset(rng, self.rows[:1])
        self.share(0, _SYSTEM + _QUEUES)
        self.tasks_done[:] = 0
        self._new_block(rng, self.rows[1:])

    def share(self, row: int, names: tuple[str, ...] = _QUEUES) -> None:
        for name in names:
            array = getattr(self, name)
            array[:] = array[row]

    def requeue(self, rows: np.ndarray) -> None:
        """Tasks of ``rows`` that were not executed stay pending and are offered at the slot."""
        self.now[rows] = self.slot_s


class MecOffloadParallelEnv(ParallelEnv):
    """MecOffload with one agent per user: every user decides where its own tasks run.

    ## Description
    The multi-agent setting of Com-DDPG (Gao et al., arXiv 2012.05105): the `num_users` users of
    one `MecOffload-v0` system (devices, edges, cloud, radio, latency-model compute times; see
    `servegym.envs.mec_offload.MecOffloadEnv`) are agents `"user_0"` .. `"user_{N-1}"`. Every
    step each live agent has one pending task, and all of them arrive at the same time t_k; the
    next step's tasks arrive an exponential time with mean `num_users / arrival_rate` later (so
    the total load is `arrival_rate` tasks/s, as in `MecOffload-v0`). The agents decide at once
    (each sees its own task and the system at t_k); the decisions are then executed in the fixed
    order user_0, user_1, ... (FCFS ties broken by agent index), so agents that choose the same
    edge queue behind each other: the shared edge queues couple the agents. The delay weight w
    is drawn per episode and is the same for every agent.

    ## Action Space
    Per agent `Discrete(max_edges + 2)`: 0 = local, 1 = cloud, 2 + i = edge i. The mask is in
    `infos[agent]["action_mask"]` (int8, PettingZoo's convention; 0 for edges that do not exist
    and uplinks in outage) and, as booleans, in `action_masks()` (a dict). A masked action is
    rejected: that agent's task is not executed and stays pending (same DNN, deadline and
    channel; offered again at the next step), its reward is `-invalid_action_penalty` (1) and
    `infos[agent]["rejected_action"]` says why. With `invalid_action="raise"` a masked action
    raises `ValueError` before any task is executed.

    ## Observation Space
    Per agent the `MecOffload-v0` observation of its own pending task:
    `Box(0, 1, (4 + 3 + 1 + 13 (max_edges + 1) + 2 + 2 (max_edges + 2),), float32)`, including the
    per-action delay/energy estimates. `state()` concatenates every agent's observation (for
    centralised critics).

    ## Rewards
    Per agent the `MecOffload-v0` reward of its own task,
    `-(w delay / delay_ref + (1 - w) energy / energy_ref + miss_penalty [missed])`, with `reward_vec`,
    `reward_terms`, `reward_weights`, `delay_s`, `energy_j` and `deadline_missed` in its info.

    ## Episode End
    An agent is truncated after `episode_tasks` executed tasks (100); agents whose actions were
    rejected finish later. Agents are never terminated.

    ## Arguments
    `scenario` (a preset of `servegym.envs.mec_offload.PRESETS`), `invalid_action`
    ("reject"/"raise"), `invalid_action_penalty`, `render_mode` (None or "ansi") and any
    `MecConfig` field as for `MecOffload-v0` (`num_users` sets the number of agents).
    `reset(seed=...)` seeds the episode draws (and the agents' action spaces).

    ## Version History
    - v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "mec_offload_parallel_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        scenario: str = "default",
        render_mode: str | None = None,
        invalid_action: str = "reject",
        invalid_action_penalty: float = 1.0,
        **overrides: Any,
    ) -> None:
        penalty = check_invalid_action_options(invalid_action, invalid_action_penalty)
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.scenario_name = scenario
        self.config = scenario_config(scenario, overrides)
        self.render_mode = render_mode
        self.invalid_action = invalid_action
        self.invalid_action_penalty = penalty
        self.system = _AgentRows(self.config)
        n = self.config.num_users
        self.possible_agents = [f"user_{i}" for i in range(n)]
        self.agent_index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self.agents: list[str] = []
        size = observation_size(self.config)
        self.observation_spaces = {a: spaces.Box(0.0, 1.0, (size,), np.float32) for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(self.config.max_edges + 2) for a in self.possible_agents}
        self.state_space = spaces.Box(0.0, 1.0, (n * size,), np.float32)
        self._rng, _ = seeding.np_random()
        self._obs = np.zeros((n, size), dtype=np.float32)
        self._metrics: dict[str, np.ndarray] = {}

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    # -- episode -----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng, _ = seeding.np_random(seed)
            for i, agent in enumerate(self.possible_agents):
                self.action_spaces[agent].seed(seed + 1 + i)
        self.system.new_episode(self._rng)
        self.agents = list(self.possible_agents)
        self._observe()
        return {a: self._obs[self.agent_index[a]] for a in self.agents}, {
            a: self._info(self.agent_index[a]) for a in self.agents
        }

    def _observe(self) -> None:
        self.system.observe()
        self._obs = self.system.obs.copy()

    def _info(self, i: int) -> dict[str, Any]:
        # int8, PettingZoo's (and gymnasium's Discrete.sample(mask=...)) convention
        return {"metrics": self.system.row_metrics(i), "action_mask": self.system.mask[i].astype(np.int8)}

    def action_masks(self) -> dict[str, np.ndarray]:
        masks = self.system.mask.copy()
        return {a: masks[self.agent_index[a]] for a in self.agents}

    def state(self) -> np.ndarray:
        return self._obs.reshape(-1).copy()

    # -- step ----------------------------------------------------------------------------------------
    def _parse(self, actions: dict[str, Any]) -> dict[str, tuple[int, str]]:
        """Every live agent's action as an int and a rejection message ('' if it is valid)."""
        if not self.agents:
            raise RuntimeError("MecOffloadParallelEnv.step() called before reset() or after the episode")
        if not isinstance(actions, dict):
            raise TypeError(f"actions must be a dict agent -> action, got {type(actions).__name__}")
        extra = set(actions) - set(self.agents)
        missing = [a for a in self.agents if a not in actions]
        if extra or missing:
            raise ValueError(
                f"actions must be given for exactly the live agents; missing {missing}, "
                f"unknown or finished {sorted(extra, key=str)}"
            )
        masks = self.system.mask
        n_actions = self.config.max_edges + 2
        parsed = {}
        for agent in self.agents:
            raw = np.asarray(actions[agent]).reshape(-1)
            if (
                raw.size != 1
                or raw.dtype.kind not in "iuf"
                or not np.isfinite(raw[0])
                or raw[0] != int(raw[0])
            ):
                raise ValueError(f"{agent}: action must be one integer, got {actions[agent]!r}")
            a = int(raw[0])
            if not 0 <= a < n_actions:
                raise ValueError(f"{agent}: action {a} is outside the action space 0..{n_actions - 1}")
            message = ""
            if not masks[self.agent_index[agent], a]:
                where = describe_action(a)
                message = f"{agent}: action {a} is masked: {where} is not available for this task"
                if self.invalid_action == "raise":
                    raise ValueError(message)
            parsed[agent] = (a, message)
        return parsed

    def step(self, actions: dict[str, Any]):
        parsed = self._parse(actions)  # validates everything before any task runs
        s, cfg = self.system, self.config
        # the next step's tasks arrive at the next slot (drawn as each executed task is replaced)
        s.slot_s += self._rng.exponential(cfg.num_users / s.arrival_rate[0])
        w = float(s.preference[0])
        rewards: dict[str, float] = {}
        infos: dict[str, dict[str, Any]] = {}
        pending = []
        for agent in self.agents:  # the fixed order: user_0, user_1, ...
            i = self.agent_index[agent]
            a, rejected = parsed[agent]
            if rejected:
                pending.append(i)
                rewards[agent] = -self.invalid_action_penalty
                infos[agent] = {
                    "rejected_action": rejected,
                    "reward_terms": {"invalid_action": -self.invalid_action_penalty},
                }
                continue
            result = s.execute(i, a, self._rng)
            d, e, _, _, cost, missed, _ = result
            rewards[agent] = -cost
            terms, weights = reward_terms(result, w, cfg.miss_penalty)
            infos[agent] = {
                "reward_vec": np.array([-d, -e]),
                "reward_terms": terms,
                "reward_weights": weights,
                "deadline_missed": missed > 0,
                "delay_s": d,
                "energy_j": e,
            }
        s.share(0)  # every agent sees the queues the executed tasks joined
        finished = [i for i in range(s.batch) if self.possible_agents[i] not in self.agents]
        s.requeue(np.array(pending + finished, dtype=np.int64))
        self._observe()
        acted = list(self.agents)
        observations = {a: self._obs[self.agent_index[a]] for a in acted}
        for agent in acted:
            infos[agent].update(self._info(self.agent_index[agent]))
        done = s.tasks_done >= cfg.episode_tasks
        truncations = {a: bool(done[self.agent_index[a]]) for a in acted}
        terminations = dict.fromkeys(acted, False)
        self.agents = [a for a in acted if not truncations[a]]
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        s = self.system
        return (
            f"t={s.slot_s:.2f}s agents={len(self.agents)}/{s.batch} tasks={int(s.tasks_done.sum())} "
            f"edges={int(s.num_edges[0])} w={s.preference[0]:.2f}"
        )

    def close(self) -> None:
        pass


def parallel_env(**kwargs: Any) -> MecOffloadParallelEnv:
    """PettingZoo-style constructor: ``parallel_env(num_users=5, scenario="multi-edge-busy")``."""
    return MecOffloadParallelEnv(**kwargs)


__all__ = ["MecOffloadParallelEnv", "parallel_env"]
