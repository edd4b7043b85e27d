"""Radio physics, FCFS queueing and energy of the MEC system, against hand-computed values
(../shared/reference/autoscaling_mec.md D1/D2, E2)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servegym.envs.edge.physics import (
    NOISE_DBM_PER_HZ,
    noise_power_w,
    path_loss_db,
    transmit_energy_j,
    uplink_rate_bps,
)
from servegym.envs.edge.rules import CLOUD, LOCAL, QUEUE_SLOTS, earliest_start
from servegym.envs.edge.system import MecBatch, MecConfig
from servegym.hardware import get_device
from servegym.hardware.dnn import DNNLatency

LN2 = math.log(2.0)  # median of |h|^2 ~ Exp(1)


# -- path loss, noise, Shannon ------------------------------------------------------------------
def test_path_loss_3gpp_macro_at_100m_and_1km():
    # PL = 128.1 + 37.6 log10(d_km): 1 km -> 128.1 dB, 100 m -> 128.1 - 37.6 = 90.5 dB
    assert path_loss_db(1000.0) == pytest.approx(128.1, abs=1e-12)
    assert path_loss_db(100.0) == pytest.approx(90.5, abs=1e-12)
    assert path_loss_db(10_000.0) == pytest.approx(165.7, abs=1e-12)
    # vectorised, and distances below 1 m are clamped (no -inf/NaN at d = 0)
    np.testing.assert_allclose(path_loss_db(np.array([100.0, 1000.0])), [90.5, 128.1], atol=1e-12)
    assert path_loss_db(0.0) == path_loss_db(1.0) == pytest.approx(128.1 - 3 * 37.6)


def test_noise_power_minus_174_dbm_per_hz_over_20mhz():
    # -174 dBm/Hz + 10 log10(20e6) = -100.99 dBm = 7.962e-14 W
    assert NOISE_DBM_PER_HZ == -174.0
    n = noise_power_w(20e6)
    assert n == pytest.approx(7.962143e-14, rel=1e-6)
    assert 10 * math.log10(n) + 30 == pytest.approx(-174 + 10 * math.log10(20e6), abs=1e-9)
    assert 10 * math.log10(n) + 30 == pytest.approx(-100.99, abs=0.005)
    # a 9 dB receiver noise figure multiplies it by 10^0.9
    assert noise_power_w(20e6, noise_figure_db=9.0) == pytest.approx(n * 10**0.9, rel=1e-12)


@pytest.mark.parametrize(("snr", "bits_per_hz"), [(1.0, 1.0), (3.0, 2.0), (15.0, 4.0), (1023.0, 10.0)])
def test_shannon_rate_for_given_snr(snr, bits_per_hz):
    """r = B log2(1 + SNR): the fading gain is chosen so that p g / (N0 B) is exactly ``snr``."""
    d, p, b = 300.0, 0.2, 20e6
    fading = snr * noise_power_w(b) / (p * 10 ** (-path_loss_db(d) / 10))
    assert uplink_rate_bps(d, p, b, fading) == pytest.approx(bits_per_hz * b, rel=1e-9)
    assert uplink_rate_bps(d, p, b, 0.0) == 0.0  # deep fade: no rate
    # more power, less distance, more fading gain: more rate
    assert uplink_rate_bps(d, 2 * p, b, fading) > uplink_rate_bps(d, p, b, fading)
    assert uplink_rate_bps(d / 2, p, b, fading) > uplink_rate_bps(d, p, b, fading)


def test_servegym_rate_hand_computed_with_gmorl_power_and_band():
    """10 mW, 16.6 MHz, |h|^2 = ln 2 over the 3GPP path loss: SNR at 50 m =
    10 dBm - 79.18 dB + 101.80 dBm - 1.59 dB = 31.03 dB -> 171 Mbit/s; 1 km: -17.9 dB -> 0.39;
    2 km: -29.2 dB -> 0.029."""
    rates = uplink_rate_bps(np.array([50.0, 1000.0, 2000.0]), 0.01, 16.6e6, LN2) / 1e6
    np.testing.assert_allclose(rates, [171.1, 0.386, 0.0287], rtol=3e-3)


def _gmorl_gain(d_m):
    """GMORL's channel (D2): PL = 133.6 + 35 log10(d_km), 8 dB shadowing, median Rayleigh ln 2."""
    return 10 ** (-(133.6 + 35 * np.log10(d_m / 1000.0) + 8.0) / 10) * LN2


def test_reference_check_textbook_formula_79_mbps_at_50m_and_about_zero_at_1_2_km():
    """D2's computed physics check: with GMORL's channel, 10 mW and 16.6 MHz, the textbook
    B log2(1 + p g / (N0 B)) gives 79 Mbit/s at 50 m, 0.2 at 500 m, about 0 at 1-2 km
    (median SNR +14 / -21 / -31 dB); GMORL's code squares g / sigma^2 and gets 993 / 375."""
    p, b = 0.01, 16.6e6
    d = np.array([50.0, 500.0, 1000.0, 2000.0])
    # servegym's rate function, with GMORL's gain folded into the fading argument
    fading = _gmorl_gain(d) / 10 ** (-path_loss_db(d) / 10)
    rates = uplink_rate_bps(d, p, b, fading) / 1e6
    assert rates[0] == pytest.approx(79.0, rel=0.01)
    assert rates[1] == pytest.approx(0.2, rel=0.05)
    assert np.all(rates[2:] < 0.02)  # ~0 at 1-2 km (17 and 1.5 kbit/s)
    snr_db = 10 * np.log10(p * _gmorl_gain(d) / noise_power_w(b))
    np.testing.assert_allclose(snr_db[:3], [14.1, -20.9, -31.4], atol=0.05)
    # the squared-gain formula of GMORL's code, for contrast (not what servegym computes)
    sigma2 = noise_power_w(b)
    squared = b * np.log2(1 + p * (_gmorl_gain(d) / sigma2) ** 2 / sigma2) / 1e6
    assert squared[0] == pytest.approx(993, rel=0.01)
    assert squared[3] == pytest.approx(375, rel=0.01)
    assert np.all(uplink_rate_bps(d[2:], p, b, LN2) < 1e6)  # servegym's own: < 1 Mbit/s far out


def test_transmit_energy_p_s_over_r():
    assert transmit_energy_j(1e6, 1e7, 0.1) == pytest.approx(0.01)  # 0.1 W x 0.1 s
    np.testing.assert_allclose(transmit_energy_j(np.array([8e6, 0.0]), 4e6, 0.2), [0.4, 0.0])
    assert np.isfinite(transmit_energy_j(1e6, 0.0, 0.1))  # zero rate is clamped, not inf/NaN


# -- the MEC system: FCFS queues, predict == apply, energy -------------------------------------------
def _system(**kw) -> tuple[MecBatch, np.random.Generator]:
    defaults = dict(
        num_users=1,
        max_edges=3,
        num_edges=2,
        arrival_rate=1000.0,  # arrivals 1 ms apart: consecutive tasks overlap
        preference=0.5,
        dnns=("ResNet-50",),
        user_devices=("Raspberry-Pi-5",),
        speed_spread=0.0,
    )
    system = MecBatch(MecConfig(**{**defaults, **kw}), 1)
    rng = np.random.default_rng(7)
    system.reset(rng)
    return system, rng


def test_fcfs_second_task_at_same_edge_waits_for_the_first():
    system, rng = _system()
    t = system.tables
    system.edge_speed[:] = 0.01  # 100x slower edges: the first task is still running
    exec_s = t.edge_time[0] / 0.01
    bits = t.input_bits[0]

    now1, up1 = system.now[0], bits / system.rates[0, 1]
    d1, *_ = system.apply(np.array([2]), rng)
    assert d1[0] == pytest.approx(up1 + exec_s, rel=1e-12)  # empty edge: upload + execution
    finish1 = now1 + d1[0]

    now2, up2 = system.now[0], bits / system.rates[0, 1]
    assert now1 < now2 < finish1 and now2 + up2 < finish1  # it arrives while the first runs
    predicted = system.predict()[0][0, 2]
    expected = (finish1 - now2) + exec_s  # remaining time of the first + its own execution
    assert predicted == pytest.approx(expected, rel=1e-12)
    # the other edge is idle: no wait there
    up2_other = bits / system.rates[0, 2]
    assert system.predict()[0][0, 3] == pytest.approx(up2_other + exec_s, rel=1e-12)
    d2, *_ = system.apply(np.array([2]), rng)
    assert d2[0] == pytest.approx(expected, rel=1e-12)
    assert system.edge_busy[0, 0] == pytest.approx(now2 + expected, rel=1e-12)
    wait, queued, hist = system.queue_features()
    assert queued[0, 0] == 2 and queued[0, 1] == 0
    assert wait[0, 0] == pytest.approx(now2 + expected - system.now[0], rel=1e-12)
    assert hist[0, 0].sum() == 2 and hist[0, 1].sum() == 0


def test_edge_is_not_held_idle_by_a_task_that_is_still_uploading():
    system, rng = _system(num_edges=1, max_edges=1)
    t = system.tables
    exec_s = t.edge_time[0]
    system.rates[0, 1] = t.input_bits[0] / 4.0  # task A: a 4 s upload (1.2 Mbit/s, not in outage)
    assert system.action_masks()[0, 2]
    d_a, *_ = system.apply(np.array([2]), rng)
    assert d_a[0] == pytest.approx(4.0 + exec_s)
    up_b = t.input_bits[0] / system.rates[0, 1]
    assert up_b + exec_s < 1.0  # task B reaches the (idle) edge seconds before A and fits before it
    delay, _ = system.predict()
    assert delay[0, 2] == pytest.approx(up_b + exec_s, rel=1e-9)


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.floats(0.0, 1.0), min_size=QUEUE_SLOTS, max_size=QUEUE_SLOTS),
    runs=st.lists(st.floats(0.01, 1.0), min_size=QUEUE_SLOTS, max_size=QUEUE_SLOTS),
    order=st.permutations(range(QUEUE_SLOTS)),
    arrive=st.floats(0.0, 10.0),
    run=st.floats(0.001, 2.0),
)
def test_earliest_start_is_the_first_idle_gap_that_fits(gaps, runs, order, arrive, run):
    """Against the rule stated plainly: with fewer than QUEUE_SLOTS tasks still running after the
    arrival, the start is the earliest of {arrival, finishes after it} whose [start, start + run)
    overlaps no scheduled task; with all slots live, the task goes after the last finish."""
    t, starts, finishes = 0.0, [], []
    for gap, length in zip(gaps, runs, strict=True):  # a non-overlapping schedule
        starts.append(t + gap)
        finishes.append(t + gap + length)
        t = finishes[-1]
    starts_a, finishes_a = np.array(starts)[list(order)], np.array(finishes)[list(order)]  # ring order
    busy = max(finishes)
    got = earliest_start(arrive, run, starts_a, finishes_a, busy)
    live = [(s, f) for s, f in zip(starts, finishes, strict=True) if f > arrive]
    if len(live) == QUEUE_SLOTS:
        assert got == max(arrive, busy)
        return
    fits = [
        c for c in sorted([arrive] + [f for _, f in live]) if not any(s < c + run and f > c for s, f in live)
    ]
    assert got == fits[0] >= arrive


def test_fcfs_local_queue_of_one_user():
    system, rng = _system()
    local_s = system.tables.local_time[0, 0]  # ResNet-50 on a Pi 5: ~77 ms >> 1 ms arrivals
    now1 = system.now[0]
    d1, *_ = system.apply(np.array([LOCAL]), rng)
    assert d1[0] == pytest.approx(local_s)
    now2 = system.now[0]
    assert now2 < now1 + local_s
    d2, *_ = system.apply(np.array([LOCAL]), rng)
    assert d2[0] == pytest.approx(now1 + local_s - now2 + local_s, rel=1e-12)


def test_cloud_is_elastic_upload_wan_and_compute():
    system, rng = _system(wan_delay_s=0.1, wan_bandwidth_bps=100e6)
    cfg, t = system.config, system.tables
    bits = t.input_bits[0]
    for _ in range(3):  # no queue: every task pays the same terms
        system_rate = system.rates[0, 0]
        expected = bits / system_rate + 0.1 + bits / 100e6 + t.cloud_time[0] / system.cloud_speed[0]
        d, e, *_ = system.apply(np.array([CLOUD]), rng)
        assert d[0] == pytest.approx(expected, rel=1e-12)
        assert e[0] == pytest.approx(cfg.tx_power_w * bits / system_rate, rel=1e-12)


def test_queue_ring_counts_at_most_queue_slots():
    system, rng = _system()
    system.edge_speed[:] = 1e-3
    for _ in range(QUEUE_SLOTS + 5):
        system.apply(np.array([2]), rng)
    _, queued, hist = system.queue_features()
    assert queued[0, 0] == QUEUE_SLOTS
    assert hist[0, 0].sum() == QUEUE_SLOTS


@pytest.mark.parametrize("busy", [False, True])
def test_predict_equals_what_apply_realises(busy):
    """For every valid action and many states (with queues), apply() returns predict()'s values."""
    cfg = MecConfig(num_users=4, arrival_rate=200.0 if busy else 2.0, preference=0.3)
    system = MecBatch(cfg, 3)
    rng = np.random.default_rng(11)
    system.reset(rng)
    policy = np.random.default_rng(12)
    for _ in range(60):
        delay, energy = system.predict()
        masks = system.action_masks()
        assert np.all(np.isfinite(delay[masks]))
        np.testing.assert_array_equal(np.isinf(delay[:, 2:]), ~system.edge_exists)  # missing edges
        for a in range(masks.shape[1]):
            valid = masks[:, a]
            if not valid.any():
                continue
            trial = copy.deepcopy(system)
            d, e, missed, _ = trial.apply(np.full(3, a), np.random.default_rng(0), valid)
            np.testing.assert_allclose(d[valid], delay[valid, a], rtol=1e-12)
            np.testing.assert_allclose(e[valid], energy[valid, a], rtol=1e-12)
            np.testing.assert_array_equal(missed[valid], delay[valid, a] > system.deadline[valid])
        actions = np.array([policy.choice(np.flatnonzero(m)) for m in masks])
        system.apply(actions, rng)


def test_predict_split_equals_what_apply_split_realises():
    cfg = MecConfig(num_users=3, arrival_rate=100.0, preference=0.3, num_edges=2)
    system = MecBatch(cfg, 2)
    rng = np.random.default_rng(5)
    system.reset(rng)
    policy = np.random.default_rng(6)
    for _ in range(40):
        delay, energy = system.predict_split()
        masks = system.split_masks()
        for k in range(masks.shape[1]):
            if not masks[:, k].all():
                continue
            trial = copy.deepcopy(system)
            d, e, *_ = trial.apply_split(np.full(2, k), np.random.default_rng(0))
            np.testing.assert_allclose(d, delay[:, k], rtol=1e-12)
            np.testing.assert_allclose(e, energy[:, k], rtol=1e-12)
        system.apply_split(np.array([policy.choice(np.flatnonzero(m)) for m in masks]), rng)


def test_split_all_layers_is_local_execution():
    system, rng = _system(dnns=("MobileNetV2", "YOLOv8n", "BERT-base"), num_users=2)
    for _ in range(20):
        delay, energy = system.predict()
        sd, se = system.predict_split()
        n = system.tables.num_layers[system.dnn[0]]
        assert sd[0, n] == pytest.approx(delay[0, LOCAL], rel=1e-12)
        assert se[0, n] == pytest.approx(energy[0, LOCAL], rel=1e-12)
        system.apply_split(np.array([n]), rng)


def test_split_zero_is_full_offload_to_the_nearest_edge():
    """k = 0 runs nothing on the device, so it is the edge action for the nearest edge (the
    upload does not wait for the device's own queue)."""
    system, rng = _system(dnns=("MobileNetV2", "ResNet-50"), num_users=1)
    for _ in range(20):
        system.apply_split(np.array([system.tables.num_layers[system.dnn[0]]]), rng)  # fill local
        delay, energy = system.predict()
        sd, se = system.predict_split()
        near = system.nearest_edge[0]
        assert se[0, 0] == pytest.approx(energy[0, 2 + near], rel=1e-12)
        assert sd[0, 0] == pytest.approx(delay[0, 2 + near], rel=1e-12)


# -- energy -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["Phone-SoC", "Raspberry-Pi-5", "Jetson-AGX-Orin"])
@pytest.mark.parametrize("dnn", ["MobileNetV2", "ResNet-50", "YOLOv8n", "BERT-base"])
def test_local_energy_is_active_power_times_latency_model_time(device, dnn):
    system, rng = _system(dnns=(dnn,), user_devices=(device,))
    seconds = DNNLatency(dnn, device).time()
    joules = get_device(device).active_power_w * seconds
    delay, energy = system.predict()
    assert energy[0, LOCAL] == pytest.approx(joules, rel=1e-12)
    assert delay[0, LOCAL] == pytest.approx(seconds, rel=1e-12)  # idle device: no wait
    d, e, *_ = system.apply(np.array([LOCAL]), rng)
    assert (d[0], e[0]) == pytest.approx((seconds, joules), rel=1e-12)


def test_offload_energy_is_transmit_energy():
    system, rng = _system(tx_power_w=0.25, max_edges=3, num_edges=3)
    for _ in range(10):
        bits = system.tables.input_bits[system.dnn[0]]
        _, energy = system.predict()
        expected = 0.25 * bits / system.rates[0]  # [cloud via nearest cell, edges]
        np.testing.assert_allclose(energy[0, 1:], expected, rtol=1e-12)
        assert system.rates[0, 0] == system.rates[0, 1 + system.nearest_edge[0]]
        system.apply(np.array([2 + int(rng.integers(3))]), rng)


def test_rates_are_shannon_over_the_task_users_distance_with_rayleigh_fading():
    """Inverting r = B log2(1 + SNR_nominal |h|^2) for each task's own user and existing edge
    gives |h|^2 ~ Exp(1): mean 1, median ln 2 (re-drawn per task and link)."""
    from scipy import stats

    system, rng = _system(num_users=5, num_edges=3, max_edges=4, arrival_rate=5.0)
    cfg = system.config
    gains = []
    for _ in range(1500):
        rates = system.rates[0, 1:]
        dist = system.edge_distance[0, system.user[0]]
        assert np.all(rates[:3] > 0) and np.all(rates[3:] == 0)  # missing edge: no rate
        assert system.nearest_edge[0] == np.argmin(dist[:3])
        nominal = uplink_rate_bps(dist[:3], cfg.tx_power_w, cfg.bandwidth_hz, 1.0)
        gains.append((2 ** (rates[:3] / cfg.bandwidth_hz) - 1) / (2 ** (nominal / cfg.bandwidth_hz) - 1))
        system.apply(np.array([CLOUD]), rng)
    gains = np.concatenate(gains)
    assert gains.mean() == pytest.approx(1.0, abs=0.06)
    assert np.median(gains) == pytest.approx(LN2, abs=0.05)
    assert stats.kstest(gains, "expon").pvalue > 1e-3
