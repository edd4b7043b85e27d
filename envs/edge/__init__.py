"""Mobile-edge computing: radio physics and a batched system of users, edges and a cloud."""

from .physics import path_loss_db, transmit_energy_j, uplink_rate_bps
from .system import MecBatch, MecConfig

__all__ = ["MecBatch", "MecConfig", "path_loss_db", "transmit_energy_j", "uplink_rate_bps"]
