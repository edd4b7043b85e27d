"""Measurement records and the readers that produce them.

``load_measurements(path)`` reads a file, or every CSV under a directory, in one of these formats
(recognised by their header):

* Vidur ``mlp.csv``: per-operator kernel times vs ``num_tokens`` and TP, model dims in columns;
* Vidur ``attention.csv``: FlashAttention prefill and decode times;
* Vidur ``all_reduce.csv``: NCCL all-reduce times vs buffer size; the node topology comes from
  the folder name (``*_dgx`` -> ``nvswitch``, ``*_pairwise_nvlink`` -> ``pairwise_nvlink``);
* Vidur ``cpu_overheads.csv``: per-iteration CPU times vs batch size (schedule + sampler +
  prepare inputs + process outputs);
* servegym's native CSV (``op,seconds,...``; see ``NATIVE_COLUMNS``), which ``servegym calibrate
  --local`` writes too.

Vidur times are milliseconds of one TP rank's kernels; records hold seconds.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .dnn_kernels import FUSIONS, DNNKernel
from .kernels import ATTENTION_OPS, ELEMENTWISE_OPS, GEMM_OPS, LAYER_OPS, LayerDims

TOKEN_OPS = (*GEMM_OPS, *ELEMENTWISE_OPS, "lm_head", "kv_write")
DNN_OPS = ("dnn_kernels", "dnn")
KNOWN_OPS = (*TOKEN_OPS, *ATTENTION_OPS, "all_reduce", "cpu_overhead", "gemm", "layer", *DNN_OPS)
DNN_CONTEXTS = ("warm", "cold", "network")

OP_GROUP = {
    **{op: "gemm" for op in (*GEMM_OPS, "lm_head", "gemm")},
    **{op: "elementwise" for op in (*ELEMENTWISE_OPS, "kv_write")},
    "attn_prefill": "attention",
    "attn_decode": "attention",
    "all_reduce": "all_reduce",
    "cpu_overhead": "cpu_overhead",
    "layer": "layer",
}


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measured time and everything needed to predict it.

    Which fields matter depends on ``op``: token-level operators use ``num_tokens``, ``tp``
    and ``dims``; ``gemm`` uses ``m, n, k``; ``attn_prefill`` uses ``prefill_chunk`` and
    ``kv_context`` (``batch_size`` chunks alike); ``attn_decode`` uses ``batch_size`` and
    ``kv_context`` (per sequence); ``all_reduce`` uses ``size_bytes``, ``num_gpus``,
    ``num_nodes``, ``topology``; ``cpu_overhead`` uses ``batch_size``; ``layer`` is the sum of
    one layer's token-level operators (Vidur's set) at ``num_tokens``. ``dnn_kernels`` is
    DNN kernels (one, or a chain run back to back) in a cache ``context`` (warm, cold or
    network: see ``dnn_kernels.WARM``); ``dnn`` is one batch-1 inference of the catalog DNN
    named in ``model``. Both run in ``dtype`` with ``fusion`` ("": the device's runtime).
    """

    op: str
    seconds: float
    device: str = "unknown"
    source: str = ""
    model: str = ""
    dims: LayerDims | None = None
    tp: int = 1
    num_tokens: int = 0
    m: int = 0
    n: int = 0
    k: int = 0
    batch_size: int = 0
    prefill_chunk: int = 0
    kv_context: int = 0
    size_bytes: float = 0.0
    num_gpus: int = 1
    num_nodes: int = 1
    topology: str = ""
    dtype: str = "fp16"
    kernels: tuple[DNNKernel, ...] = ()
    context: str = ""
    fusion: str = ""

    @property
    def group(self) -> str:
        if self.op == "dnn_kernels":
            return f"dnn.{self.kernels[0].kernel_type}" if len(self.kernels) == 1 else "dnn.chain"
        if self.op == "dnn":
            return "dnn.network"
        return OP_GROUP[self.op]

    @property
    def size_key(self) -> float:
        """The quantity calibration samples are stratified over."""
        if self.op == "attn_prefill":
            return float(self.prefill_chunk)
        if self.op == "attn_decode":
            return float(self.batch_size * self.kv_context)
        if self.op == "all_reduce":
            return self.size_bytes
        if self.op == "cpu_overhead":
            return float(self.batch_size)
        if self.op == "gemm":
            return float(self.m)
        if self.op == "dnn_kernels":
            return float(sum(k.flops + k.io_elems + k.weight_elems for k in self.kernels))
        return float(self.num_tokens)

    @property
    def topology_key(self) -> str:
        """All-reduce parameter group: topology, suffixed by node count across nodes."""
        return self.topology if self.num_nodes <= 1 else f"{self.topology}-{self.num_nodes}nodes"


@dataclass
class MeasurementSet:
    """Records read from one or more files, with what was skipped and why."""

    records: list[Measurement] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Measurement]:
        return iter(self.records)

    def extend(self, other: MeasurementSet) -> None:
        self.records.extend(other.records)
        self.skipped.update(other.skipped)
        self.files.extend(other.files)

    def by_group(self) -> dict[str, list[Measurement]]:
        out: dict[str, list[Measurement]] = {}
        for r in self.records:
            out.setdefault(r.group, []).append(r)
        return out

    def devices(self) -> list[str]:
        return sorted({r.device for r in self.records})

    def for_device(self, device: str) -> MeasurementSet:
        return MeasurementSet(
            [r for r in self.records if r.device == device], Counter(self.skipped), list(self.files)
        )


class MeasurementFileError(ValueError):
    """A measurement file that cannot be read; the message names the file and line."""


# ---- readers -------------------------------------------------------------------------------

NATIVE_COLUMNS = (
    "op",
    "seconds",
    "device",
    "model",
    "tp",
    "num_tokens",
    "m",
    "n",
    "k",
    "hidden_size",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "ffn_size",
    "gated_mlp",
    "vocab_size",
    "batch_size",
    "prefill_chunk",
    "kv_context",
    "size_bytes",
    "num_gpus",
    "num_nodes",
    "topology",
    "dtype",
    "kernels",
    "context",
    "fusion",
)
_DEVICE_IN_PATH = re.compile(r"(?:^|[/_])(a100|h100|h200|a40|a10g?|l4|l40s|v100|4090)(?:[/_]|$)", re.I)


def load_measurements(path: str | Path, device: str | None = None) -> MeasurementSet:
    """Read measurement records from a CSV file or, recursively, a directory of them.

    ``device`` overrides the device name inferred from the path (e.g. ``.../a100/...``).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"measurement path not found: {path}")
    files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise MeasurementFileError(f"{path}: no .csv measurement files under this directory")
    out = MeasurementSet()
    for f in files:
        out.extend(_read_file(f, device))
    if not out.records:
        raise MeasurementFileError(f"{path}: no usable measurements found (skipped: {dict(out.skipped)})")
    return out


def _infer_device(path: Path) -> str:
    match = _DEVICE_IN_PATH.search(str(path).replace("\\", "/"))
    return match.group(1).lower() if match else "unknown"


def _read_file(path: Path, device: str | None) -> MeasurementSet:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as err:
        raise MeasurementFileError(f"{path}: not a UTF-8 CSV file ({err.reason})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise MeasurementFileError(f"{path}: empty file (expected a CSV header line)")
    header = [c.strip() for c in rows[0]]
    body = rows[1:]
    if not body:
        raise MeasurementFileError(f"{path}: header only, no measurement rows")
    dev = device or _infer_device(path)
    cols = set(header)
    if "op" in cols and "seconds" in cols:
        reader = _read_native
    elif "num_tokens" in cols and any(c.startswith("time_stats.") for c in header):
        reader = _read_vidur_mlp
    elif "is_prefill" in cols:
        reader = _read_vidur_attention
    elif "time_stats.all_reduce.median" in cols:
        reader = _read_vidur_all_reduce
    elif "schedule_median" in cols and "batch_size" in cols:
        reader = _read_vidur_cpu
    else:
        raise MeasurementFileError(
            f"{path}:1: unrecognised header; expected servegym's native columns (op,seconds,...) "
            "or a Vidur mlp.csv / attention.csv / all_reduce.csv / cpu_overheads.csv"
        )
    result = MeasurementSet(files=[str(path)])
    seen: set = set()  # per-file state for readers that de-duplicate rows
    for lineno, row in enumerate(body, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise MeasurementFileError(
                f"{path}:{lineno}: {len(row)} fields, expected {len(header)} as in the header"
            )
        record = dict(zip(header, row, strict=True))
        where = f"{path}:{lineno}"
        for item in reader(record, where, dev, path, result.skipped, seen):
            result.records.append(item)
    return result


def _num(record: dict[str, str], col: str, where: str, *, default: Any = None, integer: bool = False):
    raw = record.get(col, "")
    raw = raw.strip() if isinstance(raw, str) else raw
    if raw in ("", None):
        if default is not None:
            return default
        raise MeasurementFileError(f"{where}: column {col!r} is empty, expected a number")
    try:
        value = float(raw)
    except ValueError:
        raise MeasurementFileError(f"{where}: column {col!r} = {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise MeasurementFileError(f"{where}: column {col!r} = {raw!r} must be finite and >= 0")
    if integer:
        if value != int(value):
            raise MeasurementFileError(f"{where}: column {col!r} = {raw!r} must be a whole number")
        return int(value)
    return value


def _bool(raw: str, where: str, col: str) -> bool:
    low = str(raw).strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise MeasurementFileError(f"{where}: column {col!r} = {raw!r} is not true/false")


def _dims(record: dict[str, str], where: str, tp: int, heads_col: str = "n_head") -> LayerDims:
    h = _num(record, "n_embd", where, integer=True)
    heads = _num(record, heads_col, where, integer=True)
    kv = _num(record, "n_kv_head", where, integer=True)
    if h <= 0 or heads <= 0 or kv <= 0 or tp <= 0:
        raise MeasurementFileError(f"{where}: model dims and TP degree must be positive")
    return LayerDims(
        hidden_size=h,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=h // heads,
        ffn_size=_num(record, "n_expanded_embd", where, default=0, integer=True),
        gated_mlp=_bool(record.get("use_gated_mlp", "false"), where, "use_gated_mlp"),
        vocab_size=_num(record, "vocab_size", where, default=0, integer=True),
        tp=tp,
    )


def _median_seconds(record: dict[str, str], op: str, where: str) -> float | None:
    raw = record.get(f"time_stats.{op}.median", "").strip()
    if raw == "":
        return None
    ms = _num(record, f"time_stats.{op}.median", where)
    return ms * 1e-3 if ms > 0 else None


def _read_vidur_mlp(record, where, dev, path: Path, skipped: Counter, seen: set) -> Iterable[Measurement]:
    tp = _num(record, "num_tensor_parallel_workers", where, integer=True)
    tokens = _num(record, "num_tokens", where, integer=True)
    if (tokens, tp) in seen:  # Vidur repeats boundary token counts: keep the first row
        skipped["duplicate row"] += 1
        return
    seen.add((tokens, tp))
    dims = _dims(record, where, tp)
    model = f"{path.parent.parent.name}/{path.parent.name}"
    ops_in_file = {c.split(".")[1] for c in record if c.startswith("time_stats.")}
    for op in sorted(set(LAYER_OPS) - ops_in_file):  # e.g. phi-2's parallel block has one norm
        skipped[f"{op}: no column (operator absent in this model)"] += 1
    for op in sorted(ops_in_file):
        if op not in TOKEN_OPS:
            skipped[f"unmodelled operator {op}"] += 1
            continue
        seconds = _median_seconds(record, op, where)
        if seconds is None:
            skipped[f"{op}: no time (operator absent in this model)"] += 1
            continue
        yield Measurement(
            op=op, seconds=seconds, device=dev, source=where, model=model, dims=dims, tp=tp, num_tokens=tokens
        )


def _read_vidur_attention(record, where, dev, path, skipped: Counter, seen: set) -> Iterable[Measurement]:
    tp = _num(record, "num_tensor_parallel_workers", where, integer=True)
    dims = _dims(record, where, tp, heads_col="n_q_head")
    prefill = _bool(record["is_prefill"], where, "is_prefill")
    op = "attn_prefill" if prefill else "attn_decode"
    seconds = _median_seconds(record, op, where)
    if seconds is None:
        skipped[f"{op}: empty or zero time"] += 1
        return
    yield Measurement(
        op=op,
        seconds=seconds,
        device=dev,
        source=where,
        dims=dims,
        tp=tp,
        batch_size=_num(record, "batch_size", where, integer=True),
        prefill_chunk=_num(record, "prefill_chunk_size", where, integer=True) if prefill else 0,
        kv_context=_num(record, "kv_cache_size", where, integer=True),
        model=f"n_embd={dims.hidden_size},heads={dims.num_heads}/{dims.num_kv_heads}",
    )


def _topology_from_path(path: Path) -> str:
    folder = path.parent.name.lower()
    if "dgx" in folder or "nvswitch" in folder:
        return "nvswitch"
    if "pairwise_nvlink" in folder:
        return "pairwise_nvlink"
    if "pcie" in folder:
        return "pcie"
    return folder or "unknown"


def _read_vidur_all_reduce(record, where, dev, path, skipped: Counter, seen: set) -> Iterable[Measurement]:
    if record.get("rank", "0").strip() not in ("", "0"):
        skipped["all_reduce: rank other than 0"] += 1
        return
    seconds = _median_seconds(record, "all_reduce", where)
    if seconds is None:
        skipped["all_reduce: empty or zero time"] += 1
        return
    n = _num(record, "num_workers", where, integer=True)
    per_node = _num(record, "devices_per_node", where, default=n, integer=True)
    if n <= 0 or per_node <= 0:
        raise MeasurementFileError(f"{where}: num_workers and devices_per_node must be positive")
    yield Measurement(
        op="all_reduce",
        seconds=seconds,
        device=dev,
        source=where,
        size_bytes=_num(record, "size", where),
        num_gpus=n,
        num_nodes=max(1, math.ceil(n / per_node)),
        topology=_topology_from_path(path),
    )


_CPU_PARTS = ("schedule", "sampler_e2e", "prepare_inputs_e2e", "process_model_outputs")


def _read_vidur_cpu(record, where, dev, path, skipped: Counter, seen: set) -> Iterable[Measurement]:
    ms = sum(_num(record, f"{part}_median", where) for part in _CPU_PARTS)
    yield Measurement(
        op="cpu_overhead",
        seconds=ms * 1e-3,
        device=dev,
        source=where,
        model=record.get("model_name", ""),
        batch_size=_num(record, "batch_size", where, integer=True),
        tp=_num(record, "tensor_parallel_degree", where, default=1, integer=True),
    )


def _read_native(record, where, dev, path, skipped: Counter, seen: set) -> Iterable[Measurement]:
    op = record["op"].strip()
    if op not in KNOWN_OPS:
        raise MeasurementFileError(f"{where}: unknown op {op!r}; expected one of {sorted(KNOWN_OPS)}")
    seconds = _num(record, "seconds", where)
    if seconds <= 0:
        raise MeasurementFileError(f"{where}: seconds must be positive, got {record['seconds']!r}")
    tp = _num(record, "tp", where, default=1, integer=True)
    dims = None
    if record.get("hidden_size", "").strip():
        h = _num(record, "hidden_size", where, integer=True)
        heads = _num(record, "num_heads", where, integer=True)
        if h <= 0 or heads <= 0 or tp <= 0:
            raise MeasurementFileError(f"{where}: hidden_size, num_heads and tp must be positive")
        dims = LayerDims(
            hidden_size=h,
            num_heads=heads,
            num_kv_heads=_num(record, "num_kv_heads", where, default=heads, integer=True),
            head_dim=_num(record, "head_dim", where, default=h // heads, integer=True),
            ffn_size=_num(record, "ffn_size", where, default=0, integer=True),
            gated_mlp=_bool(record.get("gated_mlp") or "false", where, "gated_mlp"),
            vocab_size=_num(record, "vocab_size", where, default=0, integer=True),
            tp=tp,
            bytes_per_element=_dtype_bytes(record.get("dtype"), where),
        )
    elif record.get("model", "").strip() and op not in ("gemm", "all_reduce", "cpu_overhead", *DNN_OPS):
        from .catalog import get_model

        try:
            dims = get_model(record["model"].strip()).layer_dims(tp)
        except ValueError as err:
            raise MeasurementFileError(f"{where}: {err}") from None
    kernels, context, fusion = _dnn_fields(record, op, where)
    needs_dims = op not in ("gemm", "all_reduce", "cpu_overhead", *DNN_OPS)
    if needs_dims and dims is None:
        raise MeasurementFileError(
            f"{where}: op {op!r} needs model dims (hidden_size, num_heads, ...) or a catalog model name"
        )
    yield Measurement(
        op=op,
        seconds=seconds,
        device=(record.get("device") or "").strip() or dev,
        source=where,
        model=record.get("model", "").strip(),
        dims=dims,
        tp=tp,
        num_tokens=_num(record, "num_tokens", where, default=0, integer=True),
        m=_num(record, "m", where, default=0, integer=True),
        n=_num(record, "n", where, default=0, integer=True),
        k=_num(record, "k", where, default=0, integer=True),
        batch_size=_num(record, "batch_size", where, default=0, integer=True),
        prefill_chunk=_num(record, "prefill_chunk", where, default=0, integer=True),
        kv_context=_num(record, "kv_context", where, default=0, integer=True),
        size_bytes=_num(record, "size_bytes", where, default=0.0),
        num_gpus=_num(record, "num_gpus", where, default=1, integer=True),
        num_nodes=_num(record, "num_nodes", where, default=1, integer=True),
        topology=(record.get("topology") or "").strip(),
        dtype=_dtype(record.get("dtype"), where),
        kernels=kernels,
        context=context,
        fusion=fusion,
    )


def _dnn_fields(record: dict[str, str], op: str, where: str) -> tuple[tuple[DNNKernel, ...], str, str]:
    """The ``kernels`` (a JSON list of kernel mappings), ``context`` and ``fusion`` columns."""
    raw = (record.get("kernels") or "").strip()
    context = (record.get("context") or "").strip()
    fusion = (record.get("fusion") or "").strip()
    if op not in DNN_OPS:
        return (), context, fusion
    if fusion and fusion not in FUSIONS:
        raise MeasurementFileError(f"{where}: column 'fusion' = {fusion!r}; expected one of {list(FUSIONS)}")
    if op == "dnn":
        if not (record.get("model") or "").strip():
            raise MeasurementFileError(f"{where}: op 'dnn' needs the catalog DNN in column 'model'")
        return (), "network", fusion
    if context not in DNN_CONTEXTS:
        raise MeasurementFileError(
            f"{where}: column 'context' = {context!r}; expected one of {list(DNN_CONTEXTS)}"
        )
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as err:
        raise MeasurementFileError(
            f"{where}: column 'kernels' is not a JSON list of kernels: {err}"
        ) from None
    if not isinstance(items, list) or not items:
        raise MeasurementFileError(f"{where}: column 'kernels' must be a non-empty JSON list of kernels")
    try:
        kernels = tuple(DNNKernel.from_dict(k, f"{where} kernel {i}") for i, k in enumerate(items))
    except ValueError as err:
        raise MeasurementFileError(str(err)) from None
    return kernels, context, fusion


def _dtype_bytes(raw: str | None, where: str) -> int:
    from .model_spec import DTYPE_BYTES

    return DTYPE_BYTES[_dtype(raw, where)]


def _dtype(raw: str | None, where: str) -> str:
    from .model_spec import DTYPE_BYTES

    value = (raw or "fp16").strip().lower() or "fp16"
    if value not in DTYPE_BYTES:
        raise MeasurementFileError(
            f"{where}: column 'dtype' = {raw!r}; expected one of {sorted(DTYPE_BYTES)}"
        )
    return value


def write_native_csv(records: Iterable[Measurement], path: str | Path) -> Path:
    """Write records in servegym's native CSV format (readable by ``load_measurements``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=NATIVE_COLUMNS)
        writer.writeheader()
        for r in records:
            row = {k: v for k, v in asdict(r).items() if k in NATIVE_COLUMNS and k not in ("dims", "kernels")}
            if r.kernels:
                row["kernels"] = json.dumps([k.to_dict() for k in r.kernels], separators=(",", ":"))
            if r.dims is not None:
                d = r.dims
                row.update(
                    hidden_size=d.hidden_size,
                    num_heads=d.num_heads,
                    num_kv_heads=d.num_kv_heads,
                    head_dim=d.head_dim,
                    ffn_size=d.ffn_size,
                    gated_mlp=d.gated_mlp,
                    vocab_size=d.vocab_size,
                )
            row["seconds"] = repr(r.seconds)
            writer.writerow(row)
    return path


def published_measurements(device) -> list[Measurement]:
    """A device's published DNN timings (``Device.published_latency``) as measurements."""
    return [
        Measurement(
            op="dnn",
            seconds=p.seconds,
            device=device.name,
            source=p.source,
            model=p.dnn,
            dtype=p.dtype,
            context="network",
        )
        for p in device.published_latency
    ]
