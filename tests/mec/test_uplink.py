"""Shared cell uplinks (``shared_uplink=True``): one upload at a time per edge site's cell."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import servegym  # noqa: F401  (registers the ids)
from servegym.envs.edge.rules import CLOUD, FIRST_EDGE, upload_s

MEC_ID = "servegym/MecOffload-v0"


def _two_uploads(shared: bool, second: int) -> tuple[float, float, float, float]:
    """Send the first task to edge 0, then the second with action ``second``; return (first's upload
    end, second's arrival, second's own upload, second's delay)."""
    env = gym.make(MEC_ID, scenario="camera-fleet", num_edges=1, arrival_rate=200.0, shared_uplink=shared)
    for seed in range(50):
        _, info = env.reset(seed=seed)
        m = info["metrics"]
        if not (info["action_mask"][FIRST_EDGE] and m["task_bits"] > 1e7):
            continue  # a YOLO frame first: a long upload
        t0 = m["time_s"]
        end = t0 + upload_s(m["task_bits"], m["rates_bps"][1])
        _, _, _, _, info = env.step(FIRST_EDGE)
        m = info["metrics"]
        if not info["action_mask"][second] or m["time_s"] >= end:
            continue
        rate = m["rates_bps"][1] if second == FIRST_EDGE else m["rates_bps"][0]
        estimate = m["delay_estimate_s"][second]
        _, _, _, _, after = env.step(second)
        assert after["delay_s"] == pytest.approx(estimate, rel=1e-12)  # the estimate is exact
        return end, m["time_s"], upload_s(m["task_bits"], rate), after["delay_s"]
    raise AssertionError("no seed gave two overlapping uploads")


@pytest.mark.parametrize("second", [FIRST_EDGE, CLOUD])  # the cloud goes through the same cell
def test_an_upload_waits_for_the_one_before_it_in_the_same_cell(second):
    end, arrival, own, delay = _two_uploads(True, second)
    assert delay >= end - arrival + own - 1e-12
    end, arrival, own, delay = _two_uploads(False, second)
    assert delay < end - arrival + own  # without sharing, uploads overlap


def test_queued_uploads_show_in_the_edge_wait_metric():
    env = gym.make(MEC_ID, scenario="camera-fleet", num_edges=1, arrival_rate=200.0)
    _, info = env.reset(seed=0)
    assert info["metrics"]["edge_wait_s"][0] == 0.0
    _, _, _, _, info = env.step(int(np.flatnonzero(info["action_mask"])[-1]))
    wait = info["metrics"]["edge_wait_s"][0]
    assert wait > 0 and info["metrics"]["edge_queued"][0] >= 1


def test_shared_uplink_must_be_a_bool():
    with pytest.raises(ValueError, match="shared_uplink"):
        gym.make(MEC_ID, shared_uplink=1)
