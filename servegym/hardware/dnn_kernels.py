"""Kernels of a layer-wise DNN at batch 1: type, shape, FLOPs, parameters and bytes moved.

A catalog DNN layer is a block (split points stay at block boundaries); it lists the kernels
an inference runtime launches for it, in order, with the tensors they read (``src``). Shapes
exclude the batch dimension: ``[C, H, W]`` for images, ``[tokens, features]`` for sequences.

Counting rules, shared by the catalog generator, the latency model, the calibration and the
torch builder that checks them:

* FLOPs are 2 per multiply-accumulate of convolutions, linear layers and attention matmuls,
  plus 1 per element of residual adds and ``k*k`` per output of pooling windows. Folded
  BatchNorm, activations and normalisation add none (the published MAC/FLOP convention).
  Attention counts the full score matrix; a causal kernel's saving is the latency model's
  causal factor ``attn.gamma``.
* Parameters are the trainable tensors of the original network (BatchNorm gamma and beta
  included, as in published parameter counts).
* Bytes are what the kernel reads and writes at inference: input and output activations and
  its weights, with BatchNorm folded into the convolution (weights + one bias per channel).
  An embedding reads only the rows it gathers.
* ``act`` is an activation applied to the kernel's output. Runtimes that fuse it (TensorRT,
  TFLite, ONNX Runtime) pay nothing extra; PyTorch eager runs it as its own kernel, which
  reads and writes the output once more (see ``FUSIONS``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

OPS = (
    "conv",  # 2-D convolution (+ folded BatchNorm): dense, depthwise or pointwise by shape
    "linear",  # x @ W^T (+ bias)
    "attention",  # softmax(q k^T / sqrt(d)) v over heads (self-attention)
    "pool",  # max or average window (k = 0: global average)
    "add",  # elementwise sum of two tensors
    "glu",  # silu(gate) * up (SwiGLU)
    "act",  # a standalone activation
    "norm",  # LayerNorm or RMSNorm over the last dimension
    "embedding",  # gather rows of a table
    "concat",  # join tensors along ``dim`` (kind nhwc: images flattened to [H*W, C], joined on dim 0)
    "upsample",  # nearest-neighbour x2
    "rope",  # rotary position embedding of q or k
    "dfl",  # YOLOv8 distribution focal loss decode: softmax over bins, expectation
    "box",  # YOLOv8 box decode: distances to corners around anchors, times strides
    "slice",  # start:stop along ``dim``, copied out (a Split/Slice kernel)
)
ACTIVATIONS = ("", "relu", "relu6", "silu", "gelu", "tanh", "sigmoid")
ROOFLINE_TYPES = ("conv", "dwconv", "pwconv", "gemm", "attn", "pool")
"""Kernel types timed by a roofline over FLOPs and bytes; the others are bandwidth-bound."""
ELEMENTWISE_TYPES = ("act", "act_exp", "add", "norm", "emb", "copy", "rope", "reduce")
"""``act``: piecewise-linear activations (ReLU, ReLU6); ``act_exp``: those computing exp, erf
or tanh (SiLU, GELU, sigmoid, tanh, softmax), several times costlier per element on a CPU;
``reduce``: global average pooling. Windowed pooling is the roofline type ``pool``."""
_EXP_ACTIVATIONS = ("silu", "gelu", "tanh", "sigmoid")


def activation_type(act: str) -> str:
    """The elementwise kernel type of an activation function."""
    return "act_exp" if act in _EXP_ACTIVATIONS else "act"


FUSIONS = ("conv-bn-act", "conv-bn")
"""``conv-bn-act``: BatchNorm folded, activations fused into the producing kernel (inference
runtimes); ``conv-bn``: BatchNorm folded, activations run as their own kernels (PyTorch eager)."""

_ELEMENT_TYPE = {
    "pool": "pool",
    "add": "add",
    "box": "add",
    "glu": "act_exp",
    "dfl": "act_exp",
    "norm": "norm",
    "embedding": "emb",
    "concat": "copy",
    "upsample": "copy",
    "slice": "copy",
    "rope": "rope",
}


@dataclass(frozen=True)
class DNNKernel:
    """One kernel: its op, input and output shapes and the attributes its op needs.

    ``k``/``s``/``g``: window, stride, groups (conv, pool); ``bn``: a conv followed by
    BatchNorm (else ``bias``); ``heads``/``kv_heads``/``causal``: attention and rope;
    ``kind``: ``max``/``avg`` (pool), ``layer``/``rms`` (norm), ``input``/``position``/``zeros``
    (the ids an embedding gathers), ``nhwc`` (concat); ``vocab``: embedding rows; ``dim``:
    concat or slice axis; ``start``/``stop``: slice bounds; ``tied``: the embedding whose table
    a linear shares (counted in both layers' weight bytes, once in the network's parameters).
    ``src`` names the kernels whose outputs it reads (``input`` is the network input); empty
    means the previous kernel.
    """

    name: str
    op: str
    inp: tuple[int, ...]
    out: tuple[int, ...]
    src: tuple[str, ...] = ()
    k: int = 0
    s: int = 1
    g: int = 1
    act: str = ""
    bn: bool = False
    bias: bool = True
    heads: int = 0
    kv_heads: int = 0
    causal: bool = False
    kind: str = ""
    vocab: int = 0
    dim: int = 0
    start: int = 0
    stop: int = 0
    tied: str = ""

    def __post_init__(self) -> None:
        where = f"kernel {self.name!r}"
        if self.op not in OPS:
            raise ValueError(f"{where}: op must be one of {list(OPS)}, got {self.op!r}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"{where}: act must be one of {list(ACTIVATIONS)}, got {self.act!r}")
        for f in ("inp", "out"):
            shape = tuple(getattr(self, f))
            if not shape or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
                raise ValueError(f"{where}: {f} must be a non-empty list of positive integers, got {shape!r}")
            object.__setattr__(self, f, tuple(int(d) for d in shape))
        object.__setattr__(self, "src", tuple(str(s) for s in self.src))
        if self.op == "conv":
            if len(self.inp) != 3 or len(self.out) != 3 or self.k < 1 or self.s < 1 or self.g < 1:
                raise ValueError(f"{where}: a conv needs inp/out [C, H, W], k >= 1, s >= 1, g >= 1")
            if self.inp[0] % self.g or self.out[0] % self.g:
                raise ValueError(
                    f"{where}: groups {self.g} must divide the channels {self.inp[0]}, {self.out[0]}"
                )
        if self.op == "linear" and (len(self.inp) != 2 or len(self.out) != 2 or self.inp[0] != self.out[0]):
            raise ValueError(f"{where}: a linear needs inp [M, K] and out [M, N]")
        if self.op in ("attention", "rope"):
            if len(self.inp) != 2 or self.heads < 1 or self.inp[1] % self.heads:
                raise ValueError(f"{where}: {self.op} needs inp [tokens, heads*head_dim] and heads >= 1")
        if self.op == "attention" and (self.kv_heads < 1 or self.heads % self.kv_heads):
            raise ValueError(f"{where}: kv_heads must divide heads ({self.heads})")
        if self.op == "embedding" and self.vocab < 1:
            raise ValueError(f"{where}: an embedding needs vocab >= 1")
        if self.tied and self.op != "linear":
            raise ValueError(f"{where}: only a linear kernel can be tied to an embedding")

    # -- derived ---------------------------------------------------------------------------
    @property
    def out_elems(self) -> int:
        return math.prod(self.out)

    @property
    def in_elems(self) -> int:
        return math.prod(self.inp)

    @property
    def kernel_type(self) -> str:
        """The efficiency-parameter family: conv/dwconv/pwconv/gemm/attn or an elementwise type."""
        if self.op == "conv":
            cin, cout = self.inp[0], self.out[0]
            if self.g > 1 and self.g == cin == cout:
                return "dwconv"
            return "pwconv" if self.k == 1 and self.g == 1 else "conv"
        if self.op == "linear":
            return "gemm"
        if self.op == "attention":
            return "attn"
        if self.op == "act":
            return activation_type(self.act)
        if self.op == "pool" and self.k == 0:
            return "reduce"
        return _ELEMENT_TYPE[self.op]

    @property
    def weight_elems(self) -> int:
        """Weight elements read at inference (BatchNorm folded into a conv's bias)."""
        if self.op == "conv":
            cout = self.out[0]
            return cout * (self.inp[0] // self.g) * self.k * self.k + (cout if self.bn or self.bias else 0)
        if self.op == "linear":
            n, kk = self.out[1], self.inp[1]
            return kk * n + (n if self.bias else 0)
        if self.op == "norm":
            return self.inp[-1] * (2 if self.kind == "layer" else 1)
        if self.op == "dfl":
            return self.inp[-1] // self.out[-1]
        return 0

    @property
    def tied_elems(self) -> int:
        """Parameters this kernel shares with the kernel named in ``tied``."""
        return self.inp[1] * self.out[1] if self.tied and self.op == "linear" else 0

    @property
    def params(self) -> int:
        """Trainable parameters of the original network (BatchNorm gamma/beta included)."""
        if self.op == "conv":
            cout = self.out[0]
            base = cout * (self.inp[0] // self.g) * self.k * self.k
            return base + (2 * cout if self.bn else cout if self.bias else 0)
        if self.op == "embedding":
            return self.vocab * self.out[-1]
        return self.weight_elems

    @property
    def flops(self) -> float:
        """FLOPs by the counting rule in the module docstring."""
        if self.op == "conv":
            cout, ho, wo = self.out
            return 2.0 * cout * (self.inp[0] // self.g) * self.k * self.k * ho * wo
        if self.op == "linear":
            return 2.0 * self.inp[0] * self.inp[1] * self.out[1]
        if self.op == "attention":
            tokens, width = self.inp
            return 4.0 * tokens * tokens * width  # q k^T and p v over all heads
        if self.op == "pool":
            return float(self.in_elems if self.k == 0 else self.k * self.k * self.out_elems)
        if self.op == "add":
            return float(self.out_elems)
        if self.op == "dfl":
            return 2.0 * self.inp[0] * self.inp[1]  # the expectation: a dot product over the bins
        return 0.0

    @property
    def io_elems(self) -> float:
        """Activation elements read and written (weights excluded)."""
        op, n_out = self.op, float(self.out_elems)
        if op == "attention":
            tokens, width = self.inp
            kv_width = width // self.heads * self.kv_heads
            return 2.0 * tokens * (width + kv_width)  # read Q, K, V; write O
        if op in ("add", "glu"):
            return 3.0 * n_out
        if op in ("embedding", "concat", "act", "norm", "rope", "box", "slice"):
            return 2.0 * n_out
        return float(self.in_elems) + n_out  # conv, linear, pool, upsample, dfl

    def to_dict(self) -> dict[str, Any]:
        """The catalog mapping: non-default fields only (``inp`` is written ``in``)."""
        out: dict[str, Any] = {"name": self.name, "op": self.op}
        for f in fields(self):
            if f.name in ("name", "op"):
                continue
            value = getattr(self, f.name)
            if value != f.default:
                out["in" if f.name == "inp" else f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "kernel") -> DNNKernel:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: a kernel must be a mapping, got {type(data).__name__}")
        kwargs = {("inp" if k == "in" else k): v for k, v in data.items()}
        allowed = {f.name for f in fields(cls)}
        unknown = set(kwargs) - allowed
        if unknown:
            raise ValueError(
                f"{where}: unknown kernel field(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        for key in ("name", "op", "inp", "out"):
            if key not in kwargs:
                raise ValueError(f"{where}: missing kernel field {'in' if key == 'inp' else key!r}")
        for key in ("inp", "out", "src"):
            if key in kwargs and not isinstance(kwargs[key], (list, tuple)):
                raise ValueError(f"{where}: {key} must be a list, got {kwargs[key]!r}")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None


# ---- timed terms ----------------------------------------------------------------------------


WARM, COLD, NETWORK = 0, 1, 2
"""Cache contexts of a kernel's data: ``WARM`` (timed alone after the private cache is
flushed and its inputs rewritten: its data in the last-level cache), ``COLD`` (the same after
flushing every cache: its data from DRAM) and ``NETWORK`` (inside a network: activations were
just written by the kernel before, weights were last read one inference ago, so they stay
cached only if the network's weights, its footprint, fit in the cache)."""


@dataclass(frozen=True)
class KernelTerms:
    """Work of many kernel evaluations as arrays (what their times depend on).

    ``ktype``: roofline or elementwise type; ``flops``; ``bytes`` (all) and ``weights`` (the
    weight part of them); ``causal``: 1 where the attention FLOPs are scaled by the causal
    factor; ``fusable``: 1 for the separate activation pass that a fusing runtime does not
    run; ``context``: WARM/COLD/NETWORK; ``footprint``: weight bytes of the enclosing network
    (NETWORK context).
    """

    ktype: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray
    weights: np.ndarray
    causal: np.ndarray
    fusable: np.ndarray
    context: np.ndarray
    footprint: np.ndarray

    def __len__(self) -> int:
        return len(self.ktype)

    @classmethod
    def concat(cls, parts: Sequence[KernelTerms]) -> KernelTerms:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


def kernel_terms(kernel: DNNKernel, elem_bytes: int) -> list[tuple[str, float, float, float, bool, bool]]:
    """(type, FLOPs, bytes, weight bytes, causal, fusable) of the launches ``kernel`` stands for."""
    ktype = kernel.kernel_type
    weights = elem_bytes * kernel.weight_elems
    terms = [(ktype, kernel.flops, elem_bytes * kernel.io_elems + weights, weights, kernel.causal, False)]
    if kernel.act and kernel.op != "act":
        terms.append(
            (activation_type(kernel.act), 0.0, 2.0 * elem_bytes * kernel.out_elems, 0.0, False, True)
        )
    return terms


def terms_table(
    kernels: Sequence[DNNKernel], elem_bytes: int, context: int = NETWORK
) -> tuple[np.ndarray, KernelTerms]:
    """All kernels' terms as arrays, and for each term the index of its kernel.

    In the NETWORK context the footprint is the weight bytes of all the kernels together.
    """
    owner, rows = [], []
    for i, kernel in enumerate(kernels):
        for term in kernel_terms(kernel, elem_bytes):
            owner.append(i)
            rows.append(term)
    cols = list(zip(*rows, strict=True)) if rows else [()] * 6
    weights = np.asarray(cols[3], dtype=float)
    n = len(rows)
    return np.asarray(owner, dtype=np.int64), KernelTerms(
        ktype=np.asarray(cols[0], dtype=object).astype(str),
        flops=np.asarray(cols[1], dtype=float),
        bytes=np.asarray(cols[2], dtype=float),
        weights=weights,
        causal=np.asarray(cols[4], dtype=bool),
        fusable=np.asarray(cols[5], dtype=bool),
        context=np.full(n, context, dtype=np.int64),
        footprint=np.full(n, float(weights.sum()) if context == NETWORK else 0.0),
    )
