"""servegym.baselines: the heuristic controllers servegym's agents are judged against.

``make(name, **params)`` builds one by name (case-insensitive); ``list()`` names them all with
the env ids each is for (a name may serve several envs that report the metrics it reads, e.g.
``kpa``); ``heuristics(env_id)`` the non-oracle ones. Oracles need the env they control:
``make("lookahead-oracle", env=env)``; their names contain "oracle", and tables of the "best
heuristic" leave them out.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from servegym.controller import Controller

from .autoscale import APA, HPA, KPA, CapacityPlanner, KEDAQueue, Llumnix, NextWindowOracle, StaticReplicas
from .chunk import (
    ENGINE_DEFAULTS,
    BestStaticOracle,
    FixedBudget,
    PressureRule,
    SarathiStatic,
    SlackFeedback,
)
from .mec import (
    MEC_ENV,
    SPLIT_ENV,
    AllCloud,
    AllLocal,
    GreedyDelay,
    GreedyEnergy,
    GreedyWeighted,
    LeastLoaded,
    Lyapunov,
    Neurosurgeon,
    NeurosurgeonWeighted,
    RandomOffload,
    RoundRobin,
)
from .mec_oracle import MecRolloutOracle
from .rollout import LookaheadOracle
from .serverless import FixedKeepAlive, HybridHistogram, KEDAHttp, KnativeDefault, ServerlessNextWindowOracle
from .spec import BatchSizeTable, DisableByBatchSize, FixedK, SGLangEMA, SmartSpecGreedy

CHUNK_ENV = "servegym/ChunkedPrefill-v0"
AUTOSCALE_ENV = "servegym/Autoscale-v0"
SPEC_ENV = "servegym/SpecDecode-v0"
SERVERLESS_ENV = "servegym/ServerlessAutoscale-v0"
BOTH_AUTOSCALE = (AUTOSCALE_ENV, SERVERLESS_ENV)

_REGISTRY: dict[str, tuple[str | tuple[str, ...], Callable[..., Controller], str]] = {
    "fixed-budget": (CHUNK_ENV, FixedBudget, "Fixed(b): a constant budget (default 512)"),
    **{
        f"{engine}-default": (
            CHUNK_ENV,
            lambda b=b, engine=engine: FixedBudget(b, label=engine),
            f"Fixed({b}): {engine}'s default budget",
        )
        for engine, b in ENGINE_DEFAULTS.items()
    },
    "sarathi-static": (
        CHUNK_ENV,
        SarathiStatic,
        "largest budget whose predicted iteration meets 0.9 x TBT SLO",
    ),
    "slack-feedback": (CHUNK_ENV, SlackFeedback, "step the budget down/up on P99 iteration time vs SLO"),
    "pressure-rule": (CHUNK_ENV, PressureRule, "large budget at low pressure, else the SLO-feasible budget"),
    "best-static-oracle": (CHUNK_ENV, BestStaticOracle, "best fixed budget by simulating each (oracle)"),
    "lookahead-oracle": (
        CHUNK_ENV,
        lambda env, **kw: _lookahead(CHUNK_ENV, env, **kw),
        "fortified roll-out over the exact simulator, from the best heuristic (oracle)",
    ),
    "fixed-k": (SPEC_ENV, FixedK, "Fixed(k): a constant speculation length (default 3)"),
    "no-speculation": (SPEC_ENV, lambda: FixedK(0), "Fixed(0): speculation off"),
    "disable-by-batch-size": (
        SPEC_ENV,
        DisableByBatchSize,
        "vLLM V0: k below a batch-size threshold, else 0",
    ),
    "batch-size-table": (SPEC_ENV, BatchSizeTable, "vLLM V1 batch-size -> k table from acceptance and ITL"),
    "smartspec": (SPEC_ENV, SmartSpecGreedy, "SmartSpec goodput-greedy k every 20 steps"),
    "sglang-ema": (SPEC_ENV, SGLangEMA, "SGLang EMA of accepted drafts with per-batch tiers"),
    "spec-lookahead-oracle": (
        SPEC_ENV,
        lambda env, **kw: _lookahead(SPEC_ENV, env, **kw),
        "fortified roll-out over the exact simulator, from the best heuristic (oracle)",
    ),
    "all-local": (MEC_ENV, AllLocal, "every task on the user's device"),
    "all-cloud": (MEC_ENV, AllCloud, "every task to the cloud"),
    "random-offload": (MEC_ENV, RandomOffload, "uniform over the valid actions (seeded by reset)"),
    "round-robin": (MEC_ENV, RoundRobin, "cycle through the existing edges"),
    "least-loaded": (MEC_ENV, LeastLoaded, "the existing edge with the least queued work"),
    "greedy-delay": (MEC_ENV, GreedyDelay, "argmin of the predicted delay over valid actions"),
    "greedy-energy": (MEC_ENV, GreedyEnergy, "argmin of the predicted device energy over valid actions"),
    "greedy-weighted": (
        MEC_ENV,
        GreedyWeighted,
        "argmin of w T/T_ref + (1 - w) E/E_ref with the episode's preference w",
    ),
    "lyapunov": (MEC_ENV, Lyapunov, "LODCO drift-plus-penalty: argmin V T + Q E, virtual energy queue Q"),
    "neurosurgeon": (SPLIT_ENV, Neurosurgeon, "Neurosurgeon: the split with the lowest predicted delay"),
    "neurosurgeon-energy": (
        SPLIT_ENV,
        lambda: Neurosurgeon("energy"),
        "Neurosurgeon: the split with the lowest predicted device energy",
    ),
    "neurosurgeon-weighted": (
        SPLIT_ENV,
        NeurosurgeonWeighted,
        "Neurosurgeon on the env's cost: argmin of w T/T_ref + (1 - w) E/E_ref + miss penalty over splits",
    ),
    "mec-lookahead-oracle": (
        MEC_ENV,
        lambda env: MecRolloutOracle(env, bases=_bases(MEC_ENV)),
        "fortified roll-out over copies of the exact system (true future tasks), from every heuristic "
        "(oracle)",
    ),
    "split-lookahead-oracle": (
        SPLIT_ENV,
        lambda env: MecRolloutOracle(env, bases=_bases(SPLIT_ENV)),
        "fortified roll-out over copies of the exact system (true future tasks), from every heuristic "
        "(oracle)",
    ),
    "static-mean": (BOTH_AUTOSCALE, lambda: StaticReplicas("mean"), "a fixed fleet for the mean traffic"),
    "static-peak": (BOTH_AUTOSCALE, lambda: StaticReplicas("peak"), "a fixed fleet for the peak traffic"),
    "hpa": (
        BOTH_AUTOSCALE,
        HPA,
        "Kubernetes HPA on in-flight requests (tolerance 0.1, 300 s down-stabilisation)",
    ),
    "kpa": (
        BOTH_AUTOSCALE,
        KPA,
        "Knative KPA: 60 s stable / panic windows, 70% target, panic at 2x (exact where the env "
        "reports Knative's windows)",
    ),
    "keda-queue": (AUTOSCALE_ENV, KEDAQueue, "KEDA on waiting requests (30 s polling, 300 s cooldown)"),
    "apa": (AUTOSCALE_ENV, APA, "AIBrix APA on KV-cache use (target 0.5, 2x up / half down, 300 s)"),
    "llumnix": (AUTOSCALE_ENV, Llumnix, "Llumnix freeness thresholds (up 10, down 60 decode steps)"),
    "capacity-planner": (
        BOTH_AUTOSCALE,
        CapacityPlanner,
        "queueing-model sizing: recent rate / (0.9 x profiled capacity at the SLO) (llm-d-like)",
    ),
    "next-window-oracle": (
        AUTOSCALE_ENV,
        NextWindowOracle,
        "knows the coming arrivals; sizes for them past the cold start (oracle)",
    ),
    "keep-alive-lambda": (
        SERVERLESS_ENV,
        lambda: FixedKeepAlive(10.0),
        "fixed 10 min keep-alive, no pre-warm (AWS Lambda); action_mode='keep-alive'",
    ),
    "keep-alive-azure": (
        SERVERLESS_ENV,
        lambda: FixedKeepAlive(20.0),
        "fixed 20 min keep-alive, no pre-warm (Azure Functions); action_mode='keep-alive'",
    ),
    "hybrid-histogram": (
        SERVERLESS_ENV,
        HybridHistogram,
        "hybrid histogram keep-alive / pre-warm (ATC'20; dslab parameters); action_mode='keep-alive'",
    ),
    "knative-default": (
        SERVERLESS_ENV,
        KnativeDefault,
        "Knative's default target (70% of containerConcurrency); action_mode='kpa-target'",
    ),
    "keda-http": (
        SERVERLESS_ENV,
        KEDAHttp,
        "KEDA HTTP add-on on in-flight requests (30 s polling, 300 s cooldown, from zero)",
    ),
    "serverless-next-window-oracle": (
        SERVERLESS_ENV,
        ServerlessNextWindowOracle,
        "knows the coming requests and cold starts; sizes ahead of them (oracle); action_mode='target'",
    ),
}


SERVERLESS_ACTION_MODES: dict[str, str] = {
    "kpa": "target", "hpa": "target", "keda-http": "target", "static-mean": "target",
    "static-peak": "target", "capacity-planner": "target", "knative-default": "kpa-target",
    "keep-alive-lambda": "keep-alive", "keep-alive-azure": "keep-alive", "hybrid-histogram": "keep-alive",
    "serverless-next-window-oracle": "target",
}  # fmt: skip
"""The ``action_mode`` of ServerlessAutoscale-v0 each of its controllers drives."""

PARAMETRISED = ("fixed-budget",)
"""Registry entries that repeat another entry with its default parameters (``fixed-budget`` is
``sarathi-default``); ``heuristics`` leaves them out."""


def heuristics(env_id: str) -> builtins.list[str]:
    """The env's registered non-oracle controllers (one entry per distinct default)."""
    return [n for n in list(env_id) if "oracle" not in n and n not in PARAMETRISED]


def _bases(env_id: str) -> builtins.list[Callable[[], Controller]]:
    """Factories of every heuristic of ``env_id``: the controllers an oracle starts from."""
    return [lambda name=name: make(name) for name in heuristics(env_id)]


def _lookahead(env_id: str, env: Any, **params: Any) -> LookaheadOracle:
    """A ``LookaheadOracle`` whose incumbent starts from every heuristic of ``env_id``."""
    return LookaheadOracle(env, bases=_bases(env_id), **params)


def _key(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    if key not in _REGISTRY:
        raise ValueError(f"unknown controller {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return key


def make(name: str, **params: Any) -> Controller:
    """A controller by registry name with its parameters (e.g. ``make("fixed-k", k=5)``)."""
    factory = _REGISTRY[_key(name)][1]
    try:
        return factory(**params)
    except TypeError as err:
        raise ValueError(f"controller {name!r}: bad parameters {params}: {err}") from None


def env_ids(name: str) -> tuple[str, ...]:
    """The env ids a registered controller serves."""
    envs = _REGISTRY[_key(name)][0]
    return envs if isinstance(envs, tuple) else (envs,)


def list(env_id: str | None = None) -> builtins.list[str]:
    """Registered controller names (for one env id, or all)."""
    return sorted(k for k in _REGISTRY if env_id is None or env_id in env_ids(k))


def describe(name: str) -> tuple[str, str]:
    """(env id, one-line description) of a registered controller; for a controller serving several
    envs, the first of ``env_ids(name)``."""
    return env_ids(name)[0], _REGISTRY[_key(name)][2]


__all__ = [
    "APA",
    "HPA",
    "KPA",
    "SERVERLESS_ACTION_MODES",
    "AllCloud",
    "AllLocal",
    "BatchSizeTable",
    "BestStaticOracle",
    "CapacityPlanner",
    "DisableByBatchSize",
    "FixedBudget",
    "FixedK",
    "FixedKeepAlive",
    "GreedyDelay",
    "GreedyEnergy",
    "GreedyWeighted",
    "HybridHistogram",
    "KEDAHttp",
    "KEDAQueue",
    "KnativeDefault",
    "LeastLoaded",
    "Llumnix",
    "LookaheadOracle",
    "Lyapunov",
    "MecRolloutOracle",
    "Neurosurgeon",
    "NeurosurgeonWeighted",
    "NextWindowOracle",
    "PressureRule",
    "RandomOffload",
    "RoundRobin",
    "SGLangEMA",
    "SarathiStatic",
    "ServerlessNextWindowOracle",
    "SlackFeedback",
    "SmartSpecGreedy",
    "StaticReplicas",
    "describe",
    "env_ids",
    "heuristics",
    "list",
    "make",
]
