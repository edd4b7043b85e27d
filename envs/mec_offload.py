"""MecOffload-v0 and DnnSplit-v0: where an inference task runs, trading delay against energy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from servegym.metric_spec import Metric

from .edge import rules
from .edge.rules import HIST_BINS, SERVER_FEATURES, SERVERS_AT
from .edge.system import MecBatch, MecConfig, estimates_at, observation_size

__all__ = [
    "METRIC_KEYS",
    "PRESETS",
    "DnnSplitEnv",
    "MecOffloadEnv",
    "describe_action",
    "encode_mec_observation",
    "episode_kpis",
    "estimates_at",
    "observation_size",
    "server_view",
]

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


def _metric_shapes(config: MecConfig) -> dict[str, tuple[int, ...]]:
    """Per-task shape of each metric ``encode_mec_observation`` reads."""
    m = config.max_edges
    per_edge = ("edge_exists", "edge_speed", "edge_wait_s", "edge_queued")
    shapes: dict[str, tuple[int, ...]] = {k: () for k in METRIC_KEYS}
    shapes.update(dict.fromkeys(per_edge, (m,)))
    shapes.update(rates_bps=(m + 1,), edge_histogram=(m, HIST_BINS))
    shapes.update(delay_estimate_s=(m + 2,), energy_estimate_j=(m + 2,))
    return shapes


def encode_mec_observation(m: Mapping[str, Any], config: MecConfig) -> np.ndarray:
    """[B, obs] float32 observations from batched metrics (leading batch axis; a pure function of
    the metrics, ``rules.encode_row`` per task). A metric of the wrong shape raises ValueError."""
    b = np.shape(m["deadline_s"])[0] if np.ndim(m["deadline_s"]) else 0
    values = {}
    for key, shape in _metric_shapes(config).items():
        dtype = {"edge_exists": bool, "device_type": np.int64}.get(key, np.float64)
        value = np.ascontiguousarray(m[key], dtype=dtype)
        if value.shape != (b, *shape):
            raise ValueError(
                f"metric {key!r} has shape {value.shape[1:]} per task, expected {shape} "
                f"(max_edges = {config.max_edges})"
            )
        values[key] = value
    obs = np.empty((b, observation_size(config)), dtype=np.float32)
    rules.encode_rows(
        **values,
        delay_ref_s=float(config.delay_ref_s),
        energy_ref_j=float(config.energy_ref_j),
        miss_penalty=float(config.miss_penalty),
        obs=obs,
    )
    return obs


def describe_action(a: int) -> str:
    """What MecOffload action ``a`` runs the task on: local, cloud or edge i."""
    return ("local", "cloud")[a] if a < 2 else f"edge {a - 2}"


def server_view(obs: np.ndarray, max_edges: int) -> np.ndarray:
    """The per-server block of observations ``[..., obs]`` as ``[..., cloud + edges, SERVER_FEATURES]``."""
    end = SERVERS_AT + SERVER_FEATURES * (max_edges + 1)
    return obs[..., SERVERS_AT:end].reshape(*obs.shape[:-1], -1, SERVER_FEATURES)


PRIMARY_KPI = "cost_per_task"
"""The MEC envs' primary KPI (lower is better): the mean over an episode's tasks of
``w delay / T_ref + (1 - w) energy / E_ref + miss_penalty [missed deadline]`` (``rules.task_cost``)
with the episode's preference w. The return is ``-episode_tasks x cost_per_task``."""


def episode_kpis(
    delays: np.ndarray,
    energies: np.ndarray,
    missed: np.ndarray,
    w: Any,
    config: MecConfig | None = None,
) -> list[dict[str, float]]:
    """The KPIs of finished episodes (one row per episode, one column per task) from their tasks'
    delays (s), energies (J) and deadline misses, and each episode's preference ``w``; the primary
    KPI ``cost_per_task`` with ``config``'s normalisers and miss penalty (default: the defaults)."""
    config = config or MecConfig()
    d, e, m = (np.atleast_2d(np.asarray(x, dtype=float)) for x in (delays, energies, missed))
    pref = np.broadcast_to(np.asarray(w, dtype=float), len(d))
    cost = rules.scalarised_cost(d, e, pref[:, None], config.delay_ref_s, config.energy_ref_j)
    cost = cost + config.miss_penalty * m
    columns = zip(
        cost.mean(axis=1).tolist(),
        d.mean(axis=1).tolist(),
        np.quantile(d, 0.95, axis=1).tolist(),
        m.mean(axis=1).tolist(),
        e.mean(axis=1).tolist(),
        pref.tolist(),
        strict=True,
    )
    return [
        {
            PRIMARY_KPI: c,
            "tasks": float(d.shape[1]),
            "delay_mean_s": mean,
            "delay_p95_s": p95,
            "deadline_miss_ratio": miss,
            "energy_per_task_j": energy,
            "preference": pref,
        }
        for c, mean, p95, miss, energy, pref in columns
    ]


def reward_terms(result: list[float], w: float, miss_penalty: float) -> tuple[dict, dict]:
    """The named terms of an executed task's reward and their weights (the reward is their weighted
    sum): ``-delay / T_ref`` (weight w), ``-energy / E_ref`` (1 - w) and ``-1`` if the deadline was
    missed (``miss_penalty``)."""
    missed = result[rules.R_MISSED] > 0
    terms = {
        "delay": result[rules.R_DELAY_TERM],
        "energy": result[rules.R_ENERGY_TERM],
        "deadline_miss": -1.0 if missed else 0.0,
    }
    return terms, {"delay": w, "energy": 1.0 - w, "deadline_miss": miss_penalty}


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


_CAMERAS: dict[str, Any] = {
    "shared_uplink": True,
    "user_devices": ("Raspberry-Pi-5",),
    "dnns": ("ResNet-50", "YOLOv8n"),
    "max_edges": 3,
    "num_edges": 2,
}
"""Raspberry Pi cameras offloading vision DNNs (raw 224/640 px frames: 4.8 / 39 Mbit) through
up to 3 edge sites whose cell uplinks carry one upload at a time (one action and observation
space for every camera preset, so a policy trained on one runs on the others)."""

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # GMORL-like randomisation: 1-10 edges, load 2-20 tasks/s, w ~ U(0, 1)
    "single-edge-light": {"num_edges": 1, "arrival_rate": 3.0},
    "multi-edge-busy": {"num_edges": 5, "arrival_rate": 15.0},
    "far-cell": {"edge_distance_m": (400.0, 1000.0), "num_edges": 3, "arrival_rate": 5.0},
    "llm-prompts": {"dnns": ("BERT-base", "Llama-3.2-1B-Prefill-128"), "num_edges": 4, "arrival_rate": 4.0},
    "camera-fleet": {**_CAMERAS, "arrival_rate": 8.0},
    "camera-fleet-busy": {**_CAMERAS, "num_edges": 3, "arrival_rate": 12.0},
    "camera-fleet-far": {**_CAMERAS, "edge_distance_m": (200.0, 800.0), "arrival_rate": 6.0},
    "camera-fleet-light": {**_CAMERAS, "arrival_rate": 3.0},
    "camera-fleet-varied": {
        **_CAMERAS,
        "num_edges": 0,
        "arrival_rate": 0.0,
        "edge_distance_m": (50.0, 800.0),
    },
    "camera-fleet-mixed": {
        **_CAMERAS,
        "user_devices": ("Raspberry-Pi-5", "Phone-SoC", "Jetson-AGX-Orin"),
        "arrival_rate": 10.0,
    },
}

PRESET_PHENOMENA: dict[str, str] = {
    "default": "GMORL's randomisation: 1-10 uncongested edges, 2-20 tasks/s, w ~ U(0, 1)",
    "single-edge-light": "one edge, light load",
    "multi-edge-busy": "five edges at 15 tasks/s (edges far from saturation)",
    "far-cell": "far cells (400-1000 m): slow, often failing uplinks",
    "llm-prompts": "small BERT / 1B-LLM prompts: tiny uploads, heavy local compute",
    "camera-fleet": "congested shared uplinks: Pi cameras send raw frames through 2 cells at 8 tasks/s",
    "camera-fleet-busy": "congested shared uplinks, 3 cells at 12 tasks/s",
    "camera-fleet-far": "congested shared uplinks, poor radio (cells 200-800 m away), 6 tasks/s",
    "camera-fleet-light": "shared uplinks at light load (3 tasks/s)",
    "camera-fleet-mixed": "shared uplinks, heterogeneous devices (Pi, phone, Jetson), 10 tasks/s",
    "camera-fleet-varied": "shared uplinks, randomised per episode: 1-3 cells, 2-20 tasks/s, 50-800 m",
}
"""The phenomenon each preset exercises (the headroom tables' second column)."""


class MecOffloadEnv(gym.Env[np.ndarray, np.int64]):
    """Offload each arriving inference task to the device, the cloud or one of up to 10 edges.

    ## Description
    N users (phone-class SoCs, Raspberry Pi 5, Jetson Orin) generate DNN inference tasks
    (MobileNetV2, ResNet-50, YOLOv8n, BERT-base, a 1B-LLM prompt) with deadlines. Each step one
    task arrives and the agent decides where it runs: locally (device FCFS queue, device energy =
    active power x time), in the cloud (uplink to the nearest cell, WAN delay and bandwidth,
    elastic compute), or at an edge server (uplink, FCFS queue, execution). Compute times come
    from servegym's latency model on the catalog hardware; the uplink uses Shannon's formula over
    the 3GPP macro path loss with Rayleigh fading; with `shared_uplink` each edge site's cell
    sends one upload at a time (TDMA, FCFS with backfilling), so uploads queue. The delay/energy
    weight w is drawn per episode and observed, so one policy serves every preference (GMORL).

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
    log2(1 + rate/Mbps) / 16, queued work (s; its cell's uplink, then its server) / 10, queued
    tasks / 8 and an 8-bin histogram of the queued tasks' remaining time (0, 10, 20, 50, 100,
    200, 500 ms, 1 s; GMORL's histogram
    encoding); preference (w, 1 - w); then, per action (local, cloud, edges), the system's
    predicted delay / deadline (clipped to 1), and then its predicted task cost
    c = w delay / 0.5 s + (1 - w) energy / 0.5 J + [delay > deadline] as 1 - 1 / (1 + c), from
    `info["metrics"]["delay_estimate_s"]` and `["energy_estimate_j"]` (an unavailable action,
    +inf, gives 1 in both).

    ## Rewards
    Minus the task's cost (``rules.task_cost``):
    `-(w delay / delay_ref + (1 - w) energy / energy_ref + miss_penalty [delay > deadline])`
    (refs 0.5 s and 0.5 J, penalty 1): the sum of the named terms in `info["reward_terms"]`
    (`delay` = -delay / delay_ref, `energy` = -energy / energy_ref, `deadline_miss` = -1 or 0)
    times their weights in `info["reward_weights"]` (w, 1 - w, miss_penalty);
    `info["reward_vec"] = [-delay_s, -energy_j]`. The
    primary KPI is `episode_kpis["cost_per_task"]`, the mean task cost: the return is
    `-episode_tasks x cost_per_task` (a rejected action's penalty aside).

    ## Episode End
    Truncated after `episode_tasks` tasks (100, as in GMORL).

    ## Arguments
    `scenario` (a preset of `PRESETS`), and any `MecConfig` field: `num_users`, `max_edges`,
    `num_edges` (0: random 1..max_edges), `user_devices`, `edge_device`, `cloud_device`, `dnns`,
    `arrival_rate` (0: random 2-20 tasks/s), `tx_power_w`, `bandwidth_hz`, `edge_distance_m`,
    `wan_delay_s`, `deadline_s`, `preference` (< 0: random), `episode_tasks`, ...

    ## Version History
    - v0: initial version; the reward includes the deadline-miss penalty (issue 13).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 10}
    METRICS: ClassVar[tuple[Metric, ...]] = MEC_METRICS
    PRIMARY_KPI: ClassVar[str] = PRIMARY_KPI
    PRIMARY_KPI_GOAL: ClassVar[str] = "min"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = PRESETS
    PRESET_PHENOMENA: ClassVar[dict[str, str]] = PRESET_PHENOMENA

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
        self._action = np.zeros(1, dtype=np.int64)

    def _observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Observation and info of the pending task, measured from the system's state."""
        self.system.observe(self.system.rows)
        return self._report()

    def _report(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Observation and info from the system's last observation (fresh arrays)."""
        s = self.system
        self._mask = s.mask[0].copy()
        self._mask.flags.writeable = False  # handed out in info and kept: nobody changes it
        return s.obs[0].copy(), {"metrics": s.row_metrics(0), "action_mask": self._mask}

    def observation_from_metrics(self, metrics: Mapping[str, Any]) -> np.ndarray:
        """The observation of one task from a live system's metrics (the keys of ``info["metrics"]``,
        per-server values as lists or arrays); the same encoder the env uses."""
        missing = [k for k in METRIC_KEYS if k not in metrics]
        if missing:
            needed = ", ".join(METRIC_KEYS)
            raise ValueError(f"metrics lack {', '.join(map(repr, missing))} (the observation needs {needed})")
        batched = {k: np.asarray(metrics[k])[None] for k in METRIC_KEYS}
        return encode_mec_observation(batched, self.config)[0]

    def action_masks(self) -> np.ndarray:
        return self._mask.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.system.reset(self.np_random)
        self._started = True
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
        obs, info = self._report()  # the same task again
        info["action_mask"] = np.array(info["action_mask"])
        info.update(rejected_action=message, reward_terms={"invalid_action": -self.invalid_action_penalty})
        return obs, -self.invalid_action_penalty, False, False, info

    def _describe(self, a: int) -> str:
        return describe_action(a)

    def get_action_meanings(self) -> list[str]:
        return [self._describe(a) for a in range(self.action_space.n)]

    def step(self, action):
        a, rejected = self._check_action(action, self._mask)
        if rejected:
            return self._reject(rejected)
        w = self.system.preference.item()
        self._action[0] = a
        self.system.step(self._action, self.np_random)  # executes it (allowed) and observes
        return self._finish_step(w, self.system.result[0].tolist())

    def _finish_step(self, w: float, result: list[float]):
        """Reward, observation and info after the task ran (``result``: ``rules.R_*`` columns)."""
        delay, energy, _, _, cost, missed_flag, _ = result
        missed = missed_flag > 0
        done = self.system.tasks_done.item() >= self.config.episode_tasks
        terms, weights = reward_terms(result, w, self.config.miss_penalty)
        reward = -cost
        obs, info = self._report()
        info.update(
            reward_vec=np.array([-delay, -energy]),
            reward_terms=terms,
            reward_weights=weights,
            deadline_missed=missed,
            delay_s=delay,
            energy_j=energy,
        )
        if done:  # the system logged the episode's tasks
            info["episode_kpis"] = episode_kpis(*self.system.task_log[:, :1], w, self.config)[0]
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

    def _report(self) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = super()._report()
        s = self.system
        s.observe_splits(s.rows)
        info["metrics"]["split_delay_estimate_s"] = s.split_delay[0].copy()
        info["metrics"]["split_energy_estimate_j"] = s.split_energy[0].copy()
        self._mask = s.split_mask[0].copy()
        info["action_mask"] = self._mask.copy()
        return np.concatenate([obs, s.split_obs[0]]), info

    def observation_from_metrics(self, metrics: Mapping[str, Any]) -> np.ndarray:
        obs = super().observation_from_metrics(metrics)
        delay = np.ascontiguousarray(metrics["split_delay_estimate_s"], dtype=float)
        energy = np.ascontiguousarray(metrics["split_energy_estimate_j"], dtype=float)
        if delay.shape != (self.num_splits,) or energy.shape != (self.num_splits,):
            raise ValueError(
                f"split estimates need {self.num_splits} entries, got {delay.shape} and {energy.shape}"
            )
        extra = np.empty(2 * self.num_splits, dtype=np.float32)
        rules.encode_split_row(extra, float(metrics["deadline_s"]), delay, energy, self.config.energy_ref_j)
        return np.concatenate([obs, extra])

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
        self.system.apply_split(np.array([a]), self.np_random)
        self.system.observe(self.system.rows)
        return self._finish_step(w, self.system.result[0].tolist())
