#!/usr/bin/env python3
"""Generate ``servegym/hardware/catalog/dnns.yaml`` from architecture definitions.

Each network is written kernel by kernel (``servegym.hardware.dnn_kernels``: op, shapes, the
tensors each kernel reads) and grouped into layers at the block boundaries where it may be
split. Batch 1:

* MobileNetV2 (torchvision, width 1.0, 224x224, fp32): one layer per inverted-residual block;
* ResNet-50 (torchvision v1.5, 224x224, fp32): one layer per bottleneck block;
* YOLOv8n (ultralytics yolov8.yaml at scale n, 640x640, fp32): one layer per yaml module;
* BERT-base (bert-base-uncased, sequence 128, fp32): embeddings, 12 encoder layers, pooler;
* Llama-3.2-1B prefill of 128 tokens (fp16): embedding, 16 decoder layers, final norm +
  LM head on the last position.

FLOPs, parameters and bytes follow the counting rules of ``dnn_kernels`` (one rule for the
catalog, the latency model and the torch modules that check it). A layer's ``output_bytes``
are the bytes crossing a split right after it: every tensor produced up to the layer that a
later layer still reads (skip connections included). Each network's totals are asserted to be
within 10 % of a published figure.

Run ``python tools/gen_dnn_catalog.py`` to rewrite the YAML (``--check`` only prints totals).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from servegym.hardware.dnn_kernels import DNNKernel

FP32 = 4
FP16 = 2
INT64 = 8
TOLERANCE = 0.10
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "servegym" / "hardware" / "catalog" / "dnns.yaml"


# ------------------------------------------------------------------------------ builder
@dataclass
class Net:
    """A network being written kernel by kernel; ``layer()`` opens the next split block."""

    name: str
    aliases: list[str]
    dtype: str
    elem_bytes: int
    input_bytes: int
    input_shape: tuple[int, ...]
    sources: dict[str, str]
    published: dict[str, float] = field(default_factory=dict)  # "flops"/"params" -> figure
    layers: list[tuple[str, list[DNNKernel]]] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.shapes["input"] = self.input_shape

    def layer(self, name: str) -> None:
        self.layers.append((name, []))

    def add(self, name: str, op: str, src: tuple[str, ...], out: tuple[int, ...], **attrs) -> str:
        inp = attrs.pop("inp", None) or self.shapes[src[0]]
        kernel = DNNKernel(name=name, op=op, inp=tuple(inp), out=tuple(out), src=src, **attrs)
        if name in self.shapes:
            raise ValueError(f"{self.name}: duplicate kernel name {name!r}")
        self.layers[-1][1].append(kernel)
        self.shapes[name] = kernel.out
        return name

    # -- ops -------------------------------------------------------------------------
    def conv(self, name, x, cout, k, s=1, g=1, act="", bn=True, bias=False) -> str:
        """A k x k conv with padding k // 2, followed by BatchNorm (``bn``) or with a bias."""
        _, h, w = self.shapes[x]
        p = k // 2
        out = (cout, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        extra = {"bn": True} if bn else {"bias": bias}
        return self.add(name, "conv", (x,), out, k=k, s=s, g=g, act=act, **extra)

    def linear(self, name, x, n, act="", bias=True) -> str:
        m = self.shapes[x][0]
        return self.add(name, "linear", (x,), (m, n), act=act, bias=bias)

    def same(self, name, op, srcs, **attrs) -> str:
        """An op whose output has its first input's shape."""
        return self.add(name, op, tuple(srcs), self.shapes[srcs[0]], **attrs)

    def pool(self, name, x, kind, k, s, pad) -> str:
        c, h, w = self.shapes[x]
        if k == 0:
            return self.add(name, "pool", (x,), (c, 1, 1), kind=kind, k=0)
        out = (c, (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1)
        return self.add(name, "pool", (x,), out, kind=kind, k=k, s=s)

    def concat(self, name, srcs, dim=0, kind="") -> str:
        shapes = [self.shapes[s] for s in srcs]
        if kind == "nhwc":  # [C, H, W] images as [H*W, C] rows, joined along the rows
            out = (sum(math.prod(sh[1:]) for sh in shapes), shapes[0][0])
        else:
            out = list(shapes[0])
            out[dim] = sum(sh[dim] for sh in shapes)
        return self.add(name, "concat", tuple(srcs), tuple(out), dim=dim, kind=kind)

    def slice(self, name, x, start, stop, dim=0) -> str:
        out = list(self.shapes[x])
        out[dim] = stop - start
        return self.add(name, "slice", (x,), tuple(out), start=start, stop=stop, dim=dim)

    # -- totals ----------------------------------------------------------------------
    @property
    def kernels(self) -> list[DNNKernel]:
        return [k for _, ks in self.layers for k in ks]

    @property
    def total_flops(self) -> float:
        return sum(k.flops for k in self.kernels)

    @property
    def total_params(self) -> int:
        return sum(k.params - k.tied_elems for k in self.kernels)

    def output_bytes(self) -> list[int]:
        """Bytes live across a cut after each layer: tensors read by any later layer."""
        layer_of = {k.name: i for i, (_, ks) in enumerate(self.layers) for k in ks}
        last_read: dict[str, int] = {}
        for i, (_, ks) in enumerate(self.layers):
            for k in ks:
                for s in k.src or ():
                    last_read[s] = max(last_read.get(s, -1), i)
        out = []
        final = self.kernels[-1].name
        for i in range(len(self.layers)):
            live = [t for t, j in layer_of.items() if j <= i and (last_read.get(t, -1) > i or t == final)]
            out.append(sum(math.prod(self.shapes[t]) for t in live) * self.elem_bytes)
        return out


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
        input_shape=(3, 224, 224),
        sources={
            "all": "Generated by tools/gen_dnn_catalog.py from the torchvision mobilenet_v2 "
            "architecture (width 1.0, 224x224, batch 1, fp32); one layer per "
            "inverted-residual block",
            "layers": "Sandler et al. 2018 (MobileNetV2, CVPR), Table 4: 300M multiply-adds "
            "(= 0.6 GFLOPs), 3.4M parameters; generated totals are asserted within 10%",
        },
        published={"flops": 2 * 300e6, "params": 3.4e6},
    )
    net.layer("conv_stem")
    x = net.conv("stem", "input", 32, 3, 2, act="relu6")
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
            name = f"block{block:02d}"
            net.layer(name)
            y = x
            if t != 1:
                y = net.conv(f"{name}.expand", y, cin * t, 1, act="relu6")
            y = net.conv(f"{name}.dw", y, cin * t, 3, stride, g=cin * t, act="relu6")
            y = net.conv(f"{name}.project", y, c, 1)
            if stride == 1 and cin == c:
                y = net.same(f"{name}.add", "add", (y, x))
            x, cin = y, c
            block += 1
    net.layer("conv_last")
    x = net.conv("conv_last", x, 1280, 1, act="relu6")
    net.layer("avgpool")
    x = net.pool("avgpool", x, "avg", 0, 1, 0)
    net.layer("classifier")
    net.add("classifier", "linear", (x,), (1, 1000), inp=(1, 1280))
    return net


# ------------------------------------------------------------------------------ ResNet-50
def resnet50() -> Net:
    # Published: torchvision ResNet50_Weights.IMAGENET1K_V1 docs: 4.09 GFLOPS (torchvision
    # counts multiply-adds, i.e. 4.09 GMACs) and 25,557,032 params.
    net = Net(
        name="ResNet-50",
        aliases=["resnet50", "resnet-50", "resnet_50", "resnet50-v1.5"],
        dtype="fp32",
        elem_bytes=FP32,
        input_bytes=3 * 224 * 224 * FP32,
        input_shape=(3, 224, 224),
        sources={
            "all": "Generated by tools/gen_dnn_catalog.py from the torchvision resnet50 (v1.5: "
            "stride in the 3x3 conv) architecture, 224x224, batch 1, fp32; one layer per "
            "bottleneck block",
            "layers": "torchvision ResNet50_Weights.IMAGENET1K_V1: 4.09 GFLOPS (multiply-adds, "
            "= 8.18 GFLOPs) and 25,557,032 params; generated totals are asserted within 10%",
        },
        published={"flops": 2 * 4.09e9, "params": 25.557032e6},
    )
    net.layer("conv1")
    x = net.conv("conv1", "input", 64, 7, 2, act="relu")
    net.layer("maxpool")
    x = net.pool("maxpool", x, "max", 3, 2, 1)
    cin = 64
    for stage, (width, blocks, stride) in enumerate(
        [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1
    ):
        for b in range(blocks):
            s = stride if b == 0 else 1
            name = f"layer{stage}.{b}"
            net.layer(name)
            y = net.conv(f"{name}.conv1", x, width, 1, act="relu")
            y = net.conv(f"{name}.conv2", y, width, 3, s, act="relu")
            y = net.conv(f"{name}.conv3", y, 4 * width, 1)
            identity = x
            if b == 0:
                identity = net.conv(f"{name}.downsample", x, 4 * width, 1, s)
            x = net.same(f"{name}.add", "add", (y, identity), act="relu")
            cin = 4 * width
    net.layer("avgpool")
    x = net.pool("avgpool", x, "avg", 0, 1, 0)
    net.layer("fc")
    net.add("fc", "linear", (x,), (1, 1000), inp=(1, cin))
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
        input_shape=(3, 640, 640),
        sources={
            "all": "Generated by tools/gen_dnn_catalog.py from ultralytics yolov8.yaml at scale n "
            "(depth 0.33, width 0.25, max_channels 1024; nc 80), 640x640, batch 1, fp32; "
            "one layer per yaml module (Conv, C2f, SPPF, Upsample, Concat, Detect)",
            "output_bytes": "includes skip tensors still needed later (outputs of modules "
            "4, 6, 9, 12, 15, 18 feed Concat/Detect), i.e. the bytes crossing a cut after the "
            "module; Detect outputs the decoded (1, 84, 8400) tensor before NMS",
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

    outputs: list[str] = []  # each module's output tensor

    def module(kind: str) -> str:
        name = f"{len(outputs):02d}_{kind}"
        net.layer(name)
        return name

    def conv_mod(x: str, c2: int, k: int, s: int) -> str:
        name = module("Conv")
        return net.conv(name, x, c2, k, s, act="silu")

    def c2f(x: str, c2: int, n: int, shortcut: bool) -> str:
        name = module("C2f")
        c = c2 // 2
        y = net.conv(f"{name}.cv1", x, 2 * c, 1, act="silu")
        parts, last = [y], net.slice(f"{name}.split", y, c, 2 * c)
        for i in range(n):  # Bottleneck(c, c, shortcut, k=(3, 3), e=1.0)
            h = net.conv(f"{name}.m{i}.cv1", last, c, 3, act="silu")
            h = net.conv(f"{name}.m{i}.cv2", h, c, 3, act="silu")
            if shortcut:
                h = net.same(f"{name}.m{i}.add", "add", (h, last))
            parts.append(h)
            last = h
        cat = net.concat(f"{name}.cat", parts)
        return net.conv(f"{name}.cv2", cat, c2, 1, act="silu")

    x = "input"
    for kind, c, a, b in [
        ("Conv", 64, 3, 2),
        ("Conv", 128, 3, 2),
        ("C2f", 128, 3, True),
        ("Conv", 256, 3, 2),
        ("C2f", 256, 6, True),
        ("Conv", 512, 3, 2),
        ("C2f", 512, 6, True),
        ("Conv", 1024, 3, 2),
        ("C2f", 1024, 3, True),
    ]:
        x = conv_mod(x, ch(c), a, b) if kind == "Conv" else c2f(x, ch(c), reps(a), b)
        outputs.append(x)
    # 9: SPPF(c, ch(1024), k=5)
    name = module("SPPF")
    c_ = net.shapes[x][0] // 2
    y = net.conv(f"{name}.cv1", x, c_, 1, act="silu")
    pooled = [y]
    for i in range(3):
        pooled.append(net.pool(f"{name}.m{i}", pooled[-1], "max", 5, 1, 2))
    cat = net.concat(f"{name}.cat", pooled)
    outputs.append(net.conv(f"{name}.cv2", cat, ch(1024), 1, act="silu"))

    def upsample() -> None:
        prev = outputs[-1]
        c, h, w = net.shapes[prev]
        outputs.append(net.add(module("Upsample"), "upsample", (prev,), (c, 2 * h, 2 * w), s=2))

    def concat(skip: int) -> None:
        outputs.append(net.concat(module("Concat"), [outputs[-1], outputs[skip]]))

    # head: (first op, earlier module concatenated, C2f width): modules 10-12, 13-15 (P3/8),
    # 16-18 (P4/16), 19-21 (P5/32)
    for first, skip, width in (
        (upsample, 6, 512),
        (upsample, 4, 256),
        (lambda: outputs.append(conv_mod(outputs[-1], ch(256), 3, 2)), 12, 512),
        (lambda: outputs.append(conv_mod(outputs[-1], ch(512), 3, 2)), 9, 1024),
    ):
        first()
        concat(skip)
        outputs.append(c2f(outputs[-1], ch(width), reps(3), False))

    # 22: Detect(nc=80, ch=(P3, P4, P5)), reg_max 16, inference decode (no NMS)
    nc, reg_max = 80, 16
    name = module("Detect")
    levels = [outputs[15], outputs[18], outputs[21]]
    c2d = max(16, net.shapes[levels[0]][0] // 4, reg_max * 4)
    c3d = max(net.shapes[levels[0]][0], min(nc, 100))
    heads = []
    for i, lv in enumerate(levels):
        branches = []
        for tag, mid, cout in (("cv2", c2d, 4 * reg_max), ("cv3", c3d, nc)):
            h = net.conv(f"{name}.{tag}.{i}.0", lv, mid, 3, act="silu")
            h = net.conv(f"{name}.{tag}.{i}.1", h, mid, 3, act="silu")
            branches.append(net.conv(f"{name}.{tag}.{i}.2", h, cout, 1, bn=False, bias=True))
        heads.append(net.concat(f"{name}.cat{i}", branches))
    # Decode in anchor-major layout [anchors, channels]: NHWC feature maps flatten to it for
    # free (TFLite's layout; the transposed (84, anchors) of the PyTorch export holds the same).
    flat = net.concat(f"{name}.cat", heads, kind="nhwc")
    anchors = net.shapes[flat][0]
    box = net.slice(f"{name}.box", flat, 0, 4 * reg_max, dim=1)
    dist = net.add(f"{name}.dfl", "dfl", (box,), (anchors, 4))
    dbox = net.same(f"{name}.decode", "box", (dist,))
    cls = net.slice(f"{name}.cls", flat, 4 * reg_max, 4 * reg_max + nc, dim=1)
    cls = net.same(f"{name}.sigmoid", "act", (cls,), act="sigmoid")
    net.concat(f"{name}.out", [dbox, cls], dim=1)
    return net


# ------------------------------------------------------------------------------ BERT-base
def bert_base(seq: int = 128) -> Net:
    # Published: Jiao et al., "TinyBERT" (arXiv 1909.10351), Table 1: BERT-base teacher
    # 109M params, 22.5B FLOPs (sequence length 128). Devlin et al. 2019: 110M params.
    hid, n_layers, heads, ffn, vocab, max_pos, types = 768, 12, 12, 3072, 30522, 512, 2
    net = Net(
        name="BERT-base",
        aliases=["bert-base", "bert-base-uncased", "google-bert/bert-base-uncased", "bert"],
        dtype="fp32",
        elem_bytes=FP32,
        input_bytes=3 * seq * INT64,
        input_shape=(seq,),
        sources={
            "all": f"Generated by tools/gen_dnn_catalog.py from the bert-base-uncased architecture "
            f"(12 layers, hidden 768, 12 heads, ffn 3072, vocab 30522), sequence {seq}, "
            "batch 1, fp32",
            "input_bytes": "input_ids + token_type_ids + attention_mask, int64",
            "output_bytes": "hidden states only (token types and positions are regenerated)",
            "layers": "Jiao et al. 2019 (TinyBERT, arXiv 1909.10351) Table 1: BERT-base "
            "109M params, 22.5B FLOPs at sequence 128; generated totals are asserted within 10%",
        },
        published={"flops": 22.5e9, "params": 109e6},
    )
    net.layer("embeddings")
    word = net.add("emb.word", "embedding", ("input",), (seq, hid), vocab=vocab, kind="input")
    typ = net.add("emb.type", "embedding", ("input",), (seq, hid), vocab=types, kind="zeros")
    x = net.same("emb.add_type", "add", (word, typ))
    pos = net.add("emb.position", "embedding", ("input",), (seq, hid), vocab=max_pos, kind="position")
    x = net.same("emb.add_position", "add", (x, pos))
    x = net.same("emb.norm", "norm", (x,), kind="layer")
    for i in range(n_layers):
        name = f"encoder{i:02d}"
        net.layer(name)
        q, k, v = (net.linear(f"{name}.{t}", x, hid) for t in ("query", "key", "value"))
        a = net.same(f"{name}.attention", "attention", (q, k, v), heads=heads, kv_heads=heads)
        a = net.linear(f"{name}.attn_out", a, hid)
        h = net.same(f"{name}.attn_add", "add", (a, x))
        h = net.same(f"{name}.attn_norm", "norm", (h,), kind="layer")
        f = net.linear(f"{name}.intermediate", h, ffn, act="gelu")
        f = net.linear(f"{name}.output", f, hid)
        f = net.same(f"{name}.ffn_add", "add", (f, h))
        x = net.same(f"{name}.ffn_norm", "norm", (f,), kind="layer")
    net.layer("pooler")
    first = net.slice("pooler.first_token", x, 0, 1)
    net.linear("pooler.dense", first, hid, act="tanh")
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
        input_shape=(seq,),
        sources={
            "all": f"Generated by tools/gen_dnn_catalog.py: prefill of a {seq}-token prompt through "
            "meta-llama/Llama-3.2-1B (16 layers, hidden 2048, 32 q / 8 kv heads of 64, SwiGLU "
            "ffn 8192, vocab 128256, tied embeddings), batch 1, fp16 weights and activations",
            "flops": "attention counted over the full seq x seq score matrix (no causal halving); "
            "the LM head runs on the last position only, as serving engines do",
            "weight_bytes": "embed_tokens and lm_head list the same tied 128256 x 2048 matrix (each "
            "side of a split needs it); params counts it once",
            "input_bytes": "int64 token ids",
            "layers": "Meta Llama 3.2 model card: 1.23B parameters; FLOPs checked against Kaplan "
            f"et al. 2020 C_forward = 2N + 2 n_layer n_ctx d_attn per token ({kaplan / 1e9:.1f} "
            "GFLOPs); generated totals are asserted within 10%",
        },
        published={"flops": float(kaplan), "params": 1.23e9},
    )
    net.layer("embed_tokens")
    x = net.add("embed_tokens", "embedding", ("input",), (seq, hid), vocab=vocab, kind="input")
    for i in range(n_layers):
        name = f"decoder{i:02d}"
        net.layer(name)
        h = net.same(f"{name}.input_norm", "norm", (x,), kind="rms")
        q = net.linear(f"{name}.q_proj", h, heads * hd, bias=False)
        k = net.linear(f"{name}.k_proj", h, kv * hd, bias=False)
        v = net.linear(f"{name}.v_proj", h, kv * hd, bias=False)
        q = net.same(f"{name}.rope_q", "rope", (q,), heads=heads)
        k = net.same(f"{name}.rope_k", "rope", (k,), heads=kv)
        a = net.same(f"{name}.attention", "attention", (q, k, v), heads=heads, kv_heads=kv, causal=True)
        a = net.linear(f"{name}.o_proj", a, hid, bias=False)
        x = net.same(f"{name}.attn_add", "add", (a, x))
        h = net.same(f"{name}.post_norm", "norm", (x,), kind="rms")
        gate = net.linear(f"{name}.gate_proj", h, ffn, bias=False)
        up = net.linear(f"{name}.up_proj", h, ffn, bias=False)
        m = net.same(f"{name}.silu_mul", "glu", (gate, up))
        m = net.linear(f"{name}.down_proj", m, hid, bias=False)
        x = net.same(f"{name}.mlp_add", "add", (m, x))
    net.layer("norm_lm_head")
    x = net.same("norm", "norm", (x,), kind="rms")
    last = net.slice("last_token", x, seq - 1, seq)
    net.add("lm_head", "linear", (last,), (1, vocab), bias=False, tied="embed_tokens")
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


def flow(kernel: DNNKernel, previous: str | None) -> str:
    """A kernel as a one-line YAML flow mapping (``src`` left out when it is the previous kernel)."""
    items = kernel.to_dict()
    if items.get("src") == [previous]:
        del items["src"]
    return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in items.items()) + "}"


def to_yaml(nets: list[Net]) -> str:
    out = [
        "# GENERATED by tools/gen_dnn_catalog.py -- do not edit by hand; rerun the script.",
        "# Layer-wise DNNs at batch 1 (schema: SCHEMA.md). Each layer (a block; split points stay at",
        "# block boundaries) lists its kernels; flops and weight_bytes are their sums under the",
        "# counting rules of servegym/hardware/dnn_kernels.py; output_bytes = bytes crossing a split",
        "# right after the layer.",
        "#",
    ]
    for net in nets:
        out.append(
            f"# {net.name}: {len(net.layers)} layers, {len(net.kernels)} kernels, "
            f"{net.total_flops / 1e9:.3f} GFLOPs, {net.total_params / 1e6:.3f} M params, "
            f"input {net.input_bytes} B"
        )
    out += ["", "dnns:"]
    for net in nets:
        out.append(f"  - name: {q(net.name)}")
        out.append(f"    aliases: [{', '.join(q(a) for a in net.aliases)}]")
        out.append(f"    input_bytes: {net.input_bytes}")
        out.append(f"    dtype: {net.dtype}")
        out.append("    layers:")
        previous = None
        for (name, kernels), ob in zip(net.layers, net.output_bytes(), strict=True):
            flops = sum(k.flops for k in kernels)
            weights = sum(k.params for k in kernels) * net.elem_bytes
            out.append(f"      - name: {q(name)}")
            out.append(f"        flops: {int(flops)}")
            out.append(f"        weight_bytes: {weights}")
            out.append(f"        output_bytes: {ob}")
            out.append("        kernels:")
            for kernel in kernels:
                out.append(f"          - {flow(kernel, previous)}")
                previous = kernel.name
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
        print(f"{net.name:26s} layers={len(net.layers):3d} kernels={len(net.kernels):4d}")
        for line in check(net):
            print(f"    {line}")
    if not args.check:
        args.out.write_text(to_yaml(nets))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
