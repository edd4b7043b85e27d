"""Inference time and energy of layer-wise DNNs on any device (for edge offloading).

Each layer is timed like a GEMM kernel of the device (smooth roofline over its FLOPs and the
bytes it moves: weights, input and output activations, plus the fixed kernel time), so a
calibrated device profile carries over. Energy is active power x time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalog import get_device, get_dnn
from .device import Device
from .latency import gemm_time
from .model_spec import DNNSpec


@dataclass(frozen=True)
class InferenceCost:
    """Seconds and joules of running some layers of a DNN on a device."""

    time_s: float
    energy_j: float


class DNNLatency:
    """Per-layer times of ``dnn`` on ``device``; prefix/suffix sums for split points."""

    def __init__(self, dnn: DNNSpec | str, device: Device | str, dtype: str | None = None) -> None:
        self.dnn = get_dnn(dnn)
        self.device = get_device(device)
        self.dtype = dtype or self.dnn.dtype
        flops = np.array([layer.flops for layer in self.dnn.layers])
        outputs = np.array([layer.output_bytes for layer in self.dnn.layers])
        inputs = np.concatenate([[self.dnn.input_bytes], outputs[:-1]])
        weights = np.array([layer.weight_bytes for layer in self.dnn.layers])
        self.layer_times = np.asarray(gemm_time(flops, weights + inputs + outputs, self.device, self.dtype))
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


def dnn_inference(dnn: DNNSpec | str, device: Device | str, dtype: str | None = None) -> InferenceCost:
    """Time and energy of one whole batch-1 inference of ``dnn`` on ``device``."""
    return DNNLatency(dnn, device, dtype).cost()
