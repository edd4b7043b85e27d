"""A batched mobile-edge computing system: users, a radio channel, FCFS edge servers, a cloud.

Every array has a leading batch dimension (one row per independent system), so the scalar
environment (batch of one) and the vectorised environment share this code. Compute times and
energies of each task come from the latency model (``DNNLatency``) on the catalog hardware;
edge and cloud speeds are scaled per episode (domain randomisation, GMORL's 2 +- 0.5 GHz /
4 +- 1 GHz as +-25 %).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property
from types import SimpleNamespace

import numpy as np

from servegym.hardware import get_device, get_dnn
from servegym.hardware.dnn import DNNLatency

from .physics import mean_snr, shannon_rate_bps, transmit_energy_j

LOCAL, CLOUD = 0, 1  # action indices; edges are 2 .. 2 + max_edges - 1
HIST_BINS = 8
HIST_EDGES_S = np.array([0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, np.inf])  # remaining-work bins
HIST_INNER_EDGES = HIST_EDGES_S[1:-1].tolist()
QUEUE_SLOTS = 8  # completion times remembered per edge (for the queued-work histogram)
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
    them are still pending the schedule may be longer, so the task goes after ``busy`` (the
    latest finish ever scheduled there, so no finish is later than ``busy``).
    """
    shape = np.broadcast_shapes(np.shape(arrive), np.shape(run), np.shape(busy))
    arrive, run, busy = (np.broadcast_to(x, shape) for x in (arrive, run, busy))
    start = arrive.copy()  # an edge with nothing scheduled after the arrival starts at once
    idx = np.nonzero(busy > arrive)  # elsewhere nothing is (every finish <= busy)
    if len(idx[0]):
        starts, finishes = (np.broadcast_to(x, (*shape, QUEUE_SLOTS))[idx] for x in (starts, finishes))
        a, r = arrive[idx], run[idx]
        starts, finishes = np.ascontiguousarray(starts.T), np.ascontiguousarray(finishes.T)  # [slot, K]
        lv = finishes > a
        cand = np.concatenate([a[None], np.where(lv, finishes, np.inf)])  # [1 + slots, K]
        # A candidate clashes with a task iff the task starts before the candidate's end and finishes
        # after it starts (such a task is live, as no candidate starts before the arrival): so iff
        # the earliest start among the tasks finishing after the candidate is before its end.
        after = np.full(cand.shape, np.inf)
        for s, f in zip(starts, finishes, strict=True):  # slot by slot: K-long inner loops
            np.minimum(after, np.where(f > cand, s, np.inf), out=after)
        best = np.where(after < cand + r, np.inf, cand).min(axis=0)
        full = lv.sum(axis=0) >= QUEUE_SLOTS
        start[idx] = np.where(full | ~np.isfinite(best), np.maximum(a, busy[idx]), best)
    return start


def earliest_start_one(
    arrive: float, run: float, starts: list[float], finishes: list[float], busy: float
) -> float:
    """``earliest_start`` of one task at one edge, in plain Python (the same rule and arithmetic)."""
    live = [(s, f) for s, f in zip(starts, finishes, strict=True) if f > arrive]
    if len(live) >= QUEUE_SLOTS:
        return max(arrive, busy)
    for cand in sorted([arrive] + [f for _, f in live]):  # the earliest that clashes with nothing
        end = cand + run
        for s, f in live:
            if s < end and f > cand:
                break
        else:
            return cand
    return max(arrive, busy)  # not reached: nothing runs after the last finish


class MecBatch:
    """``batch`` independent MEC systems advanced task by task (one decision per arriving task).

    Each row draws its tasks ``TASK_BLOCK`` at a time (arrival gaps, users, DNNs, deadlines,
    per-link fading and the resulting rates), so a step only copies the next task in; arrivals
    do not depend on decisions, so this is the same process as drawing them one by one.
    """

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
        self.user_snr = np.ones((b, n, m))  # mean SNR of each user's uplink to each edge
        self.user_nearest = np.zeros((b, n), dtype=np.int64)  # each user's nearest existing edge
        self.edge_busy = np.zeros((b, m))
        self.edge_ring = np.zeros((b, m, QUEUE_SLOTS))  # finish times of the last tasks per edge
        self.edge_ring_start = np.zeros((b, m, QUEUE_SLOTS))  # and their start times
        self.ring_pos = np.zeros((b, m), dtype=np.int64)
        self.local_busy = np.zeros((b, n))
        self.now = np.zeros(b)
        self.arrival_rate = np.ones(b)
        self.preference = np.zeros(b)
        self.tasks_done = np.zeros(b, dtype=np.int64)
        # The pending task of each row: floats [deadline, rates (cloud access, edges)] and
        # ints [user, dnn, nearest edge], copied in from the rows' blocks of drawn tasks.
        self.task_f = np.ones((b, m + 2))
        self.task_i = np.zeros((b, 3), dtype=np.int64)
        self.block_size = TASK_BLOCK
        self.block_gap = np.zeros((b, self.block_size))
        self.block_f = np.ones((b, self.block_size, m + 2))
        self.block_i = np.zeros((b, self.block_size, 3), dtype=np.int64)
        self.task_index = np.zeros(b, dtype=np.int64)  # the pending task's place in its block
        self.block_serial = 0  # counts drawn blocks (the single-system block cache is keyed on it)
        self._prediction: tuple[np.ndarray, np.ndarray] | None = None  # cached until the state moves
        self._single: tuple[list[float], list[float]] | None = None  # predict_one's cache
        self._queues: SimpleNamespace | None = None  # _queues_one's cache
        self._block: SimpleNamespace | None = None  # one_block's cache

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
        rows = self.rows if rows is None else rows
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
        self._draw_tasks(rng, rows)
        self._next_task(rng, rows)

    def _draw_users(self, rng: np.random.Generator, rows: np.ndarray, size: int) -> np.ndarray:
        """[len(rows), size]: the users whose tasks arrive next (uniform over the users)."""
        return rng.integers(0, self.config.num_users, (len(rows), size))

    def _draw_tasks(self, rng: np.random.Generator, rows: np.ndarray) -> None:
        """A new block of tasks for ``rows``: exponential gaps, users, DNNs, deadlines, and each
        task's channel (Rayleigh fading re-drawn per task and link; the cloud is reached through
        the user's nearest base station, an edge site, and then the WAN)."""
        cfg, k, size = self.config, len(rows), self.block_size
        self.block_gap[rows] = rng.exponential(1.0 / self.arrival_rate[rows, None], (k, size))
        users = self._draw_users(rng, rows, size)
        self.block_i[rows, :, 0] = users
        self.block_i[rows, :, 1] = rng.integers(0, len(cfg.dnns), (k, size))
        self.block_i[rows, :, 2] = nearest = self.user_nearest[rows[:, None], users]
        self.block_f[rows, :, 0] = rng.uniform(*cfg.deadline_s, (k, size))
        snr = self.user_snr[rows[:, None], users] * rng.exponential(1.0, (k, size, cfg.max_edges))
        rates = np.where(self.edge_exists[rows, None, :], shannon_rate_bps(cfg.bandwidth_hz, snr), 0.0)
        self.block_f[rows, :, 2:] = rates
        self.block_f[rows, :, 1] = np.take_along_axis(rates, nearest[:, :, None], axis=2)[:, :, 0]
        self.task_index[rows] = -1
        self.block_serial += 1

    def _next_task(self, rng: np.random.Generator, rows: np.ndarray) -> None:
        """Make the next task of each row pending (drawing a new block where one is used up)."""
        i = self.task_index[rows] + 1
        spent = i >= self.block_size
        if spent.any():
            self._draw_tasks(rng, rows[spent])
            i[spent] = 0
        self._load(rows, i)

    def _load(self, rows, i) -> None:
        """Make task ``i`` of their blocks pending in ``rows`` (arrays, or ints for one row)."""
        self.task_index[rows] = i
        self.now[rows] += self.block_gap[rows, i]
        self.task_f[rows] = self.block_f[rows, i]
        self.task_i[rows] = self.block_i[rows, i]
        self._forget()

    # -- outcomes --------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget cached predictions (and the single-system block cache) after changing the state
        from outside."""
        self._prediction = self._single = self._queues = self._block = None

    def _forget(self) -> None:
        """Forget what depends on the queues and the pending task (the state moved)."""
        self._prediction = self._single = self._queues = None

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
        delay = np.empty((self.batch, cfg.max_edges + 2))
        energy = np.empty_like(delay)
        local_start = np.maximum(now, self.local_busy[rows, u])
        delay[:, 0] = local_start + t.local_time[dev, j] - now
        energy[:, 0] = t.local_energy[dev, j]
        rates = np.maximum(self.rates, 1e-9)  # [cloud access, edges]
        delay[:, 1] = (
            bits / rates[:, 0]
            + cfg.wan_delay_s
            + bits / cfg.wan_bandwidth_bps
            + t.cloud_time[j] / self.cloud_speed
        )
        energy[:, 1:] = transmit_energy_j(bits[:, None], rates, cfg.tx_power_w)
        run = t.edge_time[j][:, None] / self.edge_speed
        start = earliest_start(
            now[:, None] + bits[:, None] / rates[:, 1:],
            run,
            self.edge_ring_start,
            self.edge_ring,
            self.edge_busy,
        )
        delay[:, 2:] = np.where(self.edge_exists, start + run - now[:, None], np.inf)
        energy[:, 2:] *= self.edge_exists
        return delay, energy

    def action_masks(self) -> np.ndarray:
        """[B, A]: local always; the cloud and each existing edge unless its uplink is in outage
        (rate below ``min_rate_bps`` after this task's fading draw)."""
        masks = np.ones((self.batch, self.config.max_edges + 2), dtype=bool)
        np.greater_equal(self.rates, self.config.min_rate_bps, out=masks[:, 1:])
        masks[:, 2:] &= self.edge_exists
        return masks

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

    def _commit_edge(self, r, e, start, finish) -> None:
        """Record tasks running on edge ``e`` of rows ``r`` from ``start`` to ``finish``."""
        self.edge_busy[r, e] = np.maximum(self.edge_busy[r, e], finish)
        slot = self.ring_pos[r, e] % QUEUE_SLOTS
        self.edge_ring[r, e, slot] = finish
        self.edge_ring_start[r, e, slot] = start
        self.ring_pos[r, e] += 1

    def _advance(self, delay, energy, valid, rng):
        self._forget()
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
        now = self.now
        wait = np.maximum(self.edge_busy - now[:, None], 0.0)
        queued = np.zeros(wait.shape, dtype=np.int64)
        hist = np.zeros((*wait.shape, HIST_BINS))
        idx = np.nonzero(wait)  # elsewhere every task has finished (finish <= busy)
        if len(idx[0]):
            remaining = self.edge_ring[idx] - now[idx[0], None]  # [K, QUEUE_SLOTS]
            live = remaining > 0
            bins = np.searchsorted(HIST_EDGES_S[1:-1], remaining, side="right")
            bins += HIST_BINS * np.arange(len(bins))[:, None]  # a bin per (pair, bin)
            counts = np.bincount(bins[live], minlength=len(bins) * HIST_BINS)
            hist[idx] = counts.reshape(-1, HIST_BINS)
            queued[idx] = live.sum(axis=1)
        return wait, queued, hist

    # -- a single system (batch of one) in plain Python: the scalar env's path ------------------
    # The same arithmetic as the batched methods, element by element (agreement is tested bit for
    # bit). What depends only on the tasks and the episode is worked out once per block of tasks.
    def one_block(self) -> SimpleNamespace:
        """Row 0's block of tasks, precomputed (rebuilt when a block is drawn or after
        ``invalidate()``). Its arrays are read-only and never change: they are handed out as is."""
        c = self._block
        if c is None or c.serial != self.block_serial:
            c = self._block = self._build_block()
        return c

    def _build_block(self) -> SimpleNamespace:
        cfg, t = self.config, self.tables
        f, ints = self.block_f[0].copy(), self.block_i[0].copy()
        i = self.task_index.item()
        if i >= 0:  # the pending task as it is now (it may have been edited since it was loaded)
            f[i], ints[i] = self.task_f[0], self.task_i[0]
        user, dnn = ints[:, 0], ints[:, 1]
        dev = self.user_device[0, user]
        bits = t.input_bits[dnn]
        rates = np.maximum(f[:, 1:], 1e-9)
        cloud = bits / rates[:, 0] + cfg.wan_delay_s + bits / cfg.wan_bandwidth_bps
        cloud += t.cloud_time[dnn] / self.cloud_speed[0]
        energy = np.empty((len(f), cfg.max_edges + 2))
        energy[:, 0] = t.local_energy[dev, dnn]
        energy[:, 1:] = transmit_energy_j(bits[:, None], rates, cfg.tx_power_w)
        energy[:, 2:] *= self.edge_exists[0]
        mask = np.ones(energy.shape, dtype=bool)
        np.greater_equal(f[:, 1:], cfg.min_rate_bps, out=mask[:, 1:])
        mask[:, 2:] &= self.edge_exists[0]
        n = len(f)  # the per-episode arrays get a row per task, so no two tasks share memory
        exists, speed = np.empty((n, cfg.max_edges), dtype=bool), np.empty((n, cfg.max_edges))
        exists[:], speed[:] = self.edge_exists[0], self.edge_speed[0]
        exists_list = self.edge_exists[0].tolist()
        metrics = {  # the per-task metrics, batched over the block
            "task_bits": bits,
            "deadline_s": f[:, 0],
            "local_time_s": t.local_time[dev, dnn],
            "local_energy_j": t.local_energy[dev, dnn],
            "device_type": dev,
            "rates_bps": f[:, 1:],
        }
        for a in (energy, mask, exists, speed, f, *metrics.values()):
            a.flags.writeable = False
        return SimpleNamespace(
            serial=self.block_serial,
            metrics=metrics,
            energy=energy,
            mask=mask,
            exists=exists,
            speed=speed,
            rates=f[:, 1:],
            cloud_speed=self.cloud_speed.item(),
            preference=self.preference.item(),
            num_edges=self.num_edges.item(),
            energy_lists=energy.tolist(),
            user=user.tolist(),
            dnn=dnn.tolist(),
            dev=dev.tolist(),
            bits=bits.tolist(),
            deadline=f[:, 0].tolist(),
            local_time=metrics["local_time_s"].tolist(),
            local_energy=metrics["local_energy_j"].tolist(),
            cloud_delay=cloud.tolist(),
            up=(bits[:, None] / rates[:, 1:]).tolist(),  # upload time to each edge
            run=(t.edge_time[:, None] / self.edge_speed[0]).tolist(),  # [dnn][edge] run time
            gap=self.block_gap[0].tolist(),
            edges=[e for e, x in enumerate(exists_list) if x],
            delay_template=[0.0, 0.0] + [0.0 if x else np.inf for x in exists_list],
        )

    def _queues_one(self) -> tuple[float, list[float], dict[int, tuple[list[float], list[float]]]]:
        """(now, each edge's latest finish, the (starts, finishes) ring of each edge with work
        left after now); cached until the state moves."""
        if self._queues is None:
            now = self.now.item()
            busy = self.edge_busy[0].tolist()
            ring_start, ring = self.edge_ring_start[0], self.edge_ring[0]
            rings = {e: (ring_start[e].tolist(), ring[e].tolist()) for e, b in enumerate(busy) if b > now}
            self._queues = SimpleNamespace(now=now, busy=busy, rings=rings, rows=None)
        q = self._queues
        return q.now, q.busy, q.rings

    def queue_rows_one(self) -> list[tuple[int, float, float, list[float]]]:
        """(edge, queued work, queued tasks, histogram) of each edge with work left (the others
        have none), as Python floats; cached until the state moves."""
        now, busy, rings = self._queues_one()
        q = self._queues
        if q.rows is None:
            q.rows = []
            for e, (_, finishes) in rings.items():  # finish <= busy elsewhere: nothing is queued
                row = [0.0] * HIST_BINS
                for f in finishes:
                    if f > now:
                        row[bisect_right(HIST_INNER_EDGES, f - now)] += 1.0
                q.rows.append((e, busy[e] - now, sum(row), row))
        return q.rows

    def queue_features_one(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``queue_features()`` of a single system (fresh arrays)."""
        m = self.config.max_edges
        wait, queued, hist = np.zeros(m), np.zeros(m, dtype=np.int64), np.zeros((m, HIST_BINS))
        for e, w, n, row in self.queue_rows_one():
            wait[e], queued[e], hist[e] = w, n, row
        return wait, queued, hist

    def predict_one(self) -> tuple[list[float], list[float]]:
        """``predict()`` of a single system as Python lists (do not modify them); cached."""
        if self._single is None:
            c, i = self.one_block(), self.task_index.item()
            now, busy, rings = self._queues_one()
            delay = c.delay_template.copy()  # +inf for missing edges
            delay[0] = max(now, self.local_busy[0, c.user[i]].item()) + c.local_time[i] - now
            delay[1] = c.cloud_delay[i]
            up, run = c.up[i], c.run[c.dnn[i]]
            for e in c.edges:
                arrive, r = now + up[e], run[e]
                start = arrive
                if busy[e] > arrive:  # else nothing is scheduled after the arrival (finish <= busy)
                    start = earliest_start_one(arrive, r, *rings[e], busy[e])
                delay[2 + e] = start + r - now
            self._single = delay, c.energy_lists[i]
        return self._single

    def action_mask_one(self) -> np.ndarray:
        """``action_masks()[0]`` of a single system (a read-only array)."""
        return self.one_block().mask[self.task_index.item()]

    def apply_one(self, action: int, rng: np.random.Generator) -> tuple[float, float, bool, bool]:
        """``apply`` of a single system with a valid ``action``; returns (delay, energy, missed, done)."""
        delay_all, energy_all = self.predict_one()
        c, i = self._block, self.task_index.item()
        delay, energy = delay_all[action], energy_all[action]
        now = self.now.item()
        finish = now + delay
        if action == LOCAL:
            self.local_busy[0, c.user[i]] = finish
        elif action >= 2:
            e = action - 2
            start = finish - c.run[c.dnn[i]][e]
            if finish > self.edge_busy[0, e]:
                self.edge_busy[0, e] = finish
            pos = self.ring_pos[0, e].item()
            self.edge_ring[0, e, pos % QUEUE_SLOTS] = finish
            self.edge_ring_start[0, e, pos % QUEUE_SLOTS] = start
            self.ring_pos[0, e] = pos + 1
        missed = delay > c.deadline[i]
        done = self.tasks_done.item() + 1
        self.tasks_done[0] = done
        i += 1
        if i == self.block_size:
            self._draw_tasks(rng, self.rows)
            i, c = 0, self.one_block()
        self.task_index[0] = i
        self.now[0] = now + c.gap[i]
        self.task_f[0] = self.block_f[0, i]
        self.task_i[0] = self.block_i[0, i]
        self._forget()
        return delay, energy, missed, done >= self.config.episode_tasks

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
