"""Model descriptions: transformer LLMs (``ModelSpec``) and layer-wise DNNs (``DNNSpec``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .dnn_kernels import DNNKernel
from .kernels import LayerDims
from .validation import name_list, positive, positive_int

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}


def dtype_bytes(dtype: str, where: str) -> int:
    try:
        return DTYPE_BYTES[dtype.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"{where}: dtype must be one of {sorted(DTYPE_BYTES)}, got {dtype!r}") from None


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer. Build from the catalog, raw dims, or an HF config."""

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    ffn_size: int
    vocab_size: int
    gated_mlp: bool = True
    head_dim: int = 0  # 0: hidden_size // num_heads
    max_context: int = 4096
    norm: str = "rmsnorm"
    tied_embeddings: bool = False
    parallel_block: bool = False  # attention and MLP read the same normed input (phi-2)
    dtype: str = "fp16"
    num_experts: int = 0  # 0: dense MLP
    experts_per_token: int = 0
    aliases: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"model {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("model: name must be a non-empty string")
        for f in (
            "num_layers",
            "hidden_size",
            "num_heads",
            "num_kv_heads",
            "ffn_size",
            "vocab_size",
            "max_context",
        ):
            object.__setattr__(self, f, positive_int(where, f, getattr(self, f)))
        for f in ("head_dim", "num_experts", "experts_per_token"):
            object.__setattr__(self, f, positive_int(where, f, getattr(self, f), allow_zero=True))
        if self.head_dim == 0:
            if self.hidden_size % self.num_heads:
                raise ValueError(
                    f"{where}: hidden_size {self.hidden_size} is not divisible by num_heads "
                    f"{self.num_heads}; give head_dim explicitly"
                )
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"{where}: num_heads ({self.num_heads}) must be a multiple of num_kv_heads "
                f"({self.num_kv_heads})"
            )
        if self.norm not in ("rmsnorm", "layernorm"):
            raise ValueError(f"{where}: norm must be 'rmsnorm' or 'layernorm', got {self.norm!r}")
        dtype_bytes(self.dtype, where)
        if (self.num_experts == 0) != (self.experts_per_token == 0):
            raise ValueError(f"{where}: give both num_experts and experts_per_token, or neither")
        if self.experts_per_token > self.num_experts:
            raise ValueError(
                f"{where}: experts_per_token ({self.experts_per_token}) exceeds num_experts "
                f"({self.num_experts})"
            )
        object.__setattr__(self, "aliases", tuple(self.aliases))

    # -- derived sizes -------------------------------------------------------------------
    @property
    def bytes_per_element(self) -> int:
        return DTYPE_BYTES[self.dtype.lower()]

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def attn_params_per_layer(self) -> int:
        d, h = self.head_dim, self.hidden_size
        return h * (self.num_heads + 2 * self.num_kv_heads) * d + self.num_heads * d * h

    @property
    def mlp_params_per_expert(self) -> int:
        return self.hidden_size * self.ffn_size * (3 if self.gated_mlp else 2)

    @property
    def param_count(self) -> int:
        """Parameters (norms and biases excluded)."""
        experts = max(self.num_experts, 1)
        router = self.hidden_size * self.num_experts
        per_layer = self.attn_params_per_layer + experts * self.mlp_params_per_expert + router
        emb = self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)
        return self.num_layers * per_layer + emb

    @property
    def weight_bytes(self) -> int:
        return self.param_count * self.bytes_per_element

    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token occupies across all layers (all TP ranks together)."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.bytes_per_element

    def layer_dims(self, tp: int = 1) -> LayerDims:
        """Per-rank dims for tensor-parallel degree ``tp``."""
        tp = positive_int(f"model {self.name!r}", "tp", tp)
        if self.num_heads % tp:
            raise ValueError(f"model {self.name!r}: tp={tp} must divide num_heads ({self.num_heads})")
        return LayerDims(
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            ffn_size=self.ffn_size,
            gated_mlp=self.gated_mlp,
            vocab_size=self.vocab_size,
            tp=tp,
            bytes_per_element=self.bytes_per_element,
        )

    # -- constructors --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "model") -> ModelSpec:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: a model must be a mapping, got {type(data).__name__}")
        kwargs = dict(data)
        moe = kwargs.pop("moe", None)
        if moe:
            if not isinstance(moe, Mapping):
                raise ValueError(f"{where}: moe must be a mapping with num_experts, experts_per_token")
            kwargs["num_experts"] = moe.get("num_experts", 0)
            kwargs["experts_per_token"] = moe.get("experts_per_token", 0)
        allowed = set(cls.__dataclass_fields__)
        unknown = set(kwargs) - allowed
        if unknown:
            raise ValueError(f"{where}: unknown model field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        missing = {
            "name",
            "num_layers",
            "hidden_size",
            "num_heads",
            "num_kv_heads",
            "ffn_size",
            "vocab_size",
        } - set(kwargs)
        if missing:
            raise ValueError(f"{where}: missing model field(s) {sorted(missing)}")
        kwargs["aliases"] = name_list(where, "aliases", kwargs.get("aliases"))
        kwargs["sources"] = dict(kwargs.get("sources") or {})
        return cls(**kwargs)

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any], name: str | None = None) -> ModelSpec:
        """Build from a Hugging Face ``config.json`` mapping (Llama/Mistral/Qwen2/Mixtral/phi)."""
        where = f"HF config {name or config.get('_name_or_path', '?')!r}"

        def need(*keys: str) -> Any:
            for k in keys:
                if k in config:
                    return config[k]
            raise ValueError(f"{where}: missing field {' or '.join(keys)}")

        hidden = need("hidden_size", "n_embd", "d_model")
        heads = need("num_attention_heads", "n_head")
        act = str(config.get("hidden_act", "silu")).lower()
        experts = int(config.get("num_local_experts", config.get("num_experts", 0)) or 0)
        return cls(
            name=name or str(config.get("_name_or_path") or config.get("model_type") or "hf-model"),
            num_layers=need("num_hidden_layers", "n_layer"),
            hidden_size=hidden,
            num_heads=heads,
            num_kv_heads=config.get("num_key_value_heads") or heads,
            ffn_size=need("intermediate_size", "n_inner", "ffn_dim"),
            vocab_size=need("vocab_size"),
            gated_mlp=act in ("silu", "swiglu", "swish"),
            head_dim=int(config.get("head_dim") or 0),
            max_context=int(config.get("max_position_embeddings", 4096)),
            norm="layernorm" if "layer_norm_eps" in config else "rmsnorm",
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
            parallel_block=bool(
                config.get(
                    "use_parallel_residual", str(config.get("model_type", "")).lower() in ("phi", "gptj")
                )
            ),
            num_experts=experts,
            experts_per_token=int(config.get("num_experts_per_tok", 0) or 0) if experts else 0,
        )


@dataclass(frozen=True)
class DNNLayer:
    """One layer (or block) of a DNN at batch 1, optionally with the kernels it runs."""

    name: str
    flops: float
    weight_bytes: float
    output_bytes: float
    kernels: tuple[DNNKernel, ...] = ()


_LAYER_FIELDS = ("name", "flops", "weight_bytes", "output_bytes", "kernels")


@dataclass(frozen=True)
class DNNSpec:
    """A feed-forward DNN as a sequence of layers, for edge inference and split points.

    A layer with ``kernels`` is timed kernel by kernel (``dnn_kernels``); its ``flops`` and
    ``weight_bytes`` then follow from them.
    """

    name: str
    layers: tuple[DNNLayer, ...]
    input_bytes: float
    dtype: str = "fp32"
    aliases: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"dnn {self.name!r}"
        if not self.layers:
            raise ValueError(f"{where}: needs at least one layer")
        elem_bytes = dtype_bytes(self.dtype, where)
        layers = []
        seen, previous = {"input"}, "input"
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Mapping):
                layer = _layer_from_dict(layer, f"{where} layer {i}", i, elem_bytes)
            kernels = []
            for kernel in layer.kernels:
                if not kernel.src:  # reads the previous kernel's output
                    kernel = replace(kernel, src=(previous,))
                missing = [s for s in kernel.src if s not in seen]
                if missing:
                    raise ValueError(
                        f"{where} kernel {kernel.name!r}: src {missing} names no earlier kernel "
                        "('input' is the network input)"
                    )
                if kernel.name in seen:
                    raise ValueError(f"{where}: kernel name {kernel.name!r} is used twice")
                seen.add(kernel.name)
                kernels.append(kernel)
                previous = kernel.name
            layers.append(replace(layer, kernels=tuple(kernels)))
        object.__setattr__(self, "layers", tuple(layers))
        object.__setattr__(self, "input_bytes", positive(where, "input_bytes", self.input_bytes))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    @property
    def kernels(self) -> tuple[DNNKernel, ...]:
        """Every layer's kernels in execution order."""
        return tuple(k for layer in self.layers for k in layer.kernels)

    @property
    def param_count(self) -> int:
        """Parameters of the network (tied weights once; from weight bytes without kernels)."""
        untimed = sum(layer.weight_bytes for layer in self.layers if not layer.kernels)
        counted = sum(k.params - k.tied_elems for k in self.kernels)
        return counted + round(untimed / dtype_bytes(self.dtype, self.name))

    @property
    def total_flops(self) -> float:
        return sum(layer.flops for layer in self.layers)

    @property
    def total_weight_bytes(self) -> float:
        return sum(layer.weight_bytes for layer in self.layers)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "dnn") -> DNNSpec:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: a dnn must be a mapping, got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{where}: unknown dnn field(s) {sorted(unknown)}")
        for key in ("name", "layers", "input_bytes"):
            if key not in data:
                raise ValueError(f"{where}: missing dnn field {key!r}")
        kwargs = dict(data)
        kwargs["layers"] = tuple(kwargs["layers"] or ())
        kwargs["aliases"] = name_list(where, "aliases", kwargs.get("aliases"))
        kwargs["sources"] = dict(kwargs.get("sources") or {})
        return cls(**kwargs)


def _layer_from_dict(layer: Mapping[str, Any], where: str, index: int, elem_bytes: int) -> DNNLayer:
    """A layer from its catalog mapping; with kernels, flops and weight_bytes must agree with them."""
    unknown = set(layer) - set(_LAYER_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
    raw_kernels = layer.get("kernels") or []
    if not isinstance(raw_kernels, (list, tuple)):
        raise ValueError(f"{where}: kernels must be a list of kernel mappings")
    kernels = tuple(
        k if isinstance(k, DNNKernel) else DNNKernel.from_dict(k, f"{where} kernel {j}")
        for j, k in enumerate(raw_kernels)
    )
    derived = {
        "flops": float(sum(k.flops for k in kernels)),
        "weight_bytes": float(sum(k.params for k in kernels) * elem_bytes),
    }
    values = {}
    for key in ("flops", "weight_bytes"):
        given = layer.get(key)
        if given is None and kernels:
            values[key] = derived[key]
            continue
        values[key] = positive(
            where, key, 0 if given is None and key == "weight_bytes" else given, allow_zero=True
        )
        if kernels and abs(values[key] - derived[key]) > 1e-6 * max(derived[key], 1.0):
            raise ValueError(
                f"{where}: {key} {values[key]:.6g} disagrees with its kernels' sum {derived[key]:.6g}"
            )
    return DNNLayer(
        name=str(layer.get("name", f"layer{index}")),
        flops=values["flops"],
        weight_bytes=values["weight_bytes"],
        output_bytes=positive(where, "output_bytes", layer.get("output_bytes"), allow_zero=True),
        kernels=kernels,
    )
