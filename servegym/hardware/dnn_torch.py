"""Catalog DNNs as torch modules, built from their kernel lists (needs torch).

``build_module(dnn)`` turns a catalog DNN's kernels into an ``nn.Module`` that runs exactly
those kernels on random weights, so the catalog's FLOPs and parameters can be checked with
``torch.utils.flop_counter`` and its times measured on real hardware.
``kernel_callable(kernel)`` runs one kernel alone on random inputs (what ``servegym
calibrate --local`` times). Image networks run channels-last (NHWC, the layout of TFLite and of
oneDNN's fast CPU convolutions). With ``fold_bn=True`` BatchNorm is folded into the
convolution, as inference runtimes do; activations stay separate kernels (PyTorch eager, the
``conv-bn`` fusion of ``dnn_kernels.FUSIONS``). Weight values are random: timing and FLOPs do
not depend on them (YOLOv8's anchor grid is a placeholder of the right shape for the same
reason).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .catalog import get_dnn
from .dnn_kernels import DNNKernel
from .model_spec import DNNSpec

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_LN_EPS = 1e-12  # BERT
_RMS_EPS = 1e-5  # Llama


def torch_dtype(dtype: str) -> torch.dtype:
    try:
        return TORCH_DTYPES[dtype]
    except KeyError:
        raise ValueError(f"torch modules run in {sorted(TORCH_DTYPES)}, not {dtype!r}") from None


def _activate(x: torch.Tensor, act: str) -> torch.Tensor:
    if act == "relu":
        return F.relu(x, inplace=True)
    if act == "relu6":
        return F.relu6(x, inplace=True)
    if act == "silu":
        return F.silu(x, inplace=True)
    if act == "gelu":
        return F.gelu(x)
    if act == "tanh":
        return torch.tanh(x)
    if act == "sigmoid":
        return torch.sigmoid(x)
    return x


def _shaped(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """``x`` as a batch-1 tensor of ``shape`` (a view when only the layout of dims differs)."""
    target = (1, *shape)
    return x if tuple(x.shape) == target else x.reshape(target)


class KernelModule(nn.Module):
    """One kernel with its parameters and constant buffers; ``forward(*sources)``."""

    def __init__(self, kernel: DNNKernel, dtype: torch.dtype, fold_bn: bool) -> None:
        super().__init__()
        self.kernel = kernel
        self.bn: nn.BatchNorm2d | None = None
        kw = {"dtype": dtype}
        k = kernel
        if k.op == "conv":
            cin, cout = k.inp[0], k.out[0]
            self.conv = nn.Conv2d(cin, cout, k.k, k.s, k.k // 2, groups=k.g, bias=k.bias and not k.bn, **kw)
            self.bn = nn.BatchNorm2d(cout, **kw) if k.bn else None
            if fold_bn:
                self.fold_batchnorm()
        elif k.op == "linear":
            self.linear = nn.Linear(k.inp[1], k.out[1], bias=k.bias, **kw)
        elif k.op == "norm":
            width = k.inp[-1]
            self.norm: nn.Module = (
                nn.LayerNorm(width, eps=_LN_EPS, **kw)
                if k.kind == "layer"
                else nn.RMSNorm(width, eps=_RMS_EPS, **kw)
            )
        elif k.op == "embedding":
            self.embedding = nn.Embedding(k.vocab, k.out[-1], **kw)
            if k.kind != "input":
                ids = (
                    torch.arange(k.out[0])
                    if k.kind == "position"
                    else torch.zeros(k.out[0], dtype=torch.long)
                )
                self.register_buffer("ids", ids, persistent=False)
        elif k.op == "dfl":  # ultralytics' DFL: a fixed 1x1 conv holding 0..bins-1
            bins = k.inp[-1] // k.out[-1]
            self.dfl = nn.Parameter(torch.arange(bins, dtype=dtype).view(1, bins), requires_grad=False)
        elif k.op == "box":
            anchors = k.out[0]
            self.register_buffer(
                "anchors", torch.linspace(0, 80, 2 * anchors, dtype=dtype).view(1, anchors, 2)
            )
            self.register_buffer("strides", torch.full((1, anchors, 1), 8.0, dtype=dtype))
        elif k.op == "rope":
            tokens, width = k.inp
            head_dim = width // k.heads
            angles = torch.outer(torch.arange(tokens, dtype=torch.float32), torch.rand(head_dim // 2))
            angles = torch.cat([angles, angles], dim=-1)
            self.register_buffer("cos", angles.cos().to(dtype).view(1, tokens, 1, head_dim))
            self.register_buffer("sin", angles.sin().to(dtype).view(1, tokens, 1, head_dim))

    def fold_batchnorm(self) -> None:
        """Fold an eval-mode BatchNorm into the conv's weight and bias, as inference runtimes do."""
        if self.bn is not None:
            self.conv = fuse_conv_bn_eval(self.conv.eval(), self.bn.eval())
            self.bn = None

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        op = k.op
        if op == "conv":
            y = self.conv(_shaped(xs[0], k.inp))
            if self.bn is not None:
                y = self.bn(y)
            return _activate(y, k.act)
        if op == "linear":
            return _activate(self.linear(_shaped(xs[0], k.inp)), k.act)
        if op == "attention":
            tokens, width = k.inp
            d = width // k.heads

            def heads(x: torch.Tensor, n: int) -> torch.Tensor:
                return x.view(1, tokens, n, d).transpose(1, 2)

            q, kk, v = heads(xs[0], k.heads), heads(xs[1], k.kv_heads), heads(xs[2], k.kv_heads)
            gqa = k.kv_heads != k.heads
            o = F.scaled_dot_product_attention(q, kk, v, is_causal=k.causal, enable_gqa=gqa)
            return o.transpose(1, 2).reshape(1, tokens, width)
        if op == "pool":
            x = _shaped(xs[0], k.inp)
            if k.k == 0:
                return F.adaptive_avg_pool2d(x, 1)
            pool = F.max_pool2d if k.kind == "max" else F.avg_pool2d
            return pool(x, k.k, k.s, k.k // 2)
        if op == "add":
            return _activate(_shaped(xs[0], k.out) + _shaped(xs[1], k.out), k.act)
        if op == "glu":
            return F.silu(xs[0]) * xs[1]
        if op == "act":
            return _activate(xs[0], k.act)
        if op == "norm":
            return self.norm(_shaped(xs[0], k.inp))
        if op == "embedding":
            ids = xs[0].view(-1) if k.kind == "input" else self.ids
            return self.embedding(ids).unsqueeze(0)
        if op == "concat":
            if k.kind == "nhwc":  # channels-last maps viewed as [H*W, C] rows
                return torch.cat([x.permute(0, 2, 3, 1).reshape(1, -1, x.shape[1]) for x in xs], dim=1)
            return torch.cat(xs, dim=k.dim + 1)
        if op == "upsample":
            return F.interpolate(xs[0], scale_factor=k.s, mode="nearest")
        if op == "rope":
            tokens, width = k.inp
            x = xs[0].view(1, tokens, k.heads, width // k.heads)
            half = x.shape[-1] // 2
            rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
            return (x * self.cos + rotated * self.sin).view(1, tokens, width)
        if op == "dfl":  # softmax over each side's bins, then their expectation
            anchors, sides = k.out
            x = xs[0].view(1, anchors, sides, -1).softmax(-1)
            return F.linear(x, self.dfl).view(1, anchors, sides)
        if op == "box":
            lt, rb = xs[0].chunk(2, -1)
            x1y1, x2y2 = self.anchors - lt, self.anchors + rb
            return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), -1) * self.strides
        if op == "slice":  # a real copy, as a Split/Slice op of an inference runtime makes
            part = xs[0].narrow(k.dim + 1, k.start, k.stop - k.start)
            return (
                part.contiguous(memory_format=torch.channels_last) if part.dim() == 4 else part.contiguous()
            )
        raise ValueError(f"kernel {k.name!r}: no torch implementation of op {k.op!r}")


class DNNModule(nn.Module):
    """A catalog DNN's kernels run in order; each kernel reads its ``src`` outputs."""

    def __init__(self, spec: DNNSpec, dtype: torch.dtype, fold_bn: bool) -> None:
        super().__init__()
        if not spec.kernels:
            raise ValueError(f"dnn {spec.name!r} lists no kernels: it cannot be built as a torch module")
        self.spec = spec
        self.steps = nn.ModuleList(KernelModule(k, dtype, fold_bn) for k in spec.kernels)
        by_name = {k.name: step for k, step in zip(spec.kernels, self.steps, strict=True)}
        for k in spec.kernels:
            if k.tied:
                by_name[k.name].linear.weight = by_name[k.tied].embedding.weight
        last_use: dict[str, int] = {}
        for i, k in enumerate(spec.kernels):
            for s in k.src:
                last_use[s] = i
        # After kernel i, the outputs no later kernel reads are dropped (peak memory as a runtime's).
        self._free = [
            [s for s in k.src if last_use[s] == i and s != "input"] for i, k in enumerate(spec.kernels)
        ]

    def fold_batchnorm(self) -> DNNModule:
        """Fold every BatchNorm into its conv (in place); returns the module."""
        for step in self.steps:
            step.fold_batchnorm()
        return self.to(memory_format=torch.channels_last) if is_image_net(self.spec) else self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {"input": x}
        out = x
        for step, free in zip(self.steps, self._free, strict=True):
            out = step(*(values[s] for s in step.kernel.src))
            values[step.kernel.name] = out
            for name in free:
                del values[name]
        return out


def is_image_net(spec: DNNSpec) -> bool:
    return any(k.op == "conv" for k in spec.kernels)


def build_module(dnn: DNNSpec | str, *, dtype: str | None = None, fold_bn: bool = False) -> DNNModule:
    """The DNN as an eval-mode torch module (channels-last for image networks).

    Built under ``with torch.device("meta"):`` it holds no memory and runs shapes only
    (enough for ``torch.utils.flop_counter``).
    """
    spec = get_dnn(dnn)
    module = DNNModule(spec, torch_dtype(dtype or spec.dtype), fold_bn).eval()
    if is_image_net(spec):
        module = module.to(memory_format=torch.channels_last)
    return module


def example_input(dnn: DNNSpec | str, *, dtype: str | None = None, seed: int = 0) -> torch.Tensor:
    """A batch-1 input: an NHWC image of the catalog's shape, or token ids."""
    spec = get_dnn(dnn)
    gen = torch.Generator().manual_seed(seed)
    first = spec.kernels[0]
    if first.op == "embedding":
        return torch.randint(0, first.vocab, (1, *first.inp), generator=gen)
    x = torch.randn((1, *first.inp), generator=gen).to(torch_dtype(dtype or spec.dtype))
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


class KernelRun:
    """Runs one kernel (or a chain of kernels) on fixed random inputs: ``run()``.

    ``touch_inputs()`` rewrites the inputs in place, as the kernels that produced them would
    have just done inside a network (they are then in cache).
    """

    def __init__(self, steps: Sequence[tuple[KernelModule, list[torch.Tensor]]]) -> None:
        self.steps = list(steps)

    def __call__(self) -> torch.Tensor:
        out = None
        for module, inputs in self.steps:
            out = module(*inputs)
        return out

    def touch_inputs(self) -> None:
        for _, inputs in self.steps:
            for t in inputs:
                if t.is_floating_point():
                    t.mul_(1.0)


def kernel_inputs(
    kernel: DNNKernel, dtype: str, gen: torch.Generator, source_shapes: Sequence[Sequence[int]] | None = None
) -> list[torch.Tensor]:
    """Random batch-1 inputs of a kernel (channels-last images).

    Shapes are the kernel's input shape, ``source_shapes`` if given, two halves for a concat,
    and q/k/v for attention.
    """
    tdtype = torch_dtype(dtype)
    n_src = {"attention": 3, "add": 2, "glu": 2}.get(kernel.op, 1)
    shapes = list(source_shapes) if source_shapes is not None else [kernel.inp] * n_src
    if kernel.op == "concat" and source_shapes is None:  # two equal halves along the axis
        if kernel.kind == "nhwc":
            raise ValueError(f"kernel {kernel.name!r}: an nhwc concat needs its source_shapes")
        half = list(kernel.out)
        half[kernel.dim] //= 2
        shapes = [half, half]
    if kernel.op == "attention" and source_shapes is None:
        tokens, width = kernel.inp
        kv_width = width // kernel.heads * kernel.kv_heads
        shapes = [(tokens, width), (tokens, kv_width), (tokens, kv_width)]
    inputs = []
    for shape in shapes:
        if kernel.op == "embedding" and kernel.kind == "input":
            t = torch.randint(0, kernel.vocab, (1, *shape), generator=gen)
        else:
            t = torch.randn((1, *shape), generator=gen).to(tdtype)
            if t.dim() == 4:
                t = t.contiguous(memory_format=torch.channels_last)
        inputs.append(t)
    return inputs


def kernel_callable(
    kernel: DNNKernel,
    dtype: str = "fp32",
    *,
    source_shapes: Sequence[Sequence[int]] | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> KernelRun:
    """A :class:`KernelRun` of one kernel on random inputs on ``device`` (for timing).

    BatchNorm is folded; the kernel's activation, if any, runs too.
    """
    module = KernelModule(kernel, torch_dtype(dtype), fold_bn=True).eval().to(device)
    gen = torch.Generator().manual_seed(seed)
    inputs = [t.to(device) for t in kernel_inputs(kernel, dtype, gen, source_shapes)]
    if kernel.op == "conv" or any(t.dim() == 4 for t in inputs):
        module = module.to(memory_format=torch.channels_last)
    return KernelRun([(module, inputs)])


def chain_callable(
    kernels: Sequence[DNNKernel], dtype: str = "fp32", *, seed: int = 0, device: str = "cpu"
) -> Callable[[], torch.Tensor]:
    """The kernels as a small network on ``device`` (each reads its ``src``, by default the
    kernel before)."""
    spec = DNNSpec(
        name="chain",
        layers=({"name": "chain", "output_bytes": 0, "kernels": tuple(kernels)},),
        input_bytes=1,
        dtype=dtype,
    )
    torch.manual_seed(seed)
    module = build_module(spec, fold_bn=True).to(device)
    x = example_input(spec, seed=seed).to(device)

    def run() -> torch.Tensor:
        return module(x)

    return run


def module_parameter_count(module: nn.Module) -> int:
    """Parameters of a module, shared tensors once (``nn.Module.parameters`` dedups them)."""
    return sum(math.prod(p.shape) for p in module.parameters())
