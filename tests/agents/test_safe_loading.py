"""Loading a policy executes no code: servegym zips load without unpickling; pickles need --trust-pickle."""

from __future__ import annotations

import base64
import io
import json
import pathlib
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from servegym.agents.algos import ALGOS
from servegym.agents.controller import LearnedController
from servegym.agents.export import export_model
from servegym.cli import main


class WritesAFile:
    """Unpickling this calls Path.touch(target): the stand-in for an attacker's payload."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def rewrite_zip(src: Path, dst: Path, replace: dict[str, bytes]) -> None:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for name in a.namelist():
            b.writestr(name, replace.get(name, a.read(name)))


def with_payload_in_data(src: Path, dst: Path, target: Path) -> None:
    """SB3 keeps spaces and schedules in ``data`` as base64 cloudpickles; put the payload there."""
    with zipfile.ZipFile(src) as archive:
        data = json.loads(archive.read("data"))
    for key in ("observation_space", "action_space", "lr_schedule", "policy_class"):
        data[key][":serialized:"] = base64.b64encode(pickle.dumps(WritesAFile(target))).decode()
    rewrite_zip(src, dst, {"data": json.dumps(data).encode()})


def test_a_servegym_zip_with_a_payload_loads_without_running_it(trained, tmp_path: Path) -> None:
    run = trained("servegym/MecOffload-v0", "ppo")
    target = tmp_path / "pwned"
    evil = tmp_path / "evil.zip"
    with_payload_in_data(run.model_path, evil, target)

    controller = LearnedController.load(evil)  # reads servegym.json and policy.pth only
    export_model(evil, numpy_out=tmp_path / "p.npz", check=100)
    assert main(["evaluate", str(evil), "--episodes", "1"]) == 0
    assert not target.exists()
    obs = np.random.default_rng(0).random((50, controller.obs_size), dtype=np.float32)
    np.testing.assert_array_equal(
        controller.act_batch(obs), LearnedController.load(run.model_path).act_batch(obs)
    )

    with pytest.raises(ValueError):  # SB3's own loader runs the payload (then fails on the space)
        ALGOS["ppo"].load(evil, device="cpu")
    assert target.exists()  # so the payload is real


def test_a_policy_pth_with_a_payload_is_refused_without_running_it(trained, tmp_path: Path) -> None:
    run = trained("servegym/MecOffload-v0", "ppo")
    target = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"mlp_extractor.policy_net.0.weight": WritesAFile(target)}, buffer)
    evil = tmp_path / "evil.zip"
    rewrite_zip(run.model_path, evil, {"policy.pth": buffer.getvalue()})
    with pytest.raises(ValueError, match=r"evil\.zip: policy\.pth holds more than tensors"):
        LearnedController.load(evil)
    assert not target.exists()


def test_pickles_are_refused_without_trust_pickle(trained, tmp_path: Path, capsys) -> None:
    run = trained("servegym/MecOffload-v0", "ppo")
    target = tmp_path / "pwned"
    stats = tmp_path / "vecnormalize.pkl"
    stats.write_bytes(pickle.dumps(WritesAFile(target)))
    plain = tmp_path / "plain.zip"  # an SB3 zip without servegym's metadata (rl_zoo3's output)
    with_payload_in_data(run.model_path, tmp_path / "tmp.zip", target)
    with zipfile.ZipFile(tmp_path / "tmp.zip") as src, zipfile.ZipFile(plain, "w") as dst:
        for name in src.namelist():
            if name != "servegym.json":
                dst.writestr(name, src.read(name))
    for argv, message in (
        (["evaluate", str(run.model_path), "--vecnormalize", str(stats)], "is a pickle (VecNormalize)"),
        (["evaluate", str(plain), "--env", "servegym/MecOffload-v0"], "no servegym metadata"),
        (
            ["export", str(plain), "--env", "servegym/MecOffload-v0", "--numpy", str(tmp_path / "p.npz")],
            "no servegym metadata",
        ),
        (["serve-policy", str(plain), "--env", "servegym/MecOffload-v0"], "no servegym metadata"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "--trust-pickle" in err and "Traceback" not in err
    assert not target.exists()
    old = tmp_path / "old.zip"  # a servegym zip from before policy arguments were recorded
    with zipfile.ZipFile(run.model_path) as archive:
        meta = json.loads(archive.read("servegym.json"))
    meta.pop("policy_kwargs")
    rewrite_zip(run.model_path, old, {"servegym.json": json.dumps(meta).encode()})
    with pytest.raises(ValueError, match=r"does not record its policy arguments.*--trust-pickle"):
        LearnedController.load(old)
    assert LearnedController.load(old, trust_pickle=True).metadata.env_id == "servegym/MecOffload-v0"
