"""Fit the shipped profiles of devices that list published DNN timings.

    python tools/fit_edge_profiles.py

For every catalog device with ``published_latency`` entries (Jetson AGX Orin, the phone SoC,
Raspberry Pi 5), calibrate its DNN efficiencies on those whole-network timings, starting from
the shipped prior, and write ``servegym/hardware/profiles/<device>.yaml``. The MEC
environments then time on-device inference with these profiles. With one to three timings per
device the prior carries most parameters: see ``benchmarks/dnn_published.py`` for the
zero-shot and held-out errors.
"""

from __future__ import annotations

from pathlib import Path

from servegym.hardware import calibrate, get_device, list_devices
from servegym.hardware.catalog import normalize
from servegym.hardware.measurements import published_measurements
from servegym.hardware.profiles import save_profile

PROFILES = Path(__file__).resolve().parents[1] / "servegym" / "hardware" / "profiles"


def main() -> None:
    for name in list_devices():
        device = get_device(name).with_efficiency({})  # the datasheet, not a shipped fit
        records = published_measurements(device)
        if not records:
            continue
        fitted = calibrate(device, records, source=f"published timings in the catalog entry of {device.name}")
        path = save_profile(fitted, PROFILES / f"{normalize(device.name)}.yaml")
        mape = fitted.provenance["in_sample_mape"]
        print(f"{device.name}: {len(records)} published timings; in-sample {mape}; wrote {path}")


if __name__ == "__main__":
    main()
