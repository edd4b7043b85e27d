"""Shared helpers of the serving-engine tests: request arrays, KV sizing and a checked run loop."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from servegym.envs.serving import EngineConfig, ServingEngine, kv_capacity_blocks
from servegym.envs.serving.engine import FINISHED, REJECTED, RUNNING, WAITING, WATERMARK_FRACTION
from servegym.envs.serving.kv_blocks import activation_reserve_bytes
from servegym.envs.serving.state import S_KV_SUM, S_MIN_REMAINING
from servegym.hardware import get_device, get_model


def raw_requests(arrival, prompt, output) -> SimpleNamespace:
    """Request arrays without the validation of ``servegym.workloads.Requests``."""
    return SimpleNamespace(
        arrival_s=np.asarray(arrival, dtype=float),
        prompt_tokens=np.asarray(prompt, dtype=np.int64),
        output_tokens=np.asarray(output, dtype=np.int64),
    )


def utilization_for_blocks(
    model: str,
    device: str,
    blocks: float,
    *,
    tp: int = 1,
    token_budget: int = 512,
    max_num_seqs: int = 128,
    block_size: int = 16,
    draft: str | None = None,
) -> float:
    """The gpu_memory_utilization whose KV cache holds about ``blocks`` blocks (the inverse of
    ``kv_capacity_blocks``' formula; the caller checks the result with ``kv_capacity_blocks``)."""
    m, d = get_model(model), get_device(device)
    weights = m.weight_bytes / tp
    kv_per_token = m.kv_bytes_per_token / tp
    if draft is not None and draft.lower() != "ngram":
        weights += get_model(draft).weight_bytes
        kv_per_token += get_model(draft).kv_bytes_per_token
    reserve = activation_reserve_bytes(m, tp, max(token_budget, max_num_seqs))
    return (weights + reserve + (blocks + 0.5) * kv_per_token * block_size) / d.mem_capacity


def tight_config(model: str = "Llama-68M", device: str = "l4", blocks: int = 200, **kw) -> EngineConfig:
    """A config whose KV cache holds exactly ``blocks`` blocks."""
    u = utilization_for_blocks(
        model,
        device,
        blocks,
        token_budget=kw.get("token_budget", 512),
        max_num_seqs=kw.get("max_num_seqs", 128),
        draft=kw.get("draft"),
    )
    config = EngineConfig(model=model, device=device, gpu_memory_utilization=u, **kw)
    assert kv_capacity_blocks(config) == blocks
    return config


def admissible(config: EngineConfig) -> bool:
    """True if any request up to max_model_len can be admitted into an empty KV cache (past the
    admission watermark); see test_engine_edge_cases for what happens otherwise."""
    cap = kv_capacity_blocks(config)
    return cap - int(WATERMARK_FRACTION * cap) >= math.ceil(config.context_limit() / config.block_size)


def check_state(engine: ServingEngine) -> None:
    """Invariants that hold between any two steps (kept cheap: it runs after every step)."""
    counts = engine.counts()
    arrived = counts["arrived"]
    assert arrived == counts["waiting"] + counts["running"] + counts["finished"] + counts["rejected"], counts
    by_status = np.bincount(engine.requests.status[:arrived], minlength=5).tolist()
    assert by_status[RUNNING] == counts["running"] <= engine.config.max_num_seqs, (by_status, counts)
    assert by_status[WAITING] == counts["waiting"], (by_status, counts)
    assert arrived == engine.n or not engine.requests.status[arrived:].any(), (
        "a request left FUTURE before arriving"
    )
    # KV cache accounting.
    cap, free, bs = engine.capacity_blocks, engine.free_blocks, engine.block_size
    assert 0 <= free <= cap, (free, cap)
    view = engine.running_view()
    ids, kv, slots = view["id"], view["kv"], view["kv_slots"]
    gen, decoding = view["generated"], view["decoding"]
    held = slots // bs
    assert int(held.sum()) == cap - free, (int(held.sum()), cap - free)
    if len(ids):
        assert not (slots - held * bs).any(), slots
        assert kv.min() >= 0 and (kv <= slots).all(), (kv, slots)
        assert (engine.requests.status[ids] == RUNNING).all() and len(set(ids.tolist())) == len(ids)
        assert (gen < engine.requests.output_tokens[ids]).all()
        # A decoding request that was never preempted holds the KV of its prompt and all of its
        # output tokens but the last (that one is the next input).
        fresh = decoding & (engine.requests.preemptions[ids] == 0)
        assert np.array_equal(kv[fresh], (engine.requests.prompt_tokens[ids] + gen - 1)[fresh])
    # The engine's incremental aggregates of the decode table agree with the table.
    scalars = engine._state.scalars  # the aggregates the engine keeps up to date
    assert scalars[S_KV_SUM] == int(kv[decoding].sum())
    if decoding.any():
        assert scalars[S_MIN_REMAINING] == int((engine.requests.output_tokens[ids] - gen)[decoding].min())
    if len(engine.waiting):
        assert (engine.requests.status[engine.waiting] == WAITING).all()


def run_checked(
    engine: ServingEngine,
    knob_rng: np.random.Generator | None = None,
    knob_every: int = 5,
    budget_range: tuple[int, int] = (16, 4096),
    max_steps: int | None = None,
) -> int:
    """Step to completion, checking the invariants after every step and, with ``knob_rng``,
    setting random valid knobs every ``knob_every`` steps. Returns the number of steps."""
    if max_steps is None:
        max_steps = (
            4 * int(engine.requests.prompt_tokens.sum() + engine.requests.output_tokens.sum())
            + 4 * engine.n
            + 1000
        )
    kmax = engine.config.max_spec_tokens if engine.config.draft is not None else 0
    check_state(engine)
    steps = 0
    while not engine.done:
        if knob_rng is not None and steps % knob_every == 0:
            engine.token_budget = int(knob_rng.integers(budget_range[0], budget_range[1] + 1))
            engine.spec_tokens = int(knob_rng.integers(0, kmax + 1))
        before = engine.now
        result = engine.step()
        steps += 1
        assert result.duration_s >= 0 and result.idle_s >= 0
        assert engine.now >= before, (engine.now, before)
        # (A step that idles up to an arrival and then runs reports idle_s = 0: see
        # test_engine_edge_cases.py::test_step_result_reports_idle_time_before_an_iteration.)
        assert engine.now >= before + result.duration_s - 1e-12 * max(1.0, before)
        check_state(engine)
        assert steps <= max_steps, f"no completion after {steps} steps: {engine.counts()}"
    return steps


def check_completed(engine: ServingEngine) -> None:
    """Invariants of a run to completion."""
    n = engine.n
    assert engine.done and engine.next_arrival == n
    limit = engine.config.context_limit()
    too_long = engine.requests.prompt_tokens + engine.requests.output_tokens > limit
    rejected = engine.requests.status == REJECTED
    finished = engine.requests.status == FINISHED
    assert np.array_equal(rejected, too_long)
    assert np.all(finished | rejected)
    assert np.array_equal(engine.requests.generated[finished], engine.requests.output_tokens[finished])
    assert np.all(engine.requests.generated[rejected] == 0)
    f = finished
    assert np.all(engine.requests.first_token_s[f] >= engine.requests.arrival_s[f])
    assert np.all(engine.requests.scheduled_s[f] >= engine.requests.arrival_s[f])
    assert np.all(engine.requests.scheduled_s[f] < engine.requests.first_token_s[f])
    assert np.all(engine.requests.first_token_s[f] <= engine.requests.finished_s[f])
    assert np.all(engine.requests.finished_s[f] <= engine.now)
    single = f & (engine.requests.output_tokens == 1)
    assert np.array_equal(engine.requests.first_token_s[single], engine.requests.finished_s[single])
    assert np.all(
        np.isnan(engine.requests.first_token_s[rejected]) & np.isnan(engine.requests.finished_s[rejected])
    )
    tot = engine.totals()
    assert tot.first_tokens == int(f.sum())
    assert tot.first_tokens + tot.decode_tokens == int(engine.requests.output_tokens[f].sum())
    assert tot.finished == int(f.sum())
    assert tot.rejected == int(rejected.sum()) == sum(engine.rejected.values())
    assert tot.arrivals == n
    assert tot.preemptions == int(engine.requests.preemptions.sum())
    if tot.preemptions == 0:
        assert tot.prefill_tokens == int(engine.requests.prompt_tokens[f].sum())
    else:
        assert tot.prefill_tokens > int(engine.requests.prompt_tokens[f].sum())
    assert tot.accepted <= tot.drafted
    assert engine.free_blocks == engine.capacity_blocks
    assert engine.num_running == 0 and not engine.waiting
