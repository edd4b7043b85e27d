"""The agent commands of ``servegym``: train, evaluate, export, contract, serve-policy, quickstart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ALGO_NAMES = ("ppo", "a2c", "dqn", "qrdqn", "trpo", "maskable_ppo", "ppo_lstm", "sac", "td3")
"""servegym.agents.algos.ALGOS' keys, spelled out so ``--help`` need not import torch (tested)."""
QUICKSTART_ENV = "servegym/DnnSplit-v0"
QUICKSTART_TIMESTEPS = 200_000
QUICKSTART_SETTINGS: dict[str, dict[str, object]] = {
    # where learning shows best (experiments/results/mec: +16% over the best Neurosurgeon held out)
    "servegym/DnnSplit-v0": {"algo": "maskable_ppo", "timesteps": 120_000, "scenario": "camera-fleet-varied"},
    "servegym/MecOffload-v0": {
        "algo": "maskable_ppo",
        "timesteps": 150_000,
        "scenario": "camera-fleet-varied",
    },
    "servegym/Autoscale-v0": {"algo": "maskable_ppo", "timesteps": 100_000},
}
"""Per env: the algorithm, budget and preset the quickstart trains with when not given (others:
PPO, QUICKSTART_TIMESTEPS, the env's default preset)."""
QUICKSTART_OUT = "runs/quickstart"


def _cmd_train(args: argparse.Namespace) -> int:
    from servegym.agents.train import parse_key_values, train

    result = train(
        args.env_id,
        args.algo,
        timesteps=args.timesteps,
        n_envs=args.n_envs,
        seed=args.seed,
        out=args.out,
        scenario=args.scenario,
        env_kwargs=parse_key_values(args.env_kwargs, "--env-kwargs"),
        conf_file=args.conf_file,
        hyperparams=parse_key_values(args.hyperparams, "--hyperparams"),
        eval_scenarios_=args.eval_scenarios,
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        checkpoint_freq=args.checkpoint_freq,
        resume=args.resume,
        progress_bar=not args.no_progress,
        verbose=args.verbose,
        torch_threads=args.torch_threads,
        log=_note,
    )
    print(_trained_line(result))
    print(f"model:       {result.model_path}")
    if result.best_model_path:
        print(f"best model:  {result.best_model_path} (held-out scenarios)")
    print(f"config:      {result.out / 'config.yml'}")
    print(f"TensorBoard: tensorboard --logdir {result.tensorboard_dir}")
    return 0


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _trained_line(result) -> str:
    line = f"trained {result.steps_this_process:,} steps in {result.seconds:.0f} s"
    if result.steps_this_process != result.timesteps:
        line += f" in this process; the run has {result.timesteps:,} steps in total"
    if result.rejected_actions:
        line += (
            f"\n{result.rejected_actions:,} masked actions were rejected by the env during training "
            "(each cost its invalid-action penalty; TensorBoard: train/rejected_actions)"
        )
    return line


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from servegym.agents.controller import LearnedController
    from servegym.agents.train import parse_key_values
    from servegym.experiments.policy_eval import evaluate_model, format_comparison

    controller = LearnedController.load(
        args.model, env_id=args.env, vecnormalize=args.vecnormalize, trust_pickle=args.trust_pickle
    )
    results, best = evaluate_model(
        controller,
        args.env,
        scenario=args.scenario,
        episodes=args.episodes,
        seed=args.seed,
        env_kwargs=parse_key_values(args.env_kwargs, "--env-kwargs"),
    )
    scenario = args.scenario or controller.metadata.env_kwargs.get("scenario", "default")
    title = (
        f"{controller.metadata.env_id}, scenario {scenario}, {args.episodes} episode(s) from seed {args.seed}"
    )
    print(format_comparison(results, controller.name, best, everything=args.all, title=title))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from servegym.agents.export import export_model

    report = export_model(
        args.model,
        args.onnx,
        args.numpy,
        env_id=args.env,
        vecnormalize=args.vecnormalize,
        check=args.check,
        trust_pickle=args.trust_pickle,
    )
    for out in report.outputs:
        agree = report.agreement.get(out.name)
        checked = (
            f"; same action as SB3 on {agree:.1%} of {report.checked} random observations"
            if agree is not None
            else ""
        )
        print(f"wrote {out}{checked}")
    print()
    print(_contract_text(report.contract))
    if any(a < 1.0 for a in report.agreement.values()):
        print("warning: an export disagrees with the SB3 policy (float32 near-ties or an unsupported layer)")
        return 1
    return 0


def _contract_text(contract) -> str:
    """What a live system must send (``act_from_metrics``, ``POST /act``) and what actions mean."""
    from servegym.tables import render_table

    metric_headers, metric_rows, action_headers, action_rows = contract.tables()
    title = f"metrics a live system sends for {contract.env_id} (act_from_metrics, POST /act)"
    caption = "keys not listed are ignored; an optional metric takes the training scenario's value"
    return "\n\n".join(
        [
            render_table(metric_headers, metric_rows, title=title, caption=caption),
            render_table(action_headers, action_rows, title="actions", right=[0]),
        ]
    )


def _cmd_contract(args: argparse.Namespace) -> int:
    from servegym.agents.contract import EnvContract
    from servegym.agents.train import parse_key_values

    kwargs = parse_key_values(args.env_kwargs, "--env-kwargs")
    if args.scenario:
        kwargs["scenario"] = args.scenario
    print(_contract_text(EnvContract.of(args.env_id, kwargs)))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from servegym.agents.controller import LearnedController
    from servegym.agents.service import serve

    controller = LearnedController.load(
        args.model, env_id=args.env, vecnormalize=args.vecnormalize, trust_pickle=args.trust_pickle
    )
    print(
        f"serving {controller.name} for {controller.metadata.env_id} on http://{args.host}:{args.port} "
        "(POST /act, GET /policy, GET /health)"
    )
    serve(controller, args.host, args.port)
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from servegym.agents.controller import LearnedController
    from servegym.agents.train import run_directory, train
    from servegym.experiments.policy_eval import evaluate_model, format_comparison, headroom_captured
    from servegym.registration import check_env_id

    check_env_id(args.env)
    settings = QUICKSTART_SETTINGS.get(args.env, {})
    algo = args.algo or str(settings.get("algo", "ppo"))
    timesteps = (
        args.timesteps if args.timesteps is not None else int(settings.get("timesteps", QUICKSTART_TIMESTEPS))
    )
    for flag, value in (("--timesteps", timesteps), ("--episodes", args.episodes)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    out = run_directory(args.out, Path(QUICKSTART_OUT), resume=False)
    print(f"training {algo} on {args.env} for {timesteps:,} steps -> {out}")
    result = train(
        args.env,
        algo,
        timesteps=timesteps,
        seed=args.seed,
        out=out,
        scenario=args.scenario or settings.get("scenario"),
        progress_bar=not args.no_progress,
        checkpoint_freq=0,
        log=_note,
    )
    model = result.best_model_path or result.model_path
    controller = LearnedController.load(model)
    results, best = evaluate_model(controller, episodes=args.episodes, seed=1000, oracles=not args.no_oracle)
    scenario = controller.metadata.env_kwargs.get("scenario", "default")
    title = (
        f"{args.env}, scenario {scenario}: the trained policy, every heuristic and the oracle, "
        f"{args.episodes} unseen seeds"
    )
    print()
    print(format_comparison(results, controller.name, best, everything=True, title=title))
    captured = headroom_captured(results, controller.name, best)
    if captured:
        print(captured)
    print(f"\n{_trained_line(result)}; model {model}")
    print(f"TensorBoard logs: tensorboard --logdir {result.tensorboard_dir}")
    return 0


TRUST_PICKLE_HELP = (
    "allow files that load by unpickling (a plain SB3/rl_zoo3 zip, a VecNormalize pickle): "
    "unpickling runs code from the file, so only for files you trust"
)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, got {port}")
    return port


def add_agent_commands(sub) -> None:
    algos = ", ".join(ALGO_NAMES)
    tr = sub.add_parser(
        "train",
        help="train an SB3 agent on a servegym env",
        description="Train an SB3 / sb3-contrib agent; hyperparameters from rl_zoo3-format YAML.",
    )
    tr.add_argument("env_id", help="e.g. servegym/ChunkedPrefill-v0")
    tr.add_argument("--algo", default="ppo", help=f"one of {algos} (recurrent_ppo = ppo_lstm)")
    tr.add_argument("--timesteps", type=int, help="total env steps (default: the YAML's n_timesteps)")
    tr.add_argument("--n-envs", type=int, help="parallel envs (default: the YAML's n_envs)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument(
        "--out",
        help="run directory, new or empty unless --resume (default: runs/<algo>_<env>_<seed>, "
        "numbered _2, _3, ... when taken)",
    )
    tr.add_argument("--scenario", help="training scenario preset (default: the env's default)")
    tr.add_argument("--env-kwargs", nargs="+", metavar="KEY:VALUE", help="env arguments, e.g. load:0.9")
    tr.add_argument(
        "--hyperparams", nargs="+", metavar="KEY:VALUE", help="override YAML entries, e.g. n_steps:128"
    )
    tr.add_argument(
        "--conf-file", help="hyperparameter YAML (default: servegym's agents/hyperparams/<algo>.yml)"
    )
    tr.add_argument("--eval-scenarios", nargs="+", help="held-out presets scored during training")
    tr.add_argument(
        "--eval-freq", type=int, help="env steps between evaluations (0: none; default: 10 per run)"
    )
    tr.add_argument("--eval-episodes", type=int, default=1, help="episodes per held-out scenario")
    tr.add_argument(
        "--checkpoint-freq", type=int, help="env steps between checkpoints (0: none; default: 5 per run)"
    )
    tr.add_argument(
        "--resume", action="store_true", help="continue the newest complete checkpoint in --out (exactly)"
    )
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument(
        "--torch-threads", type=int, default=1, help="torch CPU threads (1 is fastest for small MLPs)"
    )
    tr.add_argument("--verbose", type=int, default=0)
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="a trained policy's KPIs beside the env's best heuristic")
    ev.add_argument("model", help="model.zip, .onnx or .npz")
    ev.add_argument("--env", help="env id (default: the model's)")
    ev.add_argument("--scenario", help="scenario preset (default: the training scenario)")
    ev.add_argument("--episodes", type=int, default=3)
    ev.add_argument("--seed", type=int, default=1000, help="first episode seed")
    ev.add_argument("--env-kwargs", nargs="+", metavar="KEY:VALUE")
    ev.add_argument("--all", action="store_true", help="show every heuristic, not just the best")
    ev.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    ev.add_argument(
        "--vecnormalize",
        help="VecNormalize pickle (needs --trust-pickle) for an SB3 zip not trained by servegym",
    )
    ev.set_defaults(func=_cmd_evaluate)

    ex = sub.add_parser(
        "export", help="export a trained policy to ONNX and/or numpy (normalisation and masking inside)"
    )
    ex.add_argument("model", help="an SB3 model.zip")
    ex.add_argument("--onnx", metavar="OUT", help="write an ONNX file")
    ex.add_argument("--numpy", metavar="OUT", help="write a pure-numpy .npz policy")
    ex.add_argument("--env", help="env id, for an SB3 zip not trained by servegym")
    ex.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    ex.add_argument(
        "--vecnormalize",
        help="VecNormalize pickle (needs --trust-pickle), for an SB3 zip not trained by servegym",
    )
    ex.add_argument("--check", type=int, default=1000, help="random observations compared with SB3 (0: skip)")
    ex.set_defaults(func=_cmd_export)

    ct = sub.add_parser(
        "contract", help="the metrics a live system sends to drive an env's policy, and what its actions mean"
    )
    ct.add_argument("env_id", help="e.g. servegym/ChunkedPrefill-v0")
    ct.add_argument("--scenario", help="the training scenario (sets the optional metrics' values)")
    ct.add_argument("--env-kwargs", nargs="+", metavar="KEY:VALUE")
    ct.set_defaults(func=_cmd_contract)

    sp = sub.add_parser("serve-policy", help="answer JSON metrics with JSON actions over HTTP")
    sp.add_argument("model", help="model.zip, .onnx or .npz")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=_port, default=8000, help="TCP port, 0-65535 (0: any free port)")
    sp.add_argument("--env", help="env id, for an SB3 zip not trained by servegym")
    sp.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    sp.add_argument(
        "--vecnormalize",
        help="VecNormalize pickle (needs --trust-pickle), for an SB3 zip not trained by servegym",
    )
    sp.set_defaults(func=_cmd_serve)

    qs = sub.add_parser(
        "quickstart", help="train a small agent and compare it with the heuristics (a few minutes)"
    )
    qs.add_argument("--env", default=QUICKSTART_ENV)
    qs.add_argument("--scenario", help="training and evaluation preset (default: the env's default)")
    qs.add_argument("--algo", help=f"one of {algos} (default: the env's quickstart setting, else ppo)")
    qs.add_argument(
        "--timesteps",
        type=int,
        help=f"training steps (default: the env's quickstart setting, else {QUICKSTART_TIMESTEPS:,})",
    )
    qs.add_argument("--no-oracle", action="store_true", help="leave the oracle out of the comparison")
    qs.add_argument("--episodes", type=int, default=10, help="evaluation episodes (unseen seeds)")
    qs.add_argument("--seed", type=int, default=0)
    qs.add_argument(
        "--out", help=f"run directory (default: {QUICKSTART_OUT}, or the next free {QUICKSTART_OUT}_N)"
    )
    qs.add_argument("--no-progress", action="store_true")
    qs.set_defaults(func=_cmd_quickstart)
