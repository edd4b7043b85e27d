#!/usr/bin/env python3
"""Generate ``servegym/hardware/catalog/dnns.yaml`` from architecture definitions.

Everything is computed analytically from the layer shapes written below (plain Python:
no torch/torchvision, no downloads), for batch-1 inference:

* MobileNetV2 (224x224, fp32), one entry per inverted-residual block;
* ResNet-50 (224x224, fp32), one entry per bottleneck block;
* YOLOv8n (640x640, fp32), one entry per module of ultralytics' yolov8.yaml;
* BERT-base (sequence 128, fp32): embeddings, 12 encoder layers, pooler;
* Llama-3.2-1B prefill of 128 tokens (fp16 weights and activations): embedding,
  16 decoder layers, final norm + LM head.

Counting rules (the same for every network):

* ``flops`` = 2 x multiply-accumulates of conv / linear / attention matmuls, plus
  1 FLOP per element for residual adds and embedding sums, and k*k per output element
  for pooling windows. BatchNorm (folded at inference), activations, softmax and
  normalisation layers are not counted, as in the published MAC/FLOP figures.
* ``weight_bytes`` = trainable parameters x bytes per element (BatchNorm gamma/beta
  included, running statistics not; matches the published parameter counts).
* ``output_bytes`` = bytes that must be sent if the network is split right after the
  layer. For the sequential networks this is the layer's output; for YOLOv8n it also
  includes the skip tensors still needed by later Concat/Detect modules.

Run ``python tools/gen_dnn_catalog.py`` to rewrite the YAML (``--check`` only prints and
checks). Each network's totals are asserted to be within 10 % of a published figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

FP32 = 4
FP16 = 2
INT64 = 8
TOLERANCE = 0.10
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "servegym" / "hardware" / "catalog" / "dnns.yaml"


# ------------------------------------------------------------------------------ builders
@dataclass
class Layer:
    name: str
    flops: int = 0
    params: int = 0
    out_elems: int = 0
    inputs: tuple[int, ...] = ()  # indices of earlier layers consumed (-1 = network input)


@dataclass
class Net:
    name: str
    aliases: list[str]
    dtype: str
    elem_bytes: int
    input_bytes: int
    sources: dict[str, str]
    layers: list[Layer] = field(default_factory=list)
    published: dict[str, float] = field(default_factory=dict)  # "flops"/"params" -> figure
    param_dedup: int = 0  # parameters counted twice in weight_bytes (tied weights)

    def add(self, layer: Layer) -> int:
        if not layer.inputs:
            layer.inputs = (len(self.layers) - 1,)
        if any(layer.name == other.name for other in self.layers):
            raise ValueError(f"{self.name}: duplicate layer name {layer.name!r}")
        self.layers.append(layer)
        return len(self.layers) - 1

    # -- totals ---------------------------------------------------------------------
    @property
    def total_flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers) - self.param_dedup

    def output_bytes(self) -> list[int]:
        """Bytes live across the cut after each layer (skip tensors included)."""
        n = len(self.layers)
        last_use = list(range(n))
        for i, layer in enumerate(self.layers):
            for j in layer.inputs:
                if j >= 0:
                    last_use[j] = max(last_use[j], i)
        out = []
        for i in range(n):
            live = [j for j in range(i + 1) if last_use[j] > i or j == i]
            out.append(sum(self.layers[j].out_elems for j in live) * self.elem_bytes)
        return out


class ConvCounter:
    """Conv2d/Linear arithmetic (weights without bias unless asked, optional BN)."""

    @staticmethod
    def out_hw(h: int, k: int, s: int, p: int | None = None) -> int:
        p = k // 2 if p is None else p
        return (h + 2 * p - k) // s + 1

    @staticmethod
    def conv(
        cin: int,
        cout: int,
        k: int,
        s: int,
        h: int,
        w: int,
        *,
        groups: int = 1,
        bias: bool = False,
        bn: bool = True,
    ) -> tuple[int, int, int, int]:
        """(macs, params, h_out, w_out) of a k x k conv with 'same'-style padding."""
        ho, wo = ConvCounter.out_hw(h, k, s), ConvCounter.out_hw(w, k, s)
        weights = cout * (cin // groups) * k * k
        macs = weights * ho * wo
        params = weights + (cout if bias else 0) + (2 * cout if bn else 0)
        return macs, params, ho, wo


conv = ConvCounter.conv


# ------------------------------------------------------------------------------ MobileNetV2
def mobilenet_v2() -> Net:
    # Published: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks"
    # (CVPR 2018), Table 4: MobileNetV2 (1.0, 224x224) 300M multiply-adds, 3.4M params.
    net = Net(
        name="MobileNetV2",
        aliases=["mobilenetv2", "mobilenet_v2", "mobilenet-v2", "mobilenetv2-1.0-224"],
        dtype="fp32",
        elem_bytes=FP32,
        input_bytes=3 * 224 * 224 * FP32,
        sources={
            "all": "Generated by tools/gen_dnn_catalog.py from the torchvision mobilenet_v2 "
            "architecture (width 1.0, 224x224, batch 1, fp32); one layer per "
            "inverted-residual block",
            "layers": "Sandler et al. 2018 (MobileNetV2, CVPR), Table 4: 300M multiply-adds "
            "(= 0.6 GFLOPs), 3.4M parameters; generated totals are asserted within 10%",
        },
        published={"flops": 2 * 300e6, "params": 3.4e6},
    )
    h = w = 224
    macs, params, h, w = conv(3, 32, 3, 2, h, w)
    net.add(Layer("conv_stem", 2 * macs, params, 32 * h * w, (-1,)))
    cin = 32
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    block = 1
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            flops = params = 0
            hh, ww = h, w
            if t != 1:
                m, p, hh, ww = conv(cin, hidden, 1, 1, hh, ww)
                flops, params = flops + 2 * m, params + p
            m, p, hh, ww = conv(hidden, hidden, 3, stride, hh, ww, groups=hidden)
            flops, params = flops + 2 * m, params + p
            m, p, hh, ww = conv(hidden, c, 1, 1, hh, ww)
            flops, params = flops + 2 * m, params + p
            if stride == 1 and cin == c:
                flops += c * hh * ww  # residual add
            net.add(Layer(f"block{block:02d}", flops, params, c * hh * ww))
            block += 1
            cin, h, w = c, hh, ww
    macs, params, h, w = conv(cin, 1280, 1, 1, h, w)
    net.add(Layer("conv_last", 2 * macs, params, 1280 * h * w))
    net.add(Layer("avgpool", 1280 * h * w, 0, 1280))
    net.add(Layer("classifier", 2 * 1280 * 1000, 1280 * 1000 + 1000, 1000))
    return net


# ------------------------------------------------------------------------------ ResNet-50
def resnet50() -> Net:
    # Published: torchvision ResNet50_Weights.IMAGENET1K_V1 docs: 4.09 GFLOPS (torchvision
    # counts multiply-adds, i.e. 4.09 GMACs) and 25,557,032 params; He et al. 2016 give
    # 3.8e9 multiply-adds for the original v1 (stride in the 1x1 conv).
    net = Net(
        name="ResNet-50",
        aliases=["resnet50", "resnet-50", "resnet_50", "resnet50-v1.5"],
        dtype="fp32",
        elem_bytes=FP32,
        input_bytes=3 * 224 * 224 * FP32,
        sources={
            "all": "Generated by tools/gen_dnn_catalog.py from the torchvision resnet50 (v1.5: "
            "stride in the 3x3 conv) architecture, 224x224, batch 1, fp32; one layer per "
            "bottleneck block",
            "layers": "torchvision ResNet50_Weights.IMAGENET1K_V1: 4.09 GFLOPS (multiply-adds, "
            "= 8.18 GFLOPs) and 25,557,032 params; generated totals are asserted within 10%",
        },
        published={"flops": 2 * 4.09e9, "params": 25.557032e6},
    )
    h = w = 224
    macs, params, h, w = conv(3, 64, 7, 2, h, w)
    net.add(Layer("conv1", 2 * macs, params, 64 * h * w, (-1,)))
    ho, wo = ConvCounter.out_hw(h, 3, 2), ConvCounter.out_hw(w, 3, 2)
    net.add(Layer("maxpool", 64 * ho * wo * 9, 0, 64 * ho * wo))
    h, w, cin = ho, wo, 64
    for stage, (width, blocks, stride) in enumerate(
        [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1
    ):
        for b in range(blocks):
            s = stride if b == 0 else 1
            cout = 4 * width
            m1, p1, h1, w1 = conv(cin, width, 1, 1, h, w)
            m2, p2, h2, w2 = conv(width, width, 3, s, h1, w1)
            m3, p3, h3, w3 = conv(width, cout, 1, 1, h2, w2)
            flops, params = 2 * (m1 + m2 + m3), p1 + p2 + p3
            if b == 0:  # projection shortcut
                md, pd, _, _ = conv(cin, cout, 1, s, h, w)
                flops, params = flops + 2 * md, params + pd
            flops += cout * h3 * w3  # residual add
            net.add(Layer(f"layer{stage}.{b}", flops, params, cout * h3 * w3))
            cin, h, w = cout, h3, w3
    net.add(Layer("avgpool", cin * h * w, 0, cin))
    net.add(Layer("fc", 2 * cin * 1000, cin * 1000 + 1000, 1000))
    return net


# ------------------------------------------------------------------------------ YOLOv8n
def yolov8n() -> Net:
    # Published: Ultralytics YOLOv8 docs (docs.ultralytics.com/models/yolov8), detection
    # table: YOLOv8n, 640 px, params 3.2M, FLOPs 8.7B; ultralytics/cfg/models/v8/yolov8.yaml
    # comment: "YOLOv8n summary: 225 layers, 3157200 parameters, ..., 8.9 GFLOPs" (unfused).
    net = Net(
        name="YOLOv8n",
        aliases=["yolov8n", "yolov8-n", "yolo-v8n"],
        dtype="fp32",
        elem_bytes=FP32,
        input_bytes=3 * 640 * 640 * FP32,
        sources={
            "all": "Generated by tools/gen_dnn_catalog.py from ultralytics yolov8.yaml at scale n "
            "(depth 0.33, width 0.25, max_channels 1024; nc 80), 640x640, batch 1, fp32; "
            "one layer per yaml module (Conv, C2f, SPPF, Upsample, Concat, Detect)",
            "output_bytes": "includes skip tensors still needed later (outputs of modules "
            "4, 6, 9, 12, "
            "15, 18 feed Concat/Detect), i.e. the bytes crossing a cut after the module; "
            "Detect outputs the decoded (1, 84, 8400) tensor before NMS",
            "layers": "Ultralytics YOLOv8 docs: YOLOv8n params 3.2M, FLOPs 8.7B at 640 "
            "(yolov8.yaml: 3,157,200 params unfused); generated totals are asserted within 10%",
        },
        published={"flops": 8.7e9, "params": 3.2e6},
    )
    depth, width_mult, max_ch = 0.33, 0.25, 1024

    def ch(c: int) -> int:
        return int(min(c, max_ch) * width_mult)

    def reps(n: int) -> int:
        return max(round(n * depth), 1) if n > 1 else n

    shapes: list[tuple[int, int, int]] = []  # (c, h, w) of each module's output

    def add(name: str, flops: int, params: int, c: int, h: int, w: int, inputs: tuple[int, ...]) -> None:
        net.add(Layer(f"{len(shapes):02d}_{name}", flops, params, c * h * w, inputs))
        shapes.append((c, h, w))

    def conv_mod(c1, c2, k, s, h, w):
        m, p, ho, wo = conv(c1, c2, k, s, h, w)
        return 2 * m, p, ho, wo

    def c2f(c1, c2, n, shortcut, h, w):
        c = int(c2 * 0.5)
        f, p, _, _ = conv_mod(c1, 2 * c, 1, 1, h, w)
        for _ in range(n):  # Bottleneck(c, c, shortcut, k=(3,3), e=1.0)
            f1, p1, _, _ = conv_mod(c, c, 3, 1, h, w)
            f2, p2, _, _ = conv_mod(c, c, 3, 1, h, w)
            f, p = f + f1 + f2, p + p1 + p2
            if shortcut:
                f += c * h * w
        f3, p3, _, _ = conv_mod((2 + n) * c, c2, 1, 1, h, w)
        return f + f3, p + p3

    def prev() -> int:
        return len(shapes) - 1

    # backbone
    c, h, w = 3, 640, 640
    for i, spec in enumerate(
        [
            ("Conv", 64, 3, 2),
            ("Conv", 128, 3, 2),
            ("C2f", 128, 3, True),
            ("Conv", 256, 3, 2),
            ("C2f", 256, 6, True),
            ("Conv", 512, 3, 2),
            ("C2f", 512, 6, True),
            ("Conv", 1024, 3, 2),
            ("C2f", 1024, 3, True),
        ]
    ):
        inputs = (-1,) if i == 0 else (prev(),)
        if spec[0] == "Conv":
            c2 = ch(spec[1])
            f, p, h, w = conv_mod(c, c2, spec[2], spec[3], h, w)
        else:
            c2 = ch(spec[1])
            f, p = c2f(c, c2, reps(spec[2]), spec[3], h, w)
        add(spec[0], f, p, c2, h, w, inputs)
        c = c2
    # 9: SPPF(c, c2=ch(1024), k=5)
    c2, c_ = ch(1024), c // 2
    f1, p1, _, _ = conv_mod(c, c_, 1, 1, h, w)
    f2, p2, _, _ = conv_mod(4 * c_, c2, 1, 1, h, w)
    add("SPPF", f1 + f2 + 3 * c_ * h * w * 25, p1 + p2, c2, h, w, (prev(),))
    c = c2

    # head
    def upsample() -> None:
        cc, hh, ww = shapes[prev()]
        add("Upsample", 0, 0, cc, 2 * hh, 2 * ww, (prev(),))

    def concat(other: int) -> None:
        (c1, hh, ww), (c2_, _, _) = shapes[prev()], shapes[other]
        add("Concat", 0, 0, c1 + c2_, hh, ww, (prev(), other))

    def c2f_mod(cout: int) -> None:
        cc, hh, ww = shapes[prev()]
        f, p = c2f(cc, ch(cout), reps(3), False, hh, ww)
        add("C2f", f, p, ch(cout), hh, ww, (prev(),))

    def down(cout: int) -> None:
        cc, hh, ww = shapes[prev()]
        f, p, ho, wo = conv_mod(cc, ch(cout), 3, 2, hh, ww)
        add("Conv", f, p, ch(cout), ho, wo, (prev(),))

    # (first op, earlier module concatenated, C2f width): modules 10-12, 13-15 (P3/8),
    # 16-18 (P4/16), 19-21 (P5/32)
    for first, skip, width in (
        (upsample, 6, 512),
        (upsample, 4, 256),
        (lambda: down(256), 12, 512),
        (lambda: down(512), 9, 1024),
    ):
        first()
        concat(skip)
        c2f_mod(width)

    # 22: Detect(nc=80, ch=(P3, P4, P5)), reg_max 16
    nc, reg_max = 80, 16
    levels = [15, 18, 21]
    c2d = max(16, shapes[15][0] // 4, reg_max * 4)
    c3d = max(shapes[15][0], min(nc, 100))
    f = p = anchors = 0
    for li in levels:
        cx, hh, ww = shapes[li]
        anchors += hh * ww
        for cin_, mid, cout in ((cx, c2d, 4 * reg_max), (cx, c3d, nc)):
            fa, pa, _, _ = conv_mod(cin_, mid, 3, 1, hh, ww)
            fb, pb, _, _ = conv_mod(mid, mid, 3, 1, hh, ww)
            mc, pc, _, _ = conv(mid, cout, 1, 1, hh, ww, bias=True, bn=False)
            f, p = f + fa + fb + 2 * mc, p + pa + pb + pc
    f += 2 * reg_max * 4 * anchors  # DFL: 1x1 conv 16 -> 1 over 4 x anchors
    p += reg_max  # DFL conv weight (a fixed, non-trainable parameter)
    add("Detect", f, p, 4 + nc, 1, anchors, tuple(levels))
    return net


# ------------------------------------------------------------------------------ BERT-base
def bert_base(seq: int = 128) -> Net:
    # Published: Jiao et al., "TinyBERT" (arXiv 1909.10351), Table 1: BERT-base teacher
    # 109M params, 22.5B FLOPs (sequence length 128). Devlin et al. 2019: 110M params.
    hid, layers, ffn, vocab, max_pos, types = 768, 12, 3072, 30522, 512, 2
    net = Net(
        name="BERT-base",
        aliases=["bert-base", "bert-base-uncased", "google-bert/bert-base-uncased", "bert"],
        dtype="fp32",
        elem_bytes=FP32,
        input_bytes=3 * seq * INT64,
        sources={
            "all": f"Generated by tools/gen_dnn_catalog.py from the bert-base-uncased architecture "
            f"(12 layers, hidden 768, 12 heads, ffn 3072, vocab 30522), sequence {seq}, "
            "batch 1, fp32",
            "input_bytes": "input_ids + token_type_ids + attention_mask, int64",
            "output_bytes": "hidden states only (the int64 attention mask, 1 KB, is not added)",
            "layers": "Jiao et al. 2019 (TinyBERT, arXiv 1909.10351) Table 1: BERT-base "
            "109M params, "
            "22.5B FLOPs at sequence 128; generated totals are asserted within 10%",
        },
        published={"flops": 22.5e9, "params": 109e6},
    )
    emb_params = (vocab + max_pos + types) * hid + 2 * hid
    net.add(Layer("embeddings", 2 * seq * hid, emb_params, seq * hid, (-1,)))
    for i in range(layers):
        proj_macs = 4 * seq * hid * hid  # Q, K, V, output projections
        attn_macs = 2 * seq * seq * hid  # QK^T and AV over all heads
        ffn_macs = 2 * seq * hid * ffn
        flops = 2 * (proj_macs + attn_macs + ffn_macs) + 2 * seq * hid  # + two residual adds
        params = 4 * (hid * hid + hid) + 2 * hid + (hid * ffn + ffn) + (ffn * hid + hid) + 2 * hid
        net.add(Layer(f"encoder{i:02d}", flops, params, seq * hid))
    net.add(Layer("pooler", 2 * hid * hid, hid * hid + hid, hid))
    return net


# ------------------------------------------------------------------------------ Llama-3.2-1B
def llama32_1b_prefill(seq: int = 128) -> Net:
    # Published: Meta Llama 3.2 model card: Llama 3.2 1B has 1.23B parameters; forward FLOPs
    # per token ~ 2N + 2 n_layer n_ctx d_attn (Kaplan et al. 2020, "Scaling Laws for Neural
    # Language Models", Table 1, N = non-embedding parameters).
    hid, n_layers, heads, kv, hd, ffn, vocab = 2048, 16, 32, 8, 64, 8192, 128256
    non_emb = n_layers * (hid * (heads + 2 * kv) * hd + heads * hd * hid + 3 * hid * ffn + 2 * hid) + hid
    kaplan = seq * (2 * non_emb + 2 * n_layers * seq * heads * hd)
    net = Net(
        name="Llama-3.2-1B-Prefill-128",
        aliases=["llama-3.2-1b-prefill", "llama3.2-1b-prefill-128", "llama-3.2-1b-prompt"],
        dtype="fp16",
        elem_bytes=FP16,
        input_bytes=seq * INT64,
        sources={
            "all": f"Generated by tools/gen_dnn_catalog.py: prefill of a {seq}-token prompt "
            "through "
            "meta-llama/Llama-3.2-1B (16 layers, hidden 2048, 32 q / 8 kv heads of 64, "
            "SwiGLU ffn 8192, "
            "vocab 128256, tied embeddings), batch 1, fp16 weights and activations",
            "flops": "attention counted over the full seq x seq score matrix (no causal halving); "
            "the LM head runs on the last position only, as serving engines do",
            "weight_bytes": "embed_tokens and lm_head list the same tied 128256 x 2048 "
            "matrix (each "
            "side of a split needs it); the parameter check counts it once",
            "input_bytes": "int64 token ids",
            "layers": "Meta Llama 3.2 model card: 1.23B parameters; FLOPs checked against "
            "Kaplan et al. "
            f"2020 C_forward = 2N + 2 n_layer n_ctx d_attn per token ({kaplan / 1e9:.1f} GFLOPs); "
            "generated totals are asserted within 10%",
        },
        published={"flops": float(kaplan), "params": 1.23e9},
        param_dedup=vocab * hid,
    )
    net.add(Layer("embed_tokens", 0, vocab * hid, seq * hid, (-1,)))
    q_dim, kv_dim = heads * hd, kv * hd
    for i in range(n_layers):
        proj_macs = seq * hid * (q_dim + 2 * kv_dim) + seq * q_dim * hid
        attn_macs = 2 * seq * seq * heads * hd
        mlp_macs = 3 * seq * hid * ffn
        flops = 2 * (proj_macs + attn_macs + mlp_macs) + 2 * seq * hid
        params = hid * (q_dim + 2 * kv_dim) + q_dim * hid + 3 * hid * ffn + 2 * hid
        net.add(Layer(f"decoder{i:02d}", flops, params, seq * hid))
    net.add(Layer("norm_lm_head", 2 * hid * vocab, hid + vocab * hid, vocab))
    return net


# ------------------------------------------------------------------------------ output
def check(net: Net) -> list[str]:
    """Relative errors against the published figures; raise if any exceeds TOLERANCE."""
    lines = []
    got = {"flops": net.total_flops, "params": net.total_params}
    for key, ref in net.published.items():
        err = got[key] / ref - 1.0
        unit, scale = ("GFLOPs", 1e9) if key == "flops" else ("M params", 1e6)
        lines.append(
            f"{key:6s} {got[key] / scale:10.3f} {unit} vs published {ref / scale:10.3f} ({err:+.1%})"
        )
        assert abs(err) <= TOLERANCE, f"{net.name}: {key} {got[key]:.4g} is {err:+.1%} off {ref:.4g}"
    return lines


def q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def to_yaml(nets: list[Net]) -> str:
    out = [
        "# GENERATED by tools/gen_dnn_catalog.py -- do not edit by hand; rerun the script.",
        "# Layer-wise DNNs at batch 1 (schema: SCHEMA.md). flops = 2 per MAC (+ residual adds,",
        "# pooling); weight_bytes = parameters x dtype bytes; output_bytes = bytes crossing a",
        "# split right after the layer.",
        "#",
    ]
    for net in nets:
        out.append(
            f"# {net.name}: {len(net.layers)} layers, {net.total_flops / 1e9:.3f} GFLOPs, "
            f"{net.total_params / 1e6:.3f} M params, input {net.input_bytes} B"
        )
    out += ["", "dnns:"]
    for net in nets:
        out.append(f"  - name: {q(net.name)}")
        out.append(f"    aliases: [{', '.join(q(a) for a in net.aliases)}]")
        out.append(f"    input_bytes: {net.input_bytes}")
        out.append(f"    dtype: {net.dtype}")
        out.append("    layers:")
        for layer, ob in zip(net.layers, net.output_bytes(), strict=True):
            out.append(
                f"      - {{name: {q(layer.name)}, flops: {layer.flops}, "
                f"weight_bytes: {layer.params * net.elem_bytes}, output_bytes: {ob}}}"
            )
        out.append("    sources:")
        for k, v in net.sources.items():
            out.append(f"      {k}: {q(v)}")
    return "\n".join(out) + "\n"


def build() -> list[Net]:
    return [mobilenet_v2(), resnet50(), yolov8n(), bert_base(), llama32_1b_prefill()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="YAML file to write")
    ap.add_argument("--check", action="store_true", help="only print totals and check them")
    args = ap.parse_args(argv)
    nets = build()
    for net in nets:
        print(f"{net.name:26s} layers={len(net.layers):3d}")
        for line in check(net):
            print(f"    {line}")
    if not args.check:
        args.out.write_text(to_yaml(nets))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
