"""Benchmark: LatencyModel.iteration_time calls per second (the simulators' hot path).

    python benchmarks/latency_speed.py [--repeats 7] [--calls 20000]

Times mixed batches drawn from a fixed seed (prefill chunks + decodes, with and without
speculation) for a few model/device/TP combinations; reports the median over repeats of
microseconds per call and calls/s. No assertions: machines are noisy; compare runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from servegym.hardware import IterationBatch, LatencyModel

CASES = [("Llama-3-8B", "a100", 1), ("Llama-2-70B", "a100", 4), ("Mixtral-8x7B", "h100-sxm", 2)]


def batches(n: int, seed: int = 0) -> list[IterationBatch]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        b = IterationBatch(spec_tokens=int(rng.integers(0, 2)) * int(rng.integers(1, 6)))
        for _ in range(int(rng.integers(0, 3))):
            b.add_prefill(int(rng.integers(16, 512)), int(rng.integers(0, 2048)))
        for _ in range(int(rng.integers(1, 128))):
            b.add_decode(int(rng.integers(16, 4096)))
        out.append(b)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    work = batches(args.calls)
    print(f"{'model':14s} {'device':9s} {'tp':>2s} {'us/call (median)':>17s} {'calls/s':>10s}")
    for model, device, tp in CASES:
        lm = LatencyModel(model, device, tp=tp)
        lm.iteration_time(work[0])  # build caches
        per_call = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for b in work:
                lm.iteration_time(b)
            per_call.append((time.perf_counter() - t0) / len(work))
        med = statistics.median(per_call)
        print(f"{model:14s} {device:9s} {tp:2d} {med * 1e6:17.2f} {1 / med:10.0f}")


if __name__ == "__main__":
    main()
