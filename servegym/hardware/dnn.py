"""Inference time and energy of layer-wise DNNs on any device (for edge offloading).

A layer with a kernel list (``dnn_kernels``) is timed kernel by kernel, each with the
efficiency parameters of its type (``dnn.<type>.*``): dense, depthwise and pointwise
convolutions, GEMMs (linear layers), attention, pooling, and bandwidth-bound elementwise
kernels (activations, adds, norms, copies, embeddings). A kernel's time is a smooth roofline
over its FLOPs and the bytes it moves (weights, input and output activations, so the
expanded activations inside a block count), bytes found in cache weighted down, plus the
fixed time of its type. Whether an activation costs its own pass depends on the runtime's
fusion (the device's ``dnn_runtime``). A layer without kernels is timed as one GEMM of its
FLOPs and bytes. Energy is active power x time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalog import get_device, get_dnn
from .device import Device
from .dnn_kernels import COLD, FUSIONS, NETWORK, ROOFLINE_TYPES, KernelTerms, terms_table
from .kernels import pnorm
from .latency import ParamLookup
from .model_spec import DNNSpec, dtype_bytes


@dataclass(frozen=True)
class InferenceCost:
    """Seconds and joules of running some layers of a DNN on a device."""

    time_s: float
    energy_j: float


def type_params(ktype: str) -> tuple[str, ...]:
    """Parameter names of a DNN kernel type: (eta_c, eta_b, t0_s) for roofline types,
    (eta_b, t0_s) for bandwidth-bound ones."""
    if ktype in ROOFLINE_TYPES:
        return f"dnn.{ktype}.eta_c", f"dnn.{ktype}.eta_b", f"dnn.{ktype}.t0_s"
    return f"dnn.{ktype}.eta_b", f"dnn.{ktype}.t0_s"


def effective_bytes(terms: KernelTerms, par: ParamLookup) -> np.ndarray:
    """Bytes of each term weighted by where they come from (DRAM: 1, cache: less).

    Data found in the last-level cache cost ``dnn.<type>.cache_ratio`` of their DRAM time.
    WARM terms find all their data cached, COLD terms none. Inside a network (NETWORK) the
    activations were just written by the kernel before (cached); the weights were last read
    one inference ago and miss with probability ``1 / (1 + (C / F)^2)`` for a network with
    ``F`` weight bytes and ``C = dnn.cache_bytes``: a network whose weights fit keeps them in
    the cache between inferences, a larger one streams them from DRAM.
    """
    ratio = np.empty(len(terms))
    for ktype in np.unique(terms.ktype):
        ratio[terms.ktype == ktype] = par(f"dnn.{ktype}.cache_ratio")
    cold = terms.context == COLD
    out = np.where(cold, terms.bytes, ratio * terms.bytes)
    net = terms.context == NETWORK
    if net.any():
        miss = 1.0 / (1.0 + (par("dnn.cache_bytes") / np.maximum(terms.footprint[net], 1.0)) ** 2)
        out[net] += (1.0 - ratio[net]) * miss * terms.weights[net]
    return out


def terms_time(
    terms: KernelTerms, device: Device, dtype: str | np.ndarray, fusion: str, params: dict | None = None
) -> np.ndarray:
    """Seconds of each kernel term on ``device`` (``params`` override the device's fit).

    ``dtype`` is one name or one per term (peak FLOP/s per dtype).
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {list(FUSIONS)}, got {fusion!r}")
    par = ParamLookup(device, params)
    p, bw = par("p"), device.mem_bandwidth
    if isinstance(dtype, str):
        peak = np.full(len(terms), device.peak(dtype))
    else:
        names, codes = np.unique(dtype, return_inverse=True)
        peak = np.array([device.peak(str(d)) for d in names])[codes]
    byts = effective_bytes(terms, par)
    t = np.zeros(len(terms))
    for ktype in np.unique(terms.ktype):
        sel = terms.ktype == ktype
        if ktype in ROOFLINE_TYPES:
            eta_c, eta_b, t0 = type_params(ktype)
            flops = terms.flops[sel]
            if ktype == "attn":  # a causal kernel does gamma of the full score matrix
                flops = np.where(terms.causal[sel], par("dnn.attn.gamma") * flops, flops)
            tc = flops / (par(eta_c) * peak[sel])
            tb = byts[sel] / (par(eta_b) * bw)
            t[sel] = par(t0) + pnorm(tc, tb, p)
        else:
            eta_b, t0 = type_params(ktype)
            t[sel] = par(t0) + byts[sel] / (par(eta_b) * bw)
    if fusion == "conv-bn-act":
        t[terms.fusable] = 0.0
    return t


class DNNLatency:
    """Per-layer times of ``dnn`` on ``device``; prefix/suffix sums for split points.

    ``dtype`` and ``fusion`` default to the device's DNN runtime (``Device.dnn_runtime``),
    else the DNN's own dtype.
    """

    def __init__(
        self, dnn: DNNSpec | str, device: Device | str, dtype: str | None = None, *, fusion: str | None = None
    ) -> None:
        self.dnn = get_dnn(dnn)
        self.device = get_device(device)
        runtime = self.device.dnn_runtime
        self.dtype = (dtype or runtime.dtype or self.dnn.dtype).lower()
        self.fusion = fusion or runtime.fusion
        elem = dtype_bytes(self.dtype, f"dnn {self.dnn.name!r}")
        scale = elem / dtype_bytes(self.dnn.dtype, f"dnn {self.dnn.name!r}")
        owner, terms = terms_table(self.dnn.kernels, elem)
        kernel_layer = np.array(
            [i for i, layer in enumerate(self.dnn.layers) for _ in layer.kernels], dtype=int
        )
        times = terms_time(terms, self.device, self.dtype, self.fusion)
        self.kernel_times = np.bincount(owner, weights=times, minlength=len(kernel_layer)).astype(float)
        n = self.num_layers
        self.layer_times = np.bincount(kernel_layer, weights=self.kernel_times, minlength=n).astype(float)
        plain = [i for i, layer in enumerate(self.dnn.layers) if not layer.kernels]
        if plain:  # one GEMM of the layer's FLOPs and bytes (weights, input and output)
            outputs = np.array([layer.output_bytes for layer in self.dnn.layers])
            inputs = np.concatenate([[self.dnn.input_bytes], outputs[:-1]])
            weights = np.array([layer.weight_bytes for layer in self.dnn.layers])
            flops = np.array([layer.flops for layer in self.dnn.layers])
            byts = scale * (weights + inputs + outputs)
            gemm = KernelTerms(
                ktype=np.full(len(plain), "gemm"),
                flops=flops[plain],
                bytes=byts[plain],
                weights=scale * weights[plain],
                causal=np.zeros(len(plain), dtype=bool),
                fusable=np.zeros(len(plain), dtype=bool),
                context=np.full(len(plain), NETWORK),
                footprint=np.full(len(plain), scale * float(weights.sum()) + float(terms.weights.sum())),
            )
            self.layer_times[plain] += terms_time(gemm, self.device, self.dtype, self.fusion)
        self._cumulative = np.concatenate([[0.0], np.cumsum(self.layer_times)])

    @property
    def num_layers(self) -> int:
        return len(self.dnn.layers)

    def time(self, start: int = 0, end: int | None = None) -> float:
        """Seconds to run layers ``start .. end-1`` (all layers by default)."""
        end = self.num_layers if end is None else end
        if not 0 <= start <= end <= self.num_layers:
            raise ValueError(
                f"dnn {self.dnn.name!r}: layer range [{start}, {end}) outside 0..{self.num_layers}"
            )
        return float(self._cumulative[end] - self._cumulative[start])

    def cost(self, start: int = 0, end: int | None = None) -> InferenceCost:
        """Time and energy (active power x time) of layers ``start .. end-1``."""
        t = self.time(start, end)
        return InferenceCost(time_s=t, energy_j=t * self.device.active_power_w)

    def split_output_bytes(self, split: int) -> float:
        """Bytes to transmit when layers ``0 .. split-1`` run here (0: the raw input)."""
        if not 0 <= split <= self.num_layers:
            raise ValueError(f"dnn {self.dnn.name!r}: split {split} outside 0..{self.num_layers}")
        return self.dnn.input_bytes if split == 0 else self.dnn.layers[split - 1].output_bytes

    def type_times(self) -> dict[str, float]:
        """Seconds per kernel type over the whole network (a separate activation pass: ``act``)."""
        elem = dtype_bytes(self.dtype, self.dnn.name)
        _, terms = terms_table(self.dnn.kernels, elem)
        t = terms_time(terms, self.device, self.dtype, self.fusion)
        return {str(k): float(t[terms.ktype == k].sum()) for k in np.unique(terms.ktype)}


def dnn_inference(dnn: DNNSpec | str, device: Device | str, dtype: str | None = None) -> InferenceCost:
    """Time and energy of one whole batch-1 inference of ``dnn`` on ``device``."""
    return DNNLatency(dnn, device, dtype).cost()
