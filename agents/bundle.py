"""What servegym stores beside a policy: env id and kwargs, spaces, and observation normalisation.

The metadata is JSON. In an SB3 zip it is an extra member ``servegym.json`` (SB3 ignores
members it does not know), so one file carries the policy and its normalisation, and with the
policy's class and arguments the zip loads without unpickling (``sb3_zip``); exported ONNX and
numpy files carry the same JSON, and loading them executes nothing from the file.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from servegym._version import __version__

MEMBER = "servegym.json"
FORMAT = 1


@dataclass
class Normalization:
    """VecNormalize's observation transform: clip((obs - mean) / sqrt(var + eps), ±clip)."""

    mean: list[float]
    var: list[float]
    clip_obs: float
    epsilon: float

    @classmethod
    def from_vec_normalize(cls, vn) -> Normalization | None:
        if vn is None or not vn.norm_obs:
            return None
        rms = vn.obs_rms
        return cls(
            rms.mean.astype(float).tolist(),
            rms.var.astype(float).tolist(),
            float(vn.clip_obs),
            float(vn.epsilon),
        )

    @cached_property
    def offset_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 mean and 1 / sqrt(var + eps) (computed in float64), made once."""
        scale = 1.0 / np.sqrt(np.asarray(self.var, dtype=np.float64) + self.epsilon)
        return np.asarray(self.mean, dtype=np.float32), scale.astype(np.float32)

    def apply(self, obs: np.ndarray) -> np.ndarray:
        mean, scale = self.offset_scale
        return np.clip((obs - mean) * scale, -self.clip_obs, self.clip_obs).astype(np.float32)


@dataclass
class PolicyMetadata:
    env_id: str
    algo: str
    obs_shape: tuple[int, ...]
    n_actions: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    normalization: Normalization | None = None
    timesteps: int = 0
    policy: str = "MlpPolicy"
    policy_kwargs: dict[str, Any] | None = None  # JSON; None: not recorded (the zip needs SB3 to load)
    servegym_version: str = __version__
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, where: str) -> PolicyMetadata:
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT:
                raise ValueError(f"unsupported metadata format {raw.get('format')!r} (expected {FORMAT})")
            norm = raw.get("normalization")
            raw["normalization"] = Normalization(**norm) if norm else None
            raw["obs_shape"] = tuple(int(n) for n in raw["obs_shape"])
            meta = cls(**raw)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise ValueError(f"{where}: corrupt servegym policy metadata: {err}") from err
        if meta.normalization is not None and len(meta.normalization.mean) != int(np.prod(meta.obs_shape)):
            raise ValueError(
                f"{where}: normalisation has {len(meta.normalization.mean)} entries for observation "
                f"shape {meta.obs_shape}"
            )
        return meta


def write_zip_metadata(path: str | Path, meta: PolicyMetadata) -> None:
    """Add (or replace) ``servegym.json`` in an SB3 zip."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist() if n != MEMBER}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr(MEMBER, meta.to_json())


def read_zip_metadata(path: str | Path) -> PolicyMetadata:
    """The metadata of a servegym-trained SB3 zip; a clear error for anything else."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if MEMBER not in archive.namelist():
                raise ValueError(
                    f"{path} is an SB3 zip without servegym metadata ({MEMBER}); train it with "
                    "`servegym train` or pass --env to say which env it belongs to"
                )
            return PolicyMetadata.from_json(archive.read(MEMBER).decode("utf-8"), str(path))
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path} is not a zip file (an SB3 model is one): {err}") from err
