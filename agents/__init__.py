"""servegym.agents: train SB3 agents on servegym's envs, export them, and run them as controllers.

Modules: ``train`` (one call per run), ``hyperparams`` (rl_zoo3-format YAML), ``controller``
(LearnedController), ``export`` / ``onnx_export`` / ``mlp`` (torch-free policies), ``service``
(HTTP decisions). Importing this package imports no torch; its modules do.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "LearnedController": "controller",
    "train": "train",
    "export_model": "export",
    "load_hyperparams": "hyperparams",
    "ALGOS": "algos",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
