"""A policy as plain arrays: observation normalisation, dense layers, activations, action scores.

``export.extract_mlp`` reads it out of an SB3 model; ``MlpPolicyArrays.scores`` runs it in
numpy (this module imports no torch); ``save_npz`` / ``load_npz`` store it without pickles,
so loading runs no code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf

from .bundle import PolicyMetadata

ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu", "silu", "gelu")


def _np_activation(name: str, x: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0.0, out=x)
    if name == "tanh":
        return np.tanh(x, out=x)
    if name == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))).astype(x.dtype)
    if name == "leaky_relu":
        return np.where(x > 0, x, 0.01 * x).astype(x.dtype)
    if name == "silu":
        return (x / (1.0 + np.exp(-x))).astype(x.dtype)
    if name == "gelu":
        return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(x.dtype)
    raise ValueError(f"unknown activation {name!r}; known: {list(ACTIVATIONS)}")


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
            self.mean = np.asarray(norm.mean, np.float32)
            self.scale = (1.0 / np.sqrt(np.asarray(norm.var, np.float64) + norm.epsilon)).astype(np.float32)
            self.clip = np.float32(norm.clip_obs)
        # (W^T [in, out], b, activation or "" after the last layer)
        self._layers = [
            (np.ascontiguousarray(w.T), b, act)
            for w, b, act in zip(self.weights, self.biases, [*self.activations, ""], strict=True)
        ]
        self._row_buffers = [np.empty(n_in, np.float32)] + [np.empty(len(b), np.float32) for b in self.biases]

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
        """``scores`` of one float32 observation [n_obs] -> [n_actions], into preallocated buffers
        (about half the time for one decision; not thread-safe: the returned array is reused)."""
        buffers = self._row_buffers
        x = np.subtract(obs, self.mean, out=buffers[0])
        np.multiply(x, self.scale, out=x)
        np.minimum(x, self.clip, out=x)
        np.maximum(x, -self.clip, out=x)
        for (wt, b, activation), out in zip(self._layers, buffers[1:], strict=True):
            x = np.matmul(x, wt, out=out)
            np.add(x, b, out=x)
            if activation:
                x = _np_activation(activation, x)
        return x

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
