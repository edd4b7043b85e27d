"""The HTTP decision service: JSON in, JSON out, 4xx with a message on bad input."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import gymnasium as gym
import numpy as np
import pytest
from fastapi.testclient import TestClient

from servegym.agents.controller import LearnedController
from servegym.agents.service import create_app


@pytest.fixture(scope="module")
def client_and_controller(trained):
    controller = LearnedController.load(trained("servegym/MecOffload-v0", "ppo").model_path)
    return TestClient(create_app(controller)), controller


def _jsonable(metrics: dict) -> dict:
    """Strict JSON has no infinity: an unavailable action's estimate goes as a huge number."""
    return {k: np.nan_to_num(np.asarray(v, dtype=float), posinf=1e300).tolist() for k, v in metrics.items()}


def test_actions_from_obs_and_from_metrics(client_and_controller) -> None:
    client, controller = client_and_controller
    assert client.get("/health").json() == {"status": "ok"}
    policy = client.get("/policy").json()
    assert policy["env_id"] == "servegym/MecOffload-v0" and policy["obs_size"] == controller.obs_size
    env = gym.make("servegym/MecOffload-v0")
    obs, info = env.reset(seed=2)
    for _ in range(10):
        expected = controller.act(obs, info)
        mask = info["action_mask"].tolist()
        by_obs = client.post("/act", json={"obs": obs.tolist(), "action_mask": mask})
        by_metrics = client.post("/act", json={"metrics": _jsonable(info["metrics"]), "action_mask": mask})
        assert by_obs.status_code == by_metrics.status_code == 200
        assert by_obs.json() == by_metrics.json() == {"action": expected}
        obs, _, _, _, info = env.step(expected)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "exactly one of 'obs'"),
        ({"obs": [0.0], "metrics": {"a": 1.0}}, "exactly one of 'obs'"),
        ({"obs": [0.0, 1.0]}, "expected 177 numbers, got 2"),
        ({"obs": "text"}, "obs"),
        ({"obs": [0.0], "extra": 1}, "extra"),
        ({"metrics": {"deadline_s": 1.0}}, '"task_bits"], "msg": "missing"'),
    ],
)
def test_bad_requests_get_422_with_a_message(client_and_controller, body: dict, message: str) -> None:
    client, _ = client_and_controller
    response = client.post("/act", json=body)
    assert response.status_code == 422
    assert message in json.dumps(response.json())


def test_wrong_mask_length_is_a_422(client_and_controller) -> None:
    client, controller = client_and_controller
    response = client.post("/act", json={"obs": [0.0] * controller.obs_size, "action_mask": [True]})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "action_mask"], "msg": "expected 12 booleans, got 1", "type": "value_error"}
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_policy_answers_on_loopback(trained, tmp_path) -> None:
    from servegym.agents.export import export_model

    run = trained("servegym/MecOffload-v0", "ppo")
    export_model(run.model_path, tmp_path / "p.onnx", check=0)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "servegym.cli", "serve-policy", str(tmp_path / "p.onnx"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=1) as r:
                    assert json.load(r) == {"status": "ok"}
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        controller = LearnedController.load(tmp_path / "p.onnx")
        obs = np.zeros(controller.obs_size, dtype=np.float32)
        request = urllib.request.Request(
            f"{base}/act",
            data=json.dumps({"obs": obs.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            assert json.load(r) == {"action": controller.act(obs)}
        bad = urllib.request.Request(
            f"{base}/act", data=b"{not json", headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=5)
        assert err.value.code == 422
    finally:
        server.terminate()
        server.wait(timeout=10)
