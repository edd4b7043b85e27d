"""Textbook radio physics for mobile-edge offloading (../shared/reference/autoscaling_mec.md D1).

Uplink rate by Shannon over a 3GPP macro path loss with Rayleigh fading:
``r = B log2(1 + p g / (N0 B))`` with ``g = 10^(-PL/10) |h|^2``,
``PL_dB = 128.1 + 37.6 log10(d_km)`` and ``|h|^2 ~ Exp(1)``. (GMORL's public code squares the
normalised gain, which gives hundreds of Mbit/s at 2 km at 10 mW; this module does not.)
"""

from __future__ import annotations

import numpy as np

from .rules import transmit_energy_j, upload_s

__all__ = [
    "NOISE_DBM_PER_HZ",
    "mean_snr",
    "noise_power_w",
    "path_loss_db",
    "shannon_rate_bps",
    "transmit_energy_j",
    "uplink_rate_bps",
    "upload_s",
]

NOISE_DBM_PER_HZ = -174.0  # thermal noise density (D1)


def path_loss_db(distance_m):
    """3GPP macro-cell path loss (TR 25.942 form used across MEC papers), distance in metres."""
    d_km = np.maximum(np.asarray(distance_m, dtype=float), 1.0) / 1000.0
    return 128.1 + 37.6 * np.log10(d_km)


def noise_power_w(bandwidth_hz, noise_figure_db: float = 0.0):
    """Thermal noise power over the band: N0 * B (plus a receiver noise figure)."""
    return 10.0 ** ((NOISE_DBM_PER_HZ + noise_figure_db - 30.0) / 10.0) * np.asarray(
        bandwidth_hz, dtype=float
    )


def mean_snr(distance_m, tx_power_w, bandwidth_hz, noise_figure_db: float = 0.0):
    """Received SNR without fading, ``p 10^(-PL/10) / (N0 B)``: constant while the user stays put."""
    gain = 10.0 ** (-path_loss_db(distance_m) / 10.0)
    return tx_power_w * gain / noise_power_w(bandwidth_hz, noise_figure_db)


def shannon_rate_bps(bandwidth_hz, snr, out=None):
    """``B log2(1 + snr)`` (bit/s); ``out`` (an array of snr's shape, may be ``snr``) receives it."""
    if out is None:
        return np.asarray(bandwidth_hz, dtype=float) * np.log2(1.0 + snr)
    np.log2(np.add(1.0, snr, out=out), out=out)
    return np.multiply(np.asarray(bandwidth_hz, dtype=float), out, out=out)


def uplink_rate_bps(distance_m, tx_power_w, bandwidth_hz, fading=1.0, noise_figure_db: float = 0.0):
    """Shannon rate of the uplink (bit/s) for a Rayleigh power gain ``fading`` (mean 1)."""
    snr = mean_snr(distance_m, tx_power_w, bandwidth_hz, noise_figure_db) * fading
    return shannon_rate_bps(bandwidth_hz, snr)
