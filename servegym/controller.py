"""The Controller protocol: one interface for every decision maker (heuristic or learned)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Controller(Protocol):
    """Decides an env's action from its observation and info.

    Heuristics read ``info["metrics"]`` (what a live system reports) and ``info["scenario"]``
    (the env's frozen scenario object: static facts an operator knows, such as model, GPU and
    SLOs, with accessors like ``latency_model()``); learned policies read ``obs``.
    Controllers that read simulator state are oracles and say so in their name (``*Oracle``).
    """

    name: str

    def reset(self, seed: int | None = None) -> None:
        """Forget episode state (called after each ``env.reset``)."""

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int | np.ndarray:
        """The action for the current decision."""
