"""An autoscaling policy driven by a live vLLM fleet: Prometheus scrapes in, a replica count out."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from servegym.agents.controller import LearnedController
from servegym.agents.prometheus import VLLMFleetMetrics, fraction_above, parse_replica, quantile
from servegym.agents.service import create_app

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class FakeReplica:
    """The vLLM metrics a replica exports (names as in vLLM V1), in a registry of its own."""

    def __init__(self, model: str = "llama") -> None:
        self.registry = CollectorRegistry()
        labels = ["model_name"]
        self.running = Gauge("vllm:num_requests_running", "running", labels, registry=self.registry)
        self.waiting = Gauge("vllm:num_requests_waiting", "waiting", labels, registry=self.registry)
        self.kv = Gauge("vllm:kv_cache_usage_perc", "kv", labels, registry=self.registry)
        self.success = Counter(
            "vllm:request_success", "done", [*labels, "finished_reason"], registry=self.registry
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds", "ttft", labels, buckets=BUCKETS, registry=self.registry
        )
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds", "itl", labels, buckets=BUCKETS, registry=self.registry
        )
        self.model = model

    def serve(self, running: int, waiting: int, kv: float, finished: int, ttft: float, itl: float) -> str:
        m = self.model
        self.running.labels(m).set(running)
        self.waiting.labels(m).set(waiting)
        self.kv.labels(m).set(kv)
        self.success.labels(m, "stop").inc(finished)
        for _ in range(finished):
            self.ttft.labels(m).observe(ttft)
            self.itl.labels(m).observe(itl)
        return generate_latest(self.registry).decode()


def test_histogram_helpers_follow_promql():
    buckets = {0.1: 10.0, 0.5: 60.0, 1.0: 100.0, math.inf: 100.0}
    assert quantile(buckets, 0.5) == pytest.approx(0.1 + 0.4 * (50 - 10) / 50)
    assert quantile(buckets, 0.99) == pytest.approx(0.5 + 0.5 * (99 - 60) / 40)
    assert fraction_above(buckets, 0.5) == pytest.approx(0.4)
    assert quantile({}, 0.5) == 0.0 and fraction_above({1.0: 0.0}, 0.5) == 0.0


def test_fleet_metrics_from_scrapes():
    replicas = [FakeReplica(), FakeReplica()]
    fleet = VLLMFleetMetrics(ttft_slo_s=2.0, tpot_slo_s=0.1, preference=0.1)
    fleet.observe([r.serve(10, 0, 0.3, 0, 0.2, 0.02) for r in replicas], now_s=1000.0, ready=2)
    m = fleet.observe(
        [r.serve(12, 3, 0.5, 30, 0.2, 0.02) for r in replicas], now_s=1015.0, ready=2, starting=1
    )
    # arrivals = finished (60) + growth of running and waiting (2 x 5) over 15 s
    assert m["arrival_rate_rps"] == pytest.approx(70 / 15)
    assert m["queue_requests"] == 6 and m["running_per_replica"] == 12 and m["kv_utilization"] == 0.5
    assert m["starting_replicas"] == 1 and 0.1 < m["ttft_p50_s"] <= 0.25 and m["slo_miss_fraction"] == 0.0
    late = fleet.observe([r.serve(12, 3, 0.5, 20, 3.0, 0.02) for r in replicas], now_s=1030.0, ready=2)
    assert late["ttft_p50_s"] > 2.0 and late["slo_miss_fraction"] == pytest.approx(1.0)


def test_scrapes_missing_a_metric_or_not_prometheus_are_refused():
    with pytest.raises(ValueError, match="vllm:num_requests_waiting"):
        parse_replica("# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 3\n")
    with pytest.raises(ValueError, match="not Prometheus text format"):
        parse_replica("vllm:num_requests_running three\n")
    with pytest.raises(ValueError, match="preference"):
        VLLMFleetMetrics(2.0, 0.1, preference=2.0)


@pytest.fixture(scope="module")
def autoscaler(trained):
    return LearnedController.load(trained("servegym/Autoscale-v0", "ppo").model_path)


def test_a_trained_autoscaler_answers_scrapes_with_a_replica_count(autoscaler):
    replicas = [FakeReplica() for _ in range(3)]
    answers = []
    for k, load in enumerate((5, 20, 60)):
        scrapes = [r.serve(load, load // 5, min(load / 80, 1.0), 4 * load, 0.3, 0.03) for r in replicas]
        action, count, metrics = autoscaler.act_from_prometheus(scrapes, now_s=15.0 * k, ready=3)
        assert 0 <= action < autoscaler.metadata.n_actions
        assert count == autoscaler.contract._env.replicas_for(action, metrics)
        answers.append(count)
    assert all(1 <= n <= 16 for n in answers)


def test_the_decision_service_answers_prometheus_bodies(autoscaler):
    client = TestClient(create_app(autoscaler))
    replicas = [FakeReplica() for _ in range(2)]
    for k in range(3):
        body = {
            "prometheus": [r.serve(8, 1, 0.4, 30, 0.3, 0.03) for r in replicas],
            "fleet": {"now_s": 100.0 + 15 * k, "ready": 2, "starting": 0},
        }
        answer = client.post("/act", json=body)
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) == {"action", "replicas"} and 1 <= answer.json()["replicas"] <= 16
    bad = client.post(
        "/act", json={"prometheus": ["vllm:num_requests_running x\n"], "fleet": {"now_s": 1, "ready": 1}}
    )
    assert bad.status_code == 422 and "Prometheus" in bad.text
    missing = client.post("/act", json={"prometheus": [replicas[0].serve(1, 0, 0.1, 1, 0.1, 0.01)]})
    assert missing.status_code == 422 and "fleet" in missing.text
