"""Measurement readers: the real Vidur A100 tree, excerpts of it, the native CSV, bad files."""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from servegym.hardware import Measurement, MeasurementFileError, get_model, load_measurements
from servegym.hardware.kernels import GEMM_OPS, LayerDims
from servegym.hardware.measurements import NATIVE_COLUMNS, write_native_csv

LLAMA2_7B_MLP = "profiling/a100/meta-llama/Llama-2-7b-hf/mlp.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---- the real A100 tree --------------------------------------------------------------------


def test_real_tree_counts_per_group(vidur_dir, a100_measurements):
    """Counts worked out from the raw CSVs: mlp rows de-duplicated on (num_tokens, TP)."""
    gemm = elementwise = duplicates = 0
    for path in sorted((vidur_dir / "profiling" / "a100").rglob("mlp.csv")):
        seen = set()
        for row in _rows(path):
            key = (row["num_tokens"], row["num_tensor_parallel_workers"])
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            ops = [c.split(".")[1] for c in row if c.startswith("time_stats.") and c.endswith(".median")]
            gemm += sum(op in GEMM_OPS for op in ops)
            elementwise += sum(op not in GEMM_OPS for op in ops)
    attention = len(_rows(vidur_dir / "profiling" / "a100" / "attention.csv"))
    all_reduce = sum(len(_rows(p)) for p in (vidur_dir / "network").rglob("all_reduce.csv"))
    cpu = len(_rows(vidur_dir / "profiling" / "a100" / "cpu_overheads.csv"))

    groups = Counter(r.group for r in a100_measurements)
    assert groups == {
        "gemm": gemm,
        "elementwise": elementwise,
        "attention": attention,
        "all_reduce": all_reduce,
        "cpu_overhead": cpu,
    }
    assert gemm == 36188 and duplicates == 82  # the published data set, pinned
    assert a100_measurements.skipped["duplicate row"] == duplicates
    assert a100_measurements.devices() == ["a100"]
    assert len(a100_measurements.files) == 12


def test_real_tree_ms_to_seconds(vidur_dir, a100_measurements):
    row = _rows(vidur_dir / LLAMA2_7B_MLP)[0]
    tokens = int(row["num_tokens"])
    tp = int(row["num_tensor_parallel_workers"])
    (rec,) = [
        r
        for r in a100_measurements
        if r.model == "meta-llama/Llama-2-7b-hf"
        and r.op == "attn_pre_proj"
        and r.num_tokens == tokens
        and r.tp == tp
    ]
    assert rec.seconds == pytest.approx(float(row["time_stats.attn_pre_proj.median"]) * 1e-3, rel=1e-12)
    assert (tokens, tp) == (4096, 1)
    assert rec.seconds == pytest.approx(1.911e-3)
    assert rec.dims.hidden_size == 4096
    assert rec.dims.num_heads == rec.dims.num_kv_heads == 32
    assert rec.dims.ffn_size == 11008 and rec.dims.gated_mlp
    assert rec.source.endswith("mlp.csv:2")


def test_real_tree_attention_fields(a100_measurements):
    attn = [r for r in a100_measurements if r.group == "attention"]
    prefill = [r for r in attn if r.op == "attn_prefill"]
    decode = [r for r in attn if r.op == "attn_decode"]
    assert (len(prefill), len(decode)) == (4418, 10240)
    assert all(r.prefill_chunk > 0 for r in prefill)
    assert all(r.prefill_chunk == 0 and r.batch_size > 0 for r in decode)
    # attention.csv line 2: decode, n_embd 8192, 64 q / 8 kv heads, TP 2, batch 1, kv 32, 0.015 ms
    first = next(r for r in decode if r.source.endswith("attention.csv:2"))
    assert (first.batch_size, first.kv_context, first.tp) == (1, 32, 2)
    assert (first.dims.hidden_size, first.dims.num_heads, first.dims.num_kv_heads) == (8192, 64, 8)
    assert first.dims.head_dim == 128
    assert first.seconds == pytest.approx(0.015e-3)
    p = prefill[0]
    assert (p.prefill_chunk, p.kv_context, p.batch_size) == (64, 0, 1)
    assert p.seconds == pytest.approx(0.015e-3)


def test_real_tree_all_reduce_topology_from_folder(a100_measurements):
    ar = [r for r in a100_measurements if r.op == "all_reduce"]
    by_folder = Counter((Path(r.source.rsplit(":", 1)[0]).parent.name, r.topology) for r in ar)
    assert set(by_folder) == {("a100_dgx", "nvswitch"), ("a100_pairwise_nvlink", "pairwise_nvlink")}
    assert by_folder[("a100_dgx", "nvswitch")] == 6958
    assert by_folder[("a100_pairwise_nvlink", "pairwise_nvlink")] == 4496
    # dgx rows with one device per node span nodes: 2 workers on 1/node -> 2 nodes
    first = next(r for r in ar if "a100_dgx" in r.source and r.source.endswith(":2"))
    assert (first.num_gpus, first.num_nodes, first.size_bytes) == (2, 2, 2048.0)
    assert first.topology_key == "nvswitch-2nodes"
    assert first.seconds == pytest.approx(0.043e-3)
    keys = {(r.topology_key, r.num_gpus) for r in ar}
    assert ("nvswitch", 8) in keys and ("pairwise_nvlink", 4) in keys


def test_real_tree_cpu_overheads_sum_four_parts(vidur_dir, a100_measurements):
    rows = _rows(vidur_dir / "profiling" / "a100" / "cpu_overheads.csv")
    cpu = sorted((r for r in a100_measurements if r.op == "cpu_overhead"), key=lambda r: r.source)
    assert len(cpu) == len(rows) == 13
    row = rows[0]
    parts = ("schedule", "sampler_e2e", "prepare_inputs_e2e", "process_model_outputs")
    expected = sum(float(row[f"{p}_median"]) for p in parts) * 1e-3
    first = next(r for r in cpu if r.source.endswith("cpu_overheads.csv:2"))
    assert first.seconds == pytest.approx(expected, rel=1e-12)
    assert first.seconds < float(row["model_execution_e2e_median"]) * 1e-3  # model time excluded
    assert (first.batch_size, first.tp) == (int(row["batch_size"]), int(row["tensor_parallel_degree"]))


def test_real_tree_phi2_has_no_post_attention_layernorm(a100_measurements):
    phi = [r for r in a100_measurements if r.model == "microsoft/phi-2"]
    ops = Counter(r.op for r in phi)
    assert "post_attention_layernorm" not in ops
    assert len(ops) == 9 and len(set(ops.values())) == 1  # every other operator, every row
    assert not phi[0].dims.gated_mlp
    assert phi[0].dims.head_dim == 80


def test_phi2_missing_operator_is_reported_as_skipped(vidur_dir):
    data = load_measurements(vidur_dir / "profiling" / "a100" / "microsoft" / "phi-2" / "mlp.csv")
    assert any("post_attention_layernorm" in reason for reason in data.skipped)


# ---- excerpts in tmp_path ------------------------------------------------------------------


def test_mlp_excerpt(tmp_path, vidur_excerpt):
    # rows 0 and 1 of the real file repeat num_tokens 4096: start at row 1
    path = vidur_excerpt(
        LLAMA2_7B_MLP, tmp_path / "a100" / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv", range(1, 6)
    )
    data = load_measurements(path)
    assert len(data) == 5 * 10  # ten operators per row
    assert data.files == [str(path)]
    assert data.devices() == ["a100"]  # inferred from the folder name
    assert {r.model for r in data} == {"meta-llama/Llama-2-7b-hf"}
    assert Counter(r.group for r in data) == {"gemm": 20, "elementwise": 30}
    assert load_measurements(path, device="my-gpu").devices() == ["my-gpu"]


def test_mlp_excerpt_duplicate_rows_are_skipped(tmp_path, vidur_excerpt):
    path = vidur_excerpt(LLAMA2_7B_MLP, tmp_path / "x" / "y" / "mlp.csv", [1, 2, 1, 3, 3])
    data = load_measurements(path)
    assert data.skipped == {"duplicate row": 2}
    assert len(data) == 3 * 10
    assert data.devices() == ["unknown"]


def test_directory_reads_every_csv(tmp_path, vidur_excerpt):
    vidur_excerpt(LLAMA2_7B_MLP, tmp_path / "a100" / "m" / "x" / "mlp.csv", range(1, 4))
    vidur_excerpt("profiling/a100/attention.csv", tmp_path / "a100" / "attention.csv", range(4))
    vidur_excerpt(
        "network/a100_dgx/all_reduce.csv", tmp_path / "net" / "a100_dgx" / "all_reduce.csv", range(2)
    )
    vidur_excerpt("profiling/a100/cpu_overheads.csv", tmp_path / "a100" / "cpu_overheads.csv", range(3))
    data = load_measurements(tmp_path)
    assert len(data.files) == 4
    assert Counter(r.group for r in data) == {
        "gemm": 12,
        "elementwise": 18,
        "attention": 4,
        "all_reduce": 2,
        "cpu_overhead": 3,
    }


# ---- native CSV ----------------------------------------------------------------------------

DIMS = LayerDims(
    hidden_size=4096,
    num_heads=32,
    num_kv_heads=8,
    head_dim=128,
    ffn_size=14336,
    gated_mlp=True,
    vocab_size=128256,
    tp=2,
)


def _native_records() -> list[Measurement]:
    return [
        Measurement(
            op="mlp_up_proj",
            seconds=1.25e-4,
            device="a100",
            model="Llama-3-8B",
            dims=DIMS,
            tp=2,
            num_tokens=64,
        ),
        Measurement(op="add", seconds=3.5e-6, device="a100", dims=DIMS, tp=2, num_tokens=7),
        Measurement(op="gemm", seconds=2e-5, device="h100", m=128, n=4096, k=1024),
        Measurement(
            op="attn_prefill",
            seconds=1e-4,
            device="a100",
            dims=DIMS,
            tp=2,
            prefill_chunk=512,
            kv_context=1024,
            batch_size=2,
        ),
        Measurement(
            op="attn_decode", seconds=3e-5, device="a100", dims=DIMS, tp=2, batch_size=16, kv_context=2048
        ),
        Measurement(
            op="all_reduce",
            seconds=4e-5,
            device="a100",
            size_bytes=1048576.0,
            num_gpus=4,
            num_nodes=1,
            topology="nvswitch",
        ),
        Measurement(op="cpu_overhead", seconds=1.1e-3, device="a100", batch_size=32),
        Measurement(op="layer", seconds=7e-4, device="a100", dims=DIMS, tp=2, num_tokens=256),
    ]


def test_native_csv_round_trip(tmp_path):
    records = _native_records()
    path = write_native_csv(records, tmp_path / "sub" / "native.csv")
    back = load_measurements(path)
    assert len(back) == len(records)
    assert [replace(r, source="") for r in back] == records
    assert back.records[0].source == f"{path}:2"
    with open(path, newline="") as fh:
        assert next(csv.reader(fh))[: len(NATIVE_COLUMNS)] == list(NATIVE_COLUMNS)


def test_native_csv_round_trip_keeps_dtype(tmp_path):
    dims = replace(DIMS, tp=1, bytes_per_element=4)
    rec = Measurement(op="mlp_down_proj", seconds=1e-3, device="cpu", dims=dims, num_tokens=16, dtype="fp32")
    (back,) = load_measurements(write_native_csv([rec], tmp_path / "fp32.csv"))
    assert back.dtype == "fp32"
    assert back.dims.bytes_per_element == 4


def test_native_csv_reads_dtype_column_and_catalog_model(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text(
        "op,seconds,model,tp,num_tokens,hidden_size,num_heads,dtype\n"
        "mlp_act,1e-5,Llama-3-8B,2,128,,,\n"
        "add,2e-6,,1,8,64,4,fp32\n"
    )
    a, b = load_measurements(path, device="cpu")
    assert a.dims == get_model("Llama-3-8B").layer_dims(2)
    assert (a.device, a.tp, a.num_tokens) == ("cpu", 2, 128)
    assert b.dtype == "fp32" and b.dims.bytes_per_element == 4
    assert (b.dims.num_kv_heads, b.dims.head_dim) == (4, 16)  # defaults: MHA, h / heads


# ---- bad input -----------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", ": empty file (expected a CSV header line)"),
        ("\n\n", ": empty file"),
        ("op,seconds,num_tokens\n", ": header only, no measurement rows"),
        ("a,b,c\n1,2,3\n", ":1: unrecognised header"),
        ("op,seconds\ngemm,1e-3,7\n", ":2: 3 fields, expected 2 as in the header"),
        ("op,seconds,m,n,k\ngemm,1e-3,1,2,3\ngemm,2e-3,1,2\n", ":3: 4 fields, expected 5"),
        ("op,seconds,m,n,k\ngemm,fast,1,2,3\n", ":2: column 'seconds' = 'fast' is not a number"),
        ("op,seconds,m,n,k\ngemm,1e-3,1,x2,3\n", ":2: column 'n' = 'x2' is not a number"),
        ("op,seconds,m,n,k\ngemm,1e-3,1,2.5,3\n", ":2: column 'n' = '2.5' must be a whole number"),
        ("op,seconds,m,n,k\ngemm,nan,1,2,3\n", ":2: column 'seconds' = 'nan' must be finite and >= 0"),
        ("op,seconds,m,n,k\ngemm,-1e-3,1,2,3\n", ":2: column 'seconds' = '-1e-3' must be finite"),
        ("op,seconds,m,n,k\ngemm,0,1,2,3\n", ":2: seconds must be positive"),
        ("op,seconds\nmatmul,1e-3\n", ":2: unknown op 'matmul'; expected one of"),
        ("op,seconds,num_tokens\nmlp_act,1e-3,4\n", ":2: op 'mlp_act' needs model dims"),
        ("op,seconds,model,num_tokens\nmlp_act,1e-3,Llama-9-1T,4\n", ":2: unknown model 'Llama-9-1T'"),
        ("op,seconds,m,n,k,dtype\ngemm,1e-3,1,2,3,fp4\n", ":2: column 'dtype' = 'fp4'"),
        (
            "op,seconds,num_tokens,hidden_size,num_heads,gated_mlp\nmlp_act,1e-3,4,64,4,maybe\n",
            ":2: column 'gated_mlp' = 'maybe' is not true/false",
        ),
    ],
)
def test_bad_native_files_name_file_and_line(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(MeasurementFileError, match=re.escape(str(path)) + re.escape(message)):
        load_measurements(path)


def test_bad_vidur_cell_names_file_line_and_column(tmp_path, vidur_excerpt):
    path = vidur_excerpt(LLAMA2_7B_MLP, tmp_path / "a100" / "o" / "m" / "mlp.csv", range(3))
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",True,", ",perhaps,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        MeasurementFileError, match=re.escape(f"{path}:4: column 'use_gated_mlp' = 'perhaps'")
    ):
        load_measurements(path)
    lines[3] = lines[3].replace(",perhaps,", ",True,").rsplit(",", 2)[0] + ",many,1"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MeasurementFileError, match=re.escape(f"{path}:4: column 'num_tokens' = 'many'")):
        load_measurements(path)


def test_measurement_file_error_is_a_value_error():
    assert issubclass(MeasurementFileError, ValueError)


def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="measurement path not found"):
        load_measurements(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MeasurementFileError, match=r"no \.csv measurement files"):
        load_measurements(tmp_path / "empty")


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"op,seconds\n\xff\xfe,1\n")
    with pytest.raises(MeasurementFileError, match="not a UTF-8 CSV file"):
        load_measurements(path)


def test_measurement_size_keys():
    assert Measurement(op="attn_decode", seconds=1, batch_size=4, kv_context=100).size_key == 400
    assert Measurement(op="attn_prefill", seconds=1, prefill_chunk=64).size_key == 64
    assert Measurement(op="all_reduce", seconds=1, size_bytes=2048.0).size_key == 2048.0
    assert Measurement(op="mlp_act", seconds=1, num_tokens=9).size_key == 9
    assert Measurement(op="all_reduce", seconds=1, topology="nvswitch", num_nodes=2).topology_key == (
        "nvswitch-2nodes"
    )
    assert math.isclose(Measurement(op="gemm", seconds=1, m=12).size_key, 12)
