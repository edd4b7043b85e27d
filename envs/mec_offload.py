"""MecOffload-v0 and DnnSplit-v0: where an inference task runs, trading delay against energy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from servegym.metric_spec import Metric

from .edge.system import HIST_BINS, QUEUE_SLOTS, MecBatch, MecConfig

MAX_DEVICE_TYPES = 3
SERVER_FEATURES = 5 + HIST_BINS  # exists, speed, rate, queued work, queued tasks, histogram
SERVERS_AT = 4 + MAX_DEVICE_TYPES + 1  # after the task, the device type and the local wait


MEC_METRICS = (
    Metric("task_bits", "bit", "input size of the pending task"),
    Metric("deadline_s", "s", "the task's deadline", low_open=True),
    Metric("local_time_s", "s", "the task's compute time on the user's device"),
    Metric("local_energy_j", "J", "the task's compute energy on the user's device"),
    Metric(
        "device_type",
        "index",
        "the user's device: its index in the scenario's user_devices",
        integer=True,
    ),
    Metric("local_wait_s", "s", "work queued on the user's device"),
    Metric(
        "edge_exists", "flag", "1 where the edge slot holds a server", high=1, integer=True, per="edge slot"
    ),
    Metric("cloud_speed", "x", "the cloud's speed factor (1 = its catalog device)"),
    Metric("edge_speed", "x", "each edge's speed factor (1 = its catalog device)", per="edge slot"),
    Metric(
        "rates_bps",
        "bit/s",
        "uplink rate to the cloud's cell, then to each edge",
        per="cloud, then edge slot",
    ),
    Metric("edge_wait_s", "s", "work queued at each edge", per="edge slot"),
    Metric("edge_queued", "tasks", "tasks queued at each edge", integer=True, per="edge slot"),
    Metric(
        "edge_histogram",
        "tasks",
        "queued tasks per remaining-time bin (0, 10, 20, 50, 100, 200, 500 ms, 1 s)",
        per="edge slot x bin",
    ),
    Metric("preference", "weight", "the delay weight w (energy gets 1 - w)", high=1.0),
    Metric("delay_estimate_s", "s", "predicted delay per action", allow_inf=True, per="action"),
    Metric("energy_estimate_j", "J", "predicted device energy per action", allow_inf=True, per="action"),
)
"""The metrics ``encode_mec_observation`` reads (the operator's contract)."""
METRIC_KEYS = tuple(m.name for m in MEC_METRICS)


def estimates_at(config: MecConfig) -> int:
    """Index of the per-action estimates (delay, then energy; after the preference)."""
    return SERVERS_AT + SERVER_FEATURES * (config.max_edges + 1) + 2


def observation_size(config: MecConfig) -> int:
    return estimates_at(config) + 2 * (config.max_edges + 2)


def system_metrics(system: MecBatch) -> dict[str, np.ndarray]:
    """Raw per-system metrics (arrays with a leading batch axis): what the device and the
    edge sites can report before a decision, including the delay/energy estimates per action."""
    t, rows = system.tables, system.rows
    dev = system.user_device[rows, system.user]
    wait, queued, hist = system.queue_features()
    delay, energy = system.predict()
    return {
        "task_bits": t.input_bits[system.dnn],
        "deadline_s": system.deadline,
        "local_time_s": t.local_time[dev, system.dnn],
        "local_energy_j": t.local_energy[dev, system.dnn],
        "device_type": dev,
        "local_wait_s": np.maximum(system.local_busy[rows, system.user] - system.now, 0.0),
        "edge_exists": system.edge_exists,
        "edge_speed": system.edge_speed,
        "cloud_speed": system.cloud_speed,
        "rates_bps": system.rates,  # [cloud access, edges...]
        "edge_wait_s": wait,
        "edge_queued": queued,
        "edge_histogram": hist,
        "preference": system.preference,
        "delay_estimate_s": delay,  # per action: local, cloud, edges
        "energy_estimate_j": energy,
        "num_edges": system.num_edges,
        "time_s": system.now,
    }


def single_metrics(system: MecBatch) -> dict[str, Any]:
    """``system_metrics`` of a single system (batch of one) with Python numbers for scalars and
    arrays otherwise (the scalar env's fast path; tested equal). Arrays that only change with the
    task or the episode are read-only and shared; the env never modifies an array it handed out."""
    c, i = system.one_block(), system.task_index.item()
    now = system.now.item()
    delay, _ = system.predict_one()
    wait, queued, hist = system.queue_features_one()
    return {
        "task_bits": c.bits[i],
        "deadline_s": c.deadline[i],
        "local_time_s": c.local_time[i],
        "local_energy_j": c.local_energy[i],
        "device_type": c.dev[i],
        "local_wait_s": max(system.local_busy[0, c.user[i]].item() - now, 0.0),
        "edge_exists": c.exists[i],
        "edge_speed": c.speed[i],
        "cloud_speed": c.cloud_speed,
        "rates_bps": c.rates[i],
        "edge_wait_s": wait,
        "edge_queued": queued,
        "edge_histogram": hist,
        "preference": c.preference,
        "delay_estimate_s": np.array(delay),
        "energy_estimate_j": c.energy[i],
        "num_edges": c.num_edges,
        "time_s": now,
    }


def encode_mec_observation(m: dict[str, np.ndarray], config: MecConfig) -> np.ndarray:
    """[B, obs] float32 observations from batched metrics (pure function of the metrics)."""
    b = len(m["deadline_s"])
    obs = np.empty((b, observation_size(config)), dtype=np.float32)  # entries rounded as written
    obs[:, 0] = np.log10(np.maximum(m["task_bits"], 1.0)) / 10.0
    obs[:, 1] = m["deadline_s"]
    obs[:, 2] = np.minimum(m["local_time_s"] / m["deadline_s"], 10.0) / 10.0
    obs[:, 3] = np.minimum(m["local_energy_j"] / config.energy_ref_j, 10.0) / 10.0
    obs[:, 4:7] = 0.0  # device type, one-hot
    obs[np.arange(b), 4 + np.minimum(m["device_type"], MAX_DEVICE_TYPES - 1)] = 1.0
    obs[:, 7] = np.minimum(m["local_wait_s"], 10.0) / 10.0
    servers = server_view(obs, config.max_edges)  # [B, cloud + edges, SERVER_FEATURES]
    servers[:, 0, 0] = 1.0
    servers[:, 1:, 0] = m["edge_exists"]
    servers[:, 0, 1] = m["cloud_speed"] / 2.0
    servers[:, 1:, 1] = m["edge_speed"] * m["edge_exists"] / 2.0
    servers[:, :, 2] = np.log2(1.0 + m["rates_bps"] / 1e6) / 16.0
    servers[:, 0, 3:] = 0.0
    servers[:, 1:, 3] = np.minimum(m["edge_wait_s"], 10.0) / 10.0
    servers[:, 1:, 4] = m["edge_queued"] / QUEUE_SLOTS
    servers[:, 1:, 5:] = m["edge_histogram"] / QUEUE_SLOTS
    at, n = estimates_at(config), config.max_edges + 2
    obs[:, at - 2] = m["preference"]
    obs[:, at - 1] = 1.0 - m["preference"]
    obs[:, at : at + n] = m["delay_estimate_s"] / m["deadline_s"][:, None]  # inf (missing edge): 1
    obs[:, at + n :] = cost_feature(
        m["delay_estimate_s"], m["energy_estimate_j"], m["preference"][:, None], config
    )
    return np.clip(obs, 0.0, 1.0, out=obs)


def cost_feature(delay: np.ndarray, energy: np.ndarray, w: Any, config: MecConfig) -> np.ndarray:
    """Per action, the estimated scalarised cost c = w delay / T_ref + (1 - w) energy / E_ref (minus
    the reward the action would earn), squashed to 1 - 1 / (1 + c) in [0, 1]: order-preserving,
    so its argmin is the greedy-weighted choice; an unavailable action (+inf) gives 1."""
    d = np.minimum(delay, 1e30)
    e = np.minimum(energy, 1e30)
    cost = w * d / config.delay_ref_s + (1.0 - w) * e / config.energy_ref_j
    return 1.0 - 1.0 / (1.0 + cost)


def server_view(obs: np.ndarray, max_edges: int) -> np.ndarray:
    """The per-server block of observations ``[..., obs]`` as ``[..., cloud + edges, SERVER_FEATURES]``."""
    end = SERVERS_AT + SERVER_FEATURES * (max_edges + 1)
    return obs[..., SERVERS_AT:end].reshape(*obs.shape[:-1], -1, SERVER_FEATURES)


def episode_kpis(delays: np.ndarray, energies: np.ndarray, missed: np.ndarray, w: float) -> dict[str, float]:
    """The KPIs of one finished episode from its tasks' delays (s), energies (J) and misses."""
    return {
        "tasks": float(len(delays)),
        "delay_mean_s": float(delays.mean()),
        "delay_p95_s": float(np.quantile(delays, 0.95)),
        "deadline_miss_ratio": float(np.mean(missed)),
        "energy_per_task_j": float(energies.mean()),
        "preference": float(w),
    }


def check_invalid_action_options(invalid_action: str, penalty: float) -> float:
    """Validate the masked-action handling options; returns the penalty as a float."""
    if invalid_action not in ("reject", "raise"):
        raise ValueError(f"invalid_action must be 'reject' or 'raise', got {invalid_action!r}")
    if not (isinstance(penalty, (int, float)) and np.isfinite(penalty) and penalty >= 0):
        raise ValueError(f"invalid_action_penalty must be >= 0, got {penalty!r}")
    return float(penalty)


def scenario_config(scenario: str, overrides: dict[str, Any]) -> MecConfig:
    """A preset with overrides; an unknown preset lists the presets."""
    if scenario not in PRESETS:
        raise ValueError(f"unknown MEC scenario {scenario!r}; presets: {sorted(PRESETS)}")
    return make_config({**PRESETS[scenario], **overrides})


def make_config(overrides: dict[str, Any]) -> MecConfig:
    known = {f.name for f in fields(MecConfig)} - {"extra"}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown MEC option(s) {sorted(unknown)}; options: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return replace(MecConfig(), **values)


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # GMORL-like randomisation: 1-10 edges, load 2-20 tasks/s, w ~ U(0, 1)
    "single-edge-light": {"num_edges": 1, "arrival_rate": 3.0},
    "multi-edge-busy": {"num_edges": 5, "arrival_rate": 15.0},
    "far-cell": {"edge_distance_m": (400.0, 1000.0), "num_edges": 3, "arrival_rate": 5.0},
    "llm-prompts": {"dnns": ("BERT-base", "Llama-3.2-1B-Prefill-128"), "num_edges": 4, "arrival_rate": 4.0},
}


class MecOffloadEnv(gym.Env[np.ndarray, np.int64]):
    """Offload each arriving inference task to the device, the cloud or one of up to 10 edges.

    ## Description
    N users (phone-class SoCs, Raspberry Pi 5, Jetson Orin) generate DNN inference tasks
    (MobileNetV2, ResNet-50, YOLOv8n, BERT-base, a 1B-LLM prompt) with deadlines. Each step one
    task arrives and the agent decides where it runs: locally (device FCFS queue, device energy =
    active power x time), in the cloud (uplink to the nearest cell, WAN delay and bandwidth,
    elastic compute), or at an edge server (uplink, FCFS queue, execution). Compute times come
    from servegym's latency model on the catalog hardware; the uplink uses Shannon's formula over
    the 3GPP macro path loss with Rayleigh fading. The delay/energy weight w is drawn per episode
    and observed, so one policy serves every preference (GMORL).

    ## Action Space
    `Discrete(max_edges + 2)`: 0 = local, 1 = cloud, 2 + i = edge i. `action_masks()` marks
    edges that do not exist in this episode and links in outage for this task (uplink rate below
    `min_rate_bps`, 1 Mbit/s, after the fading draw). A masked action is rejected: it is not executed
    (the task stays pending), the reward is `-invalid_action_penalty` (1) and
    `info["rejected_action"]` says why; with `invalid_action="raise"` it raises `ValueError`.

    ## Observation Space
    `Box(0, 1, (4 + 3 + 1 + 13 (max_edges + 1) + 2 + 2 (max_edges + 2),), float32)`: task
    (log10 bits / 10, deadline, local time / deadline, local energy / E_ref), device type one-hot
    (3), local queue wait; for the cloud and each edge slot: exists, speed / 2,
    log2(1 + rate/Mbps) / 16, queued work (s) / 10, queued tasks / 8 and an 8-bin histogram of the
    queued tasks' remaining time (0, 10, 20, 50, 100, 200, 500 ms, 1 s; GMORL's histogram
    encoding); preference (w, 1 - w); then, per action (local, cloud, edges), the system's
    predicted delay / deadline (clipped to 1), and then its predicted scalarised cost
    c = w delay / 0.5 s + (1 - w) energy / 0.5 J as 1 - 1 / (1 + c), from
    `info["metrics"]["delay_estimate_s"]` and `["energy_estimate_j"]` (an unavailable action,
    +inf, gives 1 in both).

    ## Rewards
    `info["reward_vec"] = [-delay_s, -energy_j]`; the reward is
    `w * (-delay / delay_ref) + (1 - w) * (-energy / energy_ref)` (refs 0.5 s and 0.5 J; named
    terms in `info["reward_terms"]`). Deadline misses are reported in `info["deadline_missed"]`
    and kept out of the reward.

    ## Episode End
    Truncated after `episode_tasks` tasks (100, as in GMORL).

    ## Arguments
    `scenario` (a preset of `PRESETS`), and any `MecConfig` field: `num_users`, `max_edges`,
    `num_edges` (0: random 1..max_edges), `user_devices`, `edge_device`, `cloud_device`, `dnns`,
    `arrival_rate` (0: random 2-20 tasks/s), `tx_power_w`, `bandwidth_hz`, `edge_distance_m`,
    `wan_delay_s`, `deadline_s`, `preference` (< 0: random), `episode_tasks`, ...

    ## Version History
    - v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 10}
    METRICS: ClassVar[tuple[Metric, ...]] = MEC_METRICS

    def __init__(
        self,
        scenario: str = "default",
        render_mode: str | None = None,
        invalid_action: str = "reject",
        invalid_action_penalty: float = 1.0,
        **overrides: Any,
    ) -> None:
        self.invalid_action_penalty = check_invalid_action_options(invalid_action, invalid_action_penalty)
        self.invalid_action = invalid_action
        self.scenario_name = scenario
        self.config = scenario_config(scenario, overrides)
        self.render_mode = render_mode
        self.system = MecBatch(self.config, 1)
        self.action_space = spaces.Discrete(self.config.max_edges + 2)
        self.observation_space = spaces.Box(0.0, 1.0, (observation_size(self.config),), np.float32)
        self._started = False
        self._mask = self.system.action_masks()[0]
        edges = SERVERS_AT + SERVER_FEATURES * np.arange(1, self.config.max_edges + 1)
        self._queue_entries = [slice(i + 3, i + SERVER_FEATURES) for i in edges.tolist()]
        at = estimates_at(self.config)
        self._delay_entries = slice(at, at + self.config.max_edges + 2)
        self._cost_entries = slice(at + self.config.max_edges + 2, at + 2 * (self.config.max_edges + 2))
        self._block: Any = None  # the system's block cache that _block_obs was encoded from
        self._block_obs = np.zeros((0, observation_size(self.config)), dtype=np.float32)

    def _observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        m = single_metrics(self.system)
        c, i = self.system.one_block(), self.system.task_index.item()
        self._mask = c.mask[i]
        return self._encode(m, c, i), {"metrics": m, "action_mask": self._mask}

    def observation_from_metrics(self, metrics: Mapping[str, Any]) -> np.ndarray:
        """The observation of one task from a live system's metrics (the keys of ``info["metrics"]``,
        per-server values as lists or arrays); the same encoder the env uses."""
        batched = {k: np.asarray(metrics[k])[None] for k in METRIC_KEYS}
        batched["device_type"] = batched["device_type"].astype(np.int64)  # JSON may carry it as 1.0
        return encode_mec_observation(batched, self.config)[0]

    def _encode(self, m: dict[str, Any], c: Any, i: int) -> np.ndarray:
        """``encode_mec_observation`` of the single-system metrics ``m`` of task ``i`` of the block
        ``c``: the block's tasks are encoded at once with empty queues, and the queue entries of
        this task (local wait, edges with work left, delay estimates) are written into a copy of its row."""
        if c is not self._block:
            n, edges = len(c.user), self.config.max_edges
            block = {
                **c.metrics,
                "delay_estimate_s": np.zeros((n, edges + 2)),  # depends on the queues: written per step
                "energy_estimate_j": c.energy,
                "local_wait_s": np.zeros(n),
                "edge_exists": c.exists,
                "edge_speed": c.speed,
                "cloud_speed": np.full(n, c.cloud_speed),
                "edge_wait_s": np.zeros((n, edges)),
                "edge_queued": np.zeros((n, edges), dtype=np.int64),
                "edge_histogram": np.zeros((n, edges, HIST_BINS)),
                "preference": np.full(n, c.preference),
            }
            self._block, self._block_obs = c, encode_mec_observation(block, self.config)
        obs = self._block_obs[i].copy()
        if m["local_wait_s"] > 0:
            obs[7] = min(m["local_wait_s"], 10.0) / 10.0
        for e, wait, queued, row in self.system.queue_rows_one():
            hist = [h / QUEUE_SLOTS for h in row]
            obs[self._queue_entries[e]] = [min(wait, 10.0) / 10.0, queued / QUEUE_SLOTS, *hist]
        # delays are >= 0, and clipping at 1 before rounding to float32 gives the batched path's bits
        obs[self._delay_entries] = np.minimum(m["delay_estimate_s"] / m["deadline_s"], 1.0)
        obs[self._cost_entries] = cost_feature(
            m["delay_estimate_s"], m["energy_estimate_j"], m["preference"], self.config
        )
        return obs

    def action_masks(self) -> np.ndarray:
        return self._mask.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.system.reset(self.np_random)
        self._started = True
        self._episode: list[tuple[float, float, bool]] = []  # (delay, energy, missed) per task
        return self._observe()

    def _check_action(self, action: Any, mask: np.ndarray) -> tuple[int, str]:
        """The action as an int, and a rejection message if it is masked ('' if valid)."""
        if not self._started:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset()")
        if type(action) in (int, np.int64):
            a = int(action)
        else:
            a = np.asarray(action).reshape(-1)
            if a.size != 1 or not np.isfinite(a[0]) or a[0] != int(a[0]):
                raise ValueError(f"action must be one integer, got {action!r}")
            a = int(a[0])
        if not 0 <= a < len(mask):
            raise ValueError(f"action {a} is outside the action space 0..{len(mask) - 1}")
        if mask[a]:
            return a, ""
        message = f"action {a} is masked: {self._describe(a)} is not available for this task"
        if self.invalid_action == "raise":
            raise ValueError(message)
        return a, message

    def _reject(self, message: str):
        """A masked action is not executed: the task stays pending, the reward is the penalty."""
        if not getattr(self, "_warned_reject", False):  # once per env: training would flood the log
            self._warned_reject = True
            gym.logger.warn(
                f"{type(self).__name__}: {message} (rejected; see action_masks(); later rejections "
                "are reported only in info['rejected_action'])"
            )
        obs, info = self._observe()
        # the same task again: fresh copies of the arrays that the last info may share
        m = info["metrics"]
        info["metrics"] = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in m.items()}
        info["action_mask"] = np.array(info["action_mask"])
        info.update(rejected_action=message, reward_terms={"invalid_action": -self.invalid_action_penalty})
        return obs, -self.invalid_action_penalty, False, False, info

    def _describe(self, a: int) -> str:
        return ("local", "cloud")[a] if a < 2 else f"edge {a - 2}"

    def get_action_meanings(self) -> list[str]:
        return [self._describe(a) for a in range(self.action_space.n)]

    def step(self, action):
        a, rejected = self._check_action(action, self._mask)
        if rejected:
            return self._reject(rejected)
        w = self.system.preference.item()
        return self._finish_step(w, *self.system.apply_one(a, self.np_random))

    def _finish_step(self, w: float, delay: float, energy: float, missed: bool, done: bool):
        cfg = self.config
        terms = {"delay": -delay / cfg.delay_ref_s, "energy": -energy / cfg.energy_ref_j}
        reward = w * terms["delay"] + (1.0 - w) * terms["energy"]
        obs, info = self._observe()
        info.update(
            reward_vec=np.array([-delay, -energy]),
            reward_terms=terms,
            reward_weights={"delay": w, "energy": 1.0 - w},
            deadline_missed=missed,
            delay_s=delay,
            energy_j=energy,
        )
        self._episode.append((delay, energy, missed))
        if done:
            d, e, miss = (np.array(x, dtype=float) for x in zip(*self._episode, strict=True))
            info["episode_kpis"] = episode_kpis(d, e, miss, w)
        return obs, reward, False, done, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        s = self.system
        return f"t={s.now[0]:.2f}s task {s.tasks_done[0]} edges={s.num_edges[0]} w={s.preference[0]:.2f}"


class DnnSplitEnv(MecOffloadEnv):
    """Choose where to split each DNN between the device and its nearest edge server.

    ## Description
    As `MecOffload-v0`, but the decision is the partition layer k of the task's DNN: layers
    0..k-1 run on the device, the activation after layer k-1 (the raw input for k = 0) is sent
    over the uplink, and layers k.. run at the nearest edge (Neurosurgeon, ParetoPipe). k = L
    runs everything locally.

    ## Action Space
    `Discrete(L_max + 1)` with L_max the most layers among the configured DNNs;
    `action_masks()` allows k <= L of the pending task's DNN, and only k = L (all on the
    device) while the uplink is in outage.

    ## Observation Space
    The `MecOffload-v0` observation (including its per-action offloading estimates) followed by,
    per split point, the estimated delay / deadline (clipped to 1) and device energy / E_ref
    (clipped to 1): `2 (L_max + 1)` more entries.

    ## Rewards, Episode End, Arguments, Version History
    As `MecOffload-v0` (v0: initial version).
    """

    METRICS: ClassVar[tuple[Metric, ...]] = (
        *MEC_METRICS,
        Metric(
            "split_delay_estimate_s", "s", "predicted delay per split point", allow_inf=True, per="action"
        ),
        Metric("split_energy_estimate_j", "J", "predicted device energy per split point", per="action"),
    )

    def __init__(self, scenario: str = "default", render_mode: str | None = None, **overrides: Any) -> None:
        super().__init__(scenario, render_mode, **overrides)
        self.num_splits = self.system.tables.split_bits.shape[1]
        self.action_space = spaces.Discrete(self.num_splits)
        size = observation_size(self.config) + 2 * self.num_splits
        self.observation_space = spaces.Box(0.0, 1.0, (size,), np.float32)

    def _observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = super()._observe()
        delay, energy = self.system.predict_split()
        deadline = self.system.deadline[:, None]
        extra = np.concatenate(
            [
                np.clip(np.nan_to_num(delay / deadline, posinf=1.0), 0.0, 1.0),
                np.clip(energy / self.config.energy_ref_j, 0.0, 1.0),
            ],
            axis=1,
        )[0].astype(np.float32)
        info["metrics"]["split_delay_estimate_s"] = delay[0]
        info["metrics"]["split_energy_estimate_j"] = energy[0]
        info["action_mask"] = self.action_masks()
        return np.concatenate([obs, extra]), info

    def observation_from_metrics(self, metrics: Mapping[str, Any]) -> np.ndarray:
        obs = super().observation_from_metrics(metrics)
        delay = np.asarray(metrics["split_delay_estimate_s"], dtype=float)
        energy = np.asarray(metrics["split_energy_estimate_j"], dtype=float)
        if delay.shape != (self.num_splits,) or energy.shape != (self.num_splits,):
            raise ValueError(
                f"split estimates need {self.num_splits} entries, got {delay.shape} and {energy.shape}"
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.nan_to_num(delay / float(metrics["deadline_s"]), posinf=1.0)
        energy = np.clip(energy / self.config.energy_ref_j, 0.0, 1.0)
        extra = np.concatenate([np.clip(ratio, 0.0, 1.0), energy])
        return np.concatenate([obs, extra.astype(np.float32)])

    def action_masks(self) -> np.ndarray:
        return self.system.split_masks()[0]

    def get_action_meanings(self) -> list[str]:
        return [
            f"the first {k} layers on the device, the rest at the nearest edge"
            for k in range(self.num_splits)
        ]

    def _describe(self, a: int) -> str:
        return (
            f"split after {a} layers (the DNN has {int(self.system.tables.num_layers[self.system.dnn[0]])})"
        )

    def step(self, action):
        a, rejected = self._check_action(action, self.action_masks())
        if rejected:
            return self._reject(rejected)
        w = float(self.system.preference[0])
        delay, energy, missed, done = self.system.apply_split(np.array([a]), self.np_random)
        return self._finish_step(w, float(delay[0]), float(energy[0]), bool(missed[0]), bool(done[0]))
