"""The ``servegym`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from servegym._version import __version__

from .agents import add_agent_commands
from .experiments import add_experiment_commands
from .hardware import add_hardware_commands
from .simulate import add_simulate_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="servegym", description="servegym: RL gym for AI-serving control")
    parser.add_argument("--version", action="version", version=f"servegym {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_hardware_commands(sub)
    add_simulate_commands(sub)
    add_agent_commands(sub)
    add_experiment_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`servegym catalog | head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"servegym {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
