"""Catalog DNNs built as torch modules agree with the catalog (FLOPs, parameters, shapes)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from servegym.hardware import get_dnn, list_dnns
from servegym.hardware.dnn_kernels import DNNKernel
from servegym.hardware.dnn_torch import (
    build_module,
    chain_callable,
    example_input,
    kernel_callable,
    module_parameter_count,
)

# flop_counter knows sdpa's CUDA kernels but not the CPU flash kernel: count it with torch's
# own sdpa formula (on the meta device sdpa takes the math path, which is counted anyway).
CPU_SDPA = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: (
        lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v)
    )
}
MATMUL_OPS = ("conv", "linear", "attention", "dfl")  # what flop_counter counts


def _counted_flops(kernels) -> float:
    return sum(k.flops for k in kernels if k.op in MATMUL_OPS)


@pytest.mark.parametrize("name", list_dnns())
def test_module_flops_and_parameters_match_the_catalog(name):
    spec = get_dnn(name)
    with torch.device("meta"):
        module = build_module(spec)
        x = example_input(spec)
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=CPU_SDPA) as counter:
        module(x)
    assert counter.get_total_flops() == pytest.approx(_counted_flops(spec.kernels), rel=0.01)
    assert module_parameter_count(module) == pytest.approx(spec.param_count, rel=0.01)
    # layer by layer: each layer's kernels, FLOPs from torch, parameters from its modules
    per_module = counter.get_flop_counts()
    first = 0
    for layer in spec.layers:
        steps = range(first, first + len(layer.kernels))
        torch_flops = sum(sum(per_module.get(f"DNNModule.steps.{i}", {}).values()) for i in steps)
        assert torch_flops == pytest.approx(_counted_flops(layer.kernels), rel=0.01, abs=1.0), layer.name
        params = sum(p.numel() for i in steps for p in module.steps[i].parameters(recurse=True))
        weights = layer.weight_bytes / (2 if spec.dtype == "fp16" else 4)
        assert params == pytest.approx(weights, rel=0.01, abs=1.0), layer.name
        first += len(layer.kernels)


def test_catalog_layer_totals_are_their_kernels_sums():
    for name in list_dnns():
        spec = get_dnn(name)
        for layer in spec.layers:
            assert layer.flops == pytest.approx(sum(k.flops for k in layer.kernels)), (name, layer.name)


def test_mobilenet_runs_and_batchnorm_folding_keeps_the_output():
    torch.manual_seed(0)
    module = build_module("MobileNetV2")
    for step in module.steps:  # non-trivial running statistics, so folding has work to do
        if step.bn is not None:
            step.bn.running_mean.uniform_(-0.5, 0.5)
            step.bn.running_var.uniform_(0.5, 2.0)
            step.bn.weight.data.uniform_(0.5, 1.5)
            step.bn.bias.data.uniform_(-0.2, 0.2)
    x = example_input("MobileNetV2")
    with torch.inference_mode():
        before = module(x)
        after = module.fold_batchnorm()(x)
    assert before.shape == (1, 1, 1000)
    assert all(step.bn is None for step in module.steps)
    torch.testing.assert_close(after, before, rtol=1e-3, atol=1e-3)


def test_yolo_and_bert_produce_their_catalog_output_shapes():
    with torch.device("meta"):
        for name in ("YOLOv8n", "BERT-base", "Llama-3.2-1B-Prefill-128"):
            spec = get_dnn(name)
            out = build_module(spec)(example_input(spec))
            assert tuple(out.shape[1:]) == spec.kernels[-1].out, name


@pytest.mark.parametrize(
    "kernel",
    [
        DNNKernel(name="c", op="conv", inp=(8, 10, 10), out=(16, 5, 5), k=3, s=2, bn=True, act="relu6"),
        DNNKernel(name="d", op="conv", inp=(8, 10, 10), out=(8, 10, 10), k=3, g=8, bn=True),
        DNNKernel(name="l", op="linear", inp=(4, 8), out=(4, 16), act="gelu"),
        DNNKernel(name="a", op="attention", inp=(6, 16), out=(6, 16), heads=4, kv_heads=2, causal=True),
        DNNKernel(name="p", op="pool", inp=(4, 9, 9), out=(4, 5, 5), kind="max", k=3, s=2),
        DNNKernel(name="g", op="pool", inp=(4, 9, 9), out=(4, 1, 1), kind="avg"),
        DNNKernel(name="n", op="norm", inp=(4, 8), out=(4, 8), kind="rms"),
        DNNKernel(name="e", op="embedding", inp=(5,), out=(5, 8), vocab=11, kind="input"),
        DNNKernel(name="r", op="rope", inp=(5, 16), out=(5, 16), heads=2),
        DNNKernel(name="u", op="upsample", inp=(4, 3, 3), out=(4, 6, 6), s=2),
        DNNKernel(name="s", op="slice", inp=(8, 3, 3), out=(4, 3, 3), start=4, stop=8),
        DNNKernel(name="k", op="concat", inp=(4, 3, 3), out=(8, 3, 3)),
        DNNKernel(name="f", op="dfl", inp=(7, 64), out=(7, 4)),
    ],
)
def test_each_kernel_runs_alone_with_its_output_shape(kernel):
    run = kernel_callable(kernel)
    with torch.inference_mode():
        out = run()
        run.touch_inputs()
    assert tuple(out.shape) == (1, *kernel.out)


def test_chain_wires_kernels_one_after_the_other():
    a = DNNKernel(name="a", op="conv", inp=(4, 8, 8), out=(8, 8, 8), k=1, bn=True)
    b = DNNKernel(name="b", op="conv", inp=(8, 8, 8), out=(8, 8, 8), k=3, g=8, bn=True)
    with torch.inference_mode():
        assert tuple(chain_callable([a, b])().shape) == (1, 8, 8, 8)


def test_an_nhwc_concat_alone_needs_its_source_shapes():
    kernel = DNNKernel(name="k", op="concat", inp=(4, 2, 2), out=(8, 4), kind="nhwc")
    with pytest.raises(ValueError, match="needs its source_shapes"):
        kernel_callable(kernel)
    with torch.inference_mode():
        assert tuple(kernel_callable(kernel, source_shapes=[(4, 2, 2), (4, 2, 2)])().shape) == (1, 8, 4)
