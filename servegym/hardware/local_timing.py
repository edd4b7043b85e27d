"""Time real torch operators on this machine's CPU or GPU (``servegym calibrate --local``).

Two families of operators are timed, in one dtype and with a fixed thread count:

* the operators of one transformer layer of a reference model (Vidur's operator names) at
  token counts spread log-uniformly, plus one prefill and one decode attention shape;
* DNN kernels (``dnn_kernels``) at a spread of shapes: dense, depthwise and pointwise
  convolutions, linear layers, attention, activations, adds, pooling, copies, norms and
  embeddings. Each is timed twice: WARM (the private cache flushed and its inputs rewritten,
  as a kernel finds them inside a network whose weights stay in the last-level cache) and
  COLD (every cache flushed, inputs rewritten: weights come from DRAM), plus a few chains of
  kernels run back to back whose footprints range from a few MB to hundreds, which tell how
  much of a network stays cached between inferences.

On a CPU, whose datasheet servegym cannot know, the "peak" FLOP/s and bandwidth are measured
first (the largest GEMM's rate and a large copy's) and the efficiencies are fitted relative to
them; on a GPU the catalog's datasheet is used when the GPU's name matches one. With one
thread a timing is the CPU time of that thread, so other processes sharing the core do not
inflate it; with more threads (or on a GPU) it is wall-clock time.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from .catalog import UnknownNameError, get_device, get_model
from .device import Device, DNNRuntime
from .dnn_kernels import DNNKernel
from .kernels import LayerDims
from .measurements import Measurement
from .model_spec import DTYPE_BYTES

SOURCE = "servegym calibrate --local"
COLD_FLUSH_MIB = 256
"""Bytes written between two COLD timings: more than the last-level cache one core can use."""


@dataclass(frozen=True)
class LocalPlan:
    """What to time: reference model, token counts, DNN kernels and chains, repeats."""

    model: str
    token_counts: tuple[int, ...]
    repeats: int
    attention_prefill: tuple[int, int]  # (chunk, cached context)
    attention_decode: tuple[int, int]  # (batch, context per sequence)
    dnn_kernels: tuple[DNNKernel, ...]
    dnn_chains: tuple[tuple[DNNKernel, ...], ...]
    dnn_repeats: int
    peak_size: int  # n of the n x n GEMM whose rate is the measured peak
    copy_mib: int  # size of the copy whose rate is the measured bandwidth
    cold_flush_mib: int


# ---- the DNN kernels timed ---------------------------------------------------------------


def conv(cin: int, cout: int, k: int, s: int, h: int, g: int = 1) -> DNNKernel:
    ho = (h + 2 * (k // 2) - k) // s + 1
    name = f"conv{k}x{k}s{s}g{g}_{cin}-{cout}@{h}"
    return DNNKernel(name=name, op="conv", inp=(cin, h, h), out=(cout, ho, ho), k=k, s=s, g=g, bn=True)


def dwconv(c: int, s: int, h: int) -> DNNKernel:
    return conv(c, c, 3, s, h, g=c)


def maxpool(c: int, k: int, s: int, h: int) -> DNNKernel:
    ho = (h + 2 * (k // 2) - k) // s + 1
    return DNNKernel(
        name=f"maxpool{k}s{s}_{c}@{h}", op="pool", inp=(c, h, h), out=(c, ho, ho), kind="max", k=k, s=s
    )


def linear(m: int, k: int, n: int) -> DNNKernel:
    return DNNKernel(name=f"linear_{m}x{k}x{n}", op="linear", inp=(m, k), out=(m, n))


def same(op: str, shape: tuple[int, ...], **attrs) -> DNNKernel:
    tag = "x".join(map(str, shape))
    extra = "_".join(str(v) for v in attrs.values())
    return DNNKernel(name=f"{op}_{extra}_{tag}", op=op, inp=shape, out=shape, **attrs)


def attention(tokens: int, width: int, heads: int, kv_heads: int, causal: bool) -> DNNKernel:
    name = f"attention_{tokens}x{width}_h{heads}kv{kv_heads}{'c' if causal else ''}"
    return DNNKernel(
        name=name,
        op="attention",
        inp=(tokens, width),
        out=(tokens, width),
        heads=heads,
        kv_heads=kv_heads,
        causal=causal,
    )


def _elementwise_kernels() -> list[DNNKernel]:
    return [
        same("act", (32, 112, 112), act="relu6"),
        same("act", (256, 28, 28), act="relu"),
        same("act", (64, 80, 80), act="silu"),
        same("act", (128, 3072), act="gelu"),
        same("add", (24, 56, 56)),
        same("add", (256, 56, 56)),
        same("add", (1024, 14, 14)),
        same("add", (128, 768)),
        maxpool(32, 3, 2, 112),
        maxpool(96, 3, 2, 56),
        maxpool(64, 5, 1, 40),
        maxpool(256, 5, 1, 10),
        DNNKernel(name="avgpool_1024@7", op="pool", inp=(1024, 7, 7), out=(1024, 1, 1), kind="avg", k=0),
        DNNKernel(name="avgpool_512@14", op="pool", inp=(512, 14, 14), out=(512, 1, 1), kind="avg", k=0),
        DNNKernel(name="concat_128@80", op="concat", inp=(64, 80, 80), out=(128, 80, 80)),
        DNNKernel(name="concat_48@160", op="concat", inp=(24, 160, 160), out=(48, 160, 160)),
        DNNKernel(name="upsample_128@40", op="upsample", inp=(128, 40, 40), out=(128, 80, 80), s=2),
        DNNKernel(
            name="slice_32of64@160", op="slice", inp=(64, 160, 160), out=(32, 160, 160), start=32, stop=64
        ),
        same("norm", (128, 768), kind="layer"),
        same("norm", (256, 2048), kind="rms"),
        DNNKernel(
            name="embedding_128x768", op="embedding", inp=(128,), out=(128, 768), vocab=30522, kind="input"
        ),
        same("rope", (128, 1024), heads=16),
    ]


def dnn_calibration_kernels(quick: bool) -> tuple[DNNKernel, ...]:
    """A spread of DNN kernel shapes (not the catalog networks' own list)."""
    if quick:
        return (
            conv(3, 32, 3, 2, 224),
            conv(64, 64, 3, 1, 56),
            dwconv(96, 1, 56),
            dwconv(384, 2, 28),
            conv(64, 256, 1, 1, 56),
            conv(512, 128, 1, 1, 14),
            linear(128, 768, 768),
            attention(128, 512, 8, 8, False),
            same("act", (64, 56, 56), act="relu"),
            same("add", (128, 28, 28)),
            maxpool(64, 3, 2, 56),
            same("norm", (128, 768), kind="layer"),
        )
    dense = [
        conv(3, 32, 3, 2, 224),
        conv(3, 64, 7, 2, 224),
        conv(16, 32, 3, 1, 160),
        conv(32, 64, 3, 2, 160),
        conv(64, 64, 3, 1, 56),
        conv(64, 128, 3, 1, 40),
        conv(128, 128, 3, 2, 56),
        conv(128, 128, 3, 1, 28),
        conv(256, 256, 3, 1, 14),
        conv(512, 512, 3, 1, 7),
    ]
    depthwise = [
        dwconv(32, 1, 112),
        dwconv(96, 2, 112),
        dwconv(144, 1, 56),
        dwconv(192, 1, 28),
        dwconv(384, 1, 14),
        dwconv(576, 2, 14),
        dwconv(960, 1, 7),
    ]
    pointwise = [
        conv(16, 96, 1, 1, 112),
        conv(32, 64, 1, 1, 160),
        conv(96, 24, 1, 1, 56),
        conv(64, 256, 1, 1, 56),
        conv(256, 64, 1, 1, 56),
        conv(256, 512, 1, 2, 56),
        conv(144, 32, 1, 1, 28),
        conv(1024, 256, 1, 1, 14),
        conv(384, 64, 1, 1, 14),
        conv(960, 320, 1, 1, 7),
        conv(512, 2048, 1, 1, 7),
    ]
    gemms = [
        linear(1, 1280, 1000),
        linear(1, 2048, 1024),
        linear(1, 4096, 4096),
        linear(128, 768, 768),
        linear(128, 768, 3072),
        linear(128, 3072, 768),
        linear(64, 1024, 4096),
        linear(256, 512, 512),
    ]
    attn = [
        attention(128, 768, 12, 12, False),
        attention(256, 512, 8, 8, False),
        attention(128, 1024, 16, 4, True),
    ]
    return tuple(dense + depthwise + pointwise + gemms + attn + _elementwise_kernels())


def _chain(*kernels: DNNKernel, extra_src: dict[int, tuple[str, ...]] | None = None) -> tuple[DNNKernel, ...]:
    """Kernels renamed c0, c1, ... and wired one after the other (``extra_src``: other wiring)."""
    out = []
    for i, k in enumerate(kernels):
        src = (extra_src or {}).get(i, ("input",) if i == 0 else (f"c{i - 1}",))
        out.append(replace(k, name=f"c{i}", src=src))
    return tuple(out)


def dnn_calibration_chains(quick: bool) -> tuple[tuple[DNNKernel, ...], ...]:
    """Small synthetic networks whose weights range from kilobytes to hundreds of MB: how much
    of a network's weights stay cached between inferences."""
    small = _chain(
        conv(32, 96, 1, 1, 56),
        dwconv(96, 1, 56),
        conv(96, 32, 1, 1, 56),
        same("add", (32, 56, 56)),
        extra_src={3: ("c2", "input")},
    )
    streaming = _chain(*(linear(1, 4096, 4096) for _ in range(3 if quick else 6)))
    if quick:
        return (small, streaming)
    medium = _chain(
        conv(256, 256, 3, 1, 14),
        conv(256, 1024, 1, 1, 14),
        conv(1024, 256, 1, 1, 14),
        conv(256, 256, 3, 1, 14),
    )
    large = _chain(
        *(conv(512, 512, 3, 1, 7) for _ in range(4)),
        conv(512, 2048, 1, 1, 7),
        DNNKernel(name="pool", op="pool", inp=(2048, 7, 7), out=(2048, 1, 1), kind="avg", k=0),
        linear(1, 2048, 1000),
    )
    two = _chain(linear(1, 4096, 4096), linear(1, 4096, 4096))
    return (small, medium, large, two, streaming)


QUICK_PLAN = LocalPlan(
    model="Llama-68M",
    token_counts=(1, 4, 16, 64, 256),
    repeats=3,
    attention_prefill=(128, 0),
    attention_decode=(8, 256),
    dnn_kernels=dnn_calibration_kernels(True),
    dnn_chains=dnn_calibration_chains(True),
    dnn_repeats=3,
    peak_size=1024,
    copy_mib=64,
    cold_flush_mib=64,
)
FULL_PLAN = LocalPlan(
    model="Llama-3.2-1B",
    token_counts=tuple(int(x) for x in np.unique(np.geomspace(1, 1024, 10).round())),
    repeats=5,
    attention_prefill=(512, 512),
    attention_decode=(16, 1024),
    dnn_kernels=dnn_calibration_kernels(False),
    dnn_chains=dnn_calibration_chains(False),
    dnn_repeats=5,
    peak_size=2048,
    copy_mib=256,
    cold_flush_mib=COLD_FLUSH_MIB,
)


# ---- timing --------------------------------------------------------------------------------


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is a dependency
        raise RuntimeError("servegym calibrate --local needs torch (pip install torch)") from err
    return torch


def _timer(
    torch, device: str, fn: Callable[[], object], repeats: int, prepare: Callable[[], object] | None = None
) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after one warm-up; ``prepare`` runs
    untimed before each run. One CPU thread: that thread's CPU time; else wall-clock."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    clock = time.thread_time if device == "cpu" and torch.get_num_threads() == 1 else time.perf_counter
    fn()
    sync()
    samples = []
    for _ in range(repeats):
        if prepare is not None:
            prepare()
            sync()
        t0 = clock()
        fn()
        sync()
        samples.append(clock() - t0)
    return float(np.median(samples))


@contextmanager
def torch_threads(torch, threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op threads (None: torch's default); restores the old count."""
    before = torch.get_num_threads()
    if threads is not None:
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"--threads must be a whole number >= 1, got {threads!r}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def local_device(torch, device: str, dtype_name: str, plan: LocalPlan, threads: int) -> Device:
    """The device's datasheet (GPU from the catalog) or measured peaks (CPU)."""
    from .dnn_torch import torch_dtype

    runtime = DNNRuntime(
        name=f"PyTorch {torch.__version__} eager, {threads} thread(s), channels-last, BatchNorm folded",
        dtype=dtype_name,
        fusion="conv-bn",
    )
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        for candidate in (name, name.replace("NVIDIA ", ""), name.split()[-1]):
            try:
                return replace(get_device(candidate), dnn_runtime=runtime)
            except UnknownNameError:
                continue
    dtype = torch_dtype(dtype_name)
    n = plan.peak_size
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    flops = 2.0 * n**3 / _timer(torch, device, lambda: a @ b, plan.repeats)
    src = torch.empty(plan.copy_mib * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    bandwidth = 2.0 * src.numel() / _timer(torch, device, lambda: dst.copy_(src), plan.repeats)
    try:
        memory = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        memory = 8e9
    label = platform.processor() or platform.machine() or "cpu"
    measured = f"measured by {SOURCE} on this machine ({threads} thread(s))"
    return Device(
        name=f"local-{device}",
        kind="cpu" if device == "cpu" else "gpu",
        peak_flops={dtype_name: flops},
        mem_bandwidth=bandwidth,
        mem_capacity=memory,
        dnn_runtime=runtime,
        sources={
            "peak_flops": f"{measured}: {n}x{n} {dtype_name} GEMM rate",
            "mem_bandwidth": f"{measured}: {plan.copy_mib} MiB copy rate",
            "name": label,
            "threads": str(threads),
        },
    )


def time_local_operators(
    device: str = "cpu", quick: bool = False, *, threads: int | None = None, dtype: str | None = None
) -> tuple[Device, list[Measurement]]:
    """Time transformer operators and DNN kernels; return the device and measurements.

    ``threads``: torch intra-op threads (default: torch's own choice); ``dtype``: fp32 on a
    CPU and fp16 on a GPU unless given.
    """
    torch = _torch()
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA GPU on this machine")
    dtype_name = (dtype or ("fp32" if device == "cpu" else "fp16")).lower()
    if dtype_name not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"--dtype must be fp32, fp16 or bf16 for local timing, got {dtype!r}")
    plan = QUICK_PLAN if quick else FULL_PLAN
    with torch_threads(torch, threads) as n_threads, torch.inference_mode():
        dev = local_device(torch, device, dtype_name, plan, n_threads)
        records = _time_transformer_ops(torch, device, dtype_name, dev, plan)
        records += _time_dnn_kernels(torch, device, dtype_name, dev, plan)
    return dev, records


def _time_transformer_ops(
    torch, device: str, dtype_name: str, dev: Device, plan: LocalPlan
) -> list[Measurement]:
    from .dnn_torch import torch_dtype

    dtype = torch_dtype(dtype_name)
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
        bytes_per_element=DTYPE_BYTES[dtype_name],
    )
    h, d, f = dims.hidden_size, dims.head_dim, dims.ffn_size
    hq, hkv = dims.num_heads, dims.num_kv_heads

    def randn(*shape):
        return torch.randn(*shape, device=device).to(dtype)

    weights = {
        "attn_pre_proj": randn(h, (hq + 2 * hkv) * d),
        "attn_post_proj": randn(hq * d, h),
        "mlp_up_proj": randn(h, 2 * f if dims.gated_mlp else f),
        "mlp_down_proj": randn(f, h),
    }
    norm_w = torch.ones(h, dtype=dtype, device=device)
    table = randn(min(spec.vocab_size, 32000), h)
    records: list[Measurement] = []

    def record(op: str, seconds: float, **fields) -> None:
        records.append(
            Measurement(
                op=op,
                seconds=seconds,
                device=dev.name,
                source=SOURCE,
                model=spec.name,
                dims=dims,
                dtype=dtype_name,
                **fields,
            )
        )

    for m in plan.token_counts:
        x = randn(m, h)
        xs = {
            "attn_pre_proj": x,
            "attn_post_proj": randn(m, hq * d),
            "mlp_up_proj": x,
            "mlp_down_proj": randn(m, f),
        }
        for op, w in weights.items():
            record(op, _timer(torch, device, lambda a=xs[op], w=w: a @ w, plan.repeats), num_tokens=m)
        q = randn(m, (hq + hkv) * d)
        up = randn(m, 2 * f)
        ids = torch.randint(0, table.shape[0], (m,), device=device)
        elementwise = {
            "input_layernorm": lambda x=x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm_w,
            "attn_rope": lambda q=q: q * 0.5 + q.flip(-1) * 0.5,
            "mlp_act": lambda up=up: torch.nn.functional.silu(up[:, :f]) * up[:, f:],
            "add": lambda x=x: x + x,
            "emb": lambda ids=ids: table[ids],
        }
        for op, fn in elementwise.items():
            record(op, _timer(torch, device, fn, plan.repeats), num_tokens=m)
    chunk, cached = plan.attention_prefill
    qp = randn(1, hq, chunk, d)
    kp = randn(1, hq, chunk + cached, d)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    record(
        "attn_prefill",
        _timer(torch, device, lambda: sdpa(qp, kp, kp), plan.repeats),
        prefill_chunk=chunk,
        kv_context=cached,
        batch_size=1,
    )
    batch, context = plan.attention_decode
    qd = randn(batch, hq, 1, d)
    kd = randn(batch, hq, context, d)
    record(
        "attn_decode",
        _timer(torch, device, lambda: sdpa(qd, kd, kd), plan.repeats),
        batch_size=batch,
        kv_context=context,
    )
    return records


def _time_dnn_kernels(torch, device: str, dtype_name: str, dev: Device, plan: LocalPlan) -> list[Measurement]:
    """Each DNN kernel WARM and COLD, then each chain back to back (NETWORK context)."""
    from .dnn_torch import chain_callable, kernel_callable

    # 16 MiB: more than a CPU core's private cache; on a GPU it evicts part of L2 (40-50 MB)
    warm_flush = torch.empty(4 * 2**20, dtype=torch.float32, device=device)
    cold_flush = torch.empty(plan.cold_flush_mib * 2**18, dtype=torch.float32, device=device)
    records: list[Measurement] = []

    def record(kernels: tuple[DNNKernel, ...], context: str, seconds: float) -> None:
        records.append(
            Measurement(
                op="dnn_kernels",
                seconds=seconds,
                device=dev.name,
                source=SOURCE,
                dtype=dtype_name,
                kernels=kernels,
                context=context,
                fusion="conv-bn",
            )
        )

    for kernel in plan.dnn_kernels:
        run = kernel_callable(kernel, dtype_name, device=device)
        for context, flush in (("warm", warm_flush), ("cold", cold_flush)):

            def prepare(flush=flush, run=run) -> None:
                flush.add_(1.0)
                run.touch_inputs()

            record((kernel,), context, _timer(torch, device, run, plan.dnn_repeats, prepare))
    for i, chain in enumerate(plan.dnn_chains):
        run = chain_callable(chain, dtype_name, seed=100 * i, device=device)
        run()  # one untimed pass, so every kernel's data has been touched once
        record(tuple(chain), "network", _timer(torch, device, run, plan.dnn_repeats + 2))
        del run
    return records
