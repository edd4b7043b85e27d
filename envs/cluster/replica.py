"""What one replica is: the serving instance, its workload mix and SLOs, its start-up time and price.

A replica of an LLM service is one serving engine (model, GPU, TP) behind a router. Starting one
takes a cold start: container start, loading the weights from a storage tier, engine
initialisation (``T_cold = T_container + bytes / bandwidth + T_init``,
../shared/reference/autoscaling_mec.md A6). A replica from the warm pool already holds the
weights in host memory and skips the storage read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

from servegym.workloads import LengthDistribution

from ..serving import EngineConfig

GIB = 2**30
STORAGE_TIERS: dict[str, tuple[float, str]] = {
    # tier: (bytes/s, source)
    "ssd": (1.5 * GIB, "cloud SSD, 1.03-1.96 GiB/s (Run:ai model streamer benchmark, GP3/IO2)"),
    "s3-streamer": (3.51 * GIB, "S3 via the Run:ai model streamer, 3.51 GiB/s (its benchmark)"),
    "nvme-cache": (20e9, "ServerlessLLM-store from NVMe, ~20 GB/s (computed from its README)"),
    "host-memory": (50e9, "ServerlessLLM-store cached in host memory, ~50 GB/s (computed from its README)"),
}
"""Where a cold-starting replica reads its weights from (reference A6)."""


@dataclass(frozen=True)
class ColdStart:
    """Start-up time of a replica: ``container_s + weight bytes / tier bandwidth + engine_init_s``.

    ``container_s`` (container start with a cached image) and ``engine_init_s`` (vLLM's
    memory profiling and CUDA-graph capture) are documented assumptions, not measurements;
    set them from your own deployment. A warm-pool replica reads from host memory.
    """

    tier: str = "ssd"
    container_s: float = 5.0
    engine_init_s: float = 20.0

    def __post_init__(self) -> None:
        if self.tier not in STORAGE_TIERS:
            raise ValueError(f"cold start: tier must be one of {sorted(STORAGE_TIERS)}, got {self.tier!r}")
        for name in ("container_s", "engine_init_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"cold start: {name} must be a number of seconds >= 0, got {value!r}")

    def seconds(self, weight_bytes: float, warm: bool = False) -> float:
        bandwidth = STORAGE_TIERS["host-memory" if warm else self.tier][0]
        return self.container_s + weight_bytes / bandwidth + self.engine_init_s


@dataclass(frozen=True)
class ReplicaSpec:
    """One replica type: the engine it runs, the request mix it serves, its SLOs and price."""

    engine: EngineConfig
    lengths: LengthDistribution
    cold_start: ColdStart = field(default_factory=ColdStart)
    price_per_gpu_hour: float = 0.0  # 0: the device catalog's price

    def __post_init__(self) -> None:
        price = self.price_per_gpu_hour or self.engine.device.price_per_hour_usd
        if not (math.isfinite(price) and price > 0):
            raise ValueError(
                f"replica: no price for {self.engine.device.name} in the device catalog; "
                "pass gpu_price_per_hour (USD per GPU-hour)"
            )
        object.__setattr__(self, "price_per_gpu_hour", float(price))

    def __deepcopy__(self, memo: dict) -> ReplicaSpec:
        return self  # frozen

    @property
    def gpus(self) -> int:
        return self.engine.tp

    @cached_property
    def cold_start_s(self) -> float:
        return self.cold_start.seconds(self.engine.model.weight_bytes)

    @cached_property
    def warm_start_s(self) -> float:
        return self.cold_start.seconds(self.engine.model.weight_bytes, warm=True)

    @property
    def cost_per_replica_s(self) -> float:
        """USD per second of one replica (all its GPUs)."""
        return self.price_per_gpu_hour * self.gpus / 3600.0
