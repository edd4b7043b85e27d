"""Knative's KPA decision, exactly: ``Scale()`` of pkg/autoscaler/scaling/autoscaler.go and the
scale-to-zero rule of its scaler (knative/serving @98e5ef90aa; ../shared/reference/autoscaling_mec.md A2).

Written once and compiled: ``ServerlessAutoscale-v0`` runs it every tick inside its event loop
(``action_mode="kpa-target"``), and the ``kpa`` heuristic calls it once per decision from the
metrics the env reports, so both make the same decision from the same windows.

The state is three floats (``KPA_STATE``): the time panic mode began or was last extended (-1 when
calm), ``maxPanicPods``, and the time the decision first asked for zero pods (-1 otherwise).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Knative's defaults (config/core/configmaps/autoscaler.yaml, pkg/autoscaler/config/config.go)
TARGET_UTILIZATION = 0.7  # container-concurrency-target-percentage
TARGET_DEFAULT = 100.0  # container-concurrency-target-default (containerConcurrency 0)
TARGET_MIN = 0.01  # the smallest per-pod target
STABLE_WINDOW_S = 60.0
PANIC_WINDOW_S = 6.0  # panic-window-percentage 10% of the stable window
PANIC_THRESHOLD = 2.0  # panic-threshold-percentage 200
MAX_SCALE_UP_RATE = 1000.0
MAX_SCALE_DOWN_RATE = 2.0
SCALE_TO_ZERO_GRACE_S = 30.0
TICK_S = 2.0  # the decider's tick (scaling/multiscaler.go tickInterval)
BUCKET_S = 1.0  # metric bucket and scrape period

PANIC_TIME, MAX_PANIC_PODS, ZERO_SINCE = range(3)
KPA_STATE = 3


def resolve_target(annotation_target: float, container_concurrency: int) -> float:
    """The per-pod concurrency target (``resources/target.go``): the annotation's target capped at
    containerConcurrency (when it is set), times the 70% target utilisation, at least 0.01."""
    total = float(annotation_target)
    if container_concurrency > 0:
        total = min(total, float(container_concurrency))
    return max(TARGET_MIN, total * TARGET_UTILIZATION)


def new_state(now: float, ready_pods: int) -> np.ndarray:
    """A fresh decider: Knative starts in panic mode when more than one pod is ready, so it keeps
    the current scale until it has seen a stable window of metrics."""
    state = np.array([-1.0, 0.0, -1.0])
    if ready_pods > 1:
        state[PANIC_TIME] = now
        state[MAX_PANIC_PODS] = ready_pods
    return state


@njit(cache=True)
def kpa_scale(state, now, ready_pods, stable, panic, target, min_scale, max_scale):  # pragma: no cover
    """The pod count Knative asks for at ``now`` from the stable- and panic-window concurrency.

    ``ready_pods`` as the decider counts them; ``min_scale == 0`` enables scale to zero, applied
    once the decision has asked for zero pods for the grace period (until then one pod is kept).
    Updates ``state`` (panic mode, ``maxPanicPods``, when zero was first asked for).
    """
    ready = max(1.0, float(ready_pods))
    max_up = math.ceil(MAX_SCALE_UP_RATE * ready)
    max_down = math.floor(ready / MAX_SCALE_DOWN_RATE)
    dspc = math.ceil(stable / target)
    dppc = math.ceil(panic / target)
    desired_stable = min(max(dspc, max_down), max_up)
    desired_panic = min(max(dppc, max_down), max_up)
    over = dppc / ready >= PANIC_THRESHOLD
    if over:  # begin or extend panic
        state[PANIC_TIME] = now
    elif state[PANIC_TIME] >= 0.0 and state[PANIC_TIME] + STABLE_WINDOW_S < now:
        state[PANIC_TIME] = -1.0
        state[MAX_PANIC_PODS] = 0.0
    desired = desired_stable
    if state[PANIC_TIME] >= 0.0:
        desired = max(desired, desired_panic)
        if desired > state[MAX_PANIC_PODS]:
            state[MAX_PANIC_PODS] = desired
        desired = int(state[MAX_PANIC_PODS])
    # the scaler: min/max scale, and zero only after the grace period with the activator in the path
    desired = min(max(desired, min_scale), max_scale)
    if desired == 0:
        if state[ZERO_SINCE] < 0.0:
            state[ZERO_SINCE] = now
        if now - state[ZERO_SINCE] < SCALE_TO_ZERO_GRACE_S:
            desired = 1
    else:
        state[ZERO_SINCE] = -1.0
    return desired


@njit(cache=True)
def window_averages(buckets, n_buckets):  # pragma: no cover - compiled
    """(stable, panic): mean concurrency of the last 60 and 6 one-second buckets (of those seen,
    when fewer; Knative averages over the data it has). ``buckets`` is a ring indexed by count."""
    size = len(buckets)
    stable_n = min(n_buckets, int(STABLE_WINDOW_S / BUCKET_S))
    panic_n = min(n_buckets, int(PANIC_WINDOW_S / BUCKET_S))
    stable = 0.0
    panic = 0.0
    for k in range(stable_n):
        value = buckets[(n_buckets - 1 - k) % size]
        stable += value
        if k < panic_n:
            panic += value
    if stable_n == 0:
        return 0.0, 0.0
    return stable / stable_n, panic / panic_n
