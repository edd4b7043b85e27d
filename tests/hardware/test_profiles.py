"""Device profiles: YAML round trip, profile paths as device names, malformed files."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

from servegym.hardware import (
    GENERIC_PRIOR,
    LatencyModel,
    Measurement,
    calibrate,
    get_device,
    load_profile,
    save_profile,
)
from servegym.hardware.profiles import profile_dict, shipped_profile


@pytest.fixture
def fitted_device():
    """A device with fitted efficiencies and calibration provenance (lists, dicts, dates)."""
    recs = [Measurement(op="cpu_overhead", seconds=1e-3 + 2e-5 * b, batch_size=b) for b in (1, 8, 64, 256)]
    recs += [Measurement(op="gemm", seconds=1e-5 * (1 + m / 64), m=m, n=4096, k=4096) for m in (1, 64, 4096)]
    return calibrate(get_device("l4"), recs, GENERIC_PRIOR, source="unit test")


def test_round_trip_gives_an_equal_device(tmp_path, fitted_device):
    path = save_profile(fitted_device, tmp_path / "deep" / "dir" / "l4.yaml")
    assert path.is_file()
    back = load_profile(path)
    assert back == fitted_device
    assert back.efficiency == fitted_device.efficiency
    assert back.datasheet_dict() == fitted_device.datasheet_dict()
    assert back.provenance == fitted_device.provenance
    assert back.provenance["source"] == "unit test"
    assert back.aliases == fitted_device.aliases
    assert path.read_text().startswith("# servegym device profile")


def test_round_trip_numpy_provenance(tmp_path):
    dev = get_device("h100").with_efficiency({"gemm.eta_c": 0.61}, score=np.float64(0.25), n=np.int64(3))
    back = load_profile(save_profile(dev, tmp_path / "h.yaml"))
    assert back.provenance == {"score": 0.25, "n": 3}
    assert back.efficiency == {"gemm.eta_c": 0.61}


def test_shipped_a100_profile_round_trips(tmp_path):
    a100 = get_device("a100")
    assert a100.efficiency, "the A100 ships with a calibrated profile"
    shipped = shipped_profile("A100-80GB")
    assert shipped.efficiency == a100.efficiency and shipped.provenance == a100.provenance
    assert shipped_profile("L40S") is None
    assert load_profile(save_profile(a100, tmp_path / "a.yaml")) == a100


def test_get_device_and_latency_model_accept_profile_paths(tmp_path, fitted_device):
    path = save_profile(fitted_device, tmp_path / "my-l4.yaml")
    assert get_device(str(path)) == fitted_device
    assert get_device(path) == fitted_device
    lm = LatencyModel("Llama-3-8B", str(path))
    assert lm.device == fitted_device
    assert lm.cpu_overhead_time(0) == fitted_device.efficiency["cpu.c0_s"]


def test_profile_path_without_yaml_suffix(tmp_path, fitted_device):
    path = tmp_path / "profile.txt"
    save_profile(fitted_device, path)
    assert get_device(str(path)) == fitted_device  # a '/' marks a path


def _profile_text(device) -> dict:
    return profile_dict(device)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "", "not a servegym profile"),
        (lambda d: "just a string\n", "not a servegym profile"),
        (lambda d: "device: [\n", "not valid YAML"),
        (lambda d: yaml.safe_dump({**d, "servegym_profile": 2}), "servegym_profile must be 1, got 2"),
        (lambda d: yaml.safe_dump({k: v for k, v in d.items() if k != "servegym_profile"}), "got None"),
        (lambda d: yaml.safe_dump({**d, "efficiency": [1, 2]}), "efficiency must be a mapping"),
        (
            lambda d: yaml.safe_dump({**d, "efficiency": {"gemm.eta_q": 0.5}}),
            "unknown parameter 'gemm.eta_q'",
        ),
        (
            lambda d: yaml.safe_dump({**d, "efficiency": {"gemm.eta_c": -0.5}}),
            "'gemm.eta_c' must be positive",
        ),
        (
            lambda d: yaml.safe_dump({**d, "device": {**d["device"], "clock_mhz": 1}}),
            r"unknown device field\(s\) \['clock_mhz'\]",
        ),
        (
            lambda d: yaml.safe_dump(
                {**d, "device": {k: v for k, v in d["device"].items() if k != "mem_capacity"}}
            ),
            r"missing device field\(s\) \['mem_capacity'\]",
        ),
    ],
)
def test_malformed_profiles_name_the_file(tmp_path, fitted_device, mutate, message):
    path = tmp_path / "bad.yaml"
    path.write_text(mutate(_profile_text(fitted_device)))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        load_profile(path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        get_device(str(path))


@pytest.mark.parametrize(
    ("field", "value"), [("mem_bandwidth", -5.0), ("kind", "tpu"), ("peak_flops", {"fp16": ".nan"})]
)
def test_bad_datasheet_value_in_profile_names_the_file(tmp_path, fitted_device, field, value):
    data = _profile_text(fitted_device)
    data["device"][field] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_profile(path)


def test_missing_profile(tmp_path):
    with pytest.raises(FileNotFoundError, match="device profile not found"):
        load_profile(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError):
        get_device(str(tmp_path / "nope.yaml"))
