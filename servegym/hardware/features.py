"""Vectorised prediction of measured quantities.

A measurement becomes one or more *terms* (kernel evaluations: a GEMM, an elementwise kernel,
an attention kernel, an all-reduce, a CPU-overhead evaluation); its prediction is the sum of
its terms. Calibration re-evaluates the terms for many parameter values, so the FLOP and byte
counts are computed once here and only the times depend on the parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .device import Device
from .dnn_kernels import COLD, NETWORK, WARM, KernelTerms, terms_table
from .kernels import (
    KERNEL_TYPE,
    LAYER_OPS,
    attention_decode_cost,
    attention_prefill_cost,
    elementwise_bytes,
    gemm_cost,
    gemm_shape,
    pnorm,
    ring_all_reduce_bytes,
)
from .latency import ParamLookup, all_reduce_params
from .measurements import GEMM_OPS, Measurement


@dataclass
class _Terms:
    owner: list[int] = field(default_factory=list)
    cols: dict[str, list] = field(default_factory=dict)

    def add(self, owner: int, **values) -> None:
        self.owner.append(owner)
        for k, v in values.items():
            self.cols.setdefault(k, []).append(v)

    def arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return np.asarray(self.owner, dtype=np.int64), {
            k: np.asarray(v) if k in ("ktype", "topo", "dtype") else np.asarray(v, dtype=float)
            for k, v in self.cols.items()
        }


class FeatureTable:
    """Precomputed work of each measurement; ``predict(device, params)`` gives seconds."""

    def __init__(self, measurements: Sequence[Measurement]) -> None:
        self.measurements = list(measurements)
        self.n = len(self.measurements)
        self.measured = np.array([m.seconds for m in self.measurements], dtype=float)
        terms = {k: _Terms() for k in ("gemm", "elem", "attn_p", "attn_d", "ar", "cpu")}
        dnn: list[tuple[int, np.ndarray, KernelTerms]] = []
        for i, m in enumerate(self.measurements):
            if m.op in ("dnn_kernels", "dnn"):
                dnn.append((i, *_dnn_terms(m)))
            else:
                _add_terms(terms, i, m)
        self._terms = {k: t.arrays() for k, t in terms.items() if t.owner}
        self._dnn = None
        if dnn:
            owner = np.concatenate([np.full(len(t), i) for i, _, t in dnn])
            dtypes = np.concatenate([np.full(len(t), self.measurements[i].dtype) for i, _, t in dnn])
            self._dnn = (owner, dtypes, KernelTerms.concat([t for _, _, t in dnn]))

    def predict(self, device: Device, params: Mapping[str, float] | None = None) -> np.ndarray:
        """Predicted seconds of every measurement on ``device`` with parameter overrides."""
        par = ParamLookup(device, params)
        out = np.zeros(self.n)
        p = par("p")
        for kind, (owner, c) in self._terms.items():
            if kind == "gemm":
                tc = c["flops"] / (par("gemm.eta_c") * _peaks(device, c["dtype"]))
                tb = c["bytes"] / (par("gemm.eta_b") * device.mem_bandwidth)
                t = par("gemm.t0_s") + pnorm(tc, tb, p)
            elif kind == "elem":
                t = np.empty(len(owner))
                for ktype in np.unique(c["ktype"]):
                    sel = c["ktype"] == ktype
                    bw = par(f"elem.{ktype}.rho") * par("elem.eta_b") * device.mem_bandwidth
                    t[sel] = par(f"elem.{ktype}.t0_s") + c["bytes"][sel] / bw
            elif kind in ("attn_p", "attn_d"):
                flops = c["flops"] + (par("attn.gamma") * c["flops_sq"] if kind == "attn_p" else 0.0)
                tc = flops / (par("attn.eta_c") * _peaks(device, c["dtype"]))
                tb = c["bytes"] / (par("attn.eta_b") * device.mem_bandwidth)
                t0 = par("attn.prefill_t0_s" if kind == "attn_p" else "attn.decode_t0_s")
                t = t0 + pnorm(tc, tb, p)
            elif kind == "ar":
                t = np.empty(len(owner))
                for topo in np.unique(c["topo"]):
                    for n in np.unique(c["num_gpus"][c["topo"] == topo]):
                        sel = (c["topo"] == topo) & (c["num_gpus"] == n)
                        alpha, beta = all_reduce_params(device, str(topo), int(n), par.override)
                        t[sel] = alpha + c["ring_bytes"][sel] / beta
            else:  # cpu
                t = par("cpu.c0_s") + par("cpu.c1_s") * c["batch"]
            out += np.bincount(owner, weights=t, minlength=self.n)
        if self._dnn is not None:
            from .dnn import terms_time

            owner, dtypes, dnn_terms = self._dnn
            t = terms_time(dnn_terms, device, dtypes, "conv-bn", par.override)
            fused = np.array(
                [(m.fusion or device.dnn_runtime.fusion) == "conv-bn-act" for m in self.measurements]
            )
            t[dnn_terms.fusable & fused[owner]] = 0.0
            out += np.bincount(owner, weights=t, minlength=self.n)
        return out


def _peaks(device: Device, dtypes: np.ndarray) -> np.ndarray:
    """Peak FLOP/s of ``device`` for each term's dtype."""
    names, codes = np.unique(dtypes, return_inverse=True)
    return np.array([device.peak(str(d)) for d in names])[codes]


_CONTEXT_CODES = {"warm": WARM, "cold": COLD, "network": NETWORK}


def _dnn_terms(m: Measurement) -> tuple[np.ndarray, KernelTerms]:
    """Kernel terms of a DNN measurement: its kernels, or a whole catalog DNN's."""
    from .catalog import get_dnn
    from .model_spec import DTYPE_BYTES

    kernels = m.kernels
    if m.op == "dnn":
        kernels = get_dnn(m.model).kernels
        if not kernels:
            raise ValueError(f"{m.source}: dnn {m.model!r} lists no kernels, so it cannot be predicted")
    return terms_table(kernels, DTYPE_BYTES[m.dtype], _CONTEXT_CODES[m.context or "network"])


def _add_terms(terms: dict[str, _Terms], i: int, m: Measurement) -> None:
    op, dims = m.op, m.dims
    if op == "gemm":
        from .model_spec import DTYPE_BYTES

        f, b = gemm_cost(m.m, m.n, m.k, DTYPE_BYTES[m.dtype])
        terms["gemm"].add(i, flops=f, bytes=b, dtype=m.dtype)
    elif op in GEMM_OPS or op == "lm_head":
        n, k = gemm_shape(op, dims)
        f, b = gemm_cost(m.num_tokens, n, k, dims.bytes_per_element)
        terms["gemm"].add(i, flops=f, bytes=b, dtype=m.dtype)
    elif op in KERNEL_TYPE:
        terms["elem"].add(i, ktype=KERNEL_TYPE[op], bytes=elementwise_bytes(op, m.num_tokens, dims))
    elif op == "layer":
        for sub in LAYER_OPS:
            _add_terms(terms, i, replace(m, op=sub))
    elif op == "attn_prefill":
        q, kv, bs = m.prefill_chunk, m.kv_context, max(m.batch_size, 1)
        fr, fs, b = attention_prefill_cost(bs * q * kv, bs * q * q, bs * q, bs * kv, dims)
        terms["attn_p"].add(i, flops=fr, flops_sq=fs, bytes=b, dtype=m.dtype)
    elif op == "attn_decode":
        f, b = attention_decode_cost(m.batch_size, m.batch_size * m.kv_context, dims)
        terms["attn_d"].add(i, flops=f, bytes=b, dtype=m.dtype)
    elif op == "all_reduce":
        terms["ar"].add(
            i,
            topo=m.topology_key,
            num_gpus=m.num_gpus,
            ring_bytes=ring_all_reduce_bytes(m.size_bytes, m.num_gpus),
        )
    elif op == "cpu_overhead":
        terms["cpu"].add(i, batch=m.batch_size)
    else:
        raise ValueError(f"{m.source}: cannot predict operator {op!r}")


def predict_measurements(
    measurements: Sequence[Measurement], device: Device, params: Mapping[str, float] | None = None
) -> np.ndarray:
    """Predicted seconds for each measurement (see :class:`FeatureTable`)."""
    return FeatureTable(measurements).predict(device, params)
