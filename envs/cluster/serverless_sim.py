"""The compiled event simulation of a serverless function's containers (Knative-style).

Requests arrive at the activator (the router). One that finds a ready container with a free slot
(fewer than ``container_concurrency`` requests in it) goes to the least loaded such container (in
keep-alive mode to the most loaded: FaaS platforms reuse warm instances first, which lets the
spare ones idle out); otherwise it waits at the activator, first come first served: no request
is ever dropped. A container runs its requests by processor sharing: each of ``n`` requests progresses at
``min(1, parallelism / n)`` of its own speed, so up to ``parallelism`` run at full speed (kept
with a virtual clock per container: a request's finish tag is the virtual time it needs).

Containers: starting (a cold start drawn from the function's distribution, billed) -> ready (idle or
busy) -> terminated; a busy container that is scaled down drains (takes no new requests, leaves
when empty). Who decides the count (``C_MODE``):

- ``MODE_REPLICA``: the controller, through ``scale_to`` between intervals;
- ``MODE_KPA``: Knative's KPA every 2 s tick (``kpa.kpa_scale``) on the stable and panic windows of
  one-second concurrency buckets, at the per-pod target ``C_TARGET``; the activator starts a pod at
  once when a request finds none (Knative's poke from zero);
- ``MODE_KEEPALIVE``: the FaaS platform: a request that cannot be placed starts containers for
  the waiting requests (reactive scale-out); a container idle for the keep-alive window ``C_KEEPALIVE``
  is terminated; with a pre-warm window ``C_PREWARM > 0`` a container that falls idle is
  terminated at once and a new one deployed ``C_PREWARM`` seconds later (the semantics of the
  fixed keep-alive and hybrid-histogram policies, Shahrad et al. ATC'20, as in dslab-faas).

One call advances every container to ``t_end``; counters of the interval go to ``win`` (``W_*``).
A request misses its SLO once its time in the system exceeds ``C_SLO``: counted at completion, or
at an interval's end while it still waits or runs (never twice).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..serving.metrics import hist_add_one
from .fast_pool import DRAINING, EMPTY, READY, STARTING
from .kpa import BUCKET_S, kpa_scale, window_averages

MODE_REPLICA, MODE_KPA, MODE_KEEPALIVE = range(3)
INF = 1e300
IDLE_BIN_S = 60.0  # the idle-time histogram: one-minute bins over 4 hours (the hybrid histogram's)
IDLE_BINS = 240
KPA_BUCKETS = 60

# configuration (float64)
C_CONC, C_PAR, C_SLO, C_MIN, C_MAX, C_MODE, C_TARGET, C_KEEPALIVE, C_PREWARM, C_TICK = range(10)
N_CFG = 10
# state (float64)
(
    S_NOW, S_NEXT_ARR, S_QHEAD, S_LATE_UPTO, S_COLD_NEXT, S_NEXT_TICK, S_BUCKET_END, S_BUCKET_AREA,
    S_N_BUCKETS, S_LAST_FINISH, S_COMPLETED, S_LIFETIME_S, S_DESIRED, S_HIGH,
) = range(14)  # fmt: skip
N_STATE = 14  # S_HIGH: slots below it may be in use (loops stop there)
# per-container floats
F_READY_AT, F_VTIME, F_VLAST, F_IDLE_SINCE, F_NEXT_DONE, F_STARTED_AT = range(6)
N_FIELDS = 6
# window counters (float64)
(
    W_ARRIVALS,  # requests that arrived
    W_DISPATCHED,  # requests placed in a container
    W_COMPLETED,  # requests finished
    W_VIOLATIONS,  # requests that missed the SLO (known this interval)
    W_COLD_REQUESTS,  # requests that waited for a container's cold start
    W_COLD_STARTS,  # containers started
    W_CONTAINER_S,  # container-seconds billed (starting, ready, draining)
    W_READY_S,  # ready container-seconds
    W_IDLE_S,  # ready container-seconds with no request
    W_BUSY_S,  # Σ requests in containers x seconds
    W_QUEUE_S,  # Σ requests waiting at the activator x seconds
    W_SCALE_ACTIONS,  # decisions or platform events that changed the number of containers
    W_SCALE_UPS,  # containers started by a scale-up (= W_COLD_STARTS)
    W_SCALE_DOWNS,  # containers removed (terminated or set draining)
    W_EXEC_S,  # Σ execution time (work) of finished requests
    W_LATENCY_S,  # Σ latency of finished requests
    W_IDLE_BEYOND_S,  # Σ idle times beyond the histogram's range
) = range(17)
N_WINDOW = 17


@njit(cache=True)
def _speed(n, parallelism):  # pragma: no cover - compiled
    return 1.0 if n <= parallelism else parallelism / n


@njit(cache=True)
def _sync(s, now, cont, n_busy, parallelism):  # pragma: no cover - compiled
    """Advance container ``s``'s virtual clock to ``now``."""
    if n_busy[s] > 0:
        cont[s, F_VTIME] += (now - cont[s, F_VLAST]) * _speed(n_busy[s], parallelism)
    cont[s, F_VLAST] = now


@njit(cache=True)
def _refresh(s, now, cont, n_busy, slot_req, slot_tag, parallelism):  # pragma: no cover - compiled
    """Container ``s``'s next completion time (after ``_sync``)."""
    if n_busy[s] == 0:
        cont[s, F_NEXT_DONE] = INF
        return
    low = INF
    for j in range(slot_req.shape[1]):
        if slot_req[s, j] >= 0 and slot_tag[s, j] < low:
            low = slot_tag[s, j]
    left = max(low - cont[s, F_VTIME], 0.0)
    cont[s, F_NEXT_DONE] = now + left / _speed(n_busy[s], parallelism)


@njit(cache=True)
def _start(now, status, cont, n_busy, cold, st, win):  # pragma: no cover - compiled
    """Start a container (cold start); returns its slot, or -1 when every slot is taken."""
    for s in range(len(status)):
        if status[s] == EMPTY:
            k = int(st[S_COLD_NEXT]) % len(cold)
            st[S_COLD_NEXT] = k + 1
            status[s] = STARTING
            n_busy[s] = 0
            cont[s, F_READY_AT] = now + cold[k]
            cont[s, F_STARTED_AT] = now
            cont[s, F_NEXT_DONE] = INF
            win[W_COLD_STARTS] += 1.0
            win[W_SCALE_UPS] += 1.0
            st[S_HIGH] = max(st[S_HIGH], s + 1)
            return s
    return -1


@njit(cache=True)
def _terminate(s, now, status, cont, st, win):  # pragma: no cover - compiled
    status[s] = EMPTY
    st[S_LIFETIME_S] += now - cont[s, F_STARTED_AT]
    cont[s, F_NEXT_DONE] = INF


@njit(cache=True)
def _active(status, st):  # pragma: no cover - compiled
    """Containers starting or ready (the count a scaling decision sets)."""
    n = 0
    for s in range(int(st[S_HIGH])):
        if status[s] == STARTING or status[s] == READY:
            n += 1
    return n


@njit(cache=True)
def _remove_one(now, status, cont, n_busy, st, win):  # pragma: no cover - compiled
    """Scale down by one: the container that would be ready last, else the one idle longest, else
    the busy one with the fewest requests (it drains)."""
    pick, key = -1, -INF
    for s in range(int(st[S_HIGH])):
        if status[s] == STARTING and cont[s, F_READY_AT] > key:
            pick, key = s, cont[s, F_READY_AT]
    if pick < 0:
        key = INF
        for s in range(int(st[S_HIGH])):
            if status[s] == READY and n_busy[s] == 0 and cont[s, F_IDLE_SINCE] < key:
                pick, key = s, cont[s, F_IDLE_SINCE]
    win[W_SCALE_DOWNS] += 1.0
    if pick >= 0:
        _terminate(pick, now, status, cont, st, win)
        return
    fewest = 1 << 62
    for s in range(int(st[S_HIGH])):
        if status[s] == READY and n_busy[s] < fewest:
            pick, fewest = s, n_busy[s]
    if pick >= 0:
        status[pick] = DRAINING


@njit(cache=True)
def scale_to(target, now, status, cont, n_busy, cold, st, win):  # pragma: no cover - compiled
    """Start or remove containers so ``target`` are starting or ready; returns the change."""
    change = target - _active(status, st)
    for _ in range(change):
        if _start(now, status, cont, n_busy, cold, st, win) < 0:
            break
    for _ in range(-change):
        _remove_one(now, status, cont, n_busy, st, win)
    if change != 0:
        win[W_SCALE_ACTIONS] += 1.0
    return change


@njit(cache=True)
def _pick(status, n_busy, conc, pack, st):  # pragma: no cover - compiled
    """The ready container with room that takes the next request: the least loaded, or with
    ``pack`` the most loaded (FaaS platforms reuse warm instances first, so spare ones fall idle
    and their keep-alive runs out)."""
    best, load = -1, -1 if pack else conc
    for s in range(int(st[S_HIGH])):
        if status[s] == READY and n_busy[s] < conc and (n_busy[s] > load if pack else n_busy[s] < load):
            best, load = s, n_busy[s]
    return best


@njit(cache=True)
def _place(i, s, now, cont, n_busy, slot_req, slot_tag, work, parallelism, win):  # pragma: no cover
    """Request ``i`` starts in container ``s`` (which has a free slot)."""
    _sync(s, now, cont, n_busy, parallelism)
    for j in range(slot_req.shape[1]):
        if slot_req[s, j] < 0:
            slot_req[s, j] = i
            slot_tag[s, j] = cont[s, F_VTIME] + work[i]
            break
    n_busy[s] += 1
    _refresh(s, now, cont, n_busy, slot_req, slot_tag, parallelism)
    win[W_DISPATCHED] += 1.0


@njit(cache=True)
def _drain_queue(
    now, cold_start, cfg, st, status, cont, n_busy, slot_req, slot_tag, work, win
):  # pragma: no cover
    """Place waiting requests, first come first served, while a ready container has room."""
    conc, par = int(cfg[C_CONC]), cfg[C_PAR]
    pack = int(cfg[C_MODE]) == MODE_KEEPALIVE
    while st[S_QHEAD] < st[S_NEXT_ARR]:
        s = _pick(status, n_busy, conc, pack, st)
        if s < 0:
            return
        _place(int(st[S_QHEAD]), s, now, cont, n_busy, slot_req, slot_tag, work, par, win)
        st[S_QHEAD] += 1
        if cold_start:
            win[W_COLD_REQUESTS] += 1.0


@njit(cache=True)
def _scale_out(now, cfg, st, status, cont, n_busy, cold, win):  # pragma: no cover - compiled
    """FaaS scale-out: start containers until those starting can take every waiting request."""
    conc = cfg[C_CONC]
    waiting = st[S_NEXT_ARR] - st[S_QHEAD]
    starting = 0
    for s in range(int(st[S_HIGH])):
        if status[s] == STARTING:
            starting += 1
    need = math.ceil((waiting - starting * conc) / conc)
    room = int(cfg[C_MAX]) - _active(status, st)
    started = 0
    for _ in range(min(need, room)):
        if _start(now, status, cont, n_busy, cold, st, win) < 0:
            break
        started += 1
    if started:
        win[W_SCALE_ACTIONS] += 1.0


@njit(cache=True)
def _complete(s, now, cfg, st, status, cont, n_busy, slot_req, slot_tag, arr_t, work, late, prewarm_at,
              win, lat_hist, idle_hist):  # pragma: no cover - compiled  # fmt: skip
    par = cfg[C_PAR]
    _sync(s, now, cont, n_busy, par)
    pick, low = -1, INF
    for j in range(slot_req.shape[1]):
        if slot_req[s, j] >= 0 and slot_tag[s, j] < low:
            pick, low = j, slot_tag[s, j]
    i = slot_req[s, pick]
    slot_req[s, pick] = -1
    n_busy[s] -= 1
    latency = now - arr_t[i]
    hist_add_one(lat_hist, latency, 1.0)
    win[W_COMPLETED] += 1.0
    win[W_LATENCY_S] += latency
    win[W_EXEC_S] += work[i]
    st[S_COMPLETED] += 1.0
    if latency > cfg[C_SLO] and late[i] == 0:
        late[i] = 1
        win[W_VIOLATIONS] += 1.0
    # idle time as the hybrid-histogram policy sees it: this arrival after the previous finish
    if st[S_LAST_FINISH] >= 0.0:
        idle = max(arr_t[i] - st[S_LAST_FINISH], 0.0)
        b = int(idle / IDLE_BIN_S)
        if b < IDLE_BINS:
            idle_hist[b] += 1.0
        else:
            idle_hist[IDLE_BINS] += 1.0
            win[W_IDLE_BEYOND_S] += idle
    st[S_LAST_FINISH] = now
    _refresh(s, now, cont, n_busy, slot_req, slot_tag, par)
    if status[s] == DRAINING:
        if n_busy[s] == 0:
            _terminate(s, now, status, cont, st, win)
        return
    _drain_queue(now, False, cfg, st, status, cont, n_busy, slot_req, slot_tag, work, win)
    if n_busy[s] == 0:
        cont[s, F_IDLE_SINCE] = now
        if (
            int(cfg[C_MODE]) == MODE_KEEPALIVE
            and cfg[C_PREWARM] > 0.0
            and _active(status, st) > int(cfg[C_MIN])
        ):
            _terminate(s, now, status, cont, st, win)  # unload now, load again after the pre-warm window
            win[W_SCALE_DOWNS] += 1.0
            win[W_SCALE_ACTIONS] += 1.0
            for k in range(len(prewarm_at)):
                if prewarm_at[k] >= INF:
                    prewarm_at[k] = now + cfg[C_PREWARM]
                    break


@njit(cache=True)
def _count_late(now, cfg, st, status, slot_req, arr_t, late, win):  # pragma: no cover - compiled
    """Requests still waiting or running that have exceeded the SLO (each counted once)."""
    deadline = now - cfg[C_SLO]
    i = max(int(st[S_LATE_UPTO]), int(st[S_QHEAD]))
    end = int(st[S_NEXT_ARR])
    while i < end and arr_t[i] < deadline:
        if late[i] == 0:
            late[i] = 1
            win[W_VIOLATIONS] += 1.0
        i += 1
    st[S_LATE_UPTO] = i
    for s in range(int(st[S_HIGH])):
        if status[s] == READY or status[s] == DRAINING:
            for j in range(slot_req.shape[1]):
                r = slot_req[s, j]
                if r >= 0 and arr_t[r] < deadline and late[r] == 0:
                    late[r] = 1
                    win[W_VIOLATIONS] += 1.0


@njit(cache=True)
def advance(t_end, cfg, st, status, cont, n_busy, slot_req, slot_tag, arr_t, work, late, cold, prewarm_at,
            buckets, kpa, win, lat_hist, idle_hist):  # pragma: no cover - compiled  # fmt: skip
    """Run every container and the activator from ``st[S_NOW]`` to ``t_end``."""
    mode = int(cfg[C_MODE])
    n_req = len(arr_t)
    now = st[S_NOW]
    while True:
        # the next event of each kind, and the state's counts for the time until then
        t_done, s_done, t_ready, s_ready, t_exp, s_exp = INF, -1, INF, -1, INF, -1
        nonempty = ready = idle = busy = 0
        active = 0
        for s in range(int(st[S_HIGH])):
            code = status[s]
            if code == EMPTY:
                continue
            nonempty += 1
            busy += n_busy[s]
            if code == STARTING:
                active += 1
                if cont[s, F_READY_AT] < t_ready:
                    t_ready, s_ready = cont[s, F_READY_AT], s
                continue
            if n_busy[s] > 0 and cont[s, F_NEXT_DONE] < t_done:
                t_done, s_done = cont[s, F_NEXT_DONE], s
            if code == READY:
                active += 1
                ready += 1
                if n_busy[s] == 0:
                    idle += 1
                    if mode == MODE_KEEPALIVE and cont[s, F_IDLE_SINCE] + cfg[C_KEEPALIVE] < t_exp:
                        t_exp, s_exp = cont[s, F_IDLE_SINCE] + cfg[C_KEEPALIVE], s
        if active <= int(cfg[C_MIN]):
            t_exp = INF  # the platform keeps its minimum warm
        t_pre, k_pre = INF, -1
        if mode == MODE_KEEPALIVE:
            for k in range(len(prewarm_at)):
                if prewarm_at[k] < t_pre:
                    t_pre, k_pre = prewarm_at[k], k
        nxt = int(st[S_NEXT_ARR])
        t_arr = arr_t[nxt] if nxt < n_req else INF
        if t_arr >= t_end:
            t_arr = INF  # arrivals of [t0, t_end) belong to this interval
        t_tick = st[S_NEXT_TICK] if mode == MODE_KPA else INF
        t_next = min(t_done, t_ready, st[S_BUCKET_END], t_tick, t_exp, t_pre, t_arr)
        last = t_next > t_end
        if last:
            t_next = t_end
        dt = t_next - now
        if dt > 0.0:
            waiting = st[S_NEXT_ARR] - st[S_QHEAD]
            win[W_CONTAINER_S] += nonempty * dt
            win[W_READY_S] += ready * dt
            win[W_IDLE_S] += idle * dt
            win[W_BUSY_S] += busy * dt
            win[W_QUEUE_S] += waiting * dt
            st[S_BUCKET_AREA] += (busy + waiting) * dt
            now = t_next
        st[S_NOW] = now
        if last:
            break
        if t_next == t_done:
            _complete(s_done, now, cfg, st, status, cont, n_busy, slot_req, slot_tag, arr_t, work, late,
                      prewarm_at, win, lat_hist, idle_hist)  # fmt: skip
        elif t_next == t_ready:
            status[s_ready] = READY
            cont[s_ready, F_IDLE_SINCE] = now
            cont[s_ready, F_VLAST] = now
            cont[s_ready, F_VTIME] = 0.0
            _drain_queue(now, True, cfg, st, status, cont, n_busy, slot_req, slot_tag, work, win)
        elif t_next == st[S_BUCKET_END]:
            buckets[int(st[S_N_BUCKETS]) % len(buckets)] = st[S_BUCKET_AREA] / BUCKET_S
            st[S_N_BUCKETS] += 1
            st[S_BUCKET_AREA] = 0.0
            st[S_BUCKET_END] += BUCKET_S
        elif t_next == t_tick:
            st[S_NEXT_TICK] += cfg[C_TICK]
            n_b = int(st[S_N_BUCKETS])
            if n_b > 0:
                stable, panic = window_averages(buckets, n_b)
                desired = kpa_scale(kpa, now, ready, stable, panic, cfg[C_TARGET], int(cfg[C_MIN]),
                                    int(cfg[C_MAX]))  # fmt: skip
                st[S_DESIRED] = desired
                scale_to(desired, now, status, cont, n_busy, cold, st, win)
        elif t_next == t_exp:
            _terminate(s_exp, now, status, cont, st, win)
            win[W_SCALE_DOWNS] += 1.0
            win[W_SCALE_ACTIONS] += 1.0
        elif t_next == t_pre:
            prewarm_at[k_pre] = INF
            if active < int(cfg[C_MAX]):
                _start(now, status, cont, n_busy, cold, st, win)
                win[W_SCALE_ACTIONS] += 1.0
        else:  # an arrival
            st[S_NEXT_ARR] = nxt + 1
            win[W_ARRIVALS] += 1.0
            _drain_queue(now, False, cfg, st, status, cont, n_busy, slot_req, slot_tag, work, win)
            if st[S_QHEAD] < st[S_NEXT_ARR]:  # it waits
                if mode == MODE_KEEPALIVE:
                    _scale_out(now, cfg, st, status, cont, n_busy, cold, win)
                elif mode == MODE_KPA and active == 0:
                    _start(now, status, cont, n_busy, cold, st, win)  # the activator pokes the KPA
                    st[S_DESIRED] = 1.0
                    win[W_SCALE_ACTIONS] += 1.0
    _count_late(now, cfg, st, status, slot_req, arr_t, late, win)


def new_arrays(n_slots: int, conc: int) -> dict[str, np.ndarray]:
    """Zeroed state arrays for ``n_slots`` container slots of ``conc`` request slots each."""
    return {
        "status": np.zeros(n_slots, dtype=np.int64),
        "cont": np.zeros((n_slots, N_FIELDS)),
        "n_busy": np.zeros(n_slots, dtype=np.int64),
        "slot_req": np.full((n_slots, conc), -1, dtype=np.int64),
        "slot_tag": np.zeros((n_slots, conc)),
        "prewarm_at": np.full(n_slots, INF),
        "buckets": np.zeros(KPA_BUCKETS),
    }
