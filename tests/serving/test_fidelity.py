"""Fidelity tests: qualitative results the serving simulator should reproduce.

Each test encodes one item of ``../shared/reference/chunk_spec.md`` section D.3 ("Qualitative
results the simulator should reproduce"), items 1-6, 8-11 and 13, at the thresholds given there.
Where the simulator misses a threshold the test stays at the reference's threshold and is marked
``xfail(strict=True)`` with the measured numbers ("FIDELITY GAP"), so a model change that closes
(or widens) the gap shows up.

Scenarios are small (a few hundred requests, fixed seeds); the capacity search is ``slow``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from servegym.envs.serving import EngineConfig, ServingEngine, expected_tokens_per_step
from servegym.envs.serving.summary import capacity_search, summarize
from servegym.hardware import IterationBatch, LatencyModel
from servegym.workloads import LognormalLengths, Poisson, Requests, Workload, length_preset

SEED = 0
HIST_BIN = 10 ** (1 / 40)  # relative width of one bin of the TBT histogram (quantile resolution)


def _gap(reason: str):
    return pytest.mark.xfail(reason=f"FIDELITY GAP: {reason}", strict=True)


def _poisson_requests(rate: float, lengths, n: int, seed: int = SEED) -> Requests:
    """About ``n`` Poisson arrivals at ``rate`` req/s."""
    return Workload(Poisson(rate), lengths).sample(np.random.default_rng(seed), n / rate)


def _burst(lengths, n: int, seed: int = SEED) -> Requests:
    """``n`` requests all arriving at t = 0 (a saturated, closed-loop-like load)."""
    prompts, outputs = lengths.sample(np.random.default_rng(seed), n)
    return Requests(np.zeros(n), prompts, outputs)


def _run(config: EngineConfig, requests: Requests, alpha: float | None = None) -> ServingEngine:
    """Simulate to completion; ``alpha`` fixes every request's per-token acceptance rate."""
    engine = ServingEngine(config, requests, np.random.default_rng(SEED))
    if alpha is not None:
        engine.requests.alpha[:] = alpha
    engine.run_to_completion()
    return engine


def _mean_ttft(engine: ServingEngine) -> float:
    started = ~np.isnan(engine.requests.first_token_s)
    return float(np.mean(engine.requests.first_token_s[started] - engine.requests.arrival_s[started]))


# ---- chunked prefill -------------------------------------------------------------------------

# Mistral-7B on one A100-80GB: the Sarathi-Serve strict-SLO deployment (chunk_spec.md A.2).
MISTRAL = {"model": "Mistral-7B", "device": "a100-80gb", "max_model_len": 8192}
ARXIV = length_preset("arxiv-summarization")  # long prompts (median 2730 tokens)
N_REQUESTS = 300


@functools.cache
def _stall_run(policy: str, budget: int, rate: float) -> dict[str, float]:
    config = EngineConfig(**MISTRAL, policy=policy, token_budget=budget)
    return summarize(_run(config, _poisson_requests(rate, ARXIV, N_REQUESTS)))


# Decode-first (budget 512) capacity of this scenario is ~3.3 req/s (P99 TBT <= 0.1 s, median
# scheduling delay <= 2 s): 2.0 req/s is a moderate load (~60 %), 3.0 req/s a high one (~90 %).
MODERATE, HIGH = 2.0, 3.0


@pytest.mark.parametrize("rate", [MODERATE, HIGH])
def test_prefill_first_shows_generation_stalls(rate: float) -> None:
    """D.3 item 1 (first half). Prefill-first (vLLM V0 / Orca: whole prompts run alone, decodes
    stall) has P99 TBT >> median when long prompts arrive; Sarathi-Serve Fig 1/7/9 and Table 4
    (P99 TBT 0.68-1.38 s without stall-free batching vs 0.14-0.17 s with it, i.e. >= 4x).
    ">>" is taken as >= 5x the median."""
    pf = _stall_run("prefill_first", 8192, rate)
    df = _stall_run("decode_first", 512, rate)
    assert pf["tbt_p99_s"] >= 5.0 * pf["tbt_p50_s"], pf
    assert pf["tbt_p99_s"] >= 4.0 * df["tbt_p99_s"], (pf["tbt_p99_s"], df["tbt_p99_s"])


@pytest.mark.parametrize(
    "rate",
    [
        pytest.param(
            MODERATE,
            marks=_gap(
                "decode-first budget 512 at ~60 % load: P99 TBT 0.053 s = 3.55x the median 0.015 s "
                "(expected <= 1.5x). The median gap is a decode-only iteration (~15 ms) and the "
                "P99 a 512-token hybrid one (~50 ms): hybrid iterations carry < 50 % of the gaps "
                "below ~90 % load (at 3.0 req/s the ratio is 1.1x)"
            ),
        ),
        HIGH,
    ],
)
def test_decode_first_512_keeps_tbt_tail_near_median(rate: float) -> None:
    """D.3 item 1 (second half). Decode-first hybrid batching with token budget 512
    (Sarathi-Serve stall-free batching) keeps P99 TBT within ~1.5x the median (Sarathi-Serve
    Fig 1/7/9, Table 4)."""
    s = _stall_run("decode_first", 512, rate)
    assert s["tbt_p99_s"] <= 1.5 * s["tbt_p50_s"], s


def test_budget_tradeoff_is_monotone() -> None:
    """D.3 item 2. As the token budget grows (256 -> 8192) at a fixed load, P99 TBT rises and
    mean TTFT falls (until queueing); vLLM docs (max_num_batched_tokens), Sarathi-Serve 512
    (strict SLO) vs 2048 (relaxed) budgets (chunk_spec.md A.2). Noise tolerance: one histogram
    bin for the P99 (6 %), 5 % for the mean TTFT; fixed seed, arXiv-length prompts at 2 req/s."""
    budgets = [256, 512, 1024, 2048, 4096, 8192]
    requests = _poisson_requests(MODERATE, ARXIV, N_REQUESTS)
    p99, ttft = [], []
    for budget in budgets:
        engine = _run(EngineConfig(**MISTRAL, token_budget=budget), requests)
        p99.append(summarize(engine)["tbt_p99_s"])
        ttft.append(_mean_ttft(engine))
    for i in range(1, len(budgets)):
        assert p99[i] >= p99[i - 1] / HIST_BIN * 0.999, (budgets, p99)
        assert ttft[i] <= 1.05 * ttft[i - 1], (budgets, ttft)
    assert p99[-1] >= 2.0 * p99[0], (budgets, p99)
    assert ttft[0] >= 1.2 * ttft[-1], (budgets, ttft)


@pytest.mark.slow
def test_capacity_under_strict_tbt_slo() -> None:
    """D.3 item 3. Capacity under the strict P99 TBT SLO (0.1 s, Mistral-7B on one A100-80GB):
    decode-first with budget 512 >= 2x prefill-first (vLLM, batch 128) capacity; Sarathi-Serve
    abstract 2.6x, Figs 10-11 2.78x (openchat/ShareGPT) / 1.82x (arXiv). Capacity as in
    ``sarathi-serve@osdi-sarathi-serve`` capacity_search: max QPS with P99 TBT <= SLO and median
    scheduling delay <= 2 s (``summary.capacity_search``), ShareGPT-like lengths."""
    lengths = length_preset("sharegpt")

    def make(rate: float, rng: np.random.Generator) -> Requests:
        return Workload(Poisson(rate), lengths).sample(rng, N_REQUESTS / rate)

    caps = {}
    for policy, budget in (("decode_first", 512), ("prefill_first", 8192)):
        config = EngineConfig(**MISTRAL, policy=policy, token_budget=budget, tbt_slo_s=0.1)
        caps[policy] = capacity_search(
            config, make, tbt_slo_s=0.1, low_rps=0.25, high_rps=8.0, iterations=6, seed=SEED
        ).capacity_rps
    assert caps["prefill_first"] > 0, caps
    assert caps["decode_first"] >= 2.0 * caps["prefill_first"], caps


def _prefill_seconds(model: str, tp: int, prompt: int, budget: int) -> float:
    """TTFT of one request alone in the engine (prefill in ``budget``-token chunks)."""
    config = EngineConfig(model=model, device="a100-80gb", tp=tp, token_budget=budget, max_model_len=16384)
    engine = _run(config, Requests(np.zeros(1), np.array([prompt]), np.array([1])))
    return float(engine.requests.first_token_s[0])


# CodeLlama-34B at TP2 stands in for the artifact's Yi-34B-200K at TP2 (both 34B, GQA 8 heads).
_GAMMA = "attention causal factor gamma=1.21 charges the unchunked chunk^2 term > 2x the causal 0.5"
CHUNKING_CASES = [
    # (model, tp, prompt, chunk, ratio measured when this test was written)
    ("CodeLlama-34B", 2, 2048, 512, None),
    ("CodeLlama-34B", 2, 4096, 512, 1.076),
    ("CodeLlama-34B", 2, 8192, 512, 0.997),
    ("Mistral-7B", 1, 2048, 512, 1.077),
    ("Mistral-7B", 1, 4096, 512, 1.021),
    ("Mistral-7B", 1, 8192, 512, 0.916),
    ("CodeLlama-34B", 2, 2048, 2048, None),
    ("CodeLlama-34B", 2, 4096, 2048, None),
    ("CodeLlama-34B", 2, 8192, 2048, 0.909),
    ("Mistral-7B", 1, 2048, 2048, None),
    ("Mistral-7B", 1, 4096, 2048, None),
    ("Mistral-7B", 1, 8192, 2048, 0.858),
]


@pytest.mark.parametrize(
    ("model", "tp", "prompt", "chunk"),
    [
        pytest.param(
            m,
            tp,
            p,
            c,
            marks=()
            if bad is None
            else _gap(
                f"{m} prompt {p} in {c}-token chunks costs {bad}x the unchunked prefill, expected "
                f"{'1.1-1.2x' if c == 512 else '~1.0x (0.95-1.05)'}; the {_GAMMA} (with gamma=0.5 "
                "the model gives 1.14-1.16x for 512 chunks, 1.00-1.03x for 2048)"
            ),
        )
        for m, tp, p, c, bad in CHUNKING_CASES
    ],
)
def test_chunking_overhead(model: str, tp: int, prompt: int, chunk: int) -> None:
    """D.3 item 4. Total prefill time of one 2k/4k/8k prompt in 512-token chunks is 1.1-1.2x
    the unchunked time, ~1.0x in 2048-token chunks (Sarathi-Serve artifact
    ``osdi-experiments/figure-9/chunking-overhead.csv``, Yi-34B TP2 A100: 512 -> 1.152 / 1.189 /
    1.117, 2048 -> 0.999 / 1.024 / 0.937). Measured with the engine on a single request (CPU
    overhead per iteration included); "~1.0x" is taken as within 5 %."""
    ratio = _prefill_seconds(model, tp, prompt, chunk) / _prefill_seconds(model, tp, prompt, 16384)
    if chunk == 512:
        assert 1.1 <= ratio <= 1.2, ratio
    else:
        assert abs(ratio - 1.0) <= 0.05, ratio


@pytest.mark.parametrize(
    ("device", "boundary"),
    [
        ("a100", 256),
        pytest.param(
            "a100",
            512,
            marks=_gap(
                "A100 512 -> 513..528 tokens: +17.2-17.6 % (expected >= 20 %; note Vidur's own A100 "
                "profile shows only +10.7 % for 512 -> 520, +26 % for 256 -> 272)"
            ),
        ),
        pytest.param(
            "h100",
            256,
            marks=_gap(
                "H100 256 -> 257..272 tokens: +16.1-16.8 % (expected >= 20 %; Vidur's H100 profile "
                "shows +5 % for 256 -> 272): one fixed 128-token tile on every GPU"
            ),
        ),
        pytest.param(
            "h100",
            512,
            marks=_gap(
                "H100 512 -> 513..528 tokens: +11.9-12.4 % (expected >= 20 %; Vidur's H100 profile "
                "+28 % for 512 -> 520): one fixed 128-token tile, and at 512 tokens the H100 GEMMs "
                "are near the ridge (~295 tokens) so the padded FLOPs are partly hidden"
            ),
        ),
    ],
)
def test_tile_quantization_step(device: str, boundary: int) -> None:
    """D.3 item 5. With tile quantization on (``tile_tokens=128``) the iteration time jumps by
    >= 20 % when the batch crosses a 256/512 boundary by a few tokens (Vidur profiles via
    chunk_spec.md A.2: A100 256 -> 272 +26 %, H100 512 -> 520 +28 %; Sarathi-Serve section 4.3:
    257 vs 256 up to ~32 %), so budgets 1 token above a tile boundary are dominated."""
    lm = LatencyModel("Llama-2-7B", device, tile_tokens=128)
    at = lm.prefill_time(boundary)
    for extra in (1, 4, 8, 16):
        above = lm.prefill_time(boundary + extra)
        assert above >= 1.20 * at, (extra, above / at)
    # Dominated: one more token, lower throughput (tokens per second).
    assert (boundary + 1) / lm.prefill_time(boundary + 1) < boundary / at


@pytest.mark.parametrize(
    ("model", "tp", "prefill"),
    [
        ("CodeLlama-34B", 2, 1021),
        ("CodeLlama-34B", 2, 1024),
        ("Mistral-7B", 1, 1021),
    ],
)
def test_hybrid_batch_costs_as_much_as_prefill(model: str, tp: int, prefill: int) -> None:
    """D.3 item 6. A 1024-token prefill with 3 piggybacked decodes costs within 1 % of the
    1024-token prefill alone (Sarathi-Serve artifact ``osdi-experiments/table-2/results.csv``,
    Yi-34B TP2 A100: hybrid 1021 prefill + 3 decode 217.6 ms vs prefill-only 1024 217.2 ms; the
    decodes there have ~1024-1040 tokens of context). CodeLlama-34B TP2 stands in for Yi-34B."""
    lm = LatencyModel(model, "a100", tp=tp)
    alone = lm.iteration_time(IterationBatch().add_prefill(1024, 0))
    hybrid = IterationBatch().add_prefill(prefill, 0)
    for _ in range(3):
        hybrid.add_decode(1032)
    assert lm.iteration_time(hybrid) <= 1.01 * alone, lm.iteration_time(hybrid) / alone


# ---- speculative decoding --------------------------------------------------------------------

# chunk_spec.md B.1, computed table AL(alpha, k) for k = 1..5 (and k = 8 where given).
AL_TABLE = {
    0.5: {1: 1.5, 2: 1.75, 3: 1.88, 4: 1.94, 5: 1.97},
    0.6: {1: 1.6, 2: 1.96, 3: 2.18, 4: 2.31, 5: 2.38},
    0.7: {1: 1.7, 2: 2.19, 3: 2.53, 4: 2.77, 5: 2.94},
    0.8: {1: 1.8, 2: 2.44, 3: 2.95, 4: 3.36, 5: 3.69, 8: 4.33},
    0.9: {1: 1.9, 2: 2.71, 3: 3.44, 4: 4.1, 5: 4.69, 8: 6.13},
}


def test_expected_accepted_length_formula() -> None:
    """D.3 item 8 (formula). AL(alpha, k) = (1 - alpha^(k+1)) / (1 - alpha) for i.i.d.
    acceptance (Leviathan et al.; SmartSpec ``dsd.py``; vLLM ``auto_tuner.py``), matching the
    computed table of chunk_spec.md B.1 to its two decimals."""
    for alpha, row in AL_TABLE.items():
        for k, value in row.items():
            al = expected_tokens_per_step(alpha, k)
            assert al == pytest.approx((1 - alpha ** (k + 1)) / (1 - alpha), rel=1e-12)
            assert abs(al - value) <= 0.005 + 1e-9, (alpha, k, al, value)
    assert expected_tokens_per_step(0.7, 0) == pytest.approx(1.0)
    assert expected_tokens_per_step(1.0, 4) == pytest.approx(5.0)


def _truncated_geometric_moments(alpha: float, k: int) -> tuple[float, float]:
    """Mean and variance of min(G, k), P(G >= j) = alpha^j."""
    j = np.arange(1, k + 1)
    tail = alpha**j  # P(X >= j)
    mean = float(tail.sum())
    second = float(((2 * j - 1) * tail).sum())
    return mean, second - mean**2


@pytest.mark.parametrize(("alpha", "k"), [(0.6, 1), (0.6, 3), (0.8, 3), (0.8, 5), (0.9, 8)])
def test_engine_accepted_length_matches_formula(alpha: float, k: int) -> None:
    """D.3 item 8 (simulation). The engine's empirical tokens per verification step (accepted
    drafts + the bonus token) match AL(alpha, k) = (1 - alpha^(k+1)) / (1 - alpha) for i.i.d.
    acceptance, and the per-position acceptance rates are alpha^(i+1) (vLLM's unconditional
    per-position rates, chunk_spec.md B.1). Tolerance: 4 standard errors."""
    config = EngineConfig(
        model="Llama-2-7B",
        device="a100",
        draft="Llama-68M",
        spec_tokens=k,
        max_num_seqs=64,
        token_budget=2048,
    )
    lengths = LognormalLengths(prompt_median=64, prompt_p90=128, output_median=400, output_p90=600)
    engine = _run(config, _burst(lengths, 64), alpha=alpha)
    tot = engine.totals()
    steps = tot.verify_steps
    al = 1.0 + tot.accepted / steps
    mean, var = _truncated_geometric_moments(alpha, k)
    assert mean + 1 == pytest.approx(expected_tokens_per_step(alpha, k), rel=1e-12)
    assert abs(al - expected_tokens_per_step(alpha, k)) <= 4.0 * math.sqrt(var / steps), (al, steps)
    for i in range(k):
        drafted = tot.drafted_at_position[i]
        rate, p = tot.accepted_at_position[i] / drafted, alpha ** (i + 1)
        assert abs(rate - p) <= 4.0 * math.sqrt(p * (1 - p) / drafted), (i, rate, p)


SHORT_CHAT = LognormalLengths(
    prompt_median=300, prompt_p90=800, output_median=200, output_p90=500, max_prompt=2000, max_output=1000
)


@functools.cache
def _low_load(draft: str, k: int, alpha: float) -> dict[str, float]:
    config = EngineConfig(
        model="Llama-2-7B", device="a100", draft=draft, spec_tokens=k, ngram_hit_rate=0.9, max_num_seqs=64
    )
    return summarize(_run(config, _poisson_requests(0.5, SHORT_CHAT, 60), alpha=alpha))


@pytest.mark.parametrize("draft", ["Llama-68M", "ngram"])
@pytest.mark.parametrize("k", [3, 5])
def test_speculation_helps_at_low_load(draft: str, k: int) -> None:
    """D.3 item 9. At low load (batch <= 4) a fixed k in [3, 5] with a small draft reduces mean
    latency by >= 1.3x at alpha >= 0.7 (vLLM speculative-decoding blog: 1.5x on ShareGPT with a
    draft model, 2.8x n-gram on CNN/DM at QPS 1; SmartSpec up to 3.2x). Llama-2-7B with
    Llama-68M (Sequoia's pair) or n-gram prompt lookup with a 90 % match rate, alpha = 0.7."""
    base = _low_load(draft, 0, 0.7)
    spec = _low_load(draft, k, 0.7)
    assert base["mean_batch_size"] <= 4.0, base["mean_batch_size"]
    assert spec["mean_batch_size"] <= 4.0, spec["mean_batch_size"]
    assert base["e2e_mean_s"] >= 1.3 * spec["e2e_mean_s"], (base["e2e_mean_s"], spec["e2e_mean_s"])


SHORT_CONTEXT = LognormalLengths(
    prompt_median=128, prompt_p90=256, output_median=256, output_p90=512, max_prompt=512, max_output=1024
)


@functools.cache
def _high_load(k: int) -> dict[str, float]:
    config = EngineConfig(
        model="Llama-3-8B",
        device="a100",
        draft="Llama-68M",
        spec_tokens=k,
        max_num_seqs=256,
        token_budget=8192,
    )
    return summarize(_run(config, _burst(SHORT_CONTEXT, 1024), alpha=0.6))


@pytest.mark.parametrize("k", [3, 5])
def test_speculation_hurts_at_high_load_short_context(k: int) -> None:
    """D.3 item 10. At high load with short contexts, fixed k >= 3 increases mean latency and
    ITL vs k = 0 once B*(k+1) is well past the compute ridge (~153 tokens on an A100): vLLM
    blog (1.4x / 1.8x slowdowns at high QPS), vllm#17984 (reversal at bs 32), vllm#26504 (-16 %
    at b = 32). Llama-3-8B (GQA, small KV) + Llama-68M on an A100, up to 256 sequences
    (1024 requests at once), ~400-token contexts, alpha = 0.6 (chunk_spec.md D.3 illustration)."""
    base, spec = _high_load(0), _high_load(k)
    assert base["mean_batch_size"] * (k + 1) >= 4 * 153, base["mean_batch_size"]
    assert spec["e2e_mean_s"] > base["e2e_mean_s"], (base["e2e_mean_s"], spec["e2e_mean_s"])
    assert spec["tpot_mean_s"] > base["tpot_mean_s"], (base["tpot_mean_s"], spec["tpot_mean_s"])


def _expected_goodput(lm, draft, batch: int, context: int, alpha: float, k: int) -> float:
    """Tokens per second of one decode step of ``batch`` sequences (SmartSpec's goodput):
    B * AL(alpha, k) / (target verification of B*(k+1) tokens + k draft passes), with the
    iterations composed as the engine composes them (``lm``: target, ``draft``: draft model)."""
    kv = float(batch * context)
    t = lm.iteration_time(IterationBatch(decode_seqs=batch, decode_context=kv, spec_tokens=k))
    if k and draft is not None:
        for i in range(k):
            t += draft.iteration_time(IterationBatch(decode_seqs=batch, decode_context=kv + i * batch))
    return batch * expected_tokens_per_step(alpha, k) / t


BATCHES = [1, 4, 8, 16, 32, 64, 128, 256]
ALPHAS = [0.5, 0.6, 0.7, 0.8, 0.9]


@pytest.mark.parametrize(
    ("model", "draft", "device", "tp", "context"),
    [
        ("Llama-3-8B", "Llama-68M", "a100", 1, 600),
        ("Llama-3-8B", "Llama-3.2-1B", "h100", 1, 600),  # the chunk_spec.md D.3 illustration
        ("Llama-2-7B", "Llama-68M", "a100", 2, 4000),
    ],
)
def test_optimal_k_monotone_in_batch_and_alpha(
    model: str, draft: str, device: str, tp: int, context: int
) -> None:
    """D.3 item 11. The goodput-optimal k (expected tokens per step / step time from the
    latency model, SmartSpec's criterion) is non-increasing in batch size and non-decreasing in
    alpha (SGLang's per-batch-size tiers; vLLM DSD example ``1-16:3, 64-128:2, 256+:0``; vLLM
    blog: "shortens the proposed length when system load is high... less pronounced when
    acceptance rate is high")."""
    config = EngineConfig(model=model, device=device, tp=tp, draft=draft, max_model_len=4096)
    lm, dlm = config.latency_model(), config.draft_latency_model()

    def best_k(batch: int, alpha: float) -> int:
        return int(np.argmax([_expected_goodput(lm, dlm, batch, context, alpha, k) for k in range(9)]))

    best = np.array([[best_k(b, a) for b in BATCHES] for a in ALPHAS])
    assert np.all(np.diff(best, axis=1) <= 0), best  # along batch size
    assert np.all(np.diff(best, axis=0) >= 0), best  # along alpha
    assert best[0, -1] < best[-1, 0], best  # the choice does move


LONG_CONTEXT = LognormalLengths(
    prompt_median=3800, prompt_p90=3900, output_median=200, output_p90=260, max_prompt=3850, max_output=240
)


@functools.cache
def _long_context(draft: str, k: int, batch: int) -> tuple[dict[str, float], int]:
    # Llama-2-7B at 512 KiB of KV per token: TP2 on A100-80GB holds ~240k tokens (58 x 4.1k).
    config = EngineConfig(
        model="Llama-2-7B",
        device="a100-80gb",
        tp=2,
        draft=draft,
        spec_tokens=k,
        ngram_hit_rate=0.9,
        max_num_seqs=batch,
        token_budget=2048,
    )
    engine = ServingEngine(config, _burst(LONG_CONTEXT, batch), np.random.default_rng(SEED))
    engine.requests.alpha[:] = 0.6
    peak = 0
    while not engine.done:
        peak = max(peak, engine.step().decode_seqs)
    return summarize(engine), peak


# Llama-68M's own context is 2,048 tokens: past it the engine stops proposing (as vLLM does),
# so the long-context draft here is the same 68M architecture with a 4k context, registered below.
LONG_DRAFT = {
    "name": "Llama-68M-4k",
    "num_layers": 2,
    "hidden_size": 768,
    "num_heads": 12,
    "num_kv_heads": 12,
    "ffn_size": 3072,
    "vocab_size": 32000,
    "max_context": 4096,
    "sources": {"all": "test fixture: JackFram/llama-68m dims with a 4k context"},
}


@pytest.fixture
def long_draft():
    from servegym.hardware import register_model

    register_model(LONG_DRAFT)
    return LONG_DRAFT["name"]


def test_short_context_draft_stops_proposing_past_its_context() -> None:
    """vLLM skips speculation for sequences longer than the draft model's context."""
    config = EngineConfig(
        model="Llama-2-7B",
        device="a100-80gb",
        tp=2,
        draft="Llama-68M",
        spec_tokens=3,
        max_num_seqs=32,
        token_budget=2048,
    )
    engine = ServingEngine(config, _burst(LONG_CONTEXT, 32), np.random.default_rng(SEED))
    engine.run_to_completion()
    assert engine.totals().drafted == 0


@pytest.mark.parametrize("draft", ["Llama-68M-4k", "ngram"])
@pytest.mark.parametrize("batch", [32, 56])
def test_speculation_keeps_helping_at_long_context(draft: str, batch: int, long_draft: str) -> None:
    """D.3 item 13. With long contexts (KV-read bound) speculation keeps helping at larger
    batch (MagicDec, arXiv 2408.11049: 2.51x at batch 32-256): Llama-2-7B (MHA, 512 KiB of KV per
    token), ~4k-token contexts, 32 and 56 concurrent decodes (what the KV cache of TP2 on
    A100-80GB holds), alpha = 0.6 and k = 3 - the same
    acceptance at which short contexts and high load make k >= 3 a slowdown (item 10)."""
    base, base_peak = _long_context(draft, 0, batch)
    spec, _ = _long_context(draft, 3, batch)
    assert base_peak == batch and base["preemptions"] == 0, (base_peak, base["preemptions"])
    assert spec["tpot_mean_s"] < base["tpot_mean_s"], (base["tpot_mean_s"], spec["tpot_mean_s"])
    assert spec["e2e_mean_s"] < base["e2e_mean_s"], (base["e2e_mean_s"], spec["e2e_mean_s"])
