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
    eff = {
        "p": 2.0,
        "dnn.gemm.eta_c": 0.5,
        "dnn.gemm.eta_b": 0.5,
        "dnn.gemm.t0_s": 1e-5,
        "dnn.gemm.cache_ratio": 1.0,
    }
    device = get_device("a100").with_efficiency(eff)
    tc = 2e9 / (0.5 * 19.5e12)  # A100 fp32 peak
    tb = (4e6 + 4e3 + 4e3) / (0.5 * 2.039e12)  # weights + input + output
    assert DNNLatency(spec, device, "fp32").time() == pytest.approx(1e-5 + np.hypot(tc, tb), rel=1e-12)
    assert DNNLatency(spec, device, dtype="fp16").time() < DNNLatency(spec, device, "fp32").time()


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


# ---- kernel-aware costs -----------------------------------------------------------------------

CONV = {"name": "c", "op": "conv", "in": [16, 32, 32], "out": [32, 32, 32], "k": 3, "bn": True, "act": "relu"}


def _one_kernel_net(kernel: dict, dtype: str = "fp32") -> DNNSpec:
    return DNNSpec(
        name="one",
        layers=({"name": "l", "output_bytes": 4, "kernels": [kernel]},),
        input_bytes=4,
        dtype=dtype,
    )


def test_one_conv_hand_computed_with_and_without_activation_fusion():
    eff = {
        "p": 2.0,
        "dnn.conv.eta_c": 0.5,
        "dnn.conv.eta_b": 0.25,
        "dnn.conv.t0_s": 1e-5,
        "dnn.conv.cache_ratio": 1.0,
        "dnn.act.eta_b": 0.5,
        "dnn.act.t0_s": 2e-6,
        "dnn.act.cache_ratio": 1.0,
    }
    device = get_device("a100").with_efficiency(eff)
    spec = _one_kernel_net(CONV)
    flops = 2.0 * 32 * 16 * 9 * 32 * 32
    weights = 32 * 16 * 9 + 32  # BatchNorm folded into one bias per channel
    byts = 4.0 * (16 * 32 * 32 + 32 * 32 * 32 + weights)
    conv = 1e-5 + np.hypot(flops / (0.5 * 19.5e12), byts / (0.25 * 2.039e12))
    act = 2e-6 + 2 * 4.0 * 32 * 32 * 32 / (0.5 * 2.039e12)  # read and write the output again
    assert spec.layers[0].flops == flops and spec.layers[0].weight_bytes == 4 * (32 * 16 * 9 + 64)
    assert DNNLatency(spec, device, "fp32", fusion="conv-bn-act").time() == pytest.approx(conv, rel=1e-12)
    unfused = DNNLatency(spec, device, "fp32", fusion="conv-bn")
    assert unfused.time() == pytest.approx(conv + act, rel=1e-12)
    assert unfused.type_times() == pytest.approx({"conv": conv, "act": act})


def test_kernel_types_and_counts():
    from servegym.hardware.dnn_kernels import DNNKernel

    def k(**kw):
        return DNNKernel(name="k", **kw)

    assert k(op="conv", inp=(8, 4, 4), out=(8, 4, 4), k=3, g=8).kernel_type == "dwconv"
    assert k(op="conv", inp=(8, 4, 4), out=(16, 2, 2), k=1, s=2).kernel_type == "pwconv"
    assert (
        k(op="conv", inp=(8, 4, 4), out=(16, 4, 4), k=3, g=2).kernel_type == "conv"
    )  # grouped, not depthwise
    assert k(op="act", inp=(8,), out=(8,), act="relu6").kernel_type == "act"
    assert k(op="act", inp=(8,), out=(8,), act="gelu").kernel_type == "act_exp"
    assert k(op="pool", inp=(8, 4, 4), out=(8, 1, 1), kind="avg").kernel_type == "reduce"
    attn = k(op="attention", inp=(10, 64), out=(10, 64), heads=8, kv_heads=2)
    assert attn.flops == 4 * 10 * 10 * 64 and attn.io_elems == 2 * 10 * (64 + 16)
    emb = k(op="embedding", inp=(10,), out=(10, 32), vocab=1000)
    assert emb.params == 32000 and emb.weight_elems == 0  # an embedding reads only the rows it gathers


def test_every_catalog_dnn_is_timed_kernel_by_kernel_on_every_device():
    for dnn in ("MobileNetV2", "ResNet-50", "YOLOv8n", "BERT-base", "Llama-3.2-1B-Prefill-128"):
        spec = get_dnn(dnn)
        assert all(layer.kernels for layer in spec.layers)
        for device in EDGE_AND_DC:
            lat = DNNLatency(dnn, device)
            assert np.all(lat.layer_times > 0)
            assert sum(lat.type_times().values()) == pytest.approx(lat.time(), rel=1e-9)


def test_depthwise_blocks_cost_more_than_their_flops_say():
    """The issue's observation: a FLOP-only view misses MobileNetV2's memory-bound kernels."""
    lat = DNNLatency("MobileNetV2", "x86-server-core")
    types = lat.type_times()
    flops = {t: 0.0 for t in types}
    for kernel in get_dnn("MobileNetV2").kernels:
        flops[kernel.kernel_type] = flops.get(kernel.kernel_type, 0.0) + kernel.flops
    total = sum(flops.values())
    assert types["dwconv"] / lat.time() > 3 * flops["dwconv"] / total


def test_weights_that_do_not_fit_the_cache_cost_more():
    from servegym.hardware.dnn import terms_time
    from servegym.hardware.dnn_kernels import COLD, NETWORK, WARM, terms_table

    device = get_device("x86-server-core")
    kernels = get_dnn("ResNet-50").kernels
    times = {}
    for label, context in (("warm", WARM), ("network", NETWORK), ("cold", COLD)):
        _, terms = terms_table(kernels, 4, context)
        times[label] = terms_time(terms, device, "fp32", "conv-bn").sum()
    assert times["warm"] < times["network"] < times["cold"]
    big = device.with_efficiency({"dnn.cache_bytes": 1e12})  # everything fits: weights stay cached
    small = device.with_efficiency({"dnn.cache_bytes": 1e3})
    _, terms = terms_table(kernels, 4, NETWORK)
    assert terms_time(terms, big, "fp32", "conv-bn").sum() == pytest.approx(times["warm"], rel=1e-3)
    assert terms_time(terms, small, "fp32", "conv-bn").sum() > times["network"]


def test_runtime_dtype_and_fusion_come_from_the_device():
    orin = get_device("jetson-agx-orin")
    assert orin.dnn_runtime.dtype == "int8" and orin.dnn_runtime.fusion == "conv-bn-act"
    lat = DNNLatency("ResNet-50", orin)
    assert lat.dtype == "int8" and lat.fusion == "conv-bn-act"
    assert DNNLatency("ResNet-50", orin, "fp16").time() > lat.time()
    assert DNNLatency("ResNet-50", "a100").dtype == "int8"  # TensorRT INT8 (MLPerf's engines)
    assert DNNLatency("ResNet-50", "x86-server-core").dtype == "fp32"  # no runtime dtype: the DNN's own


def test_dnn_kernel_validation():
    bad_src = dict(CONV, src=["nowhere"])
    with pytest.raises(ValueError, match=r"kernel 'c': src \['nowhere'\] names no earlier kernel"):
        _one_kernel_net(bad_src)
    with pytest.raises(ValueError, match="kernel name 'c' is used twice"):
        DNNSpec(name="x", layers=({"name": "l", "output_bytes": 1, "kernels": [CONV, CONV]},), input_bytes=4)
    with pytest.raises(ValueError, match="flops 5 disagrees with its kernels' sum"):
        DNNSpec(
            name="x", layers=({"name": "l", "flops": 5, "output_bytes": 1, "kernels": [CONV]},), input_bytes=4
        )
    with pytest.raises(ValueError, match=r"layer 0 kernel 0: unknown kernel field\(s\) \['stride'\]"):
        _one_kernel_net(dict(CONV, stride=2))
    with pytest.raises(ValueError, match="op must be one of"):
        _one_kernel_net(dict(CONV, op="deconv"))
    with pytest.raises(ValueError, match="groups 3 must divide the channels 16, 32"):
        _one_kernel_net(dict(CONV, g=3))
    with pytest.raises(ValueError, match="missing kernel field 'in'"):
        _one_kernel_net({"name": "c", "op": "conv", "out": [1, 1, 1]})


def test_device_runtime_and_published_latency_validation():
    from servegym.hardware import Device

    base = {"name": "d", "peak_flops": {"fp32": 1e12}, "mem_bandwidth": 1e11, "mem_capacity": 1e9}
    with pytest.raises(ValueError, match=r"dnn_runtime\.fusion must be one of"):
        Device.from_dict({**base, "dnn_runtime": {"fusion": "everything"}})
    with pytest.raises(ValueError, match=r"dnn_runtime\.dtype must be one of"):
        Device.from_dict({**base, "dnn_runtime": {"dtype": "fp64"}})
    with pytest.raises(ValueError, match=r"published_latency\[0\]: published latency needs exactly"):
        Device.from_dict({**base, "published_latency": [{"dnn": "ResNet-50", "seconds": 1e-3}]})
    entry = {"dnn": "ResNet-50", "seconds": 1e-3, "dtype": "int8", "framework": "f", "source": "s"}
    device = Device.from_dict({**base, "published_latency": [entry]})
    assert device.published_latency[0].seconds == 1e-3
    assert Device.from_dict(device.datasheet_dict()) == device


def test_shipped_edge_profiles_are_fitted_on_the_published_timings():
    for name in ("jetson-agx-orin", "phone-soc", "raspberry-pi-5"):
        device = get_device(name)
        assert "published timings" in device.provenance["source"]
        for entry in device.published_latency:
            fitted = DNNLatency(entry.dnn, device, entry.dtype).time()
            zero_shot = DNNLatency(entry.dnn, device.with_efficiency({}), entry.dtype).time()
            # calibrating moves the prediction toward the published time (or it was already there)
            assert abs(np.log(fitted / entry.seconds)) <= abs(np.log(zero_shot / entry.seconds)) + 0.02
