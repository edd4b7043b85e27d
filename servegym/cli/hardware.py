"""``servegym calibrate``, ``catalog`` and ``latency``: the latency model from the shell."""

from __future__ import annotations

import argparse
from pathlib import Path

from servegym.tables import render_table


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from servegym.hardware import calibrate, get_device, load_measurements, save_profile
    from servegym.hardware.accuracy import evaluate, format_table
    from servegym.hardware.params import Prior, default_prior

    prior = default_prior()
    if args.prior:
        import yaml

        prior = Prior.from_dict(yaml.safe_load(Path(args.prior).read_text(encoding="utf-8")))
    if args.local:
        from servegym.hardware.local_timing import time_local_operators
        from servegym.hardware.measurements import write_native_csv

        device_kind = args.device or "cpu"
        print(f"timing torch operators on {device_kind} ({'quick' if args.quick else 'full'} plan) ...")
        device, records = time_local_operators(
            device_kind, quick=args.quick, threads=args.threads, dtype=args.dtype
        )
        threads = int(device.sources.get("threads", 0) or args.threads)
        dtype = records[0].dtype
        fitted = calibrate(
            device, records, prior, source=f"servegym calibrate --local --device {device_kind}"
        )
        fitted = fitted.with_efficiency(
            fitted.efficiency, **{**fitted.provenance, "threads": threads, "dtype": dtype}
        )
        out = Path(args.out or f"servegym-local-{device_kind}.yaml")
        save_profile(fitted, out)
        if args.save_measurements:
            write_native_csv(records, args.save_measurements)
            print(f"measurements: {args.save_measurements}")
        print(f"{len(records)} measurements ({dtype}, {threads} thread(s)); in-sample MAPE by group:")
        for group, mape in fitted.provenance["in_sample_mape"].items():
            print(f"  {group:14s} {mape:6.1%}")
        print(f"wrote profile {out} (use it wherever a device name is accepted)")
        return 0
    if not args.from_path:
        raise ValueError("give --from PATH (measurement files) or --local")
    data = load_measurements(args.from_path)
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(data.skipped.items())) or "none"
    print(f"read {len(data)} measurements from {len(data.files)} file(s); skipped {skipped}")
    names = [args.device] if args.device else data.devices()
    for name in names:
        records = data.records if args.device else data.for_device(name).records
        if args.device:
            device = get_device(args.device)
        else:
            device = get_device(name if name != "unknown" else "a100")
        print(f"\n== {device.name}: {len(records)} measurements")
        results = {"zero-shot": evaluate(device, records, k=0, prior=prior)}
        label = f"{args.samples} samples/group, {args.seeds} seeds"
        results[label] = evaluate(device, records, k=args.samples, seeds=args.seeds, prior=prior)
        print(format_table(results))
        if args.out:
            out = Path(args.out)
            if len(names) > 1:
                out = out.with_name(f"{out.stem}-{name}{out.suffix}")
            fitted = calibrate(device, records, prior, source=str(args.from_path))
            save_profile(fitted, out)
            print(f"wrote profile {out} (fitted on all {len(records)} measurements)")
    return 0


def _cmd_catalog(args: argparse.Namespace) -> int:
    from servegym.hardware import get_device, get_dnn, get_model, list_devices, list_dnns, list_models

    if args.file:
        from servegym.hardware import load_catalog_file

        print(f"registered {load_catalog_file(args.file)}")
    if args.what in ("devices", "all"):
        rows = []
        for n in list_devices():
            d = get_device(n)
            fitted = "calibrated" if d.provenance else "prior"
            rows.append(
                [
                    n,
                    f"{d.peak('fp16') / 1e12:.1f}",
                    f"{d.mem_bandwidth / 1e9:.0f}",
                    f"{d.mem_capacity / 1e9:.0f}",
                    fitted,
                ]
            )
        headers = ["device", "fp16 TFLOP/s", "memory GB/s", "memory GB", "efficiencies"]
        print(render_table(headers, rows, title="devices", right=[1, 2, 3]))
    if args.what in ("models", "all"):
        rows = []
        for n in list_models():
            m = get_model(n)
            moe = f"{m.num_experts}x{m.experts_per_token} MoE" if m.is_moe else ""
            rows.append(
                [
                    n,
                    str(m.num_layers),
                    str(m.hidden_size),
                    f"{m.num_heads}/{m.num_kv_heads}",
                    str(m.ffn_size),
                    f"{m.param_count / 1e9:.2f}B",
                    moe,
                ]
            )
        headers = ["model", "layers", "hidden", "heads/kv", "ffn", "params", "experts"]
        print(render_table(headers, rows, title="models", right=[1, 2, 3, 4, 5]))
    if args.what in ("dnns", "all"):
        rows = []
        for n in list_dnns():
            d = get_dnn(n)
            rows.append(
                [n, str(len(d.layers)), f"{d.total_flops / 1e9:.2f}", f"{d.total_weight_bytes / 1e6:.1f}"]
            )
        print(render_table(["dnn", "layers", "GFLOP", "weights MB"], rows, title="dnns", right=[1, 2, 3]))
    return 0


def _latency_dtype(model, device, requested: str | None) -> tuple[str, str]:
    """The dtype to time in, and a note when it is not the model's own."""
    if requested:
        device.peak(requested)  # a clear error if the device has no peak for it
        return requested, ""
    try:
        device.peak(model.dtype)
        return model.dtype, ""
    except ValueError:
        measured = device.provenance.get("dtype") or device.dnn_runtime.dtype or next(iter(device.peak_flops))
        note = (
            f"note: {device.name} lists no {model.dtype} peak; timing {model.name} in {measured}, "
            f"the dtype the profile was measured in (--dtype to choose)"
        )
        return measured, note


def _cmd_latency(args: argparse.Namespace) -> int:
    from servegym.hardware import IterationBatch, LatencyModel, get_device, get_model

    device = get_device(args.device)
    dtype, note = _latency_dtype(get_model(args.model), device, args.dtype)
    if note:
        print(note)
    lm = LatencyModel(args.model, device, tp=args.tp, cpu_overhead=not args.no_cpu_overhead, dtype=dtype)
    print(
        f"{lm.model.name} on {lm.device.name} x{lm.tp} (topology {lm.topology}), {dtype}; "
        f"profile: {lm.device.provenance.get('source', 'prior (zero-shot)')}"
    )
    prefill = [
        [str(n), f"{lm.prefill_time(n) * 1e3:.2f}", f"{n / lm.prefill_time(n):.0f}"] for n in args.prompts
    ]
    print()
    print(
        render_table(
            ["tokens", "ms", "tokens/s"],
            prefill,
            title="prefill of one prompt (TTFT without queueing)",
            right=[0, 1, 2],
        )
    )
    decode = [
        [str(b), f"{lm.decode_time(b, args.context) * 1e3:.2f}", f"{b / lm.decode_time(b, args.context):.0f}"]
        for b in args.batches
    ]
    print()
    print(
        render_table(
            ["batch", "ms", "tokens/s"],
            decode,
            title=f"decode iteration at context {args.context} (TPOT)",
            right=[0, 1, 2],
        )
    )
    batch = IterationBatch(
        decode_seqs=args.batches[-1], decode_context=float(args.batches[-1] * args.context)
    )
    batch.add_prefill(args.chunk, 0)
    parts = lm.iteration_breakdown(batch)
    total = sum(parts.values())
    title = (
        f"mixed iteration: {args.batches[-1]} decodes + one {args.chunk}-token prefill chunk "
        f"= {total * 1e3:.2f} ms"
    )
    rows = [
        [name, f"{t * 1e3:.3f}", f"{t / total:.1%}"]
        for name, t in sorted(parts.items(), key=lambda kv: -kv[1])
        if t > 0
    ]
    print()
    print(render_table(["operator", "ms", "share"], rows, title=title, right=[1, 2]))
    return 0


def add_hardware_commands(sub) -> None:
    cal = sub.add_parser(
        "calibrate",
        help="fit a device profile from measurements or local timings",
        description="Fit a device's latency-model efficiencies and report held-out accuracy.",
    )
    cal.add_argument(
        "--from",
        dest="from_path",
        metavar="PATH",
        help="measurement CSV or directory (Vidur profiling CSVs or servegym's native CSV)",
    )
    cal.add_argument("--local", action="store_true", help="time torch operators on this machine")
    cal.add_argument("--device", help="with --local: cpu or cuda; with --from: the catalog device measured")
    cal.add_argument("--quick", action="store_true", help="with --local: a few seconds' plan (for CI)")
    cal.add_argument(
        "--threads",
        type=int,
        default=1,
        help="with --local: torch threads to time with (default 1; recorded in the profile)",
    )
    cal.add_argument(
        "--dtype",
        choices=["fp32", "fp16", "bf16"],
        help="with --local: dtype to time in (default fp32 on a CPU, fp16 on a GPU)",
    )
    cal.add_argument("--out", help="write the fitted profile YAML here")
    cal.add_argument("--save-measurements", metavar="CSV", help="with --local: also write the timings")
    cal.add_argument("--samples", type=int, default=10, help="calibration samples per operator group")
    cal.add_argument("--seeds", type=int, default=20, help="random draws averaged in the accuracy table")
    cal.add_argument("--prior", help="prior YAML (default: the shipped prior)")
    cal.set_defaults(func=_cmd_calibrate)

    cat = sub.add_parser("catalog", help="list devices, models and DNNs")
    cat.add_argument("what", nargs="?", default="all", choices=["all", "devices", "models", "dnns"])
    cat.add_argument("--file", help="also register the entries of this catalog YAML")
    cat.set_defaults(func=_cmd_catalog)

    lat = sub.add_parser("latency", help="predicted prefill/decode/iteration times of a model on a device")
    lat.add_argument("--model", default="Llama-3-8B")
    lat.add_argument("--device", default="a100", help="catalog name or profile YAML")
    lat.add_argument("--tp", type=int, default=1)
    lat.add_argument("--prompts", type=int, nargs="+", default=[128, 512, 2048, 8192])
    lat.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    lat.add_argument("--context", type=int, default=1024)
    lat.add_argument("--chunk", type=int, default=512)
    lat.add_argument("--no-cpu-overhead", action="store_true")
    lat.add_argument(
        "--dtype",
        choices=["fp32", "fp16", "bf16", "fp8", "int8"],
        help="time the model in this dtype (default: the model's, or the profile's measured dtype)",
    )
    lat.set_defaults(func=_cmd_latency)
