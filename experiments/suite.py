"""Benchmark suites: YAML files naming scenarios, controllers, seeds, episodes and metrics.

A suite (``experiments/suites/*.yaml``, or any file) lists env blocks; each block has training
and held-out test scenarios, the controllers to compare (heuristics, oracles, learned policies
trained by the runner), the metrics with their direction, and what to trace for the figures.
``load_suite`` checks everything before a cell runs: unknown keys, env ids, presets, controllers,
algorithms and hyperparameters are errors naming the file, the line and the key. The format is
documented in the README ("Experiments") and by the shipped suites.
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .marked_yaml import MarkedMap, SchemaError, Where, load_marked

SUITES_DIR = "suites"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
"""Scenario and controller names become file names: letters, digits and . _ + - only."""
EVAL_SEED_BASE = 100_000
"""Evaluation episodes are seeded from here up (training envs use the run seed and seed + 10,000)."""
MAX_EPISODES = 1000
DIRECTIONS = {"max": True, "min": False}
LATENCY_SOURCES = ("step_info", "step_metric", "requests")
REQUEST_LATENCIES = ("ttft_s", "e2e_s", "tpot_s")

SUITE_KEYS = ("name", "description", "seeds", "episodes", "eval_seed", "envs")
ENV_KEYS = (
    "id",
    "env_kwargs",
    "episodes",
    "scenarios",
    "controllers",
    "metrics",
    "series",
    "latency",
    "pareto",
)
LEARNED_KEYS = (
    "name",
    "algo",
    "env_kwargs",
    "train_scenario",
    "timesteps",
    "n_envs",
    "hyperparams",
    "eval_points",
    "eval_episodes",
    "checkpoint",
    "model",
)


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    at: str = field(default="", compare=False)  # "file:line: key path"


@dataclass(frozen=True)
class Scenario:
    """One env configuration; ``role`` is ``train`` or ``test`` (held out from training)."""

    name: str
    role: str
    kwargs: dict[str, Any]
    at: str = field(default="", compare=False)  # "file:line: key path", for errors found later


@dataclass(frozen=True)
class ControllerSpec:
    """A heuristic or oracle (registry ``name`` + ``params``) or a learned policy (``algo``...)."""

    label: str
    kind: str  # heuristic | oracle | learned
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    algo: str = ""
    train_scenario: str = ""
    timesteps: int = 0
    n_envs: int = 0
    hyperparams: dict[str, Any] = field(default_factory=dict)
    eval_points: int = 10
    eval_episodes: int = 2
    checkpoint: str = "best"  # best | final
    model: str = ""  # a trained policy file: no training
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # a learned policy's own env arguments
    at: str = field(default="", compare=False)  # "file:line: key path", for errors found later

    @property
    def trains(self) -> bool:
        return self.kind == "learned" and not self.model


@dataclass(frozen=True)
class Latency:
    source: str  # step_info | step_metric | requests
    key: str


@dataclass(frozen=True)
class EnvSuite:
    env_id: str
    scenarios: list[Scenario]
    controllers: list[ControllerSpec]
    episodes: int
    primary: Metric
    secondary: list[Metric]
    series: dict[str, str] = field(default_factory=dict)  # time / load / decision -> metric key
    latency: Latency | None = None
    pareto: list[tuple[str, str]] = field(default_factory=list)
    at: dict[str, str] = field(default_factory=dict)  # "metrics"/"series"/"latency" -> "file:line: path"

    def metric(self, name: str) -> Metric | None:
        return next((m for m in (self.primary, *self.secondary) if m.name == name), None)

    def scenario(self, name: str) -> Scenario:
        return next(s for s in self.scenarios if s.name == name)

    @property
    def short(self) -> str:
        return self.env_id.split("/")[-1]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    source: str
    seeds: list[int]
    eval_seed: int
    envs: list[EnvSuite]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Suite:
        """The inverse of ``to_dict`` (for the resolved suite stored beside the results)."""
        envs = []
        for e in data["envs"]:
            envs.append(
                EnvSuite(
                    env_id=e["env_id"],
                    scenarios=[Scenario(**s) for s in e["scenarios"]],
                    controllers=[ControllerSpec(**c) for c in e["controllers"]],
                    episodes=e["episodes"],
                    primary=Metric(**e["primary"]),
                    secondary=[Metric(**m) for m in e["secondary"]],
                    series=dict(e["series"]),
                    latency=Latency(**e["latency"]) if e["latency"] else None,
                    pareto=[tuple(p) for p in e["pareto"]],
                    at=dict(e.get("at", {})),
                )
            )
        return cls(data["name"], data["description"], data["source"], data["seeds"], data["eval_seed"], envs)


# -- finding suites ----------------------------------------------------------------------------
def shipped_suites() -> dict[str, Path]:
    """The suites shipped in the package, by name."""
    folder = resources.files("servegym.experiments") / SUITES_DIR
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def suite_path(name_or_path: str | Path) -> Path:
    """A shipped suite's file by name, or the given file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"suite file {path} does not exist")
        return path
    shipped = shipped_suites()
    if str(name_or_path) not in shipped:
        raise ValueError(
            f"unknown suite {str(name_or_path)!r}: not a file, and the shipped suites are "
            f"{', '.join(sorted(shipped))}"
        )
    return shipped[str(name_or_path)]


# -- loading -----------------------------------------------------------------------------------
@dataclass
class Overrides:
    """Command-line reductions of a suite (``--seeds``, ``--episodes``, ``--timesteps``, ``--envs``)."""

    seeds: int | None = None
    episodes: int | None = None
    timesteps: int | None = None
    envs: list[str] | None = None


def load_suite(name_or_path: str | Path, overrides: Overrides | None = None, check: bool = True) -> Suite:
    """Read and check a suite; ``check`` also builds every scenario env and controller."""
    path = suite_path(name_or_path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SchemaError(f"{source}: not a UTF-8 text file ({err.reason})") from None
    data = load_marked(text, source)
    suite = _parse_suite(data, Where(source), path.stem)
    if overrides is not None:
        suite = _apply_overrides(suite, overrides)
    if check:
        for env in suite.envs:
            _check_env(env)
    return suite


def _parse_suite(data: Any, where: Where, default_name: str) -> Suite:
    if data is None:
        raise where.error("the file is empty; a suite needs at least 'envs'")
    top = where.mapping(data, SUITE_KEYS, required=("envs",))
    name = where.key(top, "name").string(top.get("name", default_name))
    if not NAME.match(name):
        raise where.key(top, "name").error(f"{name!r}: use letters, digits and . _ + - only")
    description = str(top.get("description", ""))
    seeds = _seeds(top.get("seeds", 5), where.key(top, "seeds"))
    episodes = where.key(top, "episodes").integer(top.get("episodes", 10), low=1)
    if episodes > MAX_EPISODES:
        raise where.key(top, "episodes").error(f"must be <= {MAX_EPISODES}, got {episodes}")
    eval_seed = where.key(top, "eval_seed").integer(top.get("eval_seed", EVAL_SEED_BASE), low=0)
    envs_where = where.key(top, "envs")
    items = envs_where.sequence(top["envs"])
    if not items:
        raise envs_where.error("needs at least one env block")
    envs = [_parse_env(item, envs_where.item(items, i), episodes) for i, item in enumerate(items)]
    seen: dict[str, int] = {}
    for i, env in enumerate(envs):
        if env.env_id in seen:
            raise envs_where.item(items, i).error(
                f"{env.env_id} appears twice (also envs[{seen[env.env_id]}]); put its scenarios in one block"
            )
        seen[env.env_id] = i
    return Suite(name, description, where.source, seeds, eval_seed, envs)


def _seeds(value: Any, where: Where) -> list[int]:
    if isinstance(value, list):
        seeds = [where.item(value, i).integer(v, low=0) for i, v in enumerate(value)]
        if not seeds or len(set(seeds)) != len(seeds):
            raise where.error(f"expected distinct seeds, got {list(value)}")
        return seeds
    return list(range(where.integer(value, low=1)))


def _parse_env(data: Any, where: Where, episodes: int) -> EnvSuite:
    block = where.mapping(data, ENV_KEYS, required=("id", "scenarios", "controllers"))
    env_id = where.key(block, "id").string(block["id"])
    _check_id(env_id, where.key(block, "id"))
    common = _kwargs(block.get("env_kwargs", {}), where.key(block, "env_kwargs"))
    env_episodes = where.key(block, "episodes").integer(block.get("episodes", episodes), low=1)
    if env_episodes > MAX_EPISODES:
        raise where.key(block, "episodes").error(f"must be <= {MAX_EPISODES}, got {env_episodes}")
    scenarios = _scenarios(block["scenarios"], where.key(block, "scenarios"), common)
    train_names = [s.name for s in scenarios if s.role == "train"]
    controllers = _controllers(block["controllers"], where.key(block, "controllers"), env_id, train_names)
    primary, secondary = _metrics(block.get("metrics"), where.key(block, "metrics"))
    env = EnvSuite(
        env_id=env_id,
        scenarios=scenarios,
        controllers=controllers,
        episodes=env_episodes,
        primary=primary,
        secondary=secondary,
        series=_series(block.get("series", {}), where.key(block, "series")),
        latency=_latency(block.get("latency"), where.key(block, "latency")),
        pareto=[],
        at={key: where.key(block, key).at for key in ("metrics", "series", "latency")},
    )
    pareto = _pareto(block.get("pareto", []), where.key(block, "pareto"), env)
    return EnvSuite(**{**env.__dict__, "pareto": pareto})


def _check_id(env_id: str, where: Where) -> None:
    from servegym.registration import check_env_id

    try:
        check_env_id(env_id)
    except ValueError as err:
        raise where.error(str(err)) from None


def _kwargs(value: Any, where: Where) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(f"expected a mapping of keyword arguments, got {value!r}")
    return {str(k): _plain(v) for k, v in value.items()}


def _plain(value: Any) -> Any:
    """Marked containers as plain dicts and lists (env kwargs are passed on to gym.make)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _scenarios(value: Any, where: Where, common: dict[str, Any]) -> list[Scenario]:
    roles = where.mapping(value, ("train", "test"), required=("train", "test"))
    scenarios: list[Scenario] = []
    for role in ("train", "test"):
        role_where = where.key(roles, role)
        items = role_where.sequence(roles[role])
        if not items:
            raise role_where.error(f"needs at least one {role} scenario")
        for i, item in enumerate(items):
            scenarios.append(_scenario(item, role_where.item(items, i), role, common))
    names: dict[str, Scenario] = {}
    for s in scenarios:
        if s.name in names:
            raise where.error(f"two scenarios are named {s.name!r}; give one a 'name'")
        names[s.name] = s
    for test in (s for s in scenarios if s.role == "test"):
        for train in (s for s in scenarios if s.role == "train"):
            if test.kwargs == train.kwargs:
                raise SchemaError(
                    f"{test.at}: test scenario {test.name!r} is the training scenario {train.name!r}: "
                    "held-out scenarios must differ from the training ones"
                )
    return scenarios


def _scenario(item: Any, where: Where, role: str, common: dict[str, Any]) -> Scenario:
    if isinstance(item, str):
        item = MarkedMap(preset=item)
    spec = where.mapping(item, ("name", "preset", "kwargs"))
    if "preset" not in spec and "kwargs" not in spec:
        raise where.error("a scenario needs a 'preset' (the env's scenario argument) or 'kwargs'")
    kwargs = dict(common)
    kwargs.update(_kwargs(spec.get("kwargs", {}), where.key(spec, "kwargs")))
    if "preset" in spec:
        kwargs["scenario"] = where.key(spec, "preset").string(spec["preset"])
    if "name" in spec:
        name = where.key(spec, "name").string(spec["name"])
    elif "preset" in spec:
        name = kwargs["scenario"]
    else:
        raise where.error("a scenario given by 'kwargs' alone needs a 'name'")
    if not NAME.match(name):
        raise where.error(f"scenario name {name!r}: use letters, digits and . _ + - only (it names files)")
    return Scenario(name, role, kwargs, at=where.at)


def _controllers(value: Any, where: Where, env_id: str, train_names: list[str]) -> list[ControllerSpec]:
    from servegym import baselines

    groups = where.mapping(value, ("heuristics", "oracles", "learned"))
    fitting = baselines.list(env_id)
    out: list[ControllerSpec] = []
    for kind, group in (("heuristic", "heuristics"), ("oracle", "oracles")):
        if group not in groups:
            continue
        group_where = where.key(groups, group)
        entries = groups[group]
        if entries == "all":
            names = [n for n in fitting if _is_oracle(n) == (kind == "oracle")]
            if kind == "heuristic":
                from .compare import heuristic_names

                names = heuristic_names(env_id)
            out += [ControllerSpec(label=n, kind=kind, name=n, at=group_where.at) for n in names]
            continue
        for i, entry in enumerate(group_where.sequence(entries)):
            out.append(_registry_entry(entry, group_where.item(entries, i), kind, env_id, fitting))
    if "learned" in groups:
        learned_where = where.key(groups, "learned")
        items = learned_where.sequence(groups["learned"])
        for i, entry in enumerate(items):
            out.append(_learned_entry(entry, learned_where.item(items, i), train_names))
    if not out:
        raise where.error("no controllers: list heuristics, oracles or learned policies")
    labels: set[str] = set()
    for c in out:
        if c.label in labels:
            raise where.error(f"two controllers are labelled {c.label!r}; give one a 'label'")
        labels.add(c.label)
    return out


def _is_oracle(name: str) -> bool:
    return "oracle" in name.lower()


def _registry_entry(entry: Any, where: Where, kind: str, env_id: str, fitting: list[str]) -> ControllerSpec:
    from servegym import baselines

    if isinstance(entry, str):
        entry = MarkedMap(name=entry)
    spec = where.mapping(entry, ("name", "params", "label"), required=("name",))
    name = where.key(spec, "name").string(spec["name"])
    key = name.lower().replace("_", "-")
    try:
        targets = baselines.env_ids(key)
    except ValueError:
        import difflib

        close = difflib.get_close_matches(key, fitting, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise where.error(
            f"unknown controller {name!r}; {hint}controllers for {env_id}: {', '.join(fitting)}"
        ) from None
    if env_id not in targets:
        raise where.error(
            f"{name!r} is a controller for {', '.join(targets)}, not {env_id}; "
            f"controllers for {env_id}: {', '.join(fitting)}"
        )
    if _is_oracle(key) != (kind == "oracle"):
        other = "oracles" if _is_oracle(key) else "heuristics"
        raise where.error(
            f"{name!r} is {'an oracle' if _is_oracle(key) else 'a heuristic'}: list it under {other}"
        )
    params = _kwargs(spec.get("params", {}), where.key(spec, "params"))
    label = where.key(spec, "label").string(spec.get("label", key))
    if not NAME.match(label):
        raise where.error(f"label {label!r}: use letters, digits and . _ + - only (it names files)")
    return ControllerSpec(label=label, kind=kind, name=key, params=params, at=where.at)


def _learned_entry(entry: Any, where: Where, train_names: list[str]) -> ControllerSpec:
    spec = where.mapping(entry, LEARNED_KEYS, required=("name",))
    label = where.key(spec, "name").string(spec["name"])
    if not NAME.match(label):
        raise where.error(f"name {label!r}: use letters, digits and . _ + - only (it names files)")
    if "model" in spec:
        extra = [k for k in spec if k not in ("name", "model", "algo")]
        if extra:
            raise where.key(spec, extra[0]).error(
                "a learned policy given by 'model' is not trained by the suite"
            )
        model = Path(where.key(spec, "model").string(spec["model"]))
        if not model.is_absolute():
            model = Path(where.source).parent / model
        return ControllerSpec(label=label, kind="learned", model=str(model), at=where.at)
    algo_where = where.key(spec, "algo")
    algo = algo_where.string(spec.get("algo", "ppo"))
    train_scenario = where.key(spec, "train_scenario").string(spec.get("train_scenario", train_names[0]))
    if train_scenario not in train_names:
        raise where.key(spec, "train_scenario").error(
            f"{train_scenario!r} is not a training scenario; training scenarios: {', '.join(train_names)}"
        )
    checkpoint = where.key(spec, "checkpoint").string(spec.get("checkpoint", "best"))
    if checkpoint not in ("best", "final"):
        raise where.key(spec, "checkpoint").error(f"expected 'best' or 'final', got {checkpoint!r}")
    return ControllerSpec(
        label=label,
        kind="learned",
        algo=algo,
        train_scenario=train_scenario,
        timesteps=where.key(spec, "timesteps").integer(spec.get("timesteps", 0), low=0),
        n_envs=where.key(spec, "n_envs").integer(spec.get("n_envs", 0), low=0),
        hyperparams=_kwargs(spec.get("hyperparams", {}), where.key(spec, "hyperparams")),
        eval_points=where.key(spec, "eval_points").integer(spec.get("eval_points", 10), low=1),
        eval_episodes=where.key(spec, "eval_episodes").integer(spec.get("eval_episodes", 2), low=1),
        checkpoint=checkpoint,
        env_kwargs=_kwargs(spec.get("env_kwargs", {}), where.key(spec, "env_kwargs")),
        at=where.at,
    )


def _metrics(value: Any, where: Where) -> tuple[Metric, list[Metric]]:
    if value is None:
        return Metric("return", True), []
    block = where.mapping(value, ("primary", "secondary"), required=("primary",))
    primary = _metric_map(block["primary"], where.key(block, "primary"))
    if len(primary) != 1:
        raise where.key(block, "primary").error("expected one metric, e.g. 'return' or {goodput: max}")
    secondary = _metric_map(block.get("secondary", {}), where.key(block, "secondary"))
    names = [m.name for m in primary + secondary]
    if len(set(names)) != len(names):
        raise where.error(f"a metric is listed twice: {names}")
    return primary[0], secondary


def _metric_map(value: Any, where: Where) -> list[Metric]:
    if isinstance(value, str):
        return [Metric(value, True, where.at)]
    if not isinstance(value, dict):
        raise where.error(f"expected a metric name or a mapping of metric: max|min, got {value!r}")
    mapping, metrics = value, []
    for name, direction in mapping.items():
        if direction not in DIRECTIONS:
            raise where.key(mapping, name).error(
                f"expected 'max' or 'min' (the better direction), got {direction!r}"
            )
        metrics.append(Metric(str(name), DIRECTIONS[direction], where.key(mapping, name).at))
    return metrics


def _series(value: Any, where: Where) -> dict[str, str]:
    mapping = where.mapping(value, ("time", "load", "decision"))
    return {k: where.key(mapping, k).string(v) for k, v in mapping.items()}


def _latency(value: Any, where: Where) -> Latency | None:
    if value is None:
        return None
    mapping = where.mapping(value, LATENCY_SOURCES)
    if len(mapping) != 1:
        raise where.error(f"expected one source: {', '.join(LATENCY_SOURCES)}")
    source, key = next(iter(mapping.items()))
    key = where.key(mapping, source).string(key)
    if source == "requests" and key not in REQUEST_LATENCIES:
        raise where.key(mapping, source).error(f"expected one of {', '.join(REQUEST_LATENCIES)}, got {key!r}")
    return Latency(source, key)


def _pareto(value: Any, where: Where, env: EnvSuite) -> list[tuple[str, str]]:
    pairs = []
    for i, pair in enumerate(where.sequence(value)):
        item = where.item(value, i)
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise item.error(f"expected a pair of metric names [x, y], got {pair!r}")
        for name in pair:
            if env.metric(name) is None:
                raise item.error(f"{name!r} is not in the env's metrics (listed with its direction)")
        pairs.append((pair[0], pair[1]))
    return pairs


# -- overrides and checks ------------------------------------------------------------------------
def _apply_overrides(suite: Suite, o: Overrides) -> Suite:
    for flag, value in (("--seeds", o.seeds), ("--episodes", o.episodes), ("--timesteps", o.timesteps)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    envs = suite.envs
    if o.envs:
        known = [e.env_id for e in envs]
        missing = [e for e in o.envs if e not in known]
        if missing:
            raise ValueError(
                f"--envs: {', '.join(missing)} not in suite {suite.name} (its envs: {', '.join(known)})"
            )
        envs = [e for e in envs if e.env_id in o.envs]
    out = []
    for env in envs:
        controllers = env.controllers
        if o.timesteps is not None:
            controllers = [
                ControllerSpec(**{**c.__dict__, "timesteps": o.timesteps}) if c.trains else c
                for c in controllers
            ]
        episodes = o.episodes if o.episodes is not None else env.episodes
        out.append(EnvSuite(**{**env.__dict__, "controllers": controllers, "episodes": episodes}))
    seeds = list(range(o.seeds)) if o.seeds is not None else suite.seeds
    return Suite(suite.name, suite.description, suite.source, seeds, suite.eval_seed, out)


def _check_env(env: EnvSuite) -> None:
    """Build every scenario env and every controller once: bad kwargs, parameters, algorithms and
    hyperparameters fail here, before any cell runs."""
    import gymnasium as gym

    from servegym import baselines

    envs = {}
    for s in env.scenarios:
        try:
            envs[s.name] = gym.make(env.env_id, **copy.deepcopy(s.kwargs))
        except (ValueError, TypeError) as err:
            raise SchemaError(f"{s.at}: scenario {s.name!r} ({s.kwargs}): {err}") from None
    probe = envs[env.scenarios[0].name]
    _check_trace_keys(env, probe)
    for c in env.controllers:
        try:
            if c.kind == "learned":
                _check_learned(c, env, envs)
            else:
                baselines.make(c.name, **c.params, **({"env": probe} if c.kind == "oracle" else {}))
        except (ValueError, TypeError, FileNotFoundError) as err:
            raise SchemaError(f"{c.at}: controller {c.label!r}: {err}") from None
    for e in envs.values():
        e.close()


def _check_trace_keys(env: EnvSuite, probe: Any) -> None:
    """The series (and a step_metric latency) must name keys of the env's ``info["metrics"]``."""
    _obs, info = probe.reset(seed=0)
    metrics = info.get("metrics", {})
    wanted = [("series", role, key) for role, key in env.series.items()]
    if env.latency is not None and env.latency.source == "step_metric":
        wanted.append(("latency", "step_metric", env.latency.key))
    for block, role, key in wanted:
        if key not in metrics:
            raise SchemaError(
                f"{env.at.get(block, '')}.{role}: {key!r} is not in {env.env_id}'s info['metrics']; "
                f"its metrics: {', '.join(metrics)}"
            )


def _check_learned(c: ControllerSpec, env: EnvSuite, envs: dict[str, Any]) -> None:
    if c.model:
        from servegym.agents.controller import LearnedController

        LearnedController.load(c.model, env_id=env.env_id)
        return
    from servegym.agents.algos import check_action_space, resolve_algo
    from servegym.agents.hyperparams import check_algo_kwargs, load_hyperparams, parse_entry

    algo = resolve_algo(c.algo)
    if c.env_kwargs:  # the policy's own env arguments (e.g. another action mode) on every scenario
        import gymnasium as gym

        envs = {s.name: gym.make(env.env_id, **{**s.kwargs, **c.env_kwargs}) for s in env.scenarios}
    trained_on = envs[c.train_scenario]
    check_action_space(algo, trained_on.action_space, env.env_id)
    for name, other in envs.items():  # the policy must act in every scenario it is evaluated on
        for space in ("observation_space", "action_space"):
            mine, theirs = getattr(trained_on, space), getattr(other, space)
            if mine.shape != theirs.shape or getattr(mine, "n", None) != getattr(theirs, "n", None):
                raise ValueError(
                    f"trained on {c.train_scenario!r} (an {space} of {mine}), it cannot act in "
                    f"scenario {name!r} ({theirs}); evaluate it on scenarios with the same spaces"
                )
    trains_with = dict(load_hyperparams(algo, env.env_id).env_kwargs)  # the shipped entry (or default)
    if c.hyperparams:
        entry = parse_entry(dict(c.hyperparams), "hyperparams")
        check_algo_kwargs(algo, entry.algo_kwargs, "hyperparams")
        trains_with.update(entry.env_kwargs)
    _check_training_kwargs(c, env, trains_with)


def _check_training_kwargs(c: ControllerSpec, env: EnvSuite, trains_with: dict[str, Any]) -> None:
    """The env arguments the hyperparameters train with (``env_kwargs``, e.g. a decision interval)
    hold in every scenario the policy is scored on, else it would act in another env than it
    learned: the suite must set them (``env_kwargs`` of the env block) to the same values."""
    for s in env.scenarios:
        kwargs = {**s.kwargs, **c.env_kwargs}  # the policy's own env arguments apply too
        for key, value in trains_with.items():
            if key == "scenario" or (key in kwargs and kwargs[key] == value):
                continue
            found = f"{kwargs[key]!r}" if key in kwargs else "the env's default"
            raise ValueError(
                f"{c.label!r} trains with {key}={value!r} (its hyperparameters' env_kwargs) but scenario "
                f"{s.name!r} has {found}; set env_kwargs: {{{key}: {value!r}}} in the env block"
            )


def suite_summary(suite: Suite) -> str:
    """One line per env: scenarios, controllers, seeds and episodes."""
    lines = [f"suite {suite.name}: seeds {suite.seeds}"]
    for env in suite.envs:
        train = [s.name for s in env.scenarios if s.role == "train"]
        test = [s.name for s in env.scenarios if s.role == "test"]
        lines.append(
            f"  {env.env_id}: train {', '.join(train)}; test {', '.join(test)}; "
            f"{len(env.controllers)} controllers; {env.episodes} episodes per cell"
        )
    return "\n".join(lines)


__all__ = [
    "ControllerSpec",
    "EnvSuite",
    "Latency",
    "Metric",
    "Overrides",
    "Scenario",
    "SchemaError",
    "Suite",
    "load_suite",
    "shipped_suites",
    "suite_path",
]
