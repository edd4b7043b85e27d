"""Fingerprints of seeded serving-engine and serving-env runs, to show a refactor changed nothing.

    python tools/engine_fingerprint.py            # one sha256 per case, and one over all of them

Each case runs a seeded scenario and hashes everything it produced: the per-request arrays
(times, generated tokens, preemptions, status), the run's counters and histograms, and for the
envs every observation, reward, reward term and metric of a seeded random-action rollout. Run it
before and after a change that should not alter behaviour; the hashes must be equal.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

import servegym  # noqa: F401 - registers the ids
from servegym.envs.serving import EngineConfig, ServingEngine
from servegym.workloads import GammaArrivals, Poisson, Workload, length_preset


def _feed(h, value) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            h.update(str(key).encode())
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        for v in value:
            _feed(h, v)
    elif isinstance(value, np.ndarray):  # values, whatever the dtype
        h.update(np.ascontiguousarray(value, dtype=np.float64).tobytes())
    elif isinstance(value, (bool, int, float, np.integer, np.floating, str)) or value is None:
        h.update(repr(float(value) if isinstance(value, np.floating) else value).encode())
    elif hasattr(value, "counts") and hasattr(value, "quantile"):  # a histogram
        _feed(h, np.asarray(value.counts))
    else:  # window counters
        _feed(h, {name: getattr(value, name) for name in WINDOW_FIELDS})


WINDOW_FIELDS = (
    "start_s",
    "iterations",
    "busy_s",
    "max_iteration_s",
    "prefill_tokens",
    "decode_tokens",
    "first_tokens",
    "first_tokens_late",
    "ttft_excess",
    "decode_steps",
    "slow_steps",
    "tbt_excess",
    "tokens_within_slo",
    "arrivals",
    "finished",
    "rejected",
    "preemptions",
    "drafted",
    "accepted",
    "draft_s",
    "verify_steps",
    "decode_only_iterations",
    "batch_size_sum",
    "accepted_at_position",
    "drafted_at_position",
    "gaps",
    "iteration_times",
)
REQUEST_FIELDS = {  # name in the request table: the engine attribute before the table existed
    "generated": "gen",
    "status": "status",
    "first_token_s": "first_t",
    "last_token_s": "last_t",
    "scheduled_s": "sched_t",
    "finished_s": "finish_t",
    "max_gap_s": "max_gap",
    "slow_gaps": "slow_gaps",
    "preemptions": "preemptions",
    "prefill_target": "target",
    "alpha": "alpha",
}


def _request_arrays(engine) -> list[np.ndarray]:
    table = getattr(engine, "requests", None)
    if table is not None:
        return [getattr(table, name) for name in REQUEST_FIELDS]
    return [getattr(engine, old) for old in REQUEST_FIELDS.values()]


def _engine_case(config: EngineConfig, rate: float, horizon: float, seed: int, knobs=()) -> str:
    rng = np.random.default_rng(seed)
    arrivals = Poisson(rate) if seed % 2 == 0 else GammaArrivals(rate, 2.0)
    lengths = length_preset("azure-code" if seed % 3 == 0 else "azure-conv")
    requests = Workload(arrivals, lengths).sample(rng, horizon)
    engine = ServingEngine(config, requests, np.random.default_rng(seed + 1))
    h = hashlib.sha256()
    windows = []
    for t, budget, k in knobs:  # change the knobs at given times
        engine.run_until(t)
        windows.append(engine.take_window())
        engine.token_budget = budget
        if k is not None:
            engine.spec_tokens = k
    engine.run_to_completion()
    windows.append(engine.take_window())
    _feed(h, _request_arrays(engine))
    _feed(h, [engine.now, engine.iterations, dict(engine.rejected), engine.counts()])
    for w in windows:
        _feed(h, w)
    return h.hexdigest()


def _env_case(env_id: str, seed: int, steps: int, **kwargs) -> str:
    import gymnasium as gym

    env = gym.make(env_id, **kwargs)
    h = hashlib.sha256()
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    _feed(h, [obs, info["metrics"]])
    for _ in range(steps):
        obs, reward, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        _feed(h, [obs, reward, term, trunc, info["metrics"], info["reward_terms"], info.get("episode_kpis")])
        if term or trunc:
            obs, info = env.reset(seed=int(rng.integers(1000)))
    return h.hexdigest()


CASES = {
    "decode-first 8B, budget changes": lambda: _engine_case(
        EngineConfig(token_budget=512), 9.0, 120.0, 0, knobs=[(30, 2048, None), (60, 128, None)]
    ),
    "prefill-first 8B": lambda: _engine_case(
        EngineConfig(policy="prefill_first", token_budget=4096), 8.0, 90.0, 1
    ),
    "KV pressure (preemptions), A100-40GB": lambda: _engine_case(
        EngineConfig(
            device="a100-40gb",
            max_model_len=4096,
            gpu_memory_utilization=0.5,
            token_budget=1024,
            max_num_seqs=256,
        ),
        8.0,
        60.0,
        2,
    ),
    "70B TP4 code": lambda: _engine_case(EngineConfig(model="Llama-2-70B", tp=4), 3.0, 60.0, 3),
    "draft speculation, k changes, drift": lambda: _engine_case(
        EngineConfig(
            model="Llama-2-7B", draft="Llama-68M", spec_tokens=3, acceptance_drift=((20.0, 0.6), (40.0, 1.2))
        ),
        4.0,
        60.0,
        4,
        knobs=[(15, 512, 5), (30, 256, 0), (45, 512, 8)],
    ),
    "ngram speculation": lambda: _engine_case(
        EngineConfig(draft="ngram", spec_tokens=4, acceptance="summarization"), 3.0, 60.0, 5
    ),
    "ChunkedPrefill-v0 random actions": lambda: _env_case("servegym/ChunkedPrefill-v0", 0, 400),
    "ChunkedPrefill-v0 random scenario": lambda: _env_case(
        "servegym/ChunkedPrefill-v0", 1, 300, scenario="random"
    ),
    "SpecDecode-v0 random actions": lambda: _env_case("servegym/SpecDecode-v0", 2, 600),
    "SpecDecode-v0 drift": lambda: _env_case(
        "servegym/SpecDecode-v0", 3, 600, scenario="llama2-7b-68m-drift"
    ),
}


def main(names: list[str]) -> None:
    total = hashlib.sha256()
    for name, case in CASES.items():
        if names and name not in names:
            continue
        digest = case()
        total.update(digest.encode())
        print(f"{digest[:16]}  {name}")
    print(f"{total.hexdigest()[:16]}  all")


if __name__ == "__main__":
    main(sys.argv[1:])
