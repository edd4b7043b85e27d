"""A policy as plain arrays: observation normalisation, dense layers, activations, action scores.

``export.extract_mlp`` reads it out of an SB3 model; ``MlpPolicyArrays.scores`` runs it in
numpy (this module imports no torch); ``save_npz`` / ``load_npz`` store it without pickles,
so loading runs no code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf, expit

from .bundle import PolicyMetadata

ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu", "silu", "gelu")


def _np_activation(name: str, x: np.ndarray) -> np.ndarray:
    """Applies the activation in place (``scores_row`` relies on it) and returns ``x``."""
    if name == "relu":
        return np.maximum(x, 0.0, out=x)
    if name == "tanh":
        return np.tanh(x, out=x)
    if name == "elu":
        x[...] = np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))
    elif name == "leaky_relu":
        x[...] = np.where(x > 0, x, 0.01 * x)
    elif name == "silu":  # x * sigmoid(x); expit does not overflow for very negative x
        np.multiply(x, expit(x), out=x)
    elif name == "gelu":
        x[...] = 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    else:
        raise ValueError(f"unknown activation {name!r}; known: {list(ACTIVATIONS)}")
    return x


@dataclass
class MlpPolicyArrays:
    """scores(obs) = L_n(act(... act(L_1(normalise(obs))))); the action is the masked argmax."""

    weights: list[np.ndarray]  # [out, in] float32
    biases: list[np.ndarray]
    activations: list[str]  # one per hidden layer (len(weights) - 1)
    metadata: PolicyMetadata

    def __post_init__(self) -> None:
        norm = self.metadata.normalization
        n_in = int(np.prod(self.metadata.obs_shape))
        if norm is None:
            self.mean, self.scale, self.clip = (
                np.zeros(n_in, np.float32),
                np.ones(n_in, np.float32),
                np.float32(np.inf),
            )
        else:
            self.mean, self.scale = norm.offset_scale
            self.clip = np.float32(norm.clip_obs)
        # (W^T [in, out], b, activation or "" after the last layer)
        self._layers = [
            (np.ascontiguousarray(w.T), b, act)
            for w, b, act in zip(self.weights, self.biases, [*self.activations, ""], strict=True)
        ]
        self._prepare_row_path(n_in)

    def _prepare_row_path(self, n_in: int) -> None:
        """Buffers and augmented weights of ``scores_row`` (see there)."""
        with np.errstate(divide="ignore", over="ignore"):
            half_width = np.float64(self.clip) / self.scale.astype(np.float64)
        self._raw_lo = (self.mean - half_width).astype(np.float32)
        self._raw_hi = (self.mean + half_width).astype(np.float32)
        self._row_in = np.ones(n_in + 1, np.float32)  # [obs..., 1]
        self._row_layers = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            w_t, bias = w.T.astype(np.float64), b.astype(np.float64)
            if i == 0:  # fold (obs - mean) * scale into the first layer
                bias = bias - (self.mean.astype(np.float64) * self.scale) @ w_t
                w_t = w_t * self.scale.astype(np.float64)[:, None]
            w_aug = np.ascontiguousarray(np.vstack([w_t, bias[None]]).astype(np.float32))
            last = i == len(self.weights) - 1
            buffer = np.empty(len(b) + (0 if last else 1), np.float32)
            buffer[-1] = 1.0
            out = buffer if last else buffer[:-1]
            self._row_layers.append((w_aug, out, "" if last else self.activations[i]))

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """[B, n_actions] float32 scores of raw (unnormalised) observations [B, n_obs]."""
        x = obs - self.mean
        x *= self.scale
        np.minimum(x, self.clip, out=x)
        np.maximum(x, -self.clip, out=x)
        for wt, b, activation in self._layers:
            x = x @ wt
            x += b
            if activation:
                x = _np_activation(activation, x)
        return x

    def scores_row(self, obs: np.ndarray) -> np.ndarray:
        """``scores`` of one float32 observation [n_obs] -> [n_actions] in 2 numpy calls per layer.

        The normalisation is folded into the first layer (the clip moves to raw units) and each
        bias rides in the matmul as a weight row against a constant 1 kept at the end of the
        preallocated input buffers. Equal to ``scores`` up to float32 rounding; not thread-safe
        (the returned array is reused).
        """
        x = self._row_in
        np.minimum(obs, self._raw_hi, out=x[:-1])
        np.maximum(x[:-1], self._raw_lo, out=x[:-1])
        for w_aug, out, activation in self._row_layers:
            np.matmul(x, w_aug, out=out)
            if activation:
                _np_activation(activation, out)
            x = out.base if out.base is not None else out
        return out

    def save_npz(self, path: str | Path) -> None:
        arrays = {f"W{i}": w for i, w in enumerate(self.weights)} | {
            f"b{i}": b for i, b in enumerate(self.biases)
        }
        np.savez(
            path,
            activations=np.array(self.activations, dtype=str),
            metadata=np.array(self.metadata.to_json()),
            **arrays,
        )

    @classmethod
    def load_npz(cls, path: str | Path) -> MlpPolicyArrays:
        """Read a file written by ``save_npz`` (no pickles: ``allow_pickle=False``)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = PolicyMetadata.from_json(str(data["metadata"]), str(path))
                n = sum(1 for k in data.files if k.startswith("W"))
                weights = [data[f"W{i}"].astype(np.float32) for i in range(n)]
                biases = [data[f"b{i}"].astype(np.float32) for i in range(n)]
                activations = [str(a) for a in data["activations"]]
        except (KeyError, ValueError, OSError) as err:
            raise ValueError(f"{path}: not a servegym numpy policy: {err}") from err
        _check_shapes(weights, biases, activations, meta, str(path))
        return cls(weights, biases, activations, meta)


def _check_shapes(weights, biases, activations, meta: PolicyMetadata, where: str) -> None:
    if not weights or len(activations) != len(weights) - 1:
        raise ValueError(
            f"{where}: {len(weights)} layers need {max(len(weights) - 1, 0)} activations, "
            f"got {len(activations)}"
        )
    n_in = int(np.prod(meta.obs_shape))
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        if w.ndim != 2 or w.shape[1] != n_in or b.shape != (w.shape[0],):
            raise ValueError(
                f"{where}: layer {i} has weights {w.shape} and bias {b.shape}; expected "
                f"[out, {n_in}] and [out]"
            )
        n_in = w.shape[0]
    if n_in != meta.n_actions:
        raise ValueError(f"{where}: the last layer has {n_in} outputs for {meta.n_actions} actions")
    for name in activations:
        if name not in ACTIVATIONS:
            raise ValueError(f"{where}: unknown activation {name!r}")


def masked_argmax(scores: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
    """argmax over the allowed actions; a row with nothing allowed falls back to all actions."""
    if masks is None:
        return scores.argmax(axis=-1)
    masks = np.asarray(masks, dtype=bool).reshape(scores.shape)
    masks = masks | ~masks.any(axis=-1, keepdims=True)
    return np.where(masks, scores, -np.inf).argmax(axis=-1)
