"""``servegym simulate``, run in-process through ``servegym.cli.main``."""

from __future__ import annotations

import math

import pytest

from servegym.cli import main

BASE = ["simulate", "--model", "llama-3.2-1b", "--duration", "20", "--rate", "2"]


def _kpis(out: str) -> dict[str, float]:
    kpis = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("  ") and len(parts) == 2:
            try:
                kpis[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return kpis


def test_simulate_prints_the_kpis(capsys):
    assert main(BASE) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith("Llama-3.2-1B on A100")
    kpis = _kpis(captured.out)
    assert "ttft_p50_s" in kpis and kpis["ttft_p50_s"] > 0
    assert 20 <= kpis["requests_arrived"] <= 70  # Poisson(2/s) over 20 s
    assert kpis["requests_finished"] == kpis["requests_arrived"]
    assert 0 <= kpis["slo_attainment"] <= 1
    assert math.isnan(kpis["acceptance_rate"])  # no speculation


def test_simulate_is_seeded(capsys):
    main([*BASE, "--seed", "7"])
    first = capsys.readouterr().out
    main([*BASE, "--seed", "7"])
    assert capsys.readouterr().out == first
    main([*BASE, "--seed", "8"])
    assert capsys.readouterr().out != first


def test_simulate_with_speculation_and_policy(capsys):
    args = [*BASE, "--policy", "prefill_first", "--budget", "256", "--draft", "ngram", "--spec-tokens", "3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "prefill_first, budget 256" in out
    assert 0 < _kpis(out)["acceptance_rate"] < 1


def test_simulate_plot_writes_a_png(tmp_path, capsys):
    path = tmp_path / "sub" / "tmp.png"
    assert main([*BASE, "--plot", str(path)]) == 0
    assert f"plot: {path}" in capsys.readouterr().out
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_simulate_replays_a_vidur_trace(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    rows = [(0.0, 100, 20), (0.5, 300, 50), (1.0, 50, 5), (2.5, 2000, 10), (4.0, 800, 100), (30.0, 10, 10)]
    trace.write_text(
        "arrived_at,num_prefill_tokens,num_decode_tokens\n" + "".join(f"{t},{p},{d}\n" for t, p, d in rows)
    )
    args = [
        "simulate",
        "--model",
        "llama-3.2-1b",
        "--trace",
        str(trace),
        "--duration",
        "20",
        "--max-model-len",
        "1024",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "5 requests over 20 s" in out  # the row at 30 s is past the horizon
    kpis = _kpis(out)
    assert (kpis["requests_arrived"], kpis["requests_finished"], kpis["requests_rejected"]) == (5, 4, 1)
    assert "rejected (prompt + output longer than max_model_len): 1" in out
    # Twice as fast: the 30 s row arrives at 15 s, inside the horizon.
    assert main([*args, "--rate-scale", "2"]) == 0
    assert "6 requests over 20 s" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rate", "-1"], "Poisson.rate must be > 0"),
        (["--rate", "0"], "Poisson.rate must be > 0"),
        (["--cv", "0"], "GammaArrivals.cv must be > 0"),
        (["--budget", "0"], "token_budget must be an integer >= 1, got 0"),
        (["--max-num-seqs", "0"], "max_num_seqs must be an integer >= 1"),
        (["--tp", "0"], "tp must be an integer >= 1"),
        (["--gpu-memory-utilization", "1.5"], r"gpu_memory_utilization must be in (0, 1]"),
        (["--lengths", "tweets"], "unknown length preset 'tweets'"),
        (["--duration", "0"], "--duration must be positive"),
        (["--spec-tokens", "2"], "spec_tokens > 0 needs a draft"),
        (["--draft", "ngram", "--spec-tokens", "2", "--acceptance", "poetry"], "unknown acceptance preset"),
        (["--tbt-slo", "-1"], "tbt_slo_s must be a positive number"),
        (["--model", "Llama-9000"], "Llama-9000"),
        (["--trace", "/nonexistent/trace.csv"], "trace.csv"),
        (["--device", "l4", "--model", "Llama-2-70B"], "max_model_len=4096"),
    ],
)
def test_simulate_bad_values_exit_2(extra, message, capsys):
    assert main([*BASE, *extra]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("servegym simulate: error: ")
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_simulate_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main([*BASE, "--policy", "fifo"])
    assert info.value.code == 2
    assert "invalid choice: 'fifo'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([*BASE, "--budget", "lots"])
    assert info.value.code == 2
