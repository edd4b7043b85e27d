"""The HTTP decision service: JSON in, JSON out, 4xx with a message on bad input."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import gymnasium as gym
import httpx
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


def _wait_until_up(base: str, server: subprocess.Popen | None = None) -> None:
    for _ in range(300):
        if server is not None and server.poll() is not None:
            raise AssertionError(f"the server exited: {server.stdout.read()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).json() == {"status": "ok"}:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{base} did not come up")


CHUNK_SHORT = {"horizon_s": 10.0}

MALFORMED_METRICS = [  # (metric overrides, the field the 422 must name)
    ({"ttft_slo_s": [2.0]}, "ttft_slo_s"),  # a list for a number
    ({"decoding": [[1.0, 2.0]]}, "decoding"),  # a nested list
    ({"waiting": "3"}, "waiting"),  # a string
    ({"kv_utilization": None}, "kv_utilization"),  # null
    ({"decoding": True}, "decoding"),  # a boolean
    ({"prefilling": {"n": 1}}, "prefilling"),  # an object
    ({"ttft_slo_s": 0}, "ttft_slo_s"),  # a zero divisor
    ({"tbt_slo_s": 0.0}, "tbt_slo_s"),
    ({"tbt_slo_s": -0.1}, "tbt_slo_s"),  # a negative SLO
    ({"capacity_rps": 0}, "capacity_rps"),  # a zero scale
    ({"max_num_seqs": 0}, "max_num_seqs"),
    ({"waiting_prompt_tokens": -5}, "waiting_prompt_tokens"),  # log1p of a negative
    ({"kv_utilization": 1.5}, "kv_utilization"),  # a fraction above 1
    ({"budget_index": 2.5}, "budget_index"),  # a fractional index
    ({"budget_index": 11}, "budget_index"),  # an index past the menu
    ({"decoding": 10**400}, "decoding"),  # an integer too large for a float
]
RAW_BODIES = [  # (body, content type, the status it must get)
    (b'{"metrics": {"ttft_slo_s": NaN}}', "application/json", 422),
    (b'{"metrics": {"ttft_slo_s": Infinity}}', "application/json", 422),
    (b'{"obs": [NaN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}', "application/json", 422),
    (b"{not json", "application/json", 422),
    (b"", "application/json", 422),
    (b"[" * 50_000, "application/json", 400),  # nesting deeper than the JSON parser's recursion
    (b"[1, 2, 3]", "application/json", 422),
    (b'"metrics"', "application/json", 422),
    (b"metrics=1", "application/x-www-form-urlencoded", 422),
]
MALFORMED_BODIES = [  # whole bodies
    {},
    {"obs": [0.0] * 20, "metrics": {}},
    {"obs": [0.0] * 3},
    {"obs": ["a"] * 20},
    {"metrics": [1, 2]},
    {"metrics": "all of them"},
    {"metrics": {}},
    {"obs": [0.0] * 20, "action_mask": [True]},
    {"obs": [0.0] * 20, "action_mask": ["maybe"] * 11},
    {"obs": [0.0] * 20, "unknown": 1},
]


def _valid_requests(controller: LearnedController, n: int) -> list[tuple[dict, int]]:
    """Bodies of real ChunkedPrefill metrics (some as obs, some with a mask) and their actions."""
    env = gym.make("servegym/ChunkedPrefill-v0", **CHUNK_SHORT)
    obs, info = env.reset(seed=11)
    rng = np.random.default_rng(0)
    requests = []
    for i in range(n):
        mask = rng.random(11) < 0.7
        mask[rng.integers(11)] = True
        if i % 3 == 0:
            body, expected = {"obs": obs.tolist()}, controller.act(obs)
        elif i % 3 == 1:
            body, expected = {"metrics": _jsonable(info["metrics"])}, controller.act(obs)
        else:
            body = {"metrics": _jsonable(info["metrics"]), "action_mask": mask.tolist()}
            expected = controller.act(obs, {"action_mask": mask})
        requests.append((body, expected))
        obs, _, terminated, truncated, info = env.step(expected)
        if terminated or truncated:
            obs, info = env.reset()
    return requests


@pytest.mark.slow
def test_keep_alive_connection_survives_every_malformed_input(trained, tmp_path) -> None:
    """One httpx.Client (one keep-alive connection) to a real server: every malformed input class
    interleaved with valid bodies; every valid one gets 200 and the right action, nothing gets a 5xx,
    and the server logs no traceback."""
    from servegym.agents.export import export_model

    run = trained("servegym/ChunkedPrefill-v0", "ppo")
    export_model(run.model_path, numpy_out=tmp_path / "p.npz", check=0)
    controller = LearnedController.load(tmp_path / "p.npz")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "servegym.cli", "serve-policy", str(tmp_path / "p.npz"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, server)
        valid = iter(_valid_requests(controller, 3 * (len(MALFORMED_METRICS) + len(RAW_BODIES) + 20)))
        template = next(b for b, _ in _valid_requests(controller, 2) if "metrics" in b)["metrics"]
        bad: list[tuple[str, dict]] = []
        bad += [("json", {"metrics": {**template, **o}}) for o, _ in MALFORMED_METRICS]
        bad += [("json", body) for body in MALFORMED_BODIES]
        bad += [("raw", {"content": c, "headers": {"content-type": t}}) for c, t, _ in RAW_BODIES]
        missing = {k: v for k, v in template.items() if k not in ("decoding", "waiting", "kv_utilization")}
        bad.append(("json", {"metrics": missing}))
        statuses, ports = [], set()
        with httpx.Client(base_url=base, timeout=10) as client:
            for i, (kind, request) in enumerate(bad):
                if kind == "json":
                    response = client.post("/act", content=json.dumps(request).encode(), headers=JSON)
                else:
                    response = client.post("/act", **request)
                statuses.append(response.status_code)
                assert 400 <= response.status_code < 500, (request, response.text)
                if i < len(MALFORMED_METRICS):
                    field = MALFORMED_METRICS[i][1]
                    assert response.status_code == 422
                    detail = response.json()["detail"]
                    assert [d["loc"] for d in detail] == [["body", "metrics", field]], detail
                ports.add(response.extensions["network_stream"].get_extra_info("client_addr")[1])
                for _ in range(2):  # valid bodies right after the bad one, on the same connection
                    body, expected = next(valid)
                    good = client.post("/act", json=body)
                    assert good.status_code == 200 and good.json() == {"action": expected}, (
                        request,
                        good.text,
                    )
                    ports.add(good.extensions["network_stream"].get_extra_info("client_addr")[1])
            detail = client.post("/act", json={"metrics": missing}).json()["detail"]
            assert [d["loc"][-1] for d in detail] == ["decoding", "waiting", "kv_utilization"]  # all at once
            raw = {c: s for c, _, s in RAW_BODIES}
            assert statuses[-len(RAW_BODIES) - 1 : -1] == list(raw.values())
        assert len(ports) == 1  # one TCP connection throughout: none was torn down
    finally:
        server.terminate()
        log = server.communicate(timeout=10)[0]
    assert "Traceback" not in log and "500 Internal" not in log, log


JSON = {"content-type": "application/json"}


def test_an_unexpected_exception_is_a_json_500_that_keeps_the_connection(trained, caplog) -> None:
    """A bug (here: an injected RuntimeError) answers a JSON 500 with a request id, logged with its
    traceback, and the next request on the same keep-alive connection is answered."""
    import threading

    import uvicorn

    controller = LearnedController.load(trained("servegym/MecOffload-v0", "ppo").model_path)
    real_act = controller.act

    def act(obs, info=None):
        if obs[0] == 0.5:
            raise RuntimeError("injected failure")
        return real_act(obs, info)

    controller.act = act
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(controller), host="127.0.0.1", port=port, log_config=None, log_level="info")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base)
        obs = np.zeros(controller.obs_size)
        with httpx.Client(base_url=base, timeout=10) as client:
            before = client.post("/act", json={"obs": obs.tolist()})
            failed = client.post(
                "/act", json={"obs": [0.5, *obs[1:].tolist()]}, headers={"x-request-id": "req-42"}
            )
            after = client.post("/act", json={"obs": obs.tolist()})
            streams = {
                r.extensions["network_stream"].get_extra_info("client_addr") for r in (before, failed, after)
            }
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert before.status_code == after.status_code == 200 and after.json() == before.json()
    assert failed.status_code == 500 and failed.headers["x-request-id"] == "req-42"
    assert failed.json() == {
        "detail": "internal error; the server log has the traceback",
        "request_id": "req-42",
    }
    assert len(streams) == 1
    logged = [r for r in caplog.records if "req-42" in r.getMessage()]
    assert logged and logged[0].exc_info and "injected failure" in str(logged[0].exc_info[1])


def test_policy_states_the_operators_contract(client_and_controller) -> None:
    client, controller = client_and_controller
    policy = client.get("/policy").json()
    metrics = {m["name"]: m for m in policy["metrics"]}
    assert list(metrics) == [m.name for m in type(controller.contract._env).METRICS]
    assert metrics["deadline_s"] == {
        "name": "deadline_s",
        "unit": "s",
        "description": "the task's deadline",
        "shape": [],
        "per": "",
        "range": "> 0",
        "required": True,
        "default": None,
    }
    assert metrics["edge_histogram"]["shape"] == [10, 8] and metrics["rates_bps"]["unit"] == "bit/s"
    assert [a["meaning"] for a in policy["actions"]][:3] == ["local", "cloud", "edge 0"]
    assert len(policy["actions"]) == policy["n_actions"] == 12
