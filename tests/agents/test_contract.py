"""Policies are checked against their env at load; the operator's contract is stated and enforced."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from servegym.agents.contract import EnvContract
from servegym.agents.controller import LearnedController
from servegym.agents.export import export_model
from servegym.cli import main

from .conftest import SHORT


def with_metadata(src: Path, dst: Path, **changes) -> Path:
    """A copy of a servegym zip whose servegym.json has ``changes``."""
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for name in a.namelist():
            data = a.read(name)
            if name == "servegym.json":
                data = json.dumps({**json.loads(data), **changes}).encode()
            b.writestr(name, data)
    return dst


@pytest.fixture
def chunk_policy_claiming_mec(trained, tmp_path: Path) -> Path:
    """A ChunkedPrefill policy (20 inputs, 11 actions) whose metadata names MecOffload-v0."""
    run = trained("servegym/ChunkedPrefill-v0", "ppo")
    return with_metadata(
        run.model_path, tmp_path / "ppo_chunk.zip", env_id="servegym/MecOffload-v0", env_kwargs={}
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "{model}", "--numpy", "{tmp}/p.npz"],
        ["serve-policy", "{model}", "--port", "0"],
        ["evaluate", "{model}", "--episodes", "1"],
    ],
    ids=["export", "serve-policy", "evaluate"],
)
def test_a_policy_that_does_not_fit_its_env_is_refused_at_load(
    chunk_policy_claiming_mec: Path, tmp_path: Path, capsys, argv: list[str]
) -> None:
    argv = [a.format(model=chunk_policy_claiming_mec, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "ppo_chunk.zip: the policy takes observations of shape (20,) and has 11 actions, but "
        "servegym/MecOffload-v0 has observations of shape (177,) and 12 actions" in err
    )
    assert "Traceback" not in err and not (tmp_path / "p.npz").exists()


def test_a_numpy_export_that_does_not_fit_is_refused(trained, tmp_path: Path) -> None:
    run = trained("servegym/ChunkedPrefill-v0", "ppo")
    export_model(run.model_path, numpy_out=tmp_path / "p.npz", check=0)
    with np.load(tmp_path / "p.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["metadata"]))
    arrays["metadata"] = np.array(json.dumps({**meta, "env_id": "servegym/SpecDecode-v0", "env_kwargs": {}}))
    np.savez(tmp_path / "q.npz", **arrays)
    with pytest.raises(ValueError, match=r"q\.npz: the policy takes observations of shape \(20,\).*\(27,\)"):
        LearnedController.load(tmp_path / "q.npz")
    with pytest.raises(ValueError, match="trained on servegym/ChunkedPrefill-v0, not servegym/SpecDecode-v0"):
        LearnedController.load(tmp_path / "p.npz", env_id="servegym/SpecDecode-v0")


def test_a_zip_naming_an_unknown_env_is_a_one_line_error(trained, tmp_path: Path, capsys) -> None:
    run = trained("servegym/MecOffload-v0", "ppo")
    gone = with_metadata(run.model_path, tmp_path / "gone.zip", env_id="servegym/MecOfload-v0")
    assert main(["evaluate", str(gone)]) == 2
    err = capsys.readouterr().err
    assert "gone.zip: the policy's env: unknown env id 'servegym/MecOfload-v0'" in err
    assert "did you mean 'servegym/MecOffload-v0'" in err and "Traceback" not in err


def test_act_from_metrics_names_bad_and_missing_metrics(trained) -> None:
    controller = LearnedController.load(trained("servegym/ChunkedPrefill-v0", "ppo").model_path)
    env = gym.make("servegym/ChunkedPrefill-v0", **SHORT["servegym/ChunkedPrefill-v0"])
    obs, info = env.reset(seed=3)
    metrics = dict(info["metrics"])
    assert controller.act_from_metrics(metrics) == controller.act(obs)
    with pytest.raises(ValueError, match=r"waiting: expected a number \(requests\), got a string .many."):
        controller.act_from_metrics({**metrics, "waiting": "many"})
    with pytest.raises(ValueError, match=r"ttft_slo_s: must be > 0 \(s\), got 0"):
        controller.act_from_metrics({**metrics, "ttft_slo_s": 0})
    dynamic = {k: v for k, v in metrics.items() if k not in ("decoding", "kv_utilization")}
    with pytest.raises(ValueError, match=r"^decoding: missing; kv_utilization: missing$"):
        controller.act_from_metrics(dynamic)


def test_scenario_metrics_are_optional_and_take_the_training_scenarios_value(trained) -> None:
    controller = LearnedController.load(trained("servegym/ChunkedPrefill-v0", "ppo").model_path)
    env = gym.make("servegym/ChunkedPrefill-v0", **SHORT["servegym/ChunkedPrefill-v0"])
    obs, info = env.reset(seed=3)
    static = ("ttft_slo_s", "tbt_slo_s", "max_num_seqs", "capacity_rps")
    live = {k: v for k, v in info["metrics"].items() if k not in static}
    assert controller.act_from_metrics(live) == controller.act(obs)
    contract = controller.contract
    assert set(contract.scenario_values) == set(static)
    assert contract.scenario_values["ttft_slo_s"] == info["metrics"]["ttft_slo_s"]
    random = EnvContract.of("servegym/ChunkedPrefill-v0", {"scenario": "random"})
    assert random.scenario_values == {}  # a random scenario has no fixed SLOs: they are required


def test_export_prints_the_metrics_and_actions(trained, tmp_path: Path, capsys) -> None:
    run = trained("servegym/ChunkedPrefill-v0", "ppo")
    assert main(["export", str(run.model_path), "--numpy", str(tmp_path / "p.npz")]) == 0
    printed = capsys.readouterr().out
    assert "metrics a live system sends for servegym/ChunkedPrefill-v0" in printed
    rows = {line.split()[0]: line for line in printed.splitlines() if line.strip()}
    assert (
        "s" in rows["ttft_slo_s"].split() and "> 0" in rows["ttft_slo_s"] and "optional" in rows["ttft_slo_s"]
    )
    assert "in [0, 1]" in rows["kv_utilization"] and "required" in rows["kv_utilization"]
    assert "token budget 8192" in printed and "0   token budget 128" in printed


def test_the_contract_command_prints_any_envs_contract(capsys) -> None:
    assert main(["contract", "servegym/SpecDecode-v0", "--scenario", "llama3-8b-1b-code"]) == 0
    printed = capsys.readouterr().out
    assert "metrics a live system sends for servegym/SpecDecode-v0" in printed
    assert "acceptance_pos8" in printed and "k = 8 draft tokens" in printed
    assert main(["contract", "servegym/MecOffload"]) == 2
    assert "did you mean 'servegym/MecOffload-v0'" in capsys.readouterr().err
