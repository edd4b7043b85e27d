"""Devices: datasheet numbers plus calibrated efficiency parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .dnn_kernels import FUSIONS
from .model_spec import DTYPE_BYTES
from .params import GENERIC_PRIOR, Prior, default_prior, validate_params
from .validation import name_list, positive

DEVICE_KINDS = ("gpu", "edge_gpu", "cpu", "soc")
INTERCONNECTS = ("nvlink", "pcie", "none")
# Dtypes that may stand in for one another when a datasheet lists only one of them.
_DTYPE_FALLBACK = {"bf16": ("fp16",), "fp16": ("bf16",), "fp8": ("int8",), "int8": ("fp8",)}


@dataclass(frozen=True)
class DNNRuntime:
    """How a device runs layer-wise DNNs: the framework, the dtype it runs them in ("": the
    DNN's own dtype) and which operators it fuses (``dnn_kernels.FUSIONS``)."""

    name: str = ""
    dtype: str = ""
    fusion: str = "conv-bn-act"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> DNNRuntime:
        if isinstance(data, DNNRuntime):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: dnn_runtime must be a mapping with name, dtype, fusion")
        unknown = set(data) - {"name", "dtype", "fusion"}
        if unknown:
            raise ValueError(f"{where}: unknown dnn_runtime field(s) {sorted(unknown)}")
        runtime = cls(**{k: str(v or "") for k, v in data.items()})
        dtype = runtime.dtype.lower()
        if dtype and dtype not in DTYPE_BYTES:
            raise ValueError(
                f"{where}: dnn_runtime.dtype must be one of {sorted(DTYPE_BYTES)}, got {dtype!r}"
            )
        if runtime.fusion not in FUSIONS:
            raise ValueError(
                f"{where}: dnn_runtime.fusion must be one of {list(FUSIONS)}, got {runtime.fusion!r}"
            )
        return replace(runtime, dtype=dtype)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "dtype": self.dtype, "fusion": self.fusion}


@dataclass(frozen=True)
class PublishedLatency:
    """A published batch-1 inference time of a catalog DNN on this device (for checking)."""

    dnn: str
    seconds: float
    dtype: str
    framework: str
    source: str

    @classmethod
    def from_dict(cls, data: Any, where: str) -> PublishedLatency:
        if isinstance(data, PublishedLatency):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: a published latency must be a mapping")
        missing = {"dnn", "seconds", "dtype", "framework", "source"} - set(data)
        unknown = set(data) - {"dnn", "seconds", "dtype", "framework", "source"}
        if missing or unknown:
            raise ValueError(
                f"{where}: published latency needs exactly dnn, seconds, dtype, framework, source "
                f"(missing {sorted(missing)}, unknown {sorted(unknown)})"
            )
        dtype = str(data["dtype"]).lower()
        if dtype not in DTYPE_BYTES:
            raise ValueError(f"{where}: dtype must be one of {sorted(DTYPE_BYTES)}, got {dtype!r}")
        return cls(
            dnn=str(data["dnn"]),
            seconds=positive(where, "seconds", data["seconds"]),
            dtype=dtype,
            framework=str(data["framework"]),
            source=str(data["source"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dnn": self.dnn,
            "seconds": float(self.seconds),
            "dtype": self.dtype,
            "framework": self.framework,
            "source": self.source,
        }


@dataclass(frozen=True)
class Device:
    """One accelerator or CPU: datasheet peaks (SI units) and fitted efficiencies.

    ``efficiency`` holds only the parameters fitted for this device; any other parameter
    falls back to the prior mean (see :mod:`servegym.hardware.params`).
    """

    name: str
    peak_flops: Mapping[str, float]
    mem_bandwidth: float
    mem_capacity: float
    kind: str = "gpu"
    interconnect_bandwidth: float = 0.0
    interconnect: str = "none"
    tdp_w: float = 0.0
    idle_w: float = 0.0
    price_per_hour_usd: float = 0.0  # renting one device for an hour (0: not in the catalog)
    aliases: tuple[str, ...] = ()
    dnn_runtime: DNNRuntime = field(default_factory=DNNRuntime)
    published_latency: tuple[PublishedLatency, ...] = ()
    efficiency: Mapping[str, float] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"device {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("device: name must be a non-empty string")
        if self.kind not in DEVICE_KINDS:
            raise ValueError(f"{where}: kind must be one of {DEVICE_KINDS}, got {self.kind!r}")
        if self.interconnect not in INTERCONNECTS:
            raise ValueError(
                f"{where}: interconnect must be one of {INTERCONNECTS}, got {self.interconnect!r}"
            )
        if not isinstance(self.peak_flops, Mapping) or not self.peak_flops:
            raise ValueError(f"{where}: peak_flops must map dtype -> FLOP/s (e.g. fp16: 312e12)")
        flops = {
            str(k).lower(): positive(where, f"peak_flops.{k}", v)
            for k, v in self.peak_flops.items()
            if v is not None
        }
        object.__setattr__(self, "peak_flops", flops)
        object.__setattr__(self, "mem_bandwidth", positive(where, "mem_bandwidth", self.mem_bandwidth))
        object.__setattr__(self, "mem_capacity", positive(where, "mem_capacity", self.mem_capacity))
        for name in ("interconnect_bandwidth", "tdp_w", "idle_w", "price_per_hour_usd"):
            object.__setattr__(self, name, positive(where, name, getattr(self, name), allow_zero=True))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "dnn_runtime", DNNRuntime.from_dict(self.dnn_runtime, where))
        if isinstance(self.published_latency, (str, Mapping)) or not isinstance(
            self.published_latency, (list, tuple)
        ):
            raise ValueError(f"{where}: published_latency must be a list of mappings")
        object.__setattr__(
            self,
            "published_latency",
            tuple(
                PublishedLatency.from_dict(p, f"{where} published_latency[{i}]")
                for i, p in enumerate(self.published_latency)
            ),
        )
        object.__setattr__(self, "efficiency", validate_params(self.efficiency, f"{where} efficiency"))

    def peak(self, dtype: str = "fp16") -> float:
        """Dense peak FLOP/s for ``dtype`` (bf16/fp16 stand in for each other)."""
        dtype = dtype.lower()
        for candidate in (dtype, *_DTYPE_FALLBACK.get(dtype, ())):
            if candidate in self.peak_flops:
                return self.peak_flops[candidate]
        raise ValueError(
            f"device {self.name!r} has no peak FLOP/s for dtype {dtype!r}; it lists {sorted(self.peak_flops)}"
        )

    @property
    def link_bandwidth(self) -> float:
        """One-direction bytes/s of the GPU-to-GPU link (datasheets quote both directions)."""
        return self.interconnect_bandwidth / 2.0

    @property
    def default_topology(self) -> str:
        """Node topology assumed for tensor parallelism unless one is given."""
        return "nvswitch" if self.interconnect == "nvlink" else "pcie"

    @property
    def active_power_w(self) -> float:
        """Power drawn while computing (the board limit when nothing better is known)."""
        return self.tdp_w

    def param(self, name: str, prior: Prior | None = None) -> float:
        """An efficiency parameter: fitted for this device, else the prior mean."""
        if name in self.efficiency:
            return self.efficiency[name]
        prior = prior or default_prior()
        # A prior file older than a parameter lacks it: the generic constant stands in.
        return prior.mean[name] if name in prior.mean else GENERIC_PRIOR.mean[name]

    def with_efficiency(self, efficiency: Mapping[str, float], **provenance: Any) -> Device:
        """A copy with these efficiency parameters and provenance."""
        return replace(self, efficiency=dict(efficiency), provenance=dict(provenance))

    def datasheet_dict(self) -> dict[str, Any]:
        """The datasheet fields as plain YAML-able data."""
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "kind": self.kind,
            "peak_flops": {k: float(v) for k, v in self.peak_flops.items()},
            "mem_bandwidth": float(self.mem_bandwidth),
            "mem_capacity": float(self.mem_capacity),
            "interconnect_bandwidth": float(self.interconnect_bandwidth),
            "interconnect": self.interconnect,
            "tdp_w": float(self.tdp_w),
            "idle_w": float(self.idle_w),
            "price_per_hour_usd": float(self.price_per_hour_usd),
            "dnn_runtime": self.dnn_runtime.to_dict(),
            "published_latency": [p.to_dict() for p in self.published_latency],
            "sources": dict(self.sources),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "device") -> Device:
        """Build from a catalog/profile mapping; unknown keys are an error naming them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: a device must be a mapping, got {type(data).__name__}")
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(
                f"{where}: unknown device field(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        missing = {"name", "peak_flops", "mem_bandwidth", "mem_capacity"} - set(data)
        if missing:
            raise ValueError(f"{where}: missing device field(s) {sorted(missing)}")
        kwargs = dict(data)
        kwargs["aliases"] = name_list(where, "aliases", kwargs.get("aliases"))
        kwargs["sources"] = dict(kwargs.get("sources") or {})
        kwargs["efficiency"] = dict(kwargs.get("efficiency") or {})
        kwargs["provenance"] = dict(kwargs.get("provenance") or {})
        return cls(**kwargs)
