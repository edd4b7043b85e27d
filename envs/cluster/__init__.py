"""The replica pool behind the autoscaling environments: replicas, their service curves, and
the pool that starts, routes to, drains and bills them (fast or engine fidelity)."""

from .fast_pool import DRAINING, EMPTY, READY, STARTING
from .pool import FIDELITIES, ROUTERS, SUBSTEP_S, ReplicaPool
from .replica import STORAGE_TIERS, ColdStart, ReplicaSpec
from .service_curves import ServiceCurves, service_curves

__all__ = [
    "DRAINING",
    "EMPTY",
    "FIDELITIES",
    "READY",
    "ROUTERS",
    "STARTING",
    "STORAGE_TIERS",
    "SUBSTEP_S",
    "ColdStart",
    "ReplicaPool",
    "ReplicaSpec",
    "ServiceCurves",
    "service_curves",
]
