"""Time real torch operators on this machine's CPU or GPU (``servegym calibrate --local``).

The operators are those of one transformer layer of a reference model (Vidur's operator
names), at token counts spread log-uniformly, plus one prefill and one decode attention shape
and the elementwise kernels. On a CPU, whose datasheet servegym cannot know, the "peak" FLOP/s
and bandwidth are measured first (the largest GEMM's and a large copy's rates) and the
efficiencies are fitted relative to them; on a GPU the catalog's datasheet is used when the
GPU's name matches one.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .catalog import UnknownNameError, get_device, get_model
from .device import Device
from .kernels import LayerDims
from .measurements import Measurement


@dataclass(frozen=True)
class LocalPlan:
    """What to time: reference model, token counts, repeats."""

    model: str
    token_counts: tuple[int, ...]
    repeats: int
    attention_prefill: tuple[int, int]  # (chunk, cached context)
    attention_decode: tuple[int, int]  # (batch, context per sequence)


QUICK_PLAN = LocalPlan("Llama-68M", (1, 4, 16, 64, 256), 3, (128, 0), (8, 256))
FULL_PLAN = LocalPlan(
    "Llama-3.2-1B",
    tuple(int(x) for x in np.unique(np.geomspace(1, 1024, 10).round())),
    5,
    (512, 512),
    (16, 1024),
)


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is a dependency
        raise RuntimeError("servegym calibrate --local needs torch (pip install torch)") from err
    return torch


def _timer(torch, device: str, fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after one warm-up."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fn()
    sync()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - t0)
    return float(np.median(samples))


def local_device(torch, device: str, dtype, repeats: int, quick: bool) -> Device:
    """The device's datasheet (GPU from the catalog) or measured peaks (CPU)."""
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        for candidate in (name, name.replace("NVIDIA ", ""), name.split()[-1]):
            try:
                return get_device(candidate)
            except UnknownNameError:
                continue
    n = 1024 if quick else 2048
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    flops = 2.0 * n**3 / _timer(torch, device, lambda: a @ b, repeats)
    elems = (32 if quick else 64) * 2**20 // a.element_size()
    src = torch.empty(elems, dtype=dtype, device=device)
    dst = torch.empty_like(src)
    bandwidth = (
        2.0 * src.numel() * src.element_size() / _timer(torch, device, lambda: dst.copy_(src), repeats)
    )
    try:
        memory = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        memory = 8e9
    label = platform.processor() or platform.machine() or "cpu"
    measured = f"measured by servegym calibrate --local on this machine ({torch.get_num_threads()} threads)"
    return Device(
        name=f"local-{device}",
        kind="cpu" if device == "cpu" else "gpu",
        peak_flops={"fp32": flops},
        mem_bandwidth=bandwidth,
        mem_capacity=memory,
        sources={
            "peak_flops": f"{measured}: {n}x{n} fp32 GEMM rate",
            "mem_bandwidth": f"{measured}: {src.numel() * src.element_size() / 2**20:.0f} MiB copy rate",
            "name": label,
        },
    )


def time_local_operators(device: str = "cpu", quick: bool = False) -> tuple[Device, list[Measurement]]:
    """Time GEMMs, elementwise kernels and attention; return the device and measurements."""
    torch = _torch()
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA GPU on this machine")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be 'cpu' or 'cuda', got {device!r}")
    plan = QUICK_PLAN if quick else FULL_PLAN
    dtype = torch.float32 if device == "cpu" else torch.float16
    dtype_name = "fp32" if device == "cpu" else "fp16"
    dev = local_device(torch, device, dtype, plan.repeats, quick)
    spec = get_model(plan.model)
    dims = LayerDims(
        hidden_size=spec.hidden_size,
        num_heads=spec.num_heads,
        num_kv_heads=spec.num_kv_heads,
        head_dim=spec.head_dim,
        ffn_size=spec.ffn_size,
        gated_mlp=spec.gated_mlp,
        vocab_size=spec.vocab_size,
        tp=1,
        bytes_per_element=4 if dtype_name == "fp32" else 2,
    )
    h, d, f = dims.hidden_size, dims.head_dim, dims.ffn_size
    hq, hkv = dims.num_heads, dims.num_kv_heads
    weights = {
        "attn_pre_proj": torch.randn(h, (hq + 2 * hkv) * d, dtype=dtype, device=device),
        "attn_post_proj": torch.randn(hq * d, h, dtype=dtype, device=device),
        "mlp_up_proj": torch.randn(h, 2 * f if dims.gated_mlp else f, dtype=dtype, device=device),
        "mlp_down_proj": torch.randn(f, h, dtype=dtype, device=device),
    }
    norm_w = torch.ones(h, dtype=dtype, device=device)
    table = torch.randn(min(spec.vocab_size, 32000), h, dtype=dtype, device=device)
    records: list[Measurement] = []

    def record(op: str, seconds: float, **fields) -> None:
        records.append(
            Measurement(
                op=op,
                seconds=seconds,
                device=dev.name,
                source="servegym calibrate --local",
                model=spec.name,
                dims=dims,
                dtype=dtype_name,
                **fields,
            )
        )

    with torch.inference_mode():
        for m in plan.token_counts:
            x = torch.randn(m, h, dtype=dtype, device=device)
            xs = {
                "attn_pre_proj": x,
                "attn_post_proj": torch.randn(m, hq * d, dtype=dtype, device=device),
                "mlp_up_proj": x,
                "mlp_down_proj": torch.randn(m, f, dtype=dtype, device=device),
            }
            for op, w in weights.items():
                record(op, _timer(torch, device, lambda a=xs[op], w=w: a @ w, plan.repeats), num_tokens=m)
            q = torch.randn(m, (hq + hkv) * d, dtype=dtype, device=device)
            up = torch.randn(m, 2 * f, dtype=dtype, device=device)
            ids = torch.randint(0, table.shape[0], (m,), device=device)
            elementwise = {
                "input_layernorm": lambda x=x: (
                    x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm_w
                ),
                "attn_rope": lambda q=q: q * 0.5 + q.flip(-1) * 0.5,
                "mlp_act": lambda up=up: torch.nn.functional.silu(up[:, :f]) * up[:, f:],
                "add": lambda x=x: x + x,
                "emb": lambda ids=ids: table[ids],
            }
            for op, fn in elementwise.items():
                record(op, _timer(torch, device, fn, plan.repeats), num_tokens=m)
        chunk, cached = plan.attention_prefill
        qp = torch.randn(1, hq, chunk, d, dtype=dtype, device=device)
        kp = torch.randn(1, hq, chunk + cached, d, dtype=dtype, device=device)
        sdpa = torch.nn.functional.scaled_dot_product_attention
        record(
            "attn_prefill",
            _timer(torch, device, lambda: sdpa(qp, kp, kp), plan.repeats),
            prefill_chunk=chunk,
            kv_context=cached,
            batch_size=1,
        )
        batch, context = plan.attention_decode
        qd = torch.randn(batch, hq, 1, d, dtype=dtype, device=device)
        kd = torch.randn(batch, hq, context, d, dtype=dtype, device=device)
        record(
            "attn_decode",
            _timer(torch, device, lambda: sdpa(qd, kd, kd), plan.repeats),
            batch_size=batch,
            kv_context=context,
        )
    return dev, records
