"""Efficiency parameters of the latency model, their names, and the prior over them.

A device's calibrated state is a flat mapping ``name -> float``. Names:

=============================  ================================================================
``p``                          exponent of the smooth max of compute and memory time
``gemm.eta_c`` / ``.eta_b``    fraction of datasheet FLOP/s / DRAM bandwidth reached by GEMMs
``gemm.t0_s``                  fixed time per GEMM kernel
``elem.eta_b``                 device-level scale of elementwise bandwidth (1 on the reference)
``elem.<type>.rho``            bandwidth fraction of an elementwise kernel type (norm, rope, ...)
``elem.<type>.t0_s``           fixed time of that kernel type
``attn.eta_c`` / ``.eta_b``    attention kernel efficiencies
``attn.gamma``                 causal factor: prefill FLOPs = 4 d H (q*kv + gamma q^2)
``attn.prefill_t0_s`` ...      fixed times of the prefill and decode attention kernels
``ar.<topo>[.n<N>].alpha_s``   all-reduce latency per node topology (and GPU count)
``ar.<topo>[.n<N>].bw_eff``    all-reduce bus bandwidth as a fraction of the link bandwidth
``cpu.c0_s`` / ``cpu.c1_s``    per-iteration CPU/scheduler overhead: c0 + c1 * batch size
``moe.eta_c_scale``            grouped-GEMM compute efficiency relative to dense GEMMs
``dnn.<type>.eta_c`` ...       DNN kernel types (``dnn_kernels``): ``eta_c``, ``eta_b``, ``t0_s``
                               for conv/dwconv/pwconv/gemm/attn/pool; ``eta_b``, ``t0_s`` for
                               the bandwidth-bound act/act_exp/add/norm/emb/copy/rope/reduce;
                               ``dnn.attn.gamma`` (causal factor)
``dnn.<type>.cache_ratio``     memory time of that type's data found in the last-level cache
                               relative to DRAM
``dnn.cache_bytes``            last-level cache an inference stream can use (bytes)
=============================  ================================================================

The prior holds a mean and a log-space standard deviation per name. The shipped prior
(``profiles/prior.yaml``) is learned from the devices with public measurements by
``tools/fit_default_profiles.py``; ``GENERIC_PRIOR`` below is the uninformed starting point
from the reference constants (p = 1.5, eta_c 0.7, eta_b 0.8, t0 5 us) used to fit it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from .kernels import KERNEL_TYPES

# name -> (mean, log-space sigma). Sigmas say how far devices are expected to differ: 0.3 for
# efficiencies (reference 4.2: GEMM eta_c 0.49-0.75 across A100/H100/A40), 0.4 for fixed times.
_GENERIC: dict[str, tuple[float, float]] = {
    "p": (1.5, 0.0),
    "gemm.eta_c": (0.7, 0.3),
    "gemm.eta_b": (0.8, 0.3),
    "gemm.t0_s": (5e-6, 0.4),
    "elem.eta_b": (1.0, 0.5),
    "attn.eta_c": (0.35, 0.3),
    "attn.eta_b": (0.75, 0.3),
    "attn.gamma": (1.0, 0.3),
    "attn.prefill_t0_s": (20e-6, 0.4),
    "attn.decode_t0_s": (15e-6, 0.4),
    "ar.alpha_s": (20e-6, 0.8),
    "ar.bw_eff": (0.5, 0.8),
    "cpu.c0_s": (1.0e-3, 0.8),
    "cpu.c1_s": (20e-6, 1.0),
    "moe.eta_c_scale": (0.8, 0.3),
}
# DNN kernels (dnn_kernels.py, dnn.py) have their own parameters: they run in other runtimes,
# dtypes and cache states than serving-engine operators. Starting values: dense and pointwise
# convs run as implicit GEMMs a little below GEMM efficiency; depthwise convs reuse no weights
# and are bound by moving activations; elementwise types as in reference 4.2.
_GENERIC_DNN_ROOFLINE = {  # (eta_c, eta_b, t0_s)
    "conv": (0.6, 0.6, 5e-6),
    "dwconv": (0.3, 0.5, 5e-6),
    "pwconv": (0.6, 0.7, 5e-6),
    "gemm": (0.7, 0.8, 5e-6),
    "attn": (0.35, 0.75, 20e-6),
    "pool": (0.3, 0.5, 3e-6),
}
_GENERIC_DNN_ELEMENTWISE = {  # (eta_b, t0_s)
    "act": (0.5, 3e-6),
    "act_exp": (0.3, 3e-6),
    "add": (0.9, 2e-6),
    "norm": (0.4, 4e-6),
    "emb": (0.25, 3e-6),
    "copy": (0.7, 2e-6),
    "rope": (0.45, 3e-6),
    "reduce": (0.5, 3e-6),
}
for _k, (_c, _b, _t0) in _GENERIC_DNN_ROOFLINE.items():
    _GENERIC.update(
        {f"dnn.{_k}.eta_c": (_c, 0.3), f"dnn.{_k}.eta_b": (_b, 0.3), f"dnn.{_k}.t0_s": (_t0, 0.4)}
    )
for _k, (_b, _t0) in _GENERIC_DNN_ELEMENTWISE.items():
    _GENERIC.update({f"dnn.{_k}.eta_b": (_b, 0.3), f"dnn.{_k}.t0_s": (_t0, 0.4)})
# Caching of DNN data (dnn.effective_bytes): memory time of last-level-cache hits relative to
# DRAM per kernel type, and the last-level cache one inference stream can use.
for _k in (*_GENERIC_DNN_ROOFLINE, *_GENERIC_DNN_ELEMENTWISE):
    _GENERIC[f"dnn.{_k}.cache_ratio"] = (0.5, 0.5)
_GENERIC.update({"dnn.attn.gamma": (1.0, 0.3), "dnn.cache_bytes": (32e6, 1.0)})
_GENERIC_ELEM = {  # (rho, t0_s) starting values, reference section 4.2
    "norm": (0.4, 4e-6),
    "rope": (0.45, 3e-6),
    "act": (0.5, 3e-6),
    "add": (0.9, 2e-6),
    "emb": (0.25, 3e-6),
    "kv_write": (0.6, 3e-6),
}
for _k, (_rho, _t0) in _GENERIC_ELEM.items():
    _GENERIC[f"elem.{_k}.rho"] = (_rho, 0.3)
    _GENERIC[f"elem.{_k}.t0_s"] = (_t0, 0.4)


@dataclass(frozen=True)
class Prior:
    """Gaussian prior on log(parameter): ``mean[name]`` and ``sigma[name]`` (log space)."""

    mean: Mapping[str, float]
    sigma: Mapping[str, float]
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in self.mean.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"prior mean of {name!r} must be a positive number, got {value!r}")
            if name not in self.sigma:
                raise ValueError(f"prior has a mean but no sigma for {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": {k: float(v) for k, v in sorted(self.mean.items())},
            "sigma": {k: float(v) for k, v in sorted(self.sigma.items())},
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Prior:
        try:
            return cls(
                mean={k: float(v) for k, v in data["mean"].items()},
                sigma={k: float(v) for k, v in data["sigma"].items()},
                provenance=dict(data.get("provenance") or {}),
            )
        except (KeyError, AttributeError, TypeError) as err:
            raise ValueError(f"a prior needs 'mean' and 'sigma' mappings: {err}") from None


GENERIC_PRIOR = Prior(
    mean={k: v[0] for k, v in _GENERIC.items()},
    sigma={k: v[1] for k, v in _GENERIC.items()},
    provenance={"source": "generic constants, ../shared/reference/latency_model.md 4.1-4.2"},
)

_DEFAULT_PRIOR: Prior | None = None


def default_prior() -> Prior:
    """The shipped prior learned from devices with public measurements (cached)."""
    global _DEFAULT_PRIOR
    if _DEFAULT_PRIOR is None:
        path = resources.files("servegym.hardware").joinpath("profiles/prior.yaml")
        if path.is_file():
            _DEFAULT_PRIOR = Prior.from_dict(yaml.safe_load(path.read_text()))
        else:  # only while bootstrapping the shipped files
            _DEFAULT_PRIOR = GENERIC_PRIOR
    return _DEFAULT_PRIOR


ALL_REDUCE_TOPOLOGIES = ("nvswitch", "pairwise_nvlink", "nvswitch-2nodes", "pcie")
"""Node topologies with all-reduce parameters: an NVSwitch node (DGX), GPUs linked pairwise by
NVLink, two NVSwitch nodes over the network, and PCIe (the generic ``ar.*`` parameters)."""


def all_reduce_keys(topology: str, num_gpus: int) -> list[str]:
    """Names to try, most specific first, for an all-reduce parameter prefix."""
    return [f"ar.{topology}.n{num_gpus}", f"ar.{topology}", "ar"]


def validate_params(params: Mapping[str, Any], where: str = "efficiency") -> dict[str, float]:
    """Check that every parameter is a known name with a positive finite value."""
    out: dict[str, float] = {}
    known_prefixes = ("ar.",)
    known = set(_GENERIC)
    for name, value in params.items():
        if name not in known and not name.startswith(known_prefixes):
            raise ValueError(f"{where}: unknown parameter {name!r}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: parameter {name!r} must be a number, got {value!r}") from None
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{where}: parameter {name!r} must be positive and finite, got {v}")
        if name == "p" and v < 1:
            raise ValueError(f"{where}: parameter 'p' must be >= 1, got {v}")
        out[name] = v
    return out


__all__ = [
    "ALL_REDUCE_TOPOLOGIES",
    "GENERIC_PRIOR",
    "KERNEL_TYPES",
    "Prior",
    "all_reduce_keys",
    "default_prior",
    "validate_params",
]
