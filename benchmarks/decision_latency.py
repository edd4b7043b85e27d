"""Benchmark: per-decision latency of a loaded policy on CPU (issue #6).

    python benchmarks/decision_latency.py [--model runs/.../model.zip] [--decisions 5000]

Compares SB3's ``predict`` with LearnedController over the SB3 zip, the exported ONNX file and
the numpy ``.npz`` (one observation per call, masks applied where the controller applies them;
medians and p99 over calls, one thread). Without --model it trains a 2,048-step PPO policy on
MecOffload-v0 (the network shape, not the training, sets the latency). No assertions.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from servegym.agents.algos import ALGOS
from servegym.agents.controller import LearnedController
from servegym.agents.export import export_model, load_policy_arrays, random_observations
from servegym.agents.train import train


def timings(fn, observations: np.ndarray) -> tuple[float, float]:
    for o in observations[:200]:  # warm-up
        fn(o)
    times = np.empty(len(observations))
    for i, o in enumerate(observations):
        start = time.perf_counter()
        fn(o)
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e6), float(np.quantile(times, 0.99) * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="an SB3 model.zip trained by servegym")
    parser.add_argument("--decisions", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="servegym-latency-"))
    model_path = (
        Path(args.model)
        if args.model
        else train(
            "servegym/MecOffload-v0", "ppo", timesteps=2048, out=work / "run", eval_freq=0, checkpoint_freq=0
        ).model_path
    )
    export_model(model_path, work / "p.onnx", work / "p.npz", check=0)
    arrays = load_policy_arrays(model_path)
    obs = random_observations(arrays, args.decisions, seed=0)
    meta = arrays.metadata
    sizes = [w.shape[0] for w in arrays.weights[:-1]]
    print(f"{meta.env_id} {meta.algo}: {meta.obs_shape[0]} inputs, hidden {sizes}, {meta.n_actions} actions")
    model = ALGOS[meta.algo].load(model_path, device="cpu")
    stats = model_path.parent / "vecnormalize.pkl"
    normalizer = pickle.loads(stats.read_bytes()) if stats.exists() else None

    def sb3(o: np.ndarray) -> None:
        model.predict(normalizer.normalize_obs(o) if normalizer else o, deterministic=True)

    rows = [("SB3 predict (+ VecNormalize)", *timings(sb3, obs))]
    for label, path in (
        ("LearnedController, SB3 zip", model_path),
        ("LearnedController, ONNX Runtime", work / "p.onnx"),
        ("LearnedController, numpy", work / "p.npz"),
    ):
        controller = LearnedController.load(path)
        rows.append((label, *timings(controller.act, obs)))
    print(f"{'path':34s} {'median µs':>10s} {'p99 µs':>10s} {'vs SB3':>8s}")
    for label, median, p99 in rows:
        print(f"{label:34s} {median:10.1f} {p99:10.1f} {rows[0][1] / median:7.1f}x")


if __name__ == "__main__":
    main()
