"""``servegym simulate`` and ``compare``: one serving scenario, or heuristics side by side."""

from __future__ import annotations

import argparse

import numpy as np

from servegym.envs.serving import EngineConfig
from servegym.workloads import GammaArrivals, Poisson, Requests, Workload, length_preset, read_trace


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
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


def _cmd_simulate(args: argparse.Namespace) -> int:
    if args.env:
        from servegym.experiments.compare import run_env

        return run_env(args)
    from servegym.experiments.simulate import run

    rng = np.random.default_rng(args.seed)
    requests = requests_from_args(args, rng)
    return run(config_from_args(args), requests, rng, args.duration, plot=args.plot)


def _cmd_compare(args: argparse.Namespace) -> int:
    from servegym.experiments.compare import check_controllers, compare, format_table, heuristic_names
    from servegym.registration import check_env_id

    check_env_id(args.env)
    names = args.controllers or heuristic_names(args.env)
    check_controllers(args.env, names)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    kwargs = {"scenario": args.scenario} if args.scenario else {}
    if args.horizon:
        kwargs["horizon_s"] = args.horizon
    results = compare(args.env, names, range(args.seed, args.seed + args.seeds), **kwargs)
    title = (
        f"{args.env}, scenario {args.scenario or 'default'}, {args.seeds} seed(s), {len(names)} controllers"
    )
    print(format_table(results, title=title))
    return 0


def add_simulate_commands(sub) -> None:
    sim = sub.add_parser(
        "simulate",
        help="simulate one LLM serving instance and print its KPIs",
        description="Run a serving scenario through the iteration-level engine.",
    )
    add_simulate_arguments(sim)
    sim.set_defaults(func=_cmd_simulate)

    cmp_ = sub.add_parser("compare", help="run the heuristic controllers on an env scenario; print a table")
    cmp_.add_argument("--env", default="servegym/ChunkedPrefill-v0")
    cmp_.add_argument("--scenario", help="preset name (default: the env's default)")
    cmp_.add_argument("--controllers", nargs="+", help="registry names (default: every non-oracle one)")
    cmp_.add_argument("--seeds", type=int, default=2)
    cmp_.add_argument("--seed", type=int, default=0, help="first seed")
    cmp_.add_argument("--horizon", type=float, default=0.0, help="simulated seconds (0: the preset's)")
    cmp_.set_defaults(func=_cmd_compare)
