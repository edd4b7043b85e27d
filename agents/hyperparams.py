"""Per-env hyperparameters in rl_zoo3's YAML format (``hyperparams/<algo>.yml``, keyed by env id).

The same files work with ``python -m rl_zoo3.train --conf-file``. rl_zoo3 ``eval``s string
values such as ``policy_kwargs: "dict(net_arch=[64, 64])"``; servegym parses them with a small
AST reader that accepts only literals, ``dict(...)`` and torch activation names, so a YAML file
can never run code.
"""

from __future__ import annotations

import ast
import difflib
import inspect
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch.nn as nn
import yaml

from .algos import ALGOS, resolve_algo

ACTIVATIONS = {name: getattr(nn, name) for name in ("ReLU", "Tanh", "ELU", "LeakyReLU", "SiLU", "GELU")}
ZOO_KEYS = {"n_envs", "n_timesteps", "policy", "normalize", "env_kwargs", "policy_kwargs"}
UNSUPPORTED_ZOO_KEYS = {"env_wrapper", "vec_env_wrapper", "callback", "frame_stack", "monitor_kwargs"}
SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")
SET_BY_TRAIN = {"env": "", "seed": "--seed", "device": "", "tensorboard_log": "--out", "verbose": "--verbose"}
"""Constructor arguments ``servegym train`` sets itself (with the option that sets them)."""


@dataclass
class Hyperparams:
    """One env's entry: rl_zoo3's own keys apart, the algorithm's keyword arguments in ``algo_kwargs``."""

    n_envs: int = 1
    n_timesteps: int = 100_000
    policy: str = "MlpPolicy"
    normalize: dict[str, Any] | None = None  # VecNormalize kwargs, None = no normalisation
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict)  # the entry as written (for config.yml)

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the SB3 constructor (schedules turned into callables)."""
        kwargs = {k: _schedule(v) if k in SCHEDULED else v for k, v in self.algo_kwargs.items()}
        if self.policy_kwargs:
            kwargs["policy_kwargs"] = dict(self.policy_kwargs)
        return kwargs


def default_file(algo: str) -> Path:
    """The shipped ``hyperparams/<algo>.yml``."""
    return Path(str(resources.files("servegym.agents") / "hyperparams" / f"{resolve_algo(algo)}.yml"))


def load_hyperparams(algo: str, env_id: str, conf_file: str | Path | None = None) -> Hyperparams:
    """The entry for ``env_id`` (or ``default``) in ``conf_file`` or the shipped file."""
    path = Path(conf_file) if conf_file else default_file(algo)
    if not path.is_file():
        raise FileNotFoundError(f"hyperparameter file {path} does not exist")
    try:
        table = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(table, dict):
        raise ValueError(f"{path}: expected a mapping of env ids to hyperparameters")
    entry = table.get(env_id, table.get("default"))
    if entry is None:
        raise ValueError(f"{path} has no entry for {env_id!r} and no 'default'; entries: {sorted(table)}")
    return parse_entry(entry, f"{path}[{env_id}]")


def parse_entry(entry: dict[str, Any], where: str) -> Hyperparams:
    """Split a zoo entry into zoo keys and algorithm kwargs, reading string values safely."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(entry).__name__}")
    bad = UNSUPPORTED_ZOO_KEYS & set(entry)
    if bad:
        raise ValueError(f"{where}: servegym does not support the zoo key(s) {sorted(bad)}")
    hp = Hyperparams(source=where, raw=dict(entry))
    for key, value in entry.items():
        if key == "n_envs":
            hp.n_envs = _positive_int(value, f"{where}.n_envs")
        elif key == "n_timesteps":
            hp.n_timesteps = _positive_int(value, f"{where}.n_timesteps")
        elif key == "policy":
            hp.policy = str(value)
        elif key == "normalize":
            hp.normalize = _normalize(value, f"{where}.normalize")
        elif key in ("env_kwargs", "policy_kwargs"):
            parsed = read_value(value, f"{where}.{key}") if isinstance(value, str) else value
            if not isinstance(parsed, dict):
                raise ValueError(f"{where}.{key}: expected a mapping, got {value!r}")
            setattr(hp, key, parsed)
        else:
            hp.algo_kwargs[key] = value
    return hp


def check_algo_kwargs(algo: str, kwargs: dict[str, Any], where: str) -> None:
    """Refuse keys the algorithm's constructor does not take, naming the closest and the valid ones."""
    params = set(inspect.signature(ALGOS[algo].__init__).parameters) - {"self", "policy", "_init_setup_model"}
    valid = sorted((params - set(SET_BY_TRAIN)) | ZOO_KEYS)
    for key in kwargs:
        if key in SET_BY_TRAIN:
            option = SET_BY_TRAIN[key]
            raise ValueError(
                f"{where}: {key!r} is set by servegym train" + (f" (use {option})" if option else "")
            )
        if key not in params:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"{where}: {algo} has no hyperparameter {key!r}; {hint}valid keys: {', '.join(valid)}"
            )


def read_value(text: str, where: str) -> Any:
    """A zoo string value (``"dict(net_arch=[64, 64], activation_fn=nn.ReLU)"``) without ``eval``."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"{where}: cannot read {text!r}: {err.msg}") from err
    return _literal(tree.body, where)


def _literal(node: ast.AST, where: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(n, where) for n in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {_literal(k, where): _literal(v, where) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand, where)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
    ):
        return {kw.arg: _literal(kw.value, where) for kw in node.keywords}
    if isinstance(node, (ast.Attribute, ast.Name)):
        name = node.attr if isinstance(node, ast.Attribute) else node.id
        if name in ACTIVATIONS:
            return ACTIVATIONS[name]
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
    raise ValueError(
        f"{where}: only literals, dict(...) and activations {sorted(ACTIVATIONS)} are allowed, "
        f"got {ast.unparse(node)!r}"
    )


def _normalize(value: Any, where: str) -> dict[str, Any] | None:
    if isinstance(value, bool):
        return {"norm_obs": True, "norm_reward": True} if value else None
    parsed = read_value(value, where) if isinstance(value, str) else value
    if not isinstance(parsed, dict):
        raise ValueError(f"{where}: expected true/false or a dict of VecNormalize options, got {value!r}")
    return parsed


def _positive_int(value: Any, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= 1 or number != int(number):
        raise ValueError(f"{where}: expected a positive integer, got {value!r}")
    return int(number)


def _schedule(value: Any) -> Any:
    """rl_zoo3's ``lin_<x>``: linear decay from x to 0 over training."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return LinearSchedule(start)
    return value


@dataclass(frozen=True)
class LinearSchedule:
    """Picklable linear schedule (SB3 calls it with the remaining progress, 1 -> 0)."""

    start: float

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start
