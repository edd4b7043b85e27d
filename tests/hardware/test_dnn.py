"""Layer-wise DNN time and energy (edge offloading)."""

from __future__ import annotations

import numpy as np
import pytest

from servegym.hardware import DNNLayer, DNNSpec, get_device, get_dnn
from servegym.hardware.dnn import DNNLatency, dnn_inference

EDGE_AND_DC = ("raspberry-pi-5", "phone-soc", "jetson-agx-orin", "l4", "a100", "h100")


@pytest.mark.parametrize("dnn", ["ResNet-50", "MobileNetV2", "YOLOv8n", "BERT-base"])
def test_time_is_the_sum_of_layer_times(dnn):
    lat = DNNLatency(dnn, "jetson-agx-orin")
    assert lat.num_layers == len(get_dnn(dnn).layers) == len(lat.layer_times)
    assert np.all(lat.layer_times > 0)
    assert lat.time() == pytest.approx(float(np.sum(lat.layer_times)), rel=1e-12)
    split = lat.num_layers // 2
    assert lat.time(0, split) + lat.time(split) == pytest.approx(lat.time(), rel=1e-12)
    assert lat.time(3, 3) == 0.0
    assert lat.time(2, 3) == pytest.approx(lat.layer_times[2])


def test_split_output_bytes():
    lat = DNNLatency("resnet50", "a100")
    spec = get_dnn("ResNet-50")
    assert lat.split_output_bytes(0) == spec.input_bytes == 602112
    assert lat.split_output_bytes(1) == spec.layers[0].output_bytes
    assert lat.split_output_bytes(lat.num_layers) == spec.layers[-1].output_bytes


def test_energy_is_time_times_tdp():
    for name in EDGE_AND_DC:
        device = get_device(name)
        cost = DNNLatency("MobileNetV2", device).cost()
        assert cost.energy_j == pytest.approx(cost.time_s * device.tdp_w, rel=1e-12)
        part = DNNLatency("MobileNetV2", device).cost(0, 5)
        assert part.energy_j == pytest.approx(part.time_s * device.tdp_w, rel=1e-12)
    whole = dnn_inference("MobileNetV2", "l4")
    assert whole.time_s == pytest.approx(DNNLatency("MobileNetV2", "l4").time())


def test_faster_device_takes_less_time():
    for dnn in ("ResNet-50", "BERT-base", "Llama-3.2-1B-Prefill-128"):
        times = {d: DNNLatency(dnn, d).time() for d in ("raspberry-pi-5", "jetson-agx-orin", "a100", "h100")}
        assert times["raspberry-pi-5"] > times["jetson-agx-orin"] > times["a100"] > times["h100"], times


def test_one_layer_hand_computed():
    spec = DNNSpec(
        name="one",
        layers=({"name": "fc", "flops": 2e9, "weight_bytes": 4e6, "output_bytes": 4e3},),
        input_bytes=4e3,
        dtype="fp32",
    )
    eff = {"p": 2.0, "gemm.eta_c": 0.5, "gemm.eta_b": 0.5, "gemm.t0_s": 1e-5}
    device = get_device("a100").with_efficiency(eff)
    tc = 2e9 / (0.5 * 19.5e12)  # A100 fp32 peak
    tb = (4e6 + 4e3 + 4e3) / (0.5 * 2.039e12)  # weights + input + output
    assert DNNLatency(spec, device).time() == pytest.approx(1e-5 + np.hypot(tc, tb), rel=1e-12)
    assert DNNLatency(spec, device, dtype="fp16").time() < DNNLatency(spec, device).time()


def test_bad_splits_and_ranges_raise():
    lat = DNNLatency("ResNet-50", "l4")
    n = lat.num_layers
    for split in (-1, n + 1):
        with pytest.raises(ValueError, match=rf"dnn 'ResNet-50': split {split} outside 0..{n}"):
            lat.split_output_bytes(split)
    with pytest.raises(ValueError, match=rf"layer range \[5, 2\) outside 0..{n}"):
        lat.time(5, 2)
    with pytest.raises(ValueError, match="outside"):
        lat.time(0, n + 1)
    with pytest.raises(ValueError, match="outside"):
        lat.cost(-1)


def test_dnn_spec_validation():
    with pytest.raises(ValueError, match="dnn 'x': needs at least one layer"):
        DNNSpec(name="x", layers=(), input_bytes=1)
    with pytest.raises(ValueError, match="dnn 'x' layer 0: flops must be non-negative"):
        DNNSpec(name="x", layers=({"flops": -1, "output_bytes": 1},), input_bytes=1)
    with pytest.raises(ValueError, match=r"dnn 'x' layer 1: unknown field\(s\) \['macs'\]"):
        DNNSpec(name="x", layers=({"flops": 1, "output_bytes": 1}, {"macs": 1}), input_bytes=1)
    with pytest.raises(ValueError, match="dnn 'x': input_bytes must be positive"):
        DNNSpec(name="x", layers=({"flops": 1, "output_bytes": 1},), input_bytes=0)
    spec = DNNSpec(
        name="x", layers=(DNNLayer("a", 1.0, 2.0, 3.0), {"flops": 4, "output_bytes": 5}), input_bytes=1
    )
    assert spec.total_flops == 5.0 and spec.total_weight_bytes == 2.0
    assert spec.layers[1].name == "layer1"
