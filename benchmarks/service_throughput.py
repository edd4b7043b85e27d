"""Benchmark: the decision service (``servegym serve-policy``) under concurrent keep-alive clients.

    python benchmarks/service_throughput.py [--model runs/.../model.zip] [--clients 1 4 8]
        [--requests 4000] [--repeats 3]

Starts ``servegym serve-policy`` on the numpy export of a ChunkedPrefill PPO policy (without
--model it trains a 2,048-step one: the network shape, not the training, sets the cost), then
for each client count runs that many threads, each with its own ``httpx.Client`` (one keep-alive
connection), sending real ChunkedPrefill metrics. Reports requests/s and the p50/p99 latency per
request (medians over the repeats), and a mixed run where half the bodies are malformed: its
status counts, connection errors and wrong actions. No assertions; the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import gymnasium as gym
import httpx
import numpy as np

from servegym.agents.controller import LearnedController
from servegym.agents.export import export_model
from servegym.agents.train import train

ENV = "servegym/ChunkedPrefill-v0"
MALFORMED = [
    {"ttft_slo_s": [2.0]},
    {"decoding": [[1.0]]},
    {"waiting": "3"},
    {"kv_utilization": None},
    {"ttft_slo_s": 0},
    {"tbt_slo_s": -1.0},
    {"waiting_prompt_tokens": -5},
    {"budget_index": 2.5},
    {"decoding": 10**400},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies(controller: LearnedController, n: int, horizon_s: float) -> list[tuple[bytes, int]]:
    """JSON bodies of real metrics along a rollout, with the policy's action for each."""
    env = gym.make(ENV, **{**controller.metadata.env_kwargs, "horizon_s": horizon_s})
    obs, info = env.reset(seed=0)
    out = []
    for _ in range(n):
        metrics = {k: float(v) for k, v in info["metrics"].items()}
        action = controller.act(obs)
        out.append((json.dumps({"metrics": metrics}).encode(), action))
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            obs, info = env.reset()
    return out


def run_clients(base: str, work: list[tuple[bytes, int | None]], clients: int) -> dict:
    """``clients`` threads, one keep-alive connection each, splitting ``work``; expected None = malformed."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    statuses: list[dict[int, int]] = [{} for _ in range(clients)]
    wrong, errors = [0] * clients, [0] * clients
    headers = {"content-type": "application/json"}

    def client(i: int) -> None:
        with httpx.Client(base_url=base, timeout=10) as http:
            for body, expected in work[i::clients]:
                start = time.perf_counter()
                try:
                    response = http.post("/act", content=body, headers=headers)
                except httpx.TransportError:
                    errors[i] += 1
                    continue
                latencies[i].append(time.perf_counter() - start)
                statuses[i][response.status_code] = statuses[i].get(response.status_code, 0) + 1
                if expected is not None and (
                    response.status_code != 200 or response.json()["action"] != expected
                ):
                    wrong[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat = np.concatenate([np.array(x) for x in latencies])
    merged: dict[int, int] = {}
    for s in statuses:
        for code, count in s.items():
            merged[code] = merged.get(code, 0) + count
    return {
        "rps": len(lat) / wall,
        "p50_ms": float(np.median(lat) * 1e3),
        "p99_ms": float(np.quantile(lat, 0.99) * 1e3),
        "statuses": dict(sorted(merged.items())),
        "wrong": sum(wrong),
        "errors": sum(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="a ChunkedPrefill model.zip trained by servegym")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--requests", type=int, default=4000, help="requests per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work_dir = Path(tempfile.mkdtemp(prefix="servegym-service-"))
    model = Path(args.model) if args.model else None
    if model is None:
        model = train(
            ENV,
            "ppo",
            timesteps=2048,
            out=work_dir / "run",
            eval_freq=0,
            checkpoint_freq=0,
            log=lambda _: None,
        ).model_path
    export_model(model, numpy_out=work_dir / "p.npz", check=0)
    controller = LearnedController.load(work_dir / "p.npz")
    valid = bodies(controller, args.requests, horizon_s=30.0)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "servegym.cli", "serve-policy", str(work_dir / "p.npz"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        run_clients(base, valid[:500], 4)  # warm-up
        print(f"{ENV} numpy policy, {args.requests:,} requests per run, median of {args.repeats} runs")
        print("\n| clients | req/s | p50 ms | p99 ms | wrong actions | connection errors |")
        print("|---:|---:|---:|---:|---:|---:|")
        for clients in args.clients:
            runs = [run_clients(base, valid, clients) for _ in range(args.repeats)]
            med = {k: float(np.median([r[k] for r in runs])) for k in ("rps", "p50_ms", "p99_ms")}
            print(
                f"| {clients} | {med['rps']:,.0f} | {med['p50_ms']:.2f} | {med['p99_ms']:.2f} | "
                f"{sum(r['wrong'] for r in runs)} | {sum(r['errors'] for r in runs)} |"
            )
        template = json.loads(valid[0][0])["metrics"]
        mixed: list[tuple[bytes, int | None]] = []
        for i, (body, action) in enumerate(valid):
            mixed.append((body, action))
            bad = {**template, **MALFORMED[i % len(MALFORMED)]}
            mixed.append((json.dumps({"metrics": bad}).encode(), None))
        clients = max(args.clients)
        result = run_clients(base, mixed, clients)
        print(
            f"\nmixed run, {clients} clients, {len(mixed):,} requests (half malformed): "
            f"{result['rps']:,.0f} req/s, statuses {result['statuses']}, "
            f"{result['wrong']} valid requests without the right action, {result['errors']} connection errors"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
