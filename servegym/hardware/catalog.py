"""Name lookup for devices, models and DNNs: shipped YAML catalogs plus user additions.

Names are case-insensitive, ``_``/space/``-`` are interchangeable, and aliases resolve to the
canonical entry. A name that is not found is an error listing the closest matches. Users add
entries with :func:`register_device` / :func:`register_model` / :func:`register_dnn` or a YAML
file (:func:`load_catalog_file`, schema in ``catalog/SCHEMA.md``). Wherever a device name is
accepted, a path to a profile YAML (as written by ``servegym calibrate``) works too.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml

from .device import Device
from .model_spec import DNNSpec, ModelSpec

T = TypeVar("T", Device, ModelSpec, DNNSpec)


class UnknownNameError(KeyError, ValueError):
    """A catalog name that matches nothing; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def normalize(name: str) -> str:
    return "-".join(str(name).strip().lower().replace("_", "-").split())


class _Registry(Generic[T]):
    def __init__(self, kind: str, catalog_file: str, key: str, build) -> None:
        self.kind, self.catalog_file, self.key, self.build = kind, catalog_file, key, build
        self._entries: dict[str, T] | None = None  # normalized name/alias -> entry

    def _load(self) -> dict[str, T]:
        if self._entries is None:
            self._entries = {}
            path = resources.files("servegym.hardware").joinpath(f"catalog/{self.catalog_file}")
            if path.is_file():
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                for i, item in enumerate(data.get(self.key) or []):
                    self.add(self.build(item, f"{self.catalog_file} {self.key}[{i}]"))
        return self._entries

    def add(self, entry: T, *, replace: bool = True) -> T:
        entries = self._entries if self._entries is not None else self._load()
        for name in (entry.name, *entry.aliases):
            key = normalize(name)
            other = entries.get(key)
            if other is not None and other.name != entry.name and not replace:
                raise ValueError(f"{self.kind} name {name!r} is already used by {other.name!r}")
            entries[key] = entry
        return entry

    def get(self, name: str) -> T:
        entries = self._load()
        key = normalize(name)
        if key in entries:
            return entries[key]
        close = difflib.get_close_matches(key, list(entries), n=5, cutoff=0.4)
        canon = sorted({entries[c].name for c in close}) if close else []
        hint = f"; closest: {', '.join(canon)}" if canon else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}{hint}. `servegym.hardware.list_{self.key}()` lists all."
        )

    def names(self) -> list[str]:
        return sorted({e.name for e in self._load().values()})


_DEVICES: _Registry[Device] = _Registry("device", "devices.yaml", "devices", Device.from_dict)
_MODELS: _Registry[ModelSpec] = _Registry("model", "models.yaml", "models", ModelSpec.from_dict)
_DNNS: _Registry[DNNSpec] = _Registry("dnn", "dnns.yaml", "dnns", DNNSpec.from_dict)


def _looks_like_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or "/" in name or "\\" in name


def get_device(name: str | Device | Path) -> Device:
    """A device by name or alias, or from a profile YAML path; shipped profiles apply.

    A device that has a shipped calibrated profile (``profiles/<name>.yaml``) comes with its
    fitted efficiencies (the datasheet stays the catalog's); others use the prior (zero-shot).
    """
    if isinstance(name, Device):
        return name
    if isinstance(name, Path) or _looks_like_path(str(name)):
        from .profiles import load_profile

        return load_profile(name)
    device = _DEVICES.get(str(name))
    if not device.efficiency:
        from .profiles import shipped_profile

        fitted = shipped_profile(device.name)
        if fitted is not None:
            device = device.with_efficiency(fitted.efficiency, **fitted.provenance)
    return device


def get_model(name: str | ModelSpec) -> ModelSpec:
    """A transformer model by name, alias or Hugging Face repo id."""
    return name if isinstance(name, ModelSpec) else _MODELS.get(name)


def get_dnn(name: str | DNNSpec) -> DNNSpec:
    """A layer-wise DNN by name or alias."""
    return name if isinstance(name, DNNSpec) else _DNNS.get(name)


def list_devices() -> list[str]:
    return _DEVICES.names()


def list_models() -> list[str]:
    return _MODELS.names()


def list_dnns() -> list[str]:
    return _DNNS.names()


def register_device(device: Device | Mapping[str, Any]) -> Device:
    """Add (or replace) a device; a mapping uses the catalog schema."""
    if not isinstance(device, Device):
        device = Device.from_dict(device)
    return _DEVICES.add(device)


def register_model(model: ModelSpec | Mapping[str, Any]) -> ModelSpec:
    """Add (or replace) a transformer model; a mapping uses the catalog schema."""
    if not isinstance(model, ModelSpec):
        model = ModelSpec.from_dict(model)
    return _MODELS.add(model)


def register_dnn(dnn: DNNSpec | Mapping[str, Any]) -> DNNSpec:
    """Add (or replace) a DNN; a mapping uses the catalog schema."""
    if not isinstance(dnn, DNNSpec):
        dnn = DNNSpec.from_dict(dnn)
    return _DNNS.add(dnn)


def load_catalog_file(path: str | Path) -> dict[str, list[str]]:
    """Register every device, model and dnn in a user YAML file; returns the names added."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"catalog file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping with 'devices', 'models' and/or 'dnns' lists")
    unknown = set(data) - {"devices", "models", "dnns"}
    if unknown:
        raise ValueError(
            f"{path}: unknown top-level key(s) {sorted(unknown)}; expected devices, models, dnns"
        )
    added: dict[str, list[str]] = {}
    for key, registry in (("devices", _DEVICES), ("models", _MODELS), ("dnns", _DNNS)):
        items = data.get(key) or []
        if not isinstance(items, list):
            raise ValueError(f"{path}: {key!r} must be a list")
        for i, item in enumerate(items):
            entry = registry.build(item, f"{path} {key}[{i}]")
            registry.add(entry)
            added.setdefault(key, []).append(entry.name)
    return added
