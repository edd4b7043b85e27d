"""Device profiles: datasheet + fitted efficiencies + provenance, as auditable YAML."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .device import Device

PROFILE_FORMAT = 1


def profile_dict(device: Device) -> dict[str, Any]:
    return {
        "servegym_profile": PROFILE_FORMAT,
        "device": device.datasheet_dict(),
        "efficiency": {k: float(v) for k, v in sorted(device.efficiency.items())},
        "provenance": _plain(device.provenance),
    }


def _plain(value: Any) -> Any:
    """Convert numpy scalars and tuples to YAML-safe builtins."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def save_profile(device: Device, path: str | Path) -> Path:
    """Write ``device`` (datasheet, efficiencies, provenance) to a YAML profile."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# servegym device profile: datasheet numbers, fitted efficiencies, provenance\n"
    text += yaml.safe_dump(profile_dict(device), sort_keys=False, width=100)
    path.write_text(text, encoding="utf-8")
    return path


def profile_from_dict(data: Any, where: str) -> Device:
    if not isinstance(data, Mapping) or "device" not in data:
        raise ValueError(
            f"{where}: not a servegym profile (expected keys servegym_profile, device, efficiency)"
        )
    version = data.get("servegym_profile")
    if version != PROFILE_FORMAT:
        raise ValueError(f"{where}: servegym_profile must be {PROFILE_FORMAT}, got {version!r}")
    try:
        device = Device.from_dict(data["device"], where=f"{where} device")
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(where) else f"{where}: {message}") from None
    eff = data.get("efficiency") or {}
    if not isinstance(eff, Mapping):
        raise ValueError(f"{where}: efficiency must be a mapping of parameter -> value")
    try:
        return device.with_efficiency(eff, **dict(data.get("provenance") or {}))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def load_profile(path: str | Path) -> Device:
    """Read a profile YAML written by :func:`save_profile` or ``servegym calibrate``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"device profile not found: {path}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    return profile_from_dict(data, str(path))


@cache
def _shipped_index() -> dict[str, str]:
    """Canonical device name -> shipped profile file name."""
    from .catalog import normalize

    index: dict[str, str] = {}
    folder = resources.files("servegym.hardware").joinpath("profiles")
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml") and entry.name != "prior.yaml":
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
            index[normalize(data["device"]["name"])] = entry.name
    return index


@cache
def shipped_profile(device_name: str) -> Device | None:
    """The calibrated profile shipped for a catalog device, if there is one."""
    from .catalog import normalize

    fname = _shipped_index().get(normalize(device_name))
    if fname is None:
        return None
    entry = resources.files("servegym.hardware").joinpath(f"profiles/{fname}")
    return profile_from_dict(yaml.safe_load(entry.read_text(encoding="utf-8")), f"servegym profile {fname}")
