"""Write a policy's arrays as an ONNX graph with normalisation and action masking inside.

Inputs: ``obs`` float32 [N, n_obs] (raw, unnormalised) and ``action_mask`` bool [N, n_actions]
(all-true when there is no mask). Outputs: ``action`` int64 [N] and ``scores`` float32 [N, A].
The graph is built from the arrays with ``onnx.helper`` (no torch tracing); the metadata JSON
is stored in the model's ``metadata_props`` under ``servegym``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .bundle import PolicyMetadata
from .mlp import MlpPolicyArrays

OPSET = 17
METADATA_KEY = "servegym"


def _activation(name: str, x: str, out: str, nodes: list, consts: list) -> None:
    if name == "relu":
        nodes.append(helper.make_node("Relu", [x], [out]))
    elif name == "tanh":
        nodes.append(helper.make_node("Tanh", [x], [out]))
    elif name == "elu":
        nodes.append(helper.make_node("Elu", [x], [out], alpha=1.0))
    elif name == "leaky_relu":
        nodes.append(helper.make_node("LeakyRelu", [x], [out], alpha=0.01))
    elif name == "silu":
        nodes += [
            helper.make_node("Sigmoid", [x], [f"{out}_sig"]),
            helper.make_node("Mul", [x, f"{out}_sig"], [out]),
        ]
    elif name == "gelu":
        consts += [
            numpy_helper.from_array(np.array(1 / np.sqrt(2), np.float32), f"{out}_k"),
            numpy_helper.from_array(np.array(1.0, np.float32), f"{out}_one"),
            numpy_helper.from_array(np.array(0.5, np.float32), f"{out}_half"),
        ]
        nodes += [
            helper.make_node("Mul", [x, f"{out}_k"], [f"{out}_a"]),
            helper.make_node("Erf", [f"{out}_a"], [f"{out}_e"]),
            helper.make_node("Add", [f"{out}_e", f"{out}_one"], [f"{out}_p"]),
            helper.make_node("Mul", [x, f"{out}_p"], [f"{out}_xp"]),
            helper.make_node("Mul", [f"{out}_xp", f"{out}_half"], [out]),
        ]
    else:
        raise ValueError(f"no ONNX form for activation {name!r}")


def to_onnx(policy: MlpPolicyArrays) -> onnx.ModelProto:
    meta = policy.metadata
    n_obs, n_act = int(np.prod(meta.obs_shape)), meta.n_actions
    clip = policy.clip if np.isfinite(policy.clip) else np.float32(3.0e38)
    consts = [
        numpy_helper.from_array(policy.mean, "norm_mean"),
        numpy_helper.from_array(policy.scale, "norm_scale"),
        numpy_helper.from_array(np.array(-clip, np.float32), "clip_lo"),
        numpy_helper.from_array(np.array(clip, np.float32), "clip_hi"),
        numpy_helper.from_array(np.array(-np.inf, np.float32), "neg_inf"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("Sub", ["obs", "norm_mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "norm_scale"], ["scaled"]),
        helper.make_node("Clip", ["scaled", "clip_lo", "clip_hi"], ["h0"]),
    ]
    x = "h0"
    last = len(policy.weights) - 1
    for i, (w, b) in enumerate(zip(policy.weights, policy.biases, strict=True)):
        consts += [
            numpy_helper.from_array(np.ascontiguousarray(w.T), f"W{i}"),
            numpy_helper.from_array(b, f"b{i}"),
        ]
        out = "scores" if i == last else f"z{i}"
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"b{i}"], [out]))
        if i < last:
            _activation(policy.activations[i], out, f"h{i + 1}", nodes, consts)
            x = f"h{i + 1}"
    nodes += [  # rows with no allowed action fall back to every action
        helper.make_node("Cast", ["action_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["mask_f"], ["any_allowed"], axes=[1], keepdims=1),
        helper.make_node("Equal", ["any_allowed", "zero"], ["none_allowed"]),
        helper.make_node("Or", ["action_mask", "none_allowed"], ["allowed"]),
        helper.make_node("Where", ["allowed", "scores", "neg_inf"], ["masked_scores"]),
        helper.make_node("ArgMax", ["masked_scores"], ["action"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "servegym_policy",
        [
            helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["N", n_obs]),
            helper.make_tensor_value_info("action_mask", TensorProto.BOOL, ["N", n_act]),
        ],
        [
            helper.make_tensor_value_info("action", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", n_act]),
        ],
        initializer=consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="servegym")
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    onnx.checker.check_model(model)
    return model


def save_onnx(policy: MlpPolicyArrays, path: str | Path) -> None:
    onnx.save(to_onnx(policy), str(path))


def read_onnx_metadata(path: str | Path) -> PolicyMetadata:
    """The servegym metadata of an exported file (reads the protobuf; runs nothing)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and others for corrupt files
        raise ValueError(f"{path}: not a readable ONNX file: {err}") from err
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f"{path}: an ONNX file without servegym metadata (export it with `servegym export`)")
    return PolicyMetadata.from_json(props[METADATA_KEY], str(path))
