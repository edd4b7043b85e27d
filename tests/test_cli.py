"""The servegym command line, run in-process."""

from __future__ import annotations

import pytest

from servegym.cli import main
from servegym.hardware import load_measurements, load_profile

LLAMA2_7B_MLP = "profiling/a100/meta-llama/Llama-2-7b-hf/mlp.csv"


def test_catalog_lists_everything(capsys):
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out
    for text in (
        "fp16 TFLOP/s   memory GB/s   memory GB",
        "A100-80GB",
        "H100-SXM",
        "layers   hidden   heads/kv",
        "Llama-3-8B",
        "GFLOP   weights MB",
        "ResNet-50",
    ):
        assert text in out
    a100 = next(line for line in out.splitlines() if line.strip().startswith("A100-80GB"))
    assert a100.split()[1:4] == ["312.0", "2039", "80"]
    assert a100.rstrip().endswith("calibrated")
    llama = next(line for line in out.splitlines() if line.strip().startswith("Llama-2-7B"))
    assert "6.74B" in llama
    assert "8x2 MoE" in next(line for line in out.splitlines() if "Mixtral" in line)


@pytest.mark.usefixtures("isolated_catalog")
def test_catalog_subset_and_user_file(capsys, tmp_path):
    path = tmp_path / "cat.yaml"
    path.write_text(
        "devices:\n  - {name: Cli-Dev, peak_flops: {fp16: 1.0e+14}, mem_bandwidth: 1.0e+12,"
        " mem_capacity: 1.0e+10}\n"
    )
    assert main(["catalog", "devices", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "registered {'devices': ['Cli-Dev']}" in out
    assert "Cli-Dev" in out and "prior" in out
    assert "models (" not in out


def test_latency(capsys):
    assert main(["latency", "--model", "llama-3-8b", "--device", "a100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Llama-3-8B on A100-80GB x1 (topology nvswitch)")
    assert "prefill of one prompt" in out and "decode iteration at context 1024" in out
    assert "mixed iteration: 128 decodes + one 512-token prefill chunk" in out
    assert "attention" in out and "cpu_overhead" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [128, 512, 2048, 8192, 1, 8, 32, 128]
    prefill_ms = [float(r[1]) for r in rows[:4]]
    assert prefill_ms == sorted(prefill_ms)


def test_latency_tp_and_profile_path(capsys, tmp_path):
    from servegym.hardware import get_device, save_profile

    path = save_profile(get_device("h100").with_efficiency({}, source="my lab"), tmp_path / "h.yaml")
    argv = ["latency", "--model", "Llama-2-70B", "--device", str(path), "--tp", "4", "--no-cpu-overhead"]
    assert main([*argv, "--prompts", "64", "--batches", "2", "--context", "128", "--chunk", "32"]) == 0
    out = capsys.readouterr().out
    assert "Llama-2-70B on H100-SXM x4" in out
    assert "profile: my lab" in out
    assert "all_reduce" in out and "cpu_overhead" not in out


def test_calibrate_from_excerpt_writes_a_loadable_profile(capsys, tmp_path, vidur_excerpt):
    data = tmp_path / "a100"
    vidur_excerpt(LLAMA2_7B_MLP, data / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv", range(1, 1000, 40))
    vidur_excerpt("profiling/a100/attention.csv", data / "attention.csv", range(0, 14000, 500))
    out_path = tmp_path / "prof" / "fitted.yaml"
    assert main(["calibrate", "--from", str(data), "--seeds", "2", "--out", str(out_path)]) == 0
    out = capsys.readouterr().out
    n = len(load_measurements(data))
    assert f"read {n} measurements from 2 file(s); skipped none" in out
    assert "== A100-80GB" in out and "zero-shot" in out and "10 samples/group, 2 seeds" in out
    assert "gemm" in out and "attn_decode" in out
    assert f"wrote profile {out_path}" in out
    device = load_profile(out_path)
    assert device.name == "A100-80GB"
    assert device.provenance["measurements"]["gemm"] == 25 * 4
    assert "gemm.eta_c" in device.provenance["fitted_parameters"]
    assert device.provenance["source"] == str(data)


def test_calibrate_native_csv_with_named_device(capsys, tmp_path):
    path = tmp_path / "mine.csv"
    rows = [f"gemm,{1e-5 * (1 + m / 256):.6g},{m},4096,4096," for m in (1, 4, 16, 64, 256, 1024, 4096)]
    rows += [f"cpu_overhead,{1e-3 + 3e-5 * b:.6g},,,,{b}" for b in (1, 8, 64)]
    path.write_text("op,seconds,m,n,k,batch_size\n" + "\n".join(rows) + "\n")
    out_path = tmp_path / "l4.yaml"
    args = ["calibrate", "--from", str(path), "--device", "l4", "--samples", "3", "--seeds", "2"]
    assert main([*args, "--out", str(out_path)]) == 0
    assert "== L4: 10 measurements" in capsys.readouterr().out
    device = load_profile(out_path)
    assert device.name == "L4"
    assert device.provenance["measurements"] == {"gemm": 7, "cpu_overhead": 3}
    assert device.efficiency["cpu.c1_s"] == pytest.approx(3e-5, rel=0.2)


@pytest.mark.slow
def test_calibrate_local_cpu_quick_then_latency_on_the_profile(capsys, tmp_path):
    """The README's example end to end: a profile measured in fp32 times a fp16 catalog model."""
    from servegym.hardware.local_timing import QUICK_PLAN

    out_path = tmp_path / "my-cpu.yaml"
    csv_path = tmp_path / "local.csv"
    argv = ["calibrate", "--local", "--device", "cpu", "--quick", "--threads", "1", "--out", str(out_path)]
    assert main([*argv, "--save-measurements", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert "timing torch operators on cpu (quick plan)" in out
    assert "(fp32, 1 thread(s))" in out
    assert f"wrote profile {out_path}" in out
    device = load_profile(out_path)
    assert device.name == "local-cpu" and device.kind == "cpu"
    assert device.peak("fp32") > 0
    assert device.provenance["threads"] == 1 and device.provenance["dtype"] == "fp32"
    assert device.dnn_runtime.fusion == "conv-bn" and device.dnn_runtime.dtype == "fp32"
    assert {"gemm.eta_c", "attn.eta_b", "elem.norm.rho", "dnn.dwconv.eta_b", "dnn.cache_bytes"} <= set(
        device.efficiency
    )
    records = load_measurements(csv_path)
    llm = 5 * 9 + 2  # 4 GEMMs + 5 elementwise per token count, 2 attention
    assert len(records) == llm + 2 * len(QUICK_PLAN.dnn_kernels) + len(QUICK_PLAN.dnn_chains)
    assert main(["latency", "--device", str(out_path), "--prompts", "16", "--batches", "1"]) == 0
    out = capsys.readouterr().out
    assert "local-cpu lists no fp16 peak; timing Llama-3-8B in fp32" in out
    assert "Llama-3-8B on local-cpu x1 (topology pcie), fp32" in out


def _fp32_only_profile(tmp_path):
    from servegym.hardware import Device, save_profile

    device = Device(
        name="my-cpu", kind="cpu", peak_flops={"fp32": 1.5e11}, mem_bandwidth=2e10, mem_capacity=8e9
    )
    return save_profile(device.with_efficiency({}, source="a test", dtype="fp32"), tmp_path / "my-cpu.yaml")


def test_latency_on_a_profile_without_the_models_dtype(tmp_path):
    """A profile works for the dtype it was measured in; --dtype chooses; run as a user would."""
    import subprocess
    import sys

    path = _fp32_only_profile(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "servegym.cli",
        "latency",
        "--device",
        str(path),
        "--prompts",
        "16",
        "--batches",
        "1",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "my-cpu lists no fp16 peak; timing Llama-3-8B in fp32" in done.stdout
    assert "Llama-3-8B on my-cpu x1 (topology pcie), fp32" in done.stdout
    done = subprocess.run([*cmd, "--dtype", "fp16"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "device 'my-cpu' has no peak FLOP/s for dtype 'fp16'; it lists ['fp32']" in done.stderr
    assert "Traceback" not in done.stderr


def test_latency_dtype_flag(capsys):
    assert main(["latency", "--device", "a100", "--dtype", "fp32", "--prompts", "16", "--batches", "1"]) == 0
    fp32 = capsys.readouterr().out
    assert "Llama-3-8B on A100-80GB x1 (topology nvswitch), fp32" in fp32 and "note:" not in fp32
    assert main(["latency", "--device", "a100", "--prompts", "16", "--batches", "1"]) == 0
    assert ", fp16;" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["latency", "--model", "llama-2-7"], "servegym latency: error: unknown model 'llama-2-7'; closest:"),
        (["latency", "--device", "a1000"], "unknown device 'a1000'"),
        (["latency", "--model", "llama-3-8b", "--tp", "3"], "tp=3 must divide num_heads"),
        (["calibrate", "--from", "/nonexistent/servegym/data"], "measurement path not found"),
        (["calibrate"], "give --from PATH (measurement files) or --local"),
        (["calibrate", "--local", "--device", "tpu"], "--device must be 'cpu' or 'cuda'"),
        (["calibrate", "--local", "--threads", "0"], "--threads must be a whole number >= 1, got 0"),
        (["catalog", "--file", "/nonexistent/cat.yaml"], "catalog file not found"),
    ],
)
def test_bad_input_exits_2_with_message(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_bad_prior_and_bad_measurements(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("op,seconds\nmatmul,1\n")
    assert main(["calibrate", "--from", str(bad)]) == 2
    assert f"{bad}:2: unknown op 'matmul'" in capsys.readouterr().err
    prior = tmp_path / "prior.yaml"
    prior.write_text("mean: {}\n")
    assert main(["calibrate", "--from", str(bad), "--prior", str(prior)]) == 2
    assert "a prior needs 'mean' and 'sigma' mappings" in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["latency", "--tp", "two"])
    assert info.value.code == 2
    assert "invalid int value" in capsys.readouterr().err
