"""Accuracy report of few-sample calibration on measured data (issue #2's protocol).

    python benchmarks/latency_accuracy.py [--data ../shared/data/vidur] [--seeds 20]

For each device in the data: per operator group draw k measurements stratified over size,
calibrate from the shipped prior, score every other measurement of the device, average over
seeds; k = 0 is zero-shot (datasheet + prior). Writes benchmarks/results/latency_accuracy.md.
Note: the shipped prior was itself fitted on the A100 data, so the A100 rows measure the
calibration procedure with an in-sample prior; the generic-prior rows do not use that data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from servegym.hardware import GENERIC_PRIOR, get_device, load_measurements
from servegym.hardware.accuracy import evaluate
from servegym.hardware.params import default_prior

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "vidur"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latency_accuracy.md"))
    args = parser.parse_args()
    data = load_measurements(args.data)
    lines = ["# Latency-model accuracy (held-out MAPE; median APE in brackets)", ""]
    for name in data.devices():
        records = data.for_device(name).records
        device = get_device(name)
        settings = {
            "zero-shot": dict(k=0, prior=default_prior()),
            "k=3": dict(k=3, prior=default_prior()),
            "k=5": dict(k=5, prior=default_prior()),
            "k=10": dict(k=10, prior=default_prior()),
            "k=10, generic prior": dict(k=10, prior=GENERIC_PRIOR),
        }
        results = {label: evaluate(device, records, seeds=args.seeds, **kw) for label, kw in settings.items()}
        groups = sorted({g for r in results.values() for g in r})
        lines += [f"## {device.name} ({len(records)} measurements, {args.seeds} seeds)", ""]
        lines.append("| operator group | " + " | ".join(results) + " |")
        lines.append("|---" * (len(results) + 1) + "|")
        for g in groups:
            cells = [f"{r[g].mape:.1%} ({r[g].median_ape:.1%})" if g in r else "" for r in results.values()]
            lines.append(f"| {g} | " + " | ".join(cells) + " |")
        lines.append("")
    text = "\n".join(lines)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
