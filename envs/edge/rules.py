"""The MEC system's rules, each written once and compiled with numba (``cache=True``).

One row is one independent MEC system (a scalar env is a batch of one, the vector env a batch of
N, the multi-agent env one row per agent over a shared queue state). Each rule is a function of
one row (queueing with backfilling, the delay and device energy of an action, the queue
features, the masks, the scalarised cost, the observation); the batched kernels at the end loop
over rows and are what ``MecBatch`` and the encoders call. Randomness stays outside: tasks and
systems are drawn with numpy ``Generator`` calls in ``system.py``.

Everything numba compiles lives in this one file: numba's on-disk cache is keyed on the file of
each function and does not notice edits to functions it calls from other files.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# The batched kernels (entry points from Python) only index arrays they are given and allocate
# nothing, so they run without numba's reference counting (``_nrt=False``): with it, every array
# handed to a per-row rule is incref'd and decref'd atomically, which made the observation kernel
# 8-10x slower. Per-row rules are inlined into the kernels (and also callable from Python, with
# reference counting, e.g. on arrays).
jit = nb.njit(cache=True, _nrt=False)
rule = nb.njit(cache=True, inline="always")

LOCAL, CLOUD, FIRST_EDGE = 0, 1, 2  # action indices; edges are 2 .. 2 + max_edges - 1
QUEUE_SLOTS = 8  # tasks remembered per edge (start and finish), for backfilling and the histogram
HIST_BINS = 8
HIST_EDGES_S = np.array([0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, np.inf])  # remaining-work bins
_HIST_INNER = HIST_EDGES_S[1:-1].copy()
MIN_RATE_BPS = 1e-9  # rates are floored here before dividing by them

# Indices of the per-config parameters handed to the kernels (``params`` below).
P_WAN_DELAY, P_WAN_BANDWIDTH, P_TX_POWER, P_MIN_RATE, P_DELAY_REF, P_ENERGY_REF = range(6)
P_MISS_PENALTY, P_SHARED_UPLINK = 6, 7
PARAMS = 8
# Columns of the per-row outcome of an executed task (``result`` below).
R_DELAY, R_ENERGY, R_DELAY_TERM, R_ENERGY_TERM, R_COST, R_MISSED, R_NEEDS_BLOCK = range(7)
RESULT_COLUMNS = 7
# The scalar metrics a system reports before a decision (``scalars`` in ``observe``), in order.
SCALAR_METRICS = (
    "task_bits",
    "deadline_s",
    "local_time_s",
    "local_energy_j",
    "local_wait_s",
    "cloud_speed",
    "preference",
    "time_s",
    "device_type",  # an index, reported as a float here
)


def report_layout(max_edges: int) -> dict[str, tuple[int, ...]]:
    """Shapes, in order, of what ``observe`` writes side by side into one row of ``reported`` (so
    that one copy of a row holds every float metric of a system)."""
    m, actions = max_edges, max_edges + 2
    return {
        "scalars": (len(SCALAR_METRICS),),  # SCALAR_METRICS
        "edge_speed": (m,),
        "rates_bps": (m + 1,),  # cloud access, edges
        "edge_wait_s": (m,),
        "edge_histogram": (m, HIST_BINS),
        "delay_estimate_s": (actions,),  # local, cloud, edges
        "energy_estimate_j": (actions,),
    }


def report_offsets(max_edges: int) -> np.ndarray:
    """Where each part of ``report_layout`` starts in a row, and the row's length (last entry)."""
    sizes = [int(np.prod(shape)) for shape in report_layout(max_edges).values()]
    return np.cumsum([0, *sizes]).astype(np.int64)


# Observation layout.
MAX_DEVICE_TYPES = 3
SERVER_FEATURES = 5 + HIST_BINS  # exists, speed, rate, queued work, queued tasks, histogram
SERVERS_AT = 4 + MAX_DEVICE_TYPES + 1  # after the task, the device type and the local wait


# -- the objective -------------------------------------------------------------------------------
DELAY_REF_S = 0.5  # T_ref: default normaliser of delay in the scalarised cost (MecConfig.delay_ref_s)
ENERGY_REF_J = 0.5  # E_ref: default normaliser of device energy (MecConfig.energy_ref_j)
MISS_PENALTY = 1.0  # cost of a missed deadline, in units of the scalarised cost (MecConfig.miss_penalty)


@rule
def normalised_objectives(delay_s, energy_j, delay_ref_s, energy_ref_j):
    """(delay / T_ref, energy / E_ref): the two objectives on a common scale (floats or arrays)."""
    return delay_s / delay_ref_s, energy_j / energy_ref_j


@rule
def scalarised_cost(delay_s, energy_j, w, delay_ref_s, energy_ref_j):
    """``w·d/T_ref + (1−w)·e/E_ref``: the preference-weighted part of a task's cost (the expected
    utility is its mean; floats or arrays)."""
    d, e = normalised_objectives(delay_s, energy_j, delay_ref_s, energy_ref_j)
    return w * d + (1.0 - w) * e


@rule
def task_cost(delay_s, energy_j, w, deadline_s, delay_ref_s, energy_ref_j, miss_penalty):
    """A task's cost, the MEC envs' primary KPI per task: ``w·d/T_ref + (1−w)·e/E_ref`` plus
    ``miss_penalty`` if it misses its deadline. The reward is its negative and GreedyWeighted its
    argmin (floats or arrays)."""
    return scalarised_cost(delay_s, energy_j, w, delay_ref_s, energy_ref_j) + miss_penalty * (
        delay_s > deadline_s
    )


# -- radio: what sending costs ----------------------------------------------------------------------
@rule
def upload_s(bits, rate_bps):
    """Seconds to send ``bits`` at ``rate_bps`` (rates floored at ``MIN_RATE_BPS``)."""
    return bits / np.maximum(rate_bps, MIN_RATE_BPS)


@rule
def transmit_energy_j(bits, rate_bps, tx_power_w):
    """Device energy to send ``bits`` at ``rate_bps`` with power ``tx_power_w``: p * s / r."""
    return tx_power_w * bits / np.maximum(rate_bps, MIN_RATE_BPS)


# -- queueing --------------------------------------------------------------------------------------
@rule
def earliest_start(arrive, run, starts, finishes, busy):
    """When a task whose data reaches an edge at ``arrive`` and runs for ``run`` can start.

    Edges are non-preemptive single servers that never delay work already scheduled: the task
    takes the earliest idle gap after its arrival that fits it (FCFS with backfilling, HEFT's
    insertion rule), so a task still uploading does not hold the server idle. ``starts`` and
    ``finishes`` (the last ``QUEUE_SLOTS`` tasks) describe the schedule; when all of them are
    still pending the schedule may be longer, so the task goes after ``busy`` (the latest finish
    ever scheduled there: no finish is later than ``busy``).
    """
    start = arrive  # when nothing is scheduled after the arrival
    if busy > arrive:
        live = 0
        for k in range(QUEUE_SLOTS):
            live += finishes[k] > arrive
        start = max(arrive, busy)  # all slots live: the schedule may go on beyond them
        if live < QUEUE_SLOTS:
            # Candidates: the arrival and every finish after it; the earliest one whose run
            # [cand, cand + run) clashes with no task (one that starts before its end and
            # finishes after it starts).
            best = np.inf
            for c in range(-1, QUEUE_SLOTS):
                cand = arrive if c < 0 else finishes[c]
                if not cand < best or (c >= 0 and not cand > arrive):
                    continue
                end = cand + run
                clash = False
                for k in range(QUEUE_SLOTS):
                    if finishes[k] > cand and starts[k] < end:
                        clash = True
                        break
                if not clash:
                    best = cand
            if np.isfinite(best):  # else (not reached: nothing runs after the last finish) after it
                start = best
    return start


@rule
def _commit_edge(q, e, start, finish, edge_busy, edge_ring, edge_ring_start, ring_pos):
    """Record a task running on edge ``e`` of queue row ``q`` from ``start`` to ``finish``."""
    if finish > edge_busy[q, e]:
        edge_busy[q, e] = finish
    slot = ring_pos[q, e] % QUEUE_SLOTS
    edge_ring[q, e, slot] = finish
    edge_ring_start[q, e, slot] = start
    ring_pos[q, e] += 1


@rule
def uplink_start(q, cell, t_now, up, edge_busy, edge_ring, edge_ring_start, params):
    """When an upload of ``up`` seconds through edge site ``cell``'s cell can start: now, unless the
    cells' uplinks are shared (``P_SHARED_UPLINK``: one upload at a time per cell, TDMA, FCFS with
    backfilling; their schedules are the queue rows after the ``max_edges`` servers)."""
    if params[P_SHARED_UPLINK] == 0.0:
        return t_now
    c = edge_busy.shape[1] // 2 + cell
    return earliest_start(t_now, up, edge_ring_start[q, c], edge_ring[q, c], edge_busy[q, c])


@rule
def _commit_upload(q, cell, ready, up, edge_busy, edge_ring, edge_ring_start, ring_pos, params):
    """Record an upload of ``up`` seconds through ``cell``'s cell, ready to send at ``ready``
    (nothing to record unless the uplinks are shared)."""
    if params[P_SHARED_UPLINK] != 0.0:
        start = uplink_start(q, cell, ready, up, edge_busy, edge_ring, edge_ring_start, params)
        c = edge_busy.shape[1] // 2 + cell
        _commit_edge(q, c, start, start + up, edge_busy, edge_ring, edge_ring_start, ring_pos)


# -- outcomes of a decision --------------------------------------------------------------------------
@rule
def action_outcome(
    r, q, a, now, cloud_speed, edge_exists, edge_speed, edge_busy, edge_ring, edge_ring_start,
    local_busy, user_device, task_f, task_i, input_bits, local_time, local_energy, edge_time,
    cloud_time, params,
):  # fmt: skip
    """(delay s, device energy J) of running row ``r``'s pending task with action ``a`` (queues of
    row ``q``): local FCFS on the device; upload + WAN + elastic compute in the cloud; upload +
    backfilled queue + execution at an edge (+inf and 0 J for an edge that does not exist).
    Exact for this simulator: what ``apply`` then realises."""
    t_now = now[r]
    u, j = task_i[r, 0], task_i[r, 1]
    bits = input_bits[j]
    rate = task_f[r, a]  # task_f: deadline, cloud access rate, edge rates (a >= CLOUD)
    e = a - FIRST_EDGE
    if a == LOCAL:
        dev = user_device[r, u]
        delay = max(t_now, local_busy[q, u]) + local_time[dev, j] - t_now
        energy = local_energy[dev, j]
    elif a == CLOUD:
        up = upload_s(bits, rate)
        sent = uplink_start(q, task_i[r, 2], t_now, up, edge_busy, edge_ring, edge_ring_start, params) + up
        delay = sent - t_now + params[P_WAN_DELAY] + upload_s(bits, params[P_WAN_BANDWIDTH])
        delay = delay + cloud_time[j] / cloud_speed[r]
        energy = transmit_energy_j(bits, rate, params[P_TX_POWER])
    elif edge_exists[r, e]:
        run = edge_time[j] / edge_speed[r, e]
        up = upload_s(bits, rate)
        sent = uplink_start(q, e, t_now, up, edge_busy, edge_ring, edge_ring_start, params) + up
        start = earliest_start(sent, run, edge_ring_start[q, e], edge_ring[q, e], edge_busy[q, e])
        delay = start + run - t_now
        energy = transmit_energy_j(bits, rate, params[P_TX_POWER])
    else:
        delay, energy = np.inf, 0.0
    return delay, energy


@rule
def split_outcome(
    r, q, k, now, edge_speed, edge_busy, edge_ring, edge_ring_start, local_busy, user_device, task_f,
    task_i, prefix_time, prefix_energy, suffix_edge_time, split_bits, params,
):  # fmt: skip
    """(delay s, device energy J) of splitting row ``r``'s task after ``k`` layers: layers 0..k-1
    on the device (after its queue), the activation over the uplink, layers k.. at the nearest
    edge (backfilled queue). k = 0 runs nothing on the device, so the upload does not wait for it."""
    t_now = now[r]
    u, j, edge = task_i[r, 0], task_i[r, 1], task_i[r, 2]
    dev = user_device[r, u]
    prefix = prefix_time[dev, j, k]
    device_done = max(t_now, local_busy[q, u]) + prefix if prefix > 0 else t_now
    rate, bits = task_f[r, 1], split_bits[j, k]
    suffix = suffix_edge_time[j, k] / edge_speed[r, edge]
    up = upload_s(bits, rate)
    sent = device_done
    if bits > 0:
        sent = uplink_start(q, edge, device_done, up, edge_busy, edge_ring, edge_ring_start, params) + up
    start = earliest_start(sent, suffix, edge_ring_start[q, edge], edge_ring[q, edge], edge_busy[q, edge])
    finish = start + suffix if suffix > 0 else device_done
    return finish - t_now, prefix_energy[dev, j, k] + transmit_energy_j(bits, rate, params[P_TX_POWER])


@rule
def action_allowed(r, a, edge_exists, task_f, params):
    """Local always; the cloud and each existing edge unless its uplink is in outage (rate below
    ``min_rate_bps`` after this task's fading draw)."""
    allowed = True
    if a >= FIRST_EDGE:
        allowed = edge_exists[r, a - FIRST_EDGE] and task_f[r, a] >= params[P_MIN_RATE]
    elif a == CLOUD:
        allowed = task_f[r, a] >= params[P_MIN_RATE]
    return allowed


@rule
def split_allowed(r, k, task_f, task_i, num_layers, params):
    """Split points that exist for the task's DNN; only k = L (all on the device) in outage."""
    layers = num_layers[task_i[r, 1]]
    return k <= layers and (task_f[r, 1] >= params[P_MIN_RATE] or k == layers)


# -- executing a decision -----------------------------------------------------------------------------
@rule
def _record(r, delay, energy, w, deadline, k, result, task_log, params):
    """The outcome columns of ``result[r]`` (delay, energy, reward terms, cost, missed), and the
    episode's ``k``-th task in ``task_log[:, r, k]`` (delay, energy, missed; while it fits)."""
    d_term, e_term = normalised_objectives(delay, energy, params[P_DELAY_REF], params[P_ENERGY_REF])
    missed = delay > deadline
    result[r, R_DELAY] = delay
    result[r, R_ENERGY] = energy
    result[r, R_DELAY_TERM] = -d_term
    result[r, R_ENERGY_TERM] = -e_term
    result[r, R_COST] = task_cost(
        delay, energy, w, deadline, params[P_DELAY_REF], params[P_ENERGY_REF], params[P_MISS_PENALTY]
    )
    result[r, R_MISSED] = missed
    if k < task_log.shape[2]:
        task_log[0, r, k] = delay
        task_log[1, r, k] = energy
        task_log[2, r, k] = missed


@rule
def _next_task(r, tasks_done, task_index, now, task_f, task_i, block_gap, block_f, block_i, result):
    """Count the executed task and make row ``r``'s next drawn task pending; if its block of drawn
    tasks is used up, flag the row (the caller draws a new block, which needs the row's RNG)."""
    tasks_done[r] += 1
    i = task_index[r] + 1
    result[r, R_NEEDS_BLOCK] = i >= block_gap.shape[0]
    if i < block_gap.shape[0]:
        _load_task(r, i, task_index, now, task_f, task_i, block_gap, block_f, block_i)


@rule
def _load_task(r, i, task_index, now, task_f, task_i, block_gap, block_f, block_i):
    """Task ``i`` of row ``r``'s block becomes pending; it arrives ``block_gap`` after the last."""
    task_index[r] = i
    now[r] += block_gap[i, r]
    for c in range(task_f.shape[1]):
        task_f[r, c] = block_f[i, r, c]
    for c in range(task_i.shape[1]):
        task_i[r, c] = block_i[i, r, c]


@jit
def load_tasks(rows, index, task_index, now, task_f, task_i, block_gap, block_f, block_i):
    """Task ``index[n]`` of its block becomes pending in row ``rows[n]``."""
    for n in range(rows.size):
        _load_task(rows[n], index[n], task_index, now, task_f, task_i, block_gap, block_f, block_i)


@jit
def scale_by_mean_snr(rows, users, user_snr, snr):
    """``snr[n, i, e] *= user_snr[rows[n], users[n, i], e]``: a drawn fading gain times the mean
    SNR of the task's user to edge ``e``."""
    for n in range(rows.size):
        for i in range(users.shape[1]):
            for e in range(snr.shape[2]):
                snr[n, i, e] = user_snr[rows[n], users[n, i], e] * snr[n, i, e]


@jit
def store_block(
    rows, gaps, users, dnns, deadlines, rates, edge_exists, user_nearest, block_gap, block_f, block_i
):  # fmt: skip
    """Write newly drawn tasks into the blocks of ``rows``: gaps, [user, dnn, nearest edge] and
    [deadline, cloud access rate (the nearest edge's), edge rates (0 for missing edges)]."""
    for i in range(users.shape[1]):  # task-major, as the blocks are stored
        for n in range(rows.size):
            r, u = rows[n], users[n, i]
            nearest = user_nearest[r, u]
            block_gap[i, r] = gaps[n, i]
            block_i[i, r, 0] = u
            block_i[i, r, 1] = dnns[n, i]
            block_i[i, r, 2] = nearest
            block_f[i, r, 0] = deadlines[n, i]
            for e in range(rates.shape[2]):
                block_f[i, r, 2 + e] = rates[n, i, e] if edge_exists[r, e] else 0.0
            block_f[i, r, 1] = block_f[i, r, 2 + nearest]


@rule
def _apply_row(
    r, q, a, now, preference, cloud_speed, edge_exists, edge_speed, edge_busy, edge_ring,
    edge_ring_start, ring_pos, local_busy, user_device, tasks_done, task_index, task_f, task_i,
    block_gap, block_f, block_i, input_bits, local_time, local_energy, edge_time, cloud_time, params,
    result, task_log,
):  # fmt: skip
    """Execute action ``a`` (valid) for row ``r``'s pending task, using and updating the queues of
    row ``q``; fill ``result[r]``, log the task and load the next one."""
    delay, energy = action_outcome(
        r, q, a, now, cloud_speed, edge_exists, edge_speed, edge_busy, edge_ring, edge_ring_start,
        local_busy, user_device, task_f, task_i, input_bits, local_time, local_energy, edge_time,
        cloud_time, params,
    )  # fmt: skip
    finish = now[r] + delay
    if a == LOCAL:
        local_busy[q, task_i[r, 0]] = finish
    else:
        cell = a - FIRST_EDGE if a >= FIRST_EDGE else task_i[r, 2]
        _commit_upload(q, cell, now[r], upload_s(input_bits[task_i[r, 1]], task_f[r, a]), edge_busy,
                       edge_ring, edge_ring_start, ring_pos, params)  # fmt: skip
    if a >= FIRST_EDGE:
        e = a - FIRST_EDGE
        run = edge_time[task_i[r, 1]] / edge_speed[r, e]
        _commit_edge(q, e, finish - run, finish, edge_busy, edge_ring, edge_ring_start, ring_pos)
    _record(r, delay, energy, preference[r], task_f[r, 0], tasks_done[r], result, task_log, params)
    _next_task(r, tasks_done, task_index, now, task_f, task_i, block_gap, block_f, block_i, result)


@jit
def apply_actions(
    rows, queue_rows, actions, now, preference, cloud_speed, edge_exists, edge_speed, edge_busy,
    edge_ring, edge_ring_start, ring_pos, local_busy, user_device, tasks_done, task_index, task_f,
    task_i, block_gap, block_f, block_i, input_bits, local_time, local_energy, edge_time, cloud_time,
    params, result, task_log,
):  # fmt: skip
    """``_apply_row`` for ``rows[n]``, ``queue_rows[n]``, ``actions[n]`` in order."""
    for n in range(rows.size):
        _apply_row(
            rows[n], queue_rows[n], actions[n], now, preference, cloud_speed, edge_exists, edge_speed,
            edge_busy, edge_ring, edge_ring_start, ring_pos, local_busy, user_device, tasks_done,
            task_index, task_f, task_i, block_gap, block_f, block_i, input_bits, local_time,
            local_energy, edge_time, cloud_time, params, result, task_log,
        )  # fmt: skip


@jit
def advance(
    rows, execute, actions, valid, now, preference, cloud_speed, edge_exists, edge_speed, edge_busy,
    edge_ring, edge_ring_start, ring_pos, local_busy, user_device, tasks_done, task_index, task_f,
    task_i, block_gap, block_f, block_i, input_bits, local_time, local_energy, edge_time, cloud_time,
    params, result, task_log, reported, offsets, queued, mask, obs,
):  # fmt: skip
    """For each row ``r`` of ``rows``: if ``execute``, ``valid[r]`` = whether ``actions[r]`` is
    allowed (by ``mask``, from the last observation), and an allowed action is executed (the
    ``result`` of the others: NaN delay, energy and cost, not missed); then the row is observed,
    unless its block of tasks ran out (flagged in ``result``: the caller draws new tasks and
    observes it). Returns how many ran out."""
    spent = 0
    for n in range(rows.size):
        r = rows[n]
        if execute:
            valid[r] = mask[r, actions[r]]
            if valid[r]:
                _apply_row(
                    r, r, actions[r], now, preference, cloud_speed, edge_exists, edge_speed, edge_busy,
                    edge_ring, edge_ring_start, ring_pos, local_busy, user_device, tasks_done,
                    task_index, task_f, task_i, block_gap, block_f, block_i, input_bits, local_time,
                    local_energy, edge_time, cloud_time, params, result, task_log,
                )  # fmt: skip
            else:
                for c in range(RESULT_COLUMNS):
                    result[r, c] = np.nan
                result[r, R_MISSED] = 0.0
                result[r, R_NEEDS_BLOCK] = 0.0
            if result[r, R_NEEDS_BLOCK] > 0:
                spent += 1
                continue
        _observe_row(
            r, now, preference, cloud_speed, edge_exists, edge_speed, edge_busy, edge_ring,
            edge_ring_start, local_busy, user_device, task_f, task_i, input_bits, local_time,
            local_energy, edge_time, cloud_time, params, reported, offsets, queued, mask, obs,
        )  # fmt: skip
    return spent


@jit
def apply_splits(
    rows, splits, now, preference, edge_speed, edge_busy, edge_ring, edge_ring_start, ring_pos,
    local_busy, user_device, tasks_done, task_index, task_f, task_i, block_gap, block_f, block_i,
    prefix_time, prefix_energy, suffix_edge_time, split_bits, params, result, task_log,
):  # fmt: skip
    """Execute the pending tasks of ``rows`` split after ``splits[n]`` layers (valid splits)."""
    for n in range(rows.size):
        r, k = rows[n], splits[n]
        delay, energy = split_outcome(
            r, r, k, now, edge_speed, edge_busy, edge_ring, edge_ring_start, local_busy, user_device,
            task_f, task_i, prefix_time, prefix_energy, suffix_edge_time, split_bits, params,
        )  # fmt: skip
        u, j = task_i[r, 0], task_i[r, 1]
        device_done = now[r]
        if prefix_time[user_device[r, u], j, k] > 0:
            device_done = max(now[r], local_busy[r, u]) + prefix_time[user_device[r, u], j, k]
        if k > 0:
            local_busy[r, u] = max(now[r], local_busy[r, u]) + prefix_time[user_device[r, u], j, k]
        if split_bits[j, k] > 0:
            up = upload_s(split_bits[j, k], task_f[r, 1])
            _commit_upload(r, task_i[r, 2], device_done, up, edge_busy, edge_ring, edge_ring_start,
                           ring_pos, params)  # fmt: skip
        if suffix_edge_time[j, k] > 0:
            e = task_i[r, 2]
            finish = now[r] + delay
            run = suffix_edge_time[j, k] / edge_speed[r, e]
            _commit_edge(r, e, finish - run, finish, edge_busy, edge_ring, edge_ring_start, ring_pos)
        _record(r, delay, energy, preference[r], task_f[r, 0], tasks_done[r], result, task_log, params)
        _next_task(r, tasks_done, task_index, now, task_f, task_i, block_gap, block_f, block_i, result)


# -- what a system reports before a decision ---------------------------------------------------------
@rule
def _queue_row(t_now, edge_busy, edge_ring, wait, queued, hist):
    """Per edge of one system (its rows of the state and of the report): seconds of queued work,
    tasks queued, and the GMORL-style histogram of the queued tasks' remaining time."""
    m = wait.size
    for e in range(m):
        wait[e] = 0.0
        queued[e] = 0
        for b in range(HIST_BINS):
            hist[e, b] = 0.0
        for c in (m + e, e):  # the site's cell uplink (idle unless shared), then its server
            busy = max(edge_busy[c] - t_now, 0.0)
            if busy == 0.0:  # every task there has finished (no finish is after busy)
                continue
            wait[e] += busy
            for s in range(QUEUE_SLOTS):
                remaining = edge_ring[c, s] - t_now
                if remaining > 0:
                    queued[e] += 1
                    hist[e, np.searchsorted(_HIST_INNER, remaining, side="right")] += 1.0


@rule
def _observe_row(
    r, now, preference, cloud_speed, edge_exists, edge_speed, edge_busy, edge_ring, edge_ring_start,
    local_busy, user_device, task_f, task_i, input_bits, local_time, local_energy, edge_time,
    cloud_time, params, reported, offsets, queued, mask, obs,
):  # fmt: skip
    """The metrics of row ``r`` before a decision, into ``reported[r]`` (``report_layout``:
    ``SCALAR_METRICS``, per edge the speed, per link the rate, per edge the queued work and
    histogram, per action the delay and energy estimates), ``queued[r]`` (tasks per edge) and
    ``mask[r]``; and its observation ``obs[r]`` (``encode_row``)."""
    o, row, m = offsets, reported[r], edge_exists.shape[1]
    scalars, speeds, rates = row[o[0] : o[1]], row[o[1] : o[2]], row[o[2] : o[3]]
    wait, hist = row[o[3] : o[4]], row[o[4] : o[5]].reshape((m, HIST_BINS))
    delay, energy = row[o[5] : o[6]], row[o[6] : o[7]]
    t_now = now[r]
    u, j = task_i[r, 0], task_i[r, 1]
    dev = user_device[r, u]
    scalars[0] = input_bits[j]
    scalars[1] = task_f[r, 0]
    scalars[2] = local_time[dev, j]
    scalars[3] = local_energy[dev, j]
    scalars[4] = max(local_busy[r, u] - t_now, 0.0)
    scalars[5] = cloud_speed[r]
    scalars[6] = preference[r]
    scalars[7] = t_now
    scalars[8] = dev
    for e in range(m):
        speeds[e] = edge_speed[r, e]
    for c in range(rates.size):
        rates[c] = task_f[r, 1 + c]
    _queue_row(t_now, edge_busy[r], edge_ring[r], wait, queued[r], hist)
    for a in range(delay.size):
        delay[a], energy[a] = action_outcome(
            r, r, a, now, cloud_speed, edge_exists, edge_speed, edge_busy, edge_ring,
            edge_ring_start, local_busy, user_device, task_f, task_i, input_bits, local_time,
            local_energy, edge_time, cloud_time, params,
        )  # fmt: skip
        mask[r, a] = action_allowed(r, a, edge_exists, task_f, params)
    encode_row(
        obs[r], scalars[0], scalars[1], scalars[2], scalars[3], dev, scalars[4], edge_exists[r],
        scalars[5], speeds, rates, wait, queued[r], hist, scalars[6], delay, energy,
        params[P_DELAY_REF], params[P_ENERGY_REF], params[P_MISS_PENALTY],
    )  # fmt: skip


@jit
def observe_splits(
    rows, now, edge_speed, edge_busy, edge_ring, edge_ring_start, local_busy, user_device, task_f,
    task_i, prefix_time, prefix_energy, suffix_edge_time, split_bits, num_layers, params, delay,
    energy, mask, obs,
):  # fmt: skip
    """Per split point of the pending tasks of ``rows``: delay and energy estimates (+inf and 0 J
    where not allowed), the mask, and the split part of the observation (``encode_split_row``)."""
    for n in range(rows.size):
        r = rows[n]
        for k in range(delay.shape[1]):
            mask[r, k] = split_allowed(r, k, task_f, task_i, num_layers, params)
            delay[r, k], energy[r, k] = np.inf, 0.0
            if mask[r, k]:
                delay[r, k], energy[r, k] = split_outcome(
                    r, r, k, now, edge_speed, edge_busy, edge_ring, edge_ring_start, local_busy,
                    user_device, task_f, task_i, prefix_time, prefix_energy, suffix_edge_time,
                    split_bits, params,
                )  # fmt: skip
        encode_split_row(obs[r], task_f[r, 0], delay[r], energy[r], params[P_ENERGY_REF])


@jit
def action_masks(edge_exists, task_f, params, mask):
    """``action_allowed`` for every row and action."""
    for r in range(mask.shape[0]):
        for a in range(mask.shape[1]):
            mask[r, a] = action_allowed(r, a, edge_exists, task_f, params)


# -- observations -------------------------------------------------------------------------------------
@rule
def _unit(x):
    """``x`` clipped to [0, 1] before it is rounded to float32 (NaN stays NaN)."""
    return 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)


@rule
def _rate_feature(rate_bps):
    """log2(1 + rate / Mbit/s) / 16, clipped to [0, 1] (no rate, a missing edge's, gives 0)."""
    return _unit(np.log2(1.0 + rate_bps / 1e6) / 16.0) if rate_bps != 0.0 else 0.0


@rule
def encode_row(
    out, task_bits, deadline_s, local_time_s, local_energy_j, device_type, local_wait_s, edge_exists,
    cloud_speed, edge_speed, rates_bps, edge_wait_s, edge_queued, edge_histogram, preference,
    delay_estimate_s, energy_estimate_j, delay_ref_s, energy_ref_j, miss_penalty,
):  # fmt: skip
    """The MecOffload observation of one task from its metrics (layout in MecOffloadEnv's docstring):
    float64 arithmetic, clipped to [0, 1], then rounded to float32."""
    m = edge_exists.size
    out[0] = _unit(np.log10(max(task_bits, 1.0)) / 10.0)
    out[1] = _unit(deadline_s)
    out[2] = _unit(min(local_time_s / deadline_s, 10.0) / 10.0)
    out[3] = _unit(min(local_energy_j / energy_ref_j, 10.0) / 10.0)
    for d in range(MAX_DEVICE_TYPES):
        out[4 + d] = 0.0
    out[4 + min(device_type, MAX_DEVICE_TYPES - 1)] = 1.0
    out[7] = _unit(min(local_wait_s, 10.0) / 10.0)
    at = SERVERS_AT  # the cloud, then each edge slot: SERVER_FEATURES entries each
    out[at] = 1.0
    out[at + 1] = _unit(cloud_speed / 2.0)
    out[at + 2] = _rate_feature(rates_bps[0])
    for f in range(3, SERVER_FEATURES):
        out[at + f] = 0.0
    for e in range(m):
        at = SERVERS_AT + SERVER_FEATURES * (1 + e)
        exists = 1.0 if edge_exists[e] else 0.0
        out[at] = exists
        out[at + 1] = _unit(edge_speed[e] * exists / 2.0)
        out[at + 2] = _rate_feature(rates_bps[1 + e])
        out[at + 3] = _unit(min(edge_wait_s[e], 10.0) / 10.0)
        out[at + 4] = _unit(edge_queued[e] / QUEUE_SLOTS)
        for b in range(HIST_BINS):
            out[at + 5 + b] = _unit(edge_histogram[e, b] / QUEUE_SLOTS)
    at = SERVERS_AT + SERVER_FEATURES * (m + 1)
    out[at] = _unit(preference)
    out[at + 1] = _unit(1.0 - preference)
    n = delay_estimate_s.size
    for a in range(n):
        # predicted delay / deadline (+inf, an unavailable action, gives 1), then the squashed
        # scalarised cost 1 - 1 / (1 + c): order-preserving, so its argmin is greedy-weighted's
        out[at + 2 + a] = _unit(delay_estimate_s[a] / deadline_s)
        cost = task_cost(
            min(delay_estimate_s[a], 1e30), min(energy_estimate_j[a], 1e30), preference, deadline_s,
            delay_ref_s, energy_ref_j, miss_penalty,
        )  # fmt: skip
        out[at + 2 + n + a] = _unit(1.0 - 1.0 / (1.0 + cost))


@rule
def encode_split_row(out, deadline_s, split_delay_estimate_s, split_energy_estimate_j, energy_ref_j):
    """DnnSplit's extra observation: per split point, delay / deadline and energy / E_ref, each
    clipped to [0, 1] (an unavailable split, +inf delay, gives 1; a NaN delay ratio gives 0)."""
    n = split_delay_estimate_s.size
    for k in range(n):
        ratio = split_delay_estimate_s[k] / deadline_s
        out[k] = 0.0 if np.isnan(ratio) else _unit(ratio)
        out[n + k] = _unit(split_energy_estimate_j[k] / energy_ref_j)


@jit
def encode_rows(
    task_bits, deadline_s, local_time_s, local_energy_j, device_type, local_wait_s, edge_exists,
    cloud_speed, edge_speed, rates_bps, edge_wait_s, edge_queued, edge_histogram, preference,
    delay_estimate_s, energy_estimate_j, delay_ref_s, energy_ref_j, miss_penalty, obs,
):  # fmt: skip
    """``encode_row`` of every row of batched metrics."""
    for r in range(obs.shape[0]):
        encode_row(
            obs[r], task_bits[r], deadline_s[r], local_time_s[r], local_energy_j[r], device_type[r],
            local_wait_s[r], edge_exists[r], cloud_speed[r], edge_speed[r], rates_bps[r],
            edge_wait_s[r], edge_queued[r], edge_histogram[r], preference[r], delay_estimate_s[r],
            energy_estimate_j[r], delay_ref_s, energy_ref_j, miss_penalty,
        )  # fmt: skip
