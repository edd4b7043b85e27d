"""A batched mobile-edge computing system: users, a radio channel, FCFS edge servers, a cloud.

Every array has a leading batch dimension (one row per independent system), so the scalar
environment (batch of one) and the vectorised environment share this code. Compute times and
energies of each task come from the latency model (``DNNLatency``) on the catalog hardware;
edge and cloud speeds are scaled per episode (domain randomisation, GMORL's 2 +- 0.5 GHz /
4 +- 1 GHz as +-25 %).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from servegym.hardware import get_device, get_dnn
from servegym.hardware.dnn import DNNLatency

from .physics import transmit_energy_j, uplink_rate_bps

LOCAL, CLOUD = 0, 1  # action indices; edges are 2 .. 2 + max_edges - 1
HIST_BINS = 8
HIST_EDGES_S = np.array([0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, np.inf])  # remaining-work bins
QUEUE_SLOTS = 8  # completion times remembered per edge (for the queued-work histogram)


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
    delay_ref_s: float = 0.5  # normalisation of the scalarised reward
    energy_ref_j: float = 0.5
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
        for name in ("arrival_rate", "wan_delay_s", "min_rate_bps"):
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


def earliest_start(arrive, run, starts, finishes, busy):
    """When a task whose data reaches an edge at ``arrive`` and runs for ``run`` can start.

    Edges are non-preemptive single servers that never delay work already scheduled: the task
    takes the earliest idle gap after its arrival that fits it (FCFS with backfilling, HEFT's
    insertion rule), so a task still uploading does not hold the server idle. ``starts`` and
    ``finishes`` (trailing axis: the last ``QUEUE_SLOTS`` tasks) describe the schedule; when all of
    them are still pending the schedule may be longer, so the task goes after ``busy``.
    """
    shape = np.broadcast_shapes(np.shape(arrive), np.shape(run), np.shape(busy))
    arrive, run, busy = (np.broadcast_to(x, shape) for x in (arrive, run, busy))
    starts, finishes = (np.broadcast_to(x, (*shape, QUEUE_SLOTS)) for x in (starts, finishes))
    live = finishes > arrive[..., None]
    start = arrive.copy()  # an edge with nothing scheduled after the arrival starts at once
    busy_after = live.any(axis=-1)
    if busy_after.any():
        idx = np.nonzero(busy_after)
        a, r, s, f, lv = arrive[idx], run[idx], starts[idx], finishes[idx], live[idx]
        cand = np.concatenate([a[:, None], np.where(lv, f, np.inf)], axis=1)
        end = cand + r[:, None]
        clash = (s[:, None, :] < end[:, :, None]) & (f[:, None, :] > cand[:, :, None]) & lv[:, None, :]
        best = np.where(clash.any(axis=2), np.inf, cand).min(axis=1)
        full = lv.sum(axis=1) >= QUEUE_SLOTS
        start[idx] = np.where(full | ~np.isfinite(best), np.maximum(a, busy[idx]), best)
    return start


class MecBatch:
    """``batch`` independent MEC systems advanced task by task (one decision per arriving task)."""

    def __init__(self, config: MecConfig, batch: int) -> None:
        self.config = config
        self.batch = batch
        self.tables = config.tables
        b, n, m = batch, config.num_users, config.max_edges
        self.rows = np.arange(b)
        self.num_edges = np.zeros(b, dtype=np.int64)
        self.edge_exists = np.zeros((b, m), dtype=bool)
        self.edge_speed = np.ones((b, m))
        self.cloud_speed = np.ones(b)
        self.user_device = np.zeros((b, n), dtype=np.int64)
        self.edge_distance = np.ones((b, n, m))
        self.edge_busy = np.zeros((b, m))
        self.edge_ring = np.zeros((b, m, QUEUE_SLOTS))  # finish times of the last tasks per edge
        self.edge_ring_start = np.zeros((b, m, QUEUE_SLOTS))  # and their start times
        self.ring_pos = np.zeros((b, m), dtype=np.int64)
        self.local_busy = np.zeros((b, n))
        self.now = np.zeros(b)
        self.rate = np.zeros(b)
        self.arrival_rate = np.ones(b)
        self.preference = np.zeros(b)
        self.tasks_done = np.zeros(b, dtype=np.int64)
        # The pending task of each system.
        self.user = np.zeros(b, dtype=np.int64)
        self.dnn = np.zeros(b, dtype=np.int64)
        self.deadline = np.ones(b)
        self.rates = np.ones((b, m + 1))  # [cloud access, edges]
        self.nearest_edge = np.zeros(b, dtype=np.int64)
        self._prediction: tuple[np.ndarray, np.ndarray] | None = None  # cached until the state moves

    # -- episodes ------------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator, rows: np.ndarray | None = None) -> None:
        """Draw new systems (server count, speeds, positions, load, preference) for ``rows``."""
        cfg = self.config
        rows = self.rows if rows is None else rows
        k, n, m = len(rows), cfg.num_users, cfg.max_edges
        edges = np.full(k, cfg.num_edges) if cfg.num_edges else rng.integers(1, m + 1, k)
        self.num_edges[rows] = edges
        self.edge_exists[rows] = np.arange(m)[None, :] < edges[:, None]
        s = cfg.speed_spread
        self.edge_speed[rows] = rng.uniform(1 - s, 1 + s, (k, m))
        self.cloud_speed[rows] = rng.uniform(1 - s, 1 + s, k)
        self.user_device[rows] = rng.integers(0, len(cfg.user_devices), (k, n))
        self.edge_distance[rows] = rng.uniform(*cfg.edge_distance_m, (k, n, m))
        self.edge_busy[rows] = 0.0
        self.edge_ring[rows] = 0.0
        self.edge_ring_start[rows] = 0.0
        self.ring_pos[rows] = 0
        self.local_busy[rows] = 0.0
        self.now[rows] = 0.0
        self.arrival_rate[rows] = cfg.arrival_rate if cfg.arrival_rate > 0 else rng.uniform(2.0, 20.0, k)
        self.preference[rows] = cfg.preference if cfg.preference >= 0 else rng.uniform(0.0, 1.0, k)
        self.tasks_done[rows] = 0
        self._prediction = None
        self._next_task(rng, rows)

    def _next_task(self, rng: np.random.Generator, rows: np.ndarray) -> None:
        """The next task of each row: an exponential gap later, from a random user."""
        self.now[rows] += rng.exponential(1.0 / self.arrival_rate[rows])
        self._new_tasks(rng, rows, rng.integers(0, self.config.num_users, len(rows)))

    def _new_tasks(self, rng: np.random.Generator, rows: np.ndarray, users: np.ndarray) -> None:
        """Pending tasks for ``rows`` from ``users`` at the rows' current time: a DNN, a deadline
        and this task's channel (Rayleigh fading re-drawn per task and link; the cloud is reached
        through the nearest base station, an edge site, and then the WAN)."""
        cfg, k = self.config, len(rows)
        self.user[rows] = users
        self.dnn[rows] = rng.integers(0, len(cfg.dnns), k)
        self.deadline[rows] = rng.uniform(*cfg.deadline_s, k)
        dist = self.edge_distance[rows, self.user[rows]]  # [k, m]
        fading = rng.exponential(1.0, (k, cfg.max_edges))
        edge_rates = uplink_rate_bps(dist, cfg.tx_power_w, cfg.bandwidth_hz, fading, cfg.noise_figure_db)
        edge_rates = np.where(self.edge_exists[rows], edge_rates, 0.0)
        nearest = np.argmin(np.where(self.edge_exists[rows], dist, np.inf), axis=1)
        self.nearest_edge[rows] = nearest
        self.rates[rows, 0] = edge_rates[np.arange(k), nearest]
        self.rates[rows, 1:] = edge_rates
        self._prediction = None

    # -- outcomes --------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget cached predictions after changing the state from outside."""
        self._prediction = None

    def predict(self) -> tuple[np.ndarray, np.ndarray]:
        if self._prediction is None:
            self._prediction = self._predict()
        return self._prediction

    def _predict(self) -> tuple[np.ndarray, np.ndarray]:
        """Delay and device energy of the pending task for every action: ([B, A], [B, A]).

        Exact for this simulator (what a greedy heuristic with a perfect model would compute):
        local FCFS on the device, upload + FCFS queue + execution at an edge, upload + WAN +
        execution in the (elastic) cloud. Missing edges get +inf.
        """
        cfg, t = self.config, self.tables
        rows, u, j = self.rows, self.user, self.dnn
        dev = self.user_device[rows, u]
        now = self.now
        bits = t.input_bits[j]
        a = cfg.max_edges + 2
        delay = np.full((self.batch, a), np.inf)
        energy = np.zeros((self.batch, a))
        local_start = np.maximum(now, self.local_busy[rows, u])
        delay[:, 0] = local_start + t.local_time[dev, j] - now
        energy[:, 0] = t.local_energy[dev, j]
        up_cloud = bits / np.maximum(self.rates[:, 0], 1e-9)
        delay[:, 1] = (
            up_cloud + cfg.wan_delay_s + bits / cfg.wan_bandwidth_bps + t.cloud_time[j] / self.cloud_speed
        )
        energy[:, 1] = transmit_energy_j(bits, self.rates[:, 0], cfg.tx_power_w)
        rates = self.rates[:, 1:]
        upload = bits[:, None] / np.maximum(rates, 1e-9)
        run = t.edge_time[j][:, None] / self.edge_speed
        start = earliest_start(
            now[:, None] + upload, run, self.edge_ring_start, self.edge_ring, self.edge_busy
        )
        finish = start + run
        delay[:, 2:] = np.where(self.edge_exists, finish - now[:, None], np.inf)
        energy[:, 2:] = np.where(
            self.edge_exists, transmit_energy_j(bits[:, None], rates, cfg.tx_power_w), 0.0
        )
        return delay, energy

    def action_masks(self) -> np.ndarray:
        """[B, A]: local always; the cloud and each existing edge unless its uplink is in outage
        (rate below ``min_rate_bps`` after this task's fading draw)."""
        up = self.rates >= self.config.min_rate_bps  # [cloud access, edges]
        return np.concatenate(
            [np.ones((self.batch, 1), dtype=bool), up[:, :1], self.edge_exists & up[:, 1:]], axis=1
        )

    def apply(self, actions: np.ndarray, rng: np.random.Generator, valid: np.ndarray | None = None):
        """Execute the pending tasks with ``actions`` (only where ``valid``; the others stay
        pending); return (delay, energy, missed, done) for every row."""
        actions = np.asarray(actions, dtype=np.int64)
        valid = np.ones(self.batch, dtype=bool) if valid is None else valid
        actions = np.where(valid, actions, LOCAL)
        delay_all, energy_all = self.predict()
        rows = self.rows
        delay = delay_all[rows, actions]
        energy = energy_all[rows, actions]
        finish = self.now + delay
        local = (actions == LOCAL) & valid
        if local.any():
            self.local_busy[rows[local], self.user[local]] = finish[local]
        at_edge = (actions >= 2) & valid
        if at_edge.any():
            r, e = rows[at_edge], actions[at_edge] - 2
            run = self.tables.edge_time[self.dnn[at_edge]] / self.edge_speed[r, e]
            self._commit_edge(r, e, finish[at_edge] - run, finish[at_edge])
        return self._advance(delay, energy, valid, rng)

    def _commit_edge(self, r: np.ndarray, e: np.ndarray, start: np.ndarray, finish: np.ndarray) -> None:
        """Record tasks running on edge ``e`` of rows ``r`` from ``start`` to ``finish``."""
        self.edge_busy[r, e] = np.maximum(self.edge_busy[r, e], finish)
        slot = self.ring_pos[r, e] % QUEUE_SLOTS
        self.edge_ring[r, e, slot] = finish
        self.edge_ring_start[r, e, slot] = start
        self.ring_pos[r, e] += 1

    def _advance(self, delay, energy, valid, rng):
        self._prediction = None
        missed = delay > self.deadline
        self.tasks_done += valid
        done = self.tasks_done >= self.config.episode_tasks
        if valid.all():
            self._next_task(rng, self.rows)
        elif valid.any():
            self._next_task(rng, self.rows[valid])
        return delay, energy, missed, done

    def queue_features(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per edge: seconds of queued work, tasks queued, and the GMORL-style histogram of
        queued tasks' remaining time ([B, M], [B, M], [B, M, HIST_BINS])."""
        remaining = self.edge_ring - self.now[:, None, None]
        queued = remaining > 0
        wait = np.maximum(self.edge_busy - self.now[:, None], 0.0)
        b, m, _ = remaining.shape
        bins = np.searchsorted(HIST_EDGES_S[1:-1], remaining[queued], side="right")
        cell = np.nonzero(queued)  # (row, edge, slot) of each queued task
        flat = (cell[0] * m + cell[1]) * HIST_BINS + bins
        hist = np.bincount(flat, minlength=b * m * HIST_BINS).reshape(b, m, HIST_BINS).astype(float)
        return wait, queued.sum(axis=2), hist

    # -- DNN split mode ------------------------------------------------------------------------
    def split_masks(self) -> np.ndarray:
        """[B, L+1]: split points that exist for the pending task's DNN; only k = L (all on the
        device) while the uplink to the nearest edge is in outage."""
        layers = self.tables.num_layers[self.dnn]
        k = np.arange(self.tables.split_bits.shape[1])[None, :]
        up = (self.rates[:, 0] >= self.config.min_rate_bps)[:, None]
        return (k <= layers[:, None]) & (up | (k == layers[:, None]))

    def predict_split(self) -> tuple[np.ndarray, np.ndarray]:
        """Delay and device energy for every split k of the pending task between the device
        (layers 0..k-1) and its nearest edge (layers k..): ([B, L+1], [B, L+1]); k = L is local."""
        cfg, t = self.config, self.tables
        rows, u, j = self.rows, self.user, self.dnn
        dev = self.user_device[rows, u]
        edge = self.nearest_edge
        local_start = np.maximum(self.now, self.local_busy[rows, u])
        prefix = t.prefix_time[dev, j]  # [B, L+1]
        # Split 0 runs nothing on the device: its upload does not wait for the device's queue.
        device_done = np.where(prefix > 0, local_start[:, None] + prefix, self.now[:, None])
        bits = t.split_bits[j]  # [B, L+1]
        rate = np.maximum(self.rates[:, 0], 1e-9)[:, None]
        arrive = device_done + bits / rate
        suffix = t.suffix_edge_time[j] / self.edge_speed[rows, edge][:, None]
        start = earliest_start(
            arrive,
            suffix,
            self.edge_ring_start[rows, edge][:, None, :],
            self.edge_ring[rows, edge][:, None, :],
            self.edge_busy[rows, edge][:, None],
        )
        finish = np.where(suffix > 0, start + suffix, device_done)
        delay = finish - self.now[:, None]
        energy = t.prefix_energy[dev, j] + transmit_energy_j(bits, rate, cfg.tx_power_w)
        valid = self.split_masks()
        return np.where(valid, delay, np.inf), np.where(valid, energy, 0.0)

    def apply_split(self, splits: np.ndarray, rng: np.random.Generator):
        """Execute the pending tasks split after ``splits`` layers; (delay, energy, missed, done)."""
        splits = np.asarray(splits, dtype=np.int64)
        delay_all, energy_all = self.predict_split()
        rows, t = self.rows, self.tables
        delay, energy = delay_all[rows, splits], energy_all[rows, splits]
        dev = self.user_device[rows, self.user]
        local_start = np.maximum(self.now, self.local_busy[rows, self.user])
        uses_device = splits > 0
        self.local_busy[rows[uses_device], self.user[uses_device]] = (
            local_start + t.prefix_time[dev, self.dnn, splits]
        )[uses_device]
        uses_edge = t.suffix_edge_time[self.dnn, splits] > 0
        if uses_edge.any():
            r, e = rows[uses_edge], self.nearest_edge[uses_edge]
            finish = (self.now + delay)[uses_edge]
            run = t.suffix_edge_time[self.dnn[uses_edge], splits[uses_edge]] / self.edge_speed[r, e]
            self._commit_edge(r, e, finish - run, finish)
        return self._advance(delay, energy, np.ones(self.batch, dtype=bool), rng)
