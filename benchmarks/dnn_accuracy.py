"""Predicted vs measured batch-1 DNN latency on this machine's CPU (one thread).

Every catalog DNN is built as a torch module from the catalog's own kernel list
(``servegym.hardware.dnn_torch``: fp32, channels-last, BatchNorm folded, PyTorch eager) and
timed whole on the local CPU: median over ``--runs`` runs, in two rounds (before and after the
local calibration, to show drift). Predictions come from

* the shipped ``x86-Server-Core`` catalog device, zero-shot (datasheet + prior),
* the prior's efficiencies on this CPU's measured peak FLOP/s and bandwidth (what zero-shot
  would give with a datasheet that matched this machine), and
* a fresh ``servegym calibrate --local --device cpu --threads 1`` profile,

both for the runtime that was timed (fp32, activations as separate kernels: fusion
``conv-bn``). Per-kernel-type errors come from timing every kernel of the networks alone, in
the WARM and COLD cache contexts the calibration uses (``--kernel-types``), and scoring the
same two predictors on them.

    python benchmarks/dnn_accuracy.py --out benchmarks/results/dnn_accuracy.md

Timings are the CPU time of the one inference thread (``time.thread_time``), so other
processes that share the core do not inflate them; they still compete for caches and memory
bandwidth, which the results file reports as the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from servegym.hardware import calibrate, get_device, get_dnn, list_dnns, load_profile, save_profile
from servegym.hardware.dnn import DNNLatency, terms_time
from servegym.hardware.dnn_kernels import COLD, WARM, terms_table
from servegym.hardware.dnn_torch import build_module, example_input, kernel_callable
from servegym.hardware.local_timing import COLD_FLUSH_MIB, time_local_operators
from servegym.hardware.model_spec import DTYPE_BYTES

ROOT = Path(__file__).resolve().parents[1]
ZERO_SHOT = "x86-Server-Core"
DTYPE = "fp32"
FUSION = "conv-bn"  # what PyTorch eager runs: BatchNorm folded, activations separate


def load_note() -> str:
    try:
        one, five, fifteen = open("/proc/loadavg").read().split()[:3]
        return f"load average {one} / {five} / {fifteen} (1 / 5 / 15 min)"
    except OSError:  # pragma: no cover - non-Linux
        return "load average unavailable"


def time_network(module, x, runs: int) -> list[float]:
    """Thread-CPU seconds of ``runs`` inferences after two warm-up runs."""
    with torch.inference_mode():
        module(x)
        module(x)
        samples = []
        for _ in range(runs):
            t0 = time.thread_time()
            module(x)
            samples.append(time.thread_time() - t0)
    return samples


def measure_networks(names: list[str], runs: dict[str, int]) -> dict[str, list[float]]:
    out = {}
    for name in names:
        module = build_module(name, dtype=DTYPE, fold_bn=True)
        x = example_input(name, dtype=DTYPE)
        out[name] = time_network(module, x, runs[name])
        print(f"  {name:26s} {np.median(out[name]) * 1e3:9.2f} ms (median of {runs[name]})", flush=True)
        del module
    return out


def kernel_type_errors(names: list[str], devices: dict[str, object], repeats: int) -> dict:
    """Every kernel of the networks alone, WARM and COLD; APE of each predictor by type."""
    warm_flush = torch.empty(4 * 2**20)
    cold_flush = torch.empty(COLD_FLUSH_MIB * 2**18)
    ape: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    with torch.inference_mode():
        for name in names:
            spec = get_dnn(name)
            shapes = {"input": spec.kernels[0].inp}
            shapes.update({k.name: k.out for k in spec.kernels})
            for kernel in spec.kernels:
                sources = None
                if kernel.op == "concat":
                    sources = [shapes[s] for s in kernel.src]
                run = kernel_callable(kernel, DTYPE, source_shapes=sources)
                for context, code, flush in (("warm", WARM, warm_flush), ("cold", COLD, cold_flush)):
                    samples = []
                    run()
                    for _ in range(repeats):
                        flush.add_(1.0)
                        run.touch_inputs()
                        t0 = time.thread_time()
                        run()
                        samples.append(time.thread_time() - t0)
                    measured = float(np.median(samples))
                    _, terms = terms_table([kernel], DTYPE_BYTES[DTYPE], code)
                    for label, device in devices.items():
                        predicted = float(terms_time(terms, device, DTYPE, FUSION).sum())
                        for ktype in {kernel.kernel_type, "all"}:
                            ape[(label, context, ktype)].append(abs(predicted / measured - 1.0))
            print(f"  kernels of {name} timed", flush=True)
    return {f"{a}|{b}|{c}": v for (a, b, c), v in ape.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="timed inferences per network and round")
    ap.add_argument("--llm-runs", type=int, default=3, help="runs for the 1B-LLM prompt (1-2 s each)")
    ap.add_argument("--dnns", nargs="+", default=None, help="catalog DNNs (default: all)")
    ap.add_argument("--profile", help="use this local profile instead of calibrating now")
    ap.add_argument("--quick-calibration", action="store_true", help="calibrate with the --quick plan")
    ap.add_argument("--kernel-types", action="store_true", help="also time every kernel alone (about 3 min)")
    ap.add_argument("--kernel-repeats", type=int, default=5)
    ap.add_argument("--out", help="write the markdown table here (and the raw numbers next to it as .json)")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    names = args.dnns or list_dnns()
    runs = {n: (args.llm_runs if get_dnn(n).dtype == "fp16" else args.runs) for n in names}
    loads = [load_note()]
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread; {loads[0]}")
    print("round 1: networks")
    first = measure_networks(names, runs)
    if args.profile:
        local = load_profile(args.profile)
        base = local.with_efficiency({})
        calibration_s = float("nan")
    else:
        print("calibrating (servegym calibrate --local --device cpu --threads 1) ...", flush=True)
        t0 = time.perf_counter()
        base, records = time_local_operators("cpu", quick=args.quick_calibration, threads=1, dtype=DTYPE)
        local = calibrate(base, records, source="servegym calibrate --local --device cpu --threads 1")
        calibration_s = time.perf_counter() - t0
        if args.out:
            save_profile(local, Path(args.out).with_name("dnn_accuracy_local_cpu.yaml"))
    loads.append(load_note())
    print("round 2: networks")
    second = measure_networks(names, runs)
    loads.append(load_note())
    devices = {"zero-shot": get_device(ZERO_SHOT), "prior on measured peaks": base, "calibrated": local}
    rows = []
    for name in names:
        samples = first[name] + second[name]
        measured = float(np.median(samples))
        drift = float(np.median(second[name]) / np.median(first[name]) - 1.0)
        pred = {k: DNNLatency(name, d, DTYPE, fusion=FUSION).time() for k, d in devices.items()}
        rows.append((name, measured, drift, len(samples), pred))
    types = (
        kernel_type_errors([n for n in names if get_dnn(n).dtype != "fp16"], devices, args.kernel_repeats)
        if (args.kernel_types)
        else {}
    )
    loads.append(load_note())
    report = format_report(rows, types, loads, calibration_s, args)
    print(report)
    if args.out:
        out = Path(args.out)
        out.write_text(report, encoding="utf-8")
        raw = {
            "networks": {
                n: {"measured_s": m, "drift": d, "runs": r, "predicted_s": p} for n, m, d, r, p in rows
            },
            "kernel_ape": {k: [float(x) for x in v] for k, v in types.items()},
            "load": loads,
            "calibration_s": calibration_s,
        }
        out.with_suffix(".json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
        print(f"wrote {out}")
    return 0


def format_report(rows, types, loads, calibration_s, args) -> str:
    lines = [
        "# DNN latency: predicted vs measured on this machine's CPU",
        "",
        f"`python benchmarks/dnn_accuracy.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        "",
        f"Machine: {platform.processor() or platform.machine()} ({os.cpu_count()} cores, shared with other "
        f"jobs), torch {torch.__version__}, 1 thread, fp32, channels-last, BatchNorm folded, PyTorch eager. "
        "Times are the inference thread's CPU time; median over both rounds "
        f"({args.runs} runs each; {args.llm_runs} for the LLM prompt). Load during the run: "
        + "; ".join(loads)
        + ".",
        "",
        "| network | measured (ms) | drift between rounds | calibrated (ms) | error "
        "| zero-shot x86 core (ms) | error | prior on measured peaks (ms) | error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, measured, drift, _, pred in rows:
        cells = [
            f"{pred[k] * 1e3:.1f} | {pred[k] / measured - 1:+.1%}"
            for k in ("calibrated", "zero-shot", "prior on measured peaks")
        ]
        lines.append(f"| {name} | {measured * 1e3:.1f} | {drift:+.1%} | " + " | ".join(cells) + " |")
    cal_note = "reused" if np.isnan(calibration_s) else f"{calibration_s:.0f} s"
    lines += ["", f"Local calibration time: {cal_note}."]
    if types:
        ktypes = [*sorted({k.split("|")[2] for k in types} - {"all"}), "all"]
        lines += [
            "",
            "Per-kernel-type error (MAPE) of every kernel of the fp32 networks timed alone, in the "
            "calibration's two cache contexts (warm: weights and inputs in the last-level cache; cold: "
            "weights from DRAM):",
            "",
            "| kernel type | kernels | calibrated, warm | calibrated, cold | zero-shot, warm "
            "| zero-shot, cold |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for kt in ktypes:
            cells = []
            for label in ("calibrated", "zero-shot"):  # (the measured-peaks prior: see the JSON)
                for context in ("warm", "cold"):
                    v = types.get(f"{label}|{context}|{kt}", [])
                    cells.append(f"{np.mean(v):.1%}" if v else "–")
            count = len(types.get(f"calibrated|warm|{kt}", []))
            lines.append(f"| {kt} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
