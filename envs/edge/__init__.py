"""Mobile-edge computing: radio physics, the compiled per-row rules, and a batched system of users,
edges and a cloud."""

from .physics import path_loss_db, transmit_energy_j, uplink_rate_bps
from .rules import DELAY_REF_S, ENERGY_REF_J, normalised_objectives, scalarised_cost
from .system import MecBatch, MecConfig

__all__ = [
    "DELAY_REF_S",
    "ENERGY_REF_J",
    "MecBatch",
    "MecConfig",
    "normalised_objectives",
    "path_loss_db",
    "scalarised_cost",
    "transmit_energy_j",
    "uplink_rate_bps",
]
