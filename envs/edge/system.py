"""A batched mobile-edge computing system: users, a radio channel, FCFS edge servers, a cloud.

Every array has a leading batch dimension (one row per independent system), so the scalar
environment (batch of one), the vectorised environment and the multi-agent environment share
this code and the compiled rules in ``rules.py``. Compute times and energies of each task come
from the latency model (``DNNLatency``) on the catalog hardware; edge and cloud speeds are
scaled per episode (domain randomisation, GMORL's 2 +- 0.5 GHz / 4 +- 1 GHz as +-25 %).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from servegym.hardware import get_device, get_dnn
from servegym.hardware.dnn import DNNLatency

from . import rules
from .physics import mean_snr, shannon_rate_bps
from .rules import (
    DELAY_REF_S,
    ENERGY_REF_J,
    MISS_PENALTY,
    R_NEEDS_BLOCK,
    RESULT_COLUMNS,
    SERVER_FEATURES,
    SERVERS_AT,
)

TASK_BLOCK = 128  # tasks drawn at once per system (a default episode is 100)


@dataclass(frozen=True)
class MecConfig:
    """The system's parameters; every field can be overridden through the env's kwargs."""

    num_users: int = 10
    max_edges: int = 10
    num_edges: int = 0  # 0: drawn per episode from 1..max_edges
    user_devices: tuple[str, ...] = ("Phone-SoC", "Raspberry-Pi-5", "Jetson-AGX-Orin")
    edge_device: str = "L4"
    cloud_device: str = "A100-80GB"
    dnns: tuple[str, ...] = ("MobileNetV2", "ResNet-50", "YOLOv8n", "BERT-base")
    arrival_rate: float = 0.0  # tasks/s over all users; 0: drawn per episode in [2, 20]
    speed_spread: float = 0.25  # edge/cloud speed factor ~ U(1 - s, 1 + s)
    tx_power_w: float = 0.1  # 20 dBm user equipment
    bandwidth_hz: float = 20e6
    noise_figure_db: float = 0.0
    edge_distance_m: tuple[float, float] = (50.0, 500.0)  # GMORL
    wan_delay_s: float = 0.1  # EdgeCloudSim wan_propagation_delay
    wan_bandwidth_bps: float = 100e6
    min_rate_bps: float = 1e6  # below this the uplink is in outage and offloading is masked
    deadline_s: tuple[float, float] = (0.1, 1.0)
    preference: float = -1.0  # delay weight w; < 0: drawn per episode from U(0, 1)
    episode_tasks: int = 100  # GMORL
    delay_ref_s: float = DELAY_REF_S  # T_ref and E_ref of the scalarised cost (rules.scalarised_cost)
    energy_ref_j: float = ENERGY_REF_J
    miss_penalty: float = MISS_PENALTY  # cost of a missed deadline (rules.task_cost)
    shared_uplink: bool = False  # each edge site's cell sends one upload at a time (TDMA, FCFS)
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"MEC config: {name} must be {expected}, got {getattr(self, name)!r}")

        if not isinstance(self.num_users, int) or not 1 <= self.num_users <= 1000:
            raise bad("num_users", "an integer in 1..1000")
        if not isinstance(self.max_edges, int) or not 1 <= self.max_edges <= 64:
            raise bad("max_edges", "an integer in 1..64")
        if not isinstance(self.num_edges, int) or not 0 <= self.num_edges <= self.max_edges:
            raise bad("num_edges", f"an integer in 0..max_edges ({self.max_edges}); 0 draws it per episode")
        for name in ("tx_power_w", "bandwidth_hz", "wan_bandwidth_bps", "delay_ref_s", "energy_ref_j"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise bad(name, "a positive number")
        if not isinstance(self.shared_uplink, bool):
            raise bad("shared_uplink", "true or false")
        for name in ("arrival_rate", "wan_delay_s", "min_rate_bps", "miss_penalty"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise bad(name, "a number >= 0")
        if not 0 <= self.speed_spread < 1:
            raise bad("speed_spread", "in [0, 1)")
        for name in ("edge_distance_m", "deadline_s"):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi and np.isfinite(hi)):
                raise bad(name, "a (low, high) pair with 0 < low <= high")
        if not (self.preference < 0 or 0 <= self.preference <= 1):
            raise bad("preference", "in [0, 1] (or negative to draw it per episode)")
        if not isinstance(self.episode_tasks, int) or self.episode_tasks < 1:
            raise bad("episode_tasks", "an integer >= 1")
        if not self.user_devices or not self.dnns:
            raise ValueError("MEC config: user_devices and dnns must be non-empty")

    @cached_property
    def tables(self) -> TaskTables:
        return TaskTables.build(self)


@dataclass(frozen=True)
class TaskTables:
    """Per-DNN work, precomputed once per configuration from the latency model."""

    input_bits: np.ndarray  # [J]
    local_time: np.ndarray  # [D, J] seconds on each user-device type
    local_energy: np.ndarray  # [D, J] joules (active power x time)
    edge_time: np.ndarray  # [J] on the nominal edge device
    cloud_time: np.ndarray  # [J] on the nominal cloud device
    num_layers: np.ndarray  # [J]
    prefix_time: np.ndarray  # [D, J, L+1] local time of layers 0..k-1 (split mode)
    prefix_energy: np.ndarray  # [D, J, L+1]
    suffix_edge_time: np.ndarray  # [J, L+1] edge time of layers k..L-1
    split_bits: np.ndarray  # [J, L+1] bits to send when splitting after k layers

    @classmethod
    def build(cls, config: MecConfig) -> TaskTables:
        dnns = [get_dnn(n) for n in config.dnns]
        devices = [get_device(n) for n in config.user_devices]
        edge, cloud = get_device(config.edge_device), get_device(config.cloud_device)
        j_n, d_n = len(dnns), len(devices)
        l_max = max(len(d.layers) for d in dnns)
        local_t = np.zeros((d_n, j_n))
        local_e = np.zeros((d_n, j_n))
        prefix_t = np.zeros((d_n, j_n, l_max + 1))
        prefix_e = np.zeros((d_n, j_n, l_max + 1))
        suffix = np.zeros((j_n, l_max + 1))
        split_bits = np.zeros((j_n, l_max + 1))
        for j, dnn in enumerate(dnns):
            lat_edge = DNNLatency(dnn, edge)
            n = lat_edge.num_layers
            for k in range(l_max + 1):
                kk = min(k, n)
                suffix[j, k] = lat_edge.time(kk, n)
                split_bits[j, k] = 8.0 * lat_edge.split_output_bytes(kk) if kk < n else 0.0
            for d, dev in enumerate(devices):
                lat = DNNLatency(dnn, dev)
                local_t[d, j] = lat.time()
                local_e[d, j] = lat.cost().energy_j
                for k in range(l_max + 1):
                    c = lat.cost(0, min(k, n))
                    prefix_t[d, j, k], prefix_e[d, j, k] = c.time_s, c.energy_j
        return cls(
            input_bits=np.array([8.0 * d.input_bytes for d in dnns]),
            local_time=local_t,
            local_energy=local_e,
            edge_time=np.array([DNNLatency(d, edge).time() for d in dnns]),
            cloud_time=np.array([DNNLatency(d, cloud).time() for d in dnns]),
            num_layers=np.array([len(d.layers) for d in dnns]),
            prefix_time=prefix_t,
            prefix_energy=prefix_e,
            suffix_edge_time=suffix,
            split_bits=split_bits,
        )


def estimates_at(config: MecConfig) -> int:
    """Index of the per-action estimates in the observation (after the preference w, 1 - w)."""
    return SERVERS_AT + SERVER_FEATURES * (config.max_edges + 1) + 2


def observation_size(config: MecConfig) -> int:
    return estimates_at(config) + 2 * (config.max_edges + 2)


class MecBatch:
    """``batch`` independent MEC systems advanced task by task (one decision per arriving task).

    Each row draws its tasks ``TASK_BLOCK`` at a time (arrival gaps, users, DNNs, deadlines,
    per-link fading and the resulting rates), so a step only copies the next task in; arrivals
    do not depend on decisions, so this is the same process as drawing them one by one.
    ``observe()`` fills, per row, the metrics a real system would report before a decision and
    the observation (buffers below, overwritten by the next ``observe()``); the envs hand out
    copies. State arrays are only ever updated in place (the kernels hold references to them).
    """

    def __init__(self, config: MecConfig, batch: int) -> None:
        self.config = config
        self.batch = batch
        self.tables = config.tables
        b, n, m, a = batch, config.num_users, config.max_edges, config.max_edges + 2
        self.rows = np.arange(b)
        self.num_edges = np.zeros(b, dtype=np.int64)
        self.edge_exists = np.zeros((b, m), dtype=bool)
        self.edge_speed = np.ones((b, m))
        self.cloud_speed = np.ones(b)
        self.user_device = np.zeros((b, n), dtype=np.int64)
        self.edge_distance = np.ones((b, n, m))
        self.user_snr = np.ones((b, n, m))  # mean SNR of each user's uplink to each edge
        self.user_nearest = np.zeros((b, n), dtype=np.int64)  # each user's nearest existing edge
        # Queues: the m edge servers, then the m edge sites' cell uplinks (used if shared_uplink).
        self.edge_busy = np.zeros((b, 2 * m))  # the latest finish ever scheduled at each queue
        self.edge_ring = np.zeros((b, 2 * m, rules.QUEUE_SLOTS))  # finish times of its last tasks
        self.edge_ring_start = np.zeros((b, 2 * m, rules.QUEUE_SLOTS))  # and their start times
        self.ring_pos = np.zeros((b, 2 * m), dtype=np.int64)
        self.local_busy = np.zeros((b, n))
        self.now = np.zeros(b)
        self.arrival_rate = np.ones(b)
        self.preference = np.zeros(b)
        self.tasks_done = np.zeros(b, dtype=np.int64)
        # The pending task of each row: floats [deadline, rates (cloud access, edges)] and
        # ints [user, dnn, nearest edge], copied in from the rows' blocks of drawn tasks.
        self.task_f = np.ones((b, m + 2))
        self.task_i = np.zeros((b, 3), dtype=np.int64)
        # Every task of an episode is drawn at reset (one block), so a copy of the system holds
        # its true future: roll-outs on copies are exact (the oracles rely on it).
        self.block_size = max(TASK_BLOCK, config.episode_tasks + 1)
        # Blocks of drawn tasks, task-major: the next tasks of all rows lie side by side.
        self.block_gap = np.zeros((self.block_size, b))
        self.block_f = np.ones((self.block_size, b, m + 2))
        self.block_i = np.zeros((self.block_size, b, 3), dtype=np.int64)
        self.task_index = np.zeros(b, dtype=np.int64)  # the pending task's place in its block
        params = [0.0] * rules.PARAMS
        params[rules.P_WAN_DELAY] = config.wan_delay_s
        params[rules.P_WAN_BANDWIDTH] = config.wan_bandwidth_bps
        params[rules.P_TX_POWER] = config.tx_power_w
        params[rules.P_MIN_RATE] = config.min_rate_bps
        params[rules.P_DELAY_REF] = config.delay_ref_s
        params[rules.P_ENERGY_REF] = config.energy_ref_j
        params[rules.P_MISS_PENALTY] = config.miss_penalty
        params[rules.P_SHARED_UPLINK] = float(config.shared_uplink)
        self.params = np.array(params, dtype=float)
        self.result = np.zeros((b, RESULT_COLUMNS))  # outcome of each row's last executed task
        self.task_log = np.zeros((3, b, config.episode_tasks))  # delay, energy, missed per task
        # What observe() reports, one row per system: the scalar metrics and the per-edge/-link/
        # -action arrays side by side (views in _bind), so one copy of a row holds them all.
        self.layout = rules.report_layout(m)
        self.offsets = rules.report_offsets(m)
        self.reported = np.zeros((b, self.offsets[-1]))
        self.edge_queued = np.zeros((b, m), dtype=np.int64)
        self.mask = np.zeros((b, a), dtype=bool)
        self.obs = np.zeros((b, observation_size(config)), dtype=np.float32)
        # Filled by observe_splits() (DnnSplit): per split point k = 0 .. L.
        splits = self.tables.split_bits.shape[1]
        self.split_delay = np.zeros((b, splits))
        self.split_energy = np.zeros((b, splits))
        self.split_mask = np.zeros((b, splits), dtype=bool)
        self.split_obs = np.zeros((b, 2 * splits), dtype=np.float32)
        self._bind()

    def _bind(self) -> None:
        """Views into ``reported`` and the argument lists of the kernels (rebuilt after unpickling:
        pickle keeps no views)."""
        b, t = self.batch, self.tables
        self.slices: dict[str, slice] = {}
        views = {}
        starts, stops = self.offsets[:-1], self.offsets[1:]
        for (name, shape), start, stop in zip(self.layout.items(), starts, stops, strict=True):
            self.slices[name] = slice(start, stop)
            views[name] = self.reported[:, start:stop].reshape(b, *shape)
            assert np.shares_memory(views[name], self.reported)
        self.scalars = views["scalars"]
        self.edge_wait, self.edge_histogram = views["edge_wait_s"], views["edge_histogram"]
        self.delay_estimate, self.energy_estimate = views["delay_estimate_s"], views["energy_estimate_j"]
        tables = (t.input_bits, t.local_time, t.local_energy, t.edge_time, t.cloud_time)
        queues = (self.edge_busy, self.edge_ring, self.edge_ring_start)
        pending = (self.local_busy, self.user_device)
        block = (self.block_gap, self.block_f, self.block_i)
        split_tables = (t.prefix_time, t.prefix_energy, t.suffix_edge_time, t.split_bits)
        self._action = np.zeros(1, dtype=np.int64)
        self._valid = np.zeros(self.batch, dtype=bool)
        self._apply_args = (
            self.now, self.preference, self.cloud_speed, self.edge_exists, self.edge_speed, *queues,
            self.ring_pos, *pending, self.tasks_done, self.task_index, self.task_f, self.task_i, *block,
            *tables, self.params, self.result, self.task_log,
        )  # fmt: skip
        self._report_args = (self.reported, self.offsets, self.edge_queued, self.mask)
        self._apply_split_args = (
            self.now, self.preference, self.edge_speed, *queues, self.ring_pos, *pending,
            self.tasks_done, self.task_index, self.task_f, self.task_i, *block, *split_tables,
            self.params, self.result, self.task_log,
        )  # fmt: skip
        self._observe_split_args = (
            self.now, self.edge_speed, *queues, *pending, self.task_f, self.task_i, *split_tables,
            t.num_layers, self.params, self.split_delay, self.split_energy, self.split_mask,
            self.split_obs,
        )  # fmt: skip
        self._load_args = (self.task_index, self.now, self.task_f, self.task_i, *block)
        self._store_args = (self.edge_exists, self.user_nearest, *block)

    _DERIVED = ("slices", "scalars", "edge_wait", "edge_histogram", "delay_estimate", "energy_estimate")

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in self._DERIVED and not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind()

    _TASK_MAJOR = ("block_gap", "block_f", "block_i")  # batch on axis 1
    _LOGS = ("task_log",)  # batch on axis 1

    def tile(self, row: int, n: int) -> MecBatch:
        """A new batch of ``n`` copies of row ``row`` (same state, same drawn future): the rows of
        an oracle's roll-outs."""
        state = self.__getstate__()
        out = MecBatch.__new__(MecBatch)
        tiled: dict[str, Any] = {}
        for key, value in state.items():
            if not isinstance(value, np.ndarray) or key in ("params", "offsets"):
                tiled[key] = value
            elif key in self._TASK_MAJOR or key in self._LOGS:
                tiled[key] = np.repeat(value[:, row : row + 1], n, axis=1)
            else:
                tiled[key] = np.repeat(value[row : row + 1], n, axis=0)
        tiled.update(batch=n, rows=np.arange(n))
        out.__setstate__(tiled)
        return out

    # Views of the pending task (properties, so copies and pickles stay consistent).
    deadline = property(lambda self: self.task_f[:, 0])
    rates = property(lambda self: self.task_f[:, 1:])  # [cloud access, edges]
    user = property(lambda self: self.task_i[:, 0])
    dnn = property(lambda self: self.task_i[:, 1])
    nearest_edge = property(lambda self: self.task_i[:, 2])

    # -- episodes ------------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator, rows: np.ndarray | None = None) -> None:
        """Draw new systems (server count, speeds, positions, load, preference) for ``rows``."""
        cfg = self.config
        rows = self.rows if rows is None else np.asarray(rows, dtype=np.int64)
        k, n, m = len(rows), cfg.num_users, cfg.max_edges
        edges = np.full(k, cfg.num_edges) if cfg.num_edges else rng.integers(1, m + 1, k)
        self.num_edges[rows] = edges
        self.edge_exists[rows] = exists = np.arange(m)[None, :] < edges[:, None]
        s = cfg.speed_spread
        self.edge_speed[rows] = rng.uniform(1 - s, 1 + s, (k, m))
        self.cloud_speed[rows] = rng.uniform(1 - s, 1 + s, k)
        self.user_device[rows] = rng.integers(0, len(cfg.user_devices), (k, n))
        self.edge_distance[rows] = dist = rng.uniform(*cfg.edge_distance_m, (k, n, m))
        self.user_snr[rows] = mean_snr(dist, cfg.tx_power_w, cfg.bandwidth_hz, cfg.noise_figure_db)
        self.user_nearest[rows] = np.argmin(np.where(exists[:, None, :], dist, np.inf), axis=2)
        self.edge_busy[rows] = 0.0
        self.edge_ring[rows] = 0.0
        self.edge_ring_start[rows] = 0.0
        self.ring_pos[rows] = 0
        self.local_busy[rows] = 0.0
        self.now[rows] = 0.0
        self.arrival_rate[rows] = cfg.arrival_rate if cfg.arrival_rate > 0 else rng.uniform(2.0, 20.0, k)
        self.preference[rows] = cfg.preference if cfg.preference >= 0 else rng.uniform(0.0, 1.0, k)
        self.tasks_done[rows] = 0
        self._new_block(rng, rows)

    def _draw_users(self, rng: np.random.Generator, rows: np.ndarray, size: int) -> np.ndarray:
        """[len(rows), size]: the users whose tasks arrive next (uniform over the users)."""
        return rng.integers(0, self.config.num_users, (len(rows), size))

    def _new_block(self, rng: np.random.Generator, rows: np.ndarray) -> None:
        """A new block of tasks for ``rows`` (drawn in one go), whose first task becomes pending.

        Exponential gaps, users, DNNs, deadlines, and each task's channel (Rayleigh fading
        re-drawn per task and link; the cloud is reached through the user's nearest base
        station, an edge site, and then the WAN)."""
        cfg, k, size = self.config, len(rows), self.block_size
        gaps = rng.exponential(1.0 / self.arrival_rate[rows, None], (k, size))
        users = np.ascontiguousarray(self._draw_users(rng, rows, size))
        dnns = rng.integers(0, len(cfg.dnns), (k, size))
        deadlines = rng.uniform(*cfg.deadline_s, (k, size))
        snr = rng.exponential(1.0, (k, size, cfg.max_edges))  # the fading, then times the mean SNR
        rules.scale_by_mean_snr(rows, users, self.user_snr, snr)
        rates = shannon_rate_bps(cfg.bandwidth_hz, snr, out=snr)
        rules.store_block(rows, gaps, users, dnns, deadlines, rates, *self._store_args)
        rules.load_tasks(rows, np.zeros(k, dtype=np.int64), *self._load_args)

    # -- what the systems report before a decision -------------------------------------------------
    def observe(self, rows: np.ndarray | None = None, obs: np.ndarray | None = None) -> None:
        """Fill the metric buffers and the observations (``obs``, default ``self.obs``) of ``rows``
        (default: all) from the state."""
        rows = self.rows if rows is None else rows
        obs = self.obs if obs is None else obs
        rules.advance(rows, False, rows, self._valid, *self._apply_args, *self._report_args, obs)

    def observe_splits(self, rows: np.ndarray | None = None) -> None:
        """Fill the split estimates, masks and split observations of ``rows`` (DnnSplit)."""
        rules.observe_splits(self.rows if rows is None else rows, *self._observe_split_args)

    def predict(self) -> tuple[np.ndarray, np.ndarray]:
        """Delay and device energy of the pending task for every action: ([B, A], [B, A]).

        Exact for this simulator (what a greedy heuristic with a perfect model would compute);
        missing edges get +inf."""
        self.observe()
        return self.delay_estimate.copy(), self.energy_estimate.copy()

    def queue_features(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per edge: seconds of queued work, tasks queued, and the GMORL-style histogram of
        queued tasks' remaining time ([B, M], [B, M], [B, M, HIST_BINS])."""
        self.observe()
        return self.edge_wait.copy(), self.edge_queued.copy(), self.edge_histogram.copy()

    def action_masks(self) -> np.ndarray:
        """[B, A]: local always; the cloud and each existing edge unless its uplink is in outage
        (rate below ``min_rate_bps`` after this task's fading draw)."""
        masks = np.empty((self.batch, self.config.max_edges + 2), dtype=bool)
        rules.action_masks(self.edge_exists, self.task_f, self.params, masks)
        return masks

    def split_masks(self) -> np.ndarray:
        """[B, L+1]: split points that exist for the pending task's DNN; only k = L (all on the
        device) while the uplink to the nearest edge is in outage."""
        self.observe_splits()
        return self.split_mask.copy()

    def predict_split(self) -> tuple[np.ndarray, np.ndarray]:
        """Delay and device energy for every split k of the pending task between the device
        (layers 0..k-1) and its nearest edge (layers k..): ([B, L+1], [B, L+1]); k = L is local;
        +inf and 0 J where the split is not allowed."""
        self.observe_splits()
        return self.split_delay.copy(), self.split_energy.copy()

    def metrics(self) -> dict[str, np.ndarray]:
        """Every row's metrics (arrays with a leading batch axis) after ``observe()``."""
        scalars = dict(zip(rules.SCALAR_METRICS, self.scalars.T.copy(), strict=True))
        b = self.batch
        per_row = {k: self.reported[:, s].reshape(b, *self.layout[k]).copy() for k, s in self.slices.items()}
        return {
            **{k: scalars[k] for k in ("task_bits", "deadline_s", "local_time_s", "local_energy_j")},
            "device_type": scalars["device_type"].astype(np.int64),
            "local_wait_s": scalars["local_wait_s"],
            "edge_exists": self.edge_exists.copy(),
            "edge_speed": per_row["edge_speed"],
            "cloud_speed": scalars["cloud_speed"],
            "rates_bps": per_row["rates_bps"],  # [cloud access, edges...]
            "edge_wait_s": per_row["edge_wait_s"],
            "edge_queued": self.edge_queued.copy(),
            "edge_histogram": per_row["edge_histogram"],
            "preference": scalars["preference"],
            "delay_estimate_s": per_row["delay_estimate_s"],  # per action: local, cloud, edges
            "energy_estimate_j": per_row["energy_estimate_j"],
            "num_edges": self.num_edges.copy(),
            "time_s": scalars["time_s"],
        }

    def row_metrics(self, r: int) -> dict[str, Any]:
        """``metrics()`` of row ``r`` after ``observe()``: Python numbers for scalars, fresh arrays
        otherwise (what the scalar and multi-agent envs put in ``info["metrics"]``)."""
        row, sl = self.reported[r].copy(), self.slices
        bits, deadline, local_time, local_energy, local_wait, cloud_speed, w, now, device = row[
            sl["scalars"]
        ].tolist()
        return {
            "task_bits": bits,
            "deadline_s": deadline,
            "local_time_s": local_time,
            "local_energy_j": local_energy,
            "device_type": int(device),
            "local_wait_s": local_wait,
            "edge_exists": self.edge_exists[r].copy(),
            "edge_speed": row[sl["edge_speed"]],
            "cloud_speed": cloud_speed,
            "rates_bps": row[sl["rates_bps"]],
            "edge_wait_s": row[sl["edge_wait_s"]],
            "edge_queued": self.edge_queued[r].copy(),
            "edge_histogram": row[sl["edge_histogram"]].reshape(self.layout["edge_histogram"]),
            "preference": w,
            "delay_estimate_s": row[sl["delay_estimate_s"]],
            "energy_estimate_j": row[sl["energy_estimate_j"]],
            "num_edges": int(self.num_edges[r]),
            "time_s": now,
        }

    # -- executing decisions ---------------------------------------------------------------------------
    def apply(self, actions: np.ndarray, rng: np.random.Generator, valid: np.ndarray | None = None):
        """Execute the pending tasks with ``actions`` (valid ones; only where ``valid``, the others
        stay pending); return (delay, energy, missed, done) for every row (NaN, NaN, False for
        rows not executed)."""
        actions = np.asarray(actions, dtype=np.int64)
        rows = self.rows if valid is None else np.flatnonzero(valid)
        rules.apply_actions(rows, rows, actions if valid is None else actions[rows], *self._apply_args)
        return self._executed(valid, rng)

    def step(
        self, actions: np.ndarray, rng: np.random.Generator, obs: np.ndarray | None = None
    ) -> np.ndarray:
        """One decision per row (``actions``, int64; each allowed or not by the masks of the last
        ``observe()``): execute the allowed ones, then observe every row (observations into
        ``obs``, default ``self.obs``). Returns which actions were allowed; ``result`` holds the
        outcomes (NaN delay, energy and cost where not allowed)."""
        valid = np.empty(self.batch, dtype=bool)
        obs = self.obs if obs is None else obs
        if rules.advance(self.rows, True, actions, valid, *self._apply_args, *self._report_args, obs):
            spent = np.flatnonzero(valid & (self.result[:, R_NEEDS_BLOCK] > 0))
            self._new_block(rng, spent)
            self.observe(spent, obs)
        return valid

    def apply_one(self, row: int, action: int, rng: np.random.Generator, queue_row: int | None = None):
        """Execute row ``row``'s pending task with the valid ``action``, using the queues of
        ``queue_row`` (default: its own); returns ``result[row]`` as floats (``rules.R_*``)."""
        r = self.rows[row : row + 1]
        q = r if queue_row is None else self.rows[queue_row : queue_row + 1]
        self._action[0] = action
        rules.apply_actions(r, q, self._action, *self._apply_args)
        if self.result[row, R_NEEDS_BLOCK]:
            self._new_block(rng, r)
        return self.result[row].tolist()

    def apply_split(self, splits: np.ndarray, rng: np.random.Generator):
        """Execute the pending tasks split after ``splits`` layers (valid splits); (delay, energy,
        missed, done) for every row."""
        splits = np.asarray(splits, dtype=np.int64)
        rules.apply_splits(self.rows, splits, *self._apply_split_args)
        return self._executed(None, rng)

    def _executed(self, valid: np.ndarray | None, rng: np.random.Generator):
        """After executing the ``valid`` rows (None: all): new blocks where they ran out; (delay,
        energy, missed, done) for every row."""
        result = self.result
        spent = result[:, R_NEEDS_BLOCK] > 0
        if valid is not None:
            spent &= valid
        if spent.any():
            self._new_block(rng, np.flatnonzero(spent))
        delay, energy = result[:, rules.R_DELAY].copy(), result[:, rules.R_ENERGY].copy()
        missed = result[:, rules.R_MISSED] > 0
        if valid is not None:
            delay[~valid] = energy[~valid] = np.nan
            missed &= valid
        return delay, energy, missed, self.tasks_done >= self.config.episode_tasks
