"""``servegym simulate``: run one serving scenario and print its KPIs (optionally a plot)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from servegym.workloads import GammaArrivals, Poisson, Requests, Workload, length_preset, read_trace

from .config import EngineConfig
from .engine import ServingEngine
from .summary import summarize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``simulate`` options (model/device/workload/policy/knobs/SLOs)."""
    e = parser.add_argument_group("environment mode (instead of a bare engine run)")
    e.add_argument("--env", help="an env id, e.g. servegym/SpecDecode-v0; runs --controller in it")
    e.add_argument("--controller", help="a controller from servegym.baselines.list(), e.g. smartspec")
    e.add_argument("--scenario", help="the env's scenario preset (or 'random')")
    e.add_argument("--episodes", type=int, default=1)
    e.add_argument("--horizon", type=float, default=0.0, help="simulated seconds per episode (0: preset)")
    g = parser.add_argument_group("instance")
    g.add_argument("--model", default="Llama-3-8B")
    g.add_argument("--device", default="a100", help="catalog name or profile YAML")
    g.add_argument("--tp", type=int, default=1)
    g.add_argument("--policy", choices=["decode_first", "prefill_first"], default="decode_first")
    g.add_argument("--budget", type=int, default=512, help="token budget per iteration")
    g.add_argument("--max-num-seqs", type=int, default=128)
    g.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    g.add_argument("--max-model-len", type=int, default=0, help="0: the model's context length")
    w = parser.add_argument_group("workload")
    w.add_argument("--lengths", default="azure-conv", help="length preset (azure-conv, azure-code, ...)")
    w.add_argument("--rate", type=float, default=4.0, help="requests per second")
    w.add_argument("--cv", type=float, default=1.0, help="inter-arrival CV (1: Poisson)")
    w.add_argument("--duration", type=float, default=300.0, help="simulated seconds of arrivals")
    w.add_argument("--trace", help="trace CSV (Azure LLM or Vidur format) instead of synthetic arrivals")
    w.add_argument("--rate-scale", type=float, default=1.0, help="with --trace: speed-up factor")
    w.add_argument("--start", type=float, default=0.0, help="with --trace: start offset in seconds")
    s = parser.add_argument_group("speculation")
    s.add_argument("--spec-tokens", type=int, default=0)
    s.add_argument("--draft", help="draft model name, or 'ngram'")
    s.add_argument("--acceptance", default="chat", help="acceptance preset (chat, code, ...)")
    o = parser.add_argument_group("SLOs and output")
    o.add_argument("--tbt-slo", type=float, default=0.1)
    o.add_argument("--ttft-slo", type=float, default=2.0)
    o.add_argument("--tpot-slo", type=float, default=0.1)
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--plot", metavar="FILE.png", help="draw queue, batch size, TTFT and TBT over time")


def config_from_args(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        model=args.model,
        device=args.device,
        tp=args.tp,
        policy=args.policy,
        token_budget=args.budget,
        max_num_seqs=args.max_num_seqs,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        spec_tokens=args.spec_tokens,
        draft=args.draft,
        acceptance=args.acceptance,
        tbt_slo_s=args.tbt_slo,
        ttft_slo_s=args.ttft_slo,
        tpot_slo_s=args.tpot_slo,
    )


def requests_from_args(args: argparse.Namespace, rng: np.random.Generator) -> Requests:
    if args.trace:
        workload = Workload.from_trace(read_trace(args.trace), rate_scale=args.rate_scale, start_s=args.start)
    else:
        arrivals = Poisson(args.rate) if args.cv == 1.0 else GammaArrivals(args.rate, args.cv)
        workload = Workload(arrivals, length_preset(args.lengths))
    if args.duration <= 0:
        raise ValueError(f"--duration must be positive, got {args.duration}")
    return workload.sample(rng, args.duration)


@dataclass
class Timeline:
    """Per-iteration samples for plotting (kept only when a plot is asked for)."""

    t: list[float] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    iteration_s: list[float] = field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    """Simulate a bare engine scenario (``--env`` runs are dispatched by the CLI instead)."""
    config = config_from_args(args)
    rng = np.random.default_rng(args.seed)
    requests = requests_from_args(args, rng)
    engine = ServingEngine(config, requests, rng)
    print(
        f"{engine.lm.model.name} on {engine.lm.device.name} x{config.tp}, {config.policy}, budget "
        f"{config.token_budget}, KV {engine.capacity_blocks * config.block_size} tokens; "
        f"{len(requests)} requests over {args.duration:.0f} s"
    )
    timeline = Timeline() if args.plot else None
    while not engine.done:
        result = engine.step()
        if timeline is not None and result.duration_s > 0:
            timeline.t.append(engine.now)
            timeline.waiting.append(len(engine.waiting))
            timeline.running.append(engine.num_running)
            timeline.iteration_s.append(result.duration_s)
    kpis = summarize(engine)
    width = max(len(k) for k in kpis)
    for name, value in kpis.items():
        print(f"  {name:<{width}}  {value:.4g}")
    if engine.rejected:
        for reason, count in engine.rejected.items():
            print(f"  rejected ({reason}): {count}")
    if timeline is not None:
        _plot(engine, timeline, Path(args.plot))
        print(f"plot: {args.plot}")
    return 0


def _plot(engine: ServingEngine, tl: Timeline, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    axes[0].plot(tl.t, tl.waiting, lw=0.8)
    axes[0].set_ylabel("waiting requests")
    axes[1].plot(tl.t, tl.running, lw=0.8, color="tab:green")
    axes[1].set_ylabel("running (batch)")
    started = ~np.isnan(engine.first_t)
    axes[2].scatter(engine.first_t[started], engine.first_t[started] - engine.arrival[started], s=2)
    axes[2].axhline(engine.config.ttft_slo_s, color="red", lw=0.8, ls="--", label="TTFT SLO")
    axes[2].set_ylabel("TTFT (s)")
    axes[2].legend(loc="upper left")
    axes[3].plot(tl.t, tl.iteration_s, lw=0.5, color="tab:purple")
    axes[3].axhline(engine.config.tbt_slo_s, color="red", lw=0.8, ls="--", label="TBT SLO")
    axes[3].set_ylabel("iteration = TBT (s)")
    axes[3].set_xlabel("simulated time (s)")
    axes[3].legend(loc="upper left")
    fig.suptitle(f"{engine.lm.model.name} on {engine.lm.device.name}: {engine.config.policy}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
