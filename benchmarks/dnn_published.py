"""The DNN latency model against published timings of edge devices (no hardware needed).

For every catalog device with published batch-1 timings (``published_latency`` in
``servegym/hardware/catalog/devices.yaml``: MLPerf, Qualcomm AI Hub, Ultralytics), compare

* zero-shot: the datasheet with the prior's efficiencies;
* held-out: calibrated on the device's other published timings (when it has any);
* shipped: the profile ``tools/fit_edge_profiles.py`` fits on all of them (in-sample),
  which the MEC environments use.

    python benchmarks/dnn_published.py
"""

from __future__ import annotations

import sys

from servegym.hardware import calibrate, get_device, list_devices
from servegym.hardware.dnn import DNNLatency
from servegym.hardware.measurements import published_measurements


def main() -> int:
    lines = [
        "| device | network | runtime, dtype | published (ms) | zero-shot (ms) | error | held-out (ms) "
        "| error | shipped profile (ms) | error |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in list_devices():
        shipped = get_device(name)
        datasheet = shipped.with_efficiency({})
        records = published_measurements(datasheet)
        for i, (entry, record) in enumerate(zip(datasheet.published_latency, records, strict=True)):
            zero = DNNLatency(entry.dnn, datasheet, entry.dtype).time()
            others = records[:i] + records[i + 1 :]
            held = DNNLatency(entry.dnn, calibrate(datasheet, others), entry.dtype).time() if others else None
            fitted = DNNLatency(entry.dnn, shipped, entry.dtype).time()
            pub = record.seconds

            def cells(t: float | None, pub: float = pub) -> str:
                return "– | –" if t is None else f"{t * 1e3:.3g} | {t / pub - 1:+.0%}"

            lines.append(
                f"| {datasheet.name} | {entry.dnn} | {entry.framework}, {entry.dtype} | {pub * 1e3:.3g} | "
                f"{cells(zero)} | {cells(held)} | {cells(fitted)} |"
            )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
