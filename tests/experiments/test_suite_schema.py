"""Suite files: every mistake is an error naming the file, the line and the key."""

from __future__ import annotations

import re

import pytest

from servegym import baselines
from servegym.experiments.compare import heuristic_names
from servegym.experiments.plan import make_plan
from servegym.experiments.suite import Overrides, SchemaError, load_suite, shipped_suites

from .conftest import tiny_suite_text

BAD = [
    # (suite text, line, message pattern)
    ("name: x\nseedz: 3\nenvs: []\n", 2, r"seedz: unknown key 'seedz'; did you mean 'seeds'\?"),
    ("", 0, r"the file is empty"),
    ("envs:\n  - id: servegym/ChunkedPrefil-v0\n", 2, r"envs\[0\]: missing required key 'scenarios'"),
    ("seeds: 0\nenvs: []\n", 1, r"seeds: must be >= 1, got 0"),
    ("seeds: [1, 1]\nenvs: []\n", 1, r"seeds: expected distinct seeds"),
    ("envs: [\n", 0, r"not valid YAML"),
    ("seeds: 2\nseeds: 3\nenvs: []\n", 2, r"duplicate key 'seeds' \(first at line 1\)"),
]


@pytest.mark.parametrize(("text", "line", "pattern"), BAD)
def test_malformed_suites_name_the_line(write_suite, text, line, pattern) -> None:
    path = write_suite(text)
    with pytest.raises(SchemaError, match=pattern) as err:
        load_suite(path)
    if line:
        assert str(err.value).startswith(f"{path}:{line}: ")


def _swap(old: str, new: str) -> str:
    text = tiny_suite_text()
    assert old in text
    return text.replace(old, new)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


ENV_MISTAKES = [
    (
        "id: servegym/ChunkedPrefill-v0",
        "id: servegym/ChunkedPrefil-v0",
        r"unknown env id .*did you mean 'servegym/ChunkedPrefill-v0'",
    ),
    (
        "[sarathi-static, slack-feedback]",
        "[sarathi-static, slack-feedbak]",
        r"heuristics\[1\]: unknown controller 'slack-feedbak'; did you mean 'slack-feedback'",
    ),
    (
        "[sarathi-static, slack-feedback]",
        "[sarathi-static, greedy-delay]",
        r"'greedy-delay' is a controller for servegym/MecOffload-v0, not servegym/ChunkedPrefill-v0",
    ),
    (
        "[sarathi-static, slack-feedback]",
        "[sarathi-static, lookahead-oracle]",
        r"'lookahead-oracle' is an oracle: list it under oracles",
    ),
    (
        "test: [qwen2.5-7b-h100-bursty]",
        "test: [no-such-preset]",
        r"test\[0\]: scenario 'no-such-preset' .*unknown ChunkedPrefill scenario",
    ),
    (
        "test: [qwen2.5-7b-h100-bursty]",
        "test: [{preset: qwen2.5-7b-h100-bursty, kwargs: {lod: 1}}]",
        r"test\[0\]: scenario .*lod",
    ),
    (
        "test: [qwen2.5-7b-h100-bursty]",
        "test: [{name: again, preset: llama3-8b-a100-chat-strict}]",
        r"test scenario 'again' is the training scenario",
    ),
    (
        "secondary: {slo_attainment: max",
        "secondary: {slo_attainment: maximise",
        r"slo_attainment: expected 'max' or 'min'",
    ),
    (
        "load: arrival_rate",
        "load: arrival_rat",
        r"series.load: 'arrival_rat' is not in servegym/ChunkedPrefill-v0's info\['metrics'\]",
    ),
    ("latency: {requests: ttft_s}", "latency: {requests: ttft}", r"latency.requests: expected one of ttft_s"),
    (
        "    series:",
        "    pareto: [[slo_attainment, goodput]]\n    series:",
        r"pareto\[0\]: 'goodput' is not in the env's metrics",
    ),
    (
        "heuristics: [sarathi-static, slack-feedback]",
        "heuristics: [{name: fixed-budget, params: {budget: 500}}]",
        r"controller 'fixed-budget'",
    ),
]


@pytest.mark.parametrize(("old", "new", "pattern"), ENV_MISTAKES)
def test_env_block_mistakes_name_the_line_and_key(write_suite, old, new, pattern) -> None:
    text = _swap(old, new)
    path = write_suite(text)
    with pytest.raises(SchemaError, match=pattern) as err:
        load_suite(path)
    changed = new.splitlines()[0].strip()
    assert str(err.value).startswith(f"{path}:{_line_of(text, changed)}: "), str(err.value)


LEARNED_MISTAKES = [
    ("algo: ppo", "algo: sac", r"sac needs a continuous \(Box\) action space"),
    ("algo: ppo", "algo: pppo", r"unknown algorithm 'pppo'"),
    ("{n_steps: 64,", "{n_stepz: 64,", r"no hyperparameter 'n_stepz'; did you mean 'n_steps'"),
    ("eval_points: 2", "eval_pointz: 2", r"unknown key 'eval_pointz'; did you mean 'eval_points'"),
    (
        "name: ppo",
        "name: ppo\n          train_scenario: qwen2.5-7b-h100-bursty",
        r"'qwen2.5-7b-h100-bursty' is not a training scenario",
    ),
    (  # ppo.yml trains ChunkedPrefill with control_interval_s=1.0: every scenario must use it
        "{horizon_s: 4, control_interval_s: 1.0}",
        "{horizon_s: 4}",
        r"'ppo' trains with control_interval_s=1.0 .* 'llama3-8b-a100-chat-strict' has the env's default",
    ),
    (
        "{n_steps: 64,",
        "{env_kwargs: 'dict(control_interval_s=0.5)', n_steps: 64,",
        r"trains with control_interval_s=0.5 .* has 1.0; set env_kwargs: \{control_interval_s: 0.5\}",
    ),
]


@pytest.mark.parametrize(("old", "new", "pattern"), LEARNED_MISTAKES)
def test_learned_policy_mistakes_are_caught_before_training(write_suite, old, new, pattern) -> None:
    text = tiny_suite_text(learned=True).replace(old, new)
    path = write_suite(text)
    with pytest.raises(SchemaError, match=pattern) as err:
        load_suite(path)
    assert re.match(rf"{re.escape(str(path))}:\d+: envs\[0\]\.controllers\.learned\[0\]", str(err.value))


def test_a_policy_is_never_evaluated_where_it_cannot_act(write_suite) -> None:
    text = """\
envs:
  - id: servegym/DnnSplit-v0
    scenarios: {train: [default], test: [llm-prompts]}
    controllers:
      learned: [{name: p, algo: maskable_ppo}]
"""
    path = write_suite(text)
    with pytest.raises(
        SchemaError, match=r"cannot act in scenario 'llm-prompts' \(Box\(0.0, 1.0, \(215,\)"
    ) as err:
        load_suite(path)
    assert str(err.value).startswith(
        f"{path}:5: envs[0].controllers.learned[0]: controller 'p': trained on 'default'"
    )


def test_unknown_suite_names_and_overrides_are_refused(write_suite) -> None:
    with pytest.raises(ValueError, match=r"unknown suite 'nope'.*smoke"):
        load_suite("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_suite("missing.yaml")
    path = write_suite(tiny_suite_text())
    with pytest.raises(ValueError, match="--seeds must be >= 1"):
        load_suite(path, Overrides(seeds=0))
    with pytest.raises(ValueError, match="--envs: servegym/SpecDecode-v0 not in suite tiny"):
        load_suite(path, Overrides(envs=["servegym/SpecDecode-v0"]))


def test_a_suite_expands_to_cells_with_shared_episode_seeds(write_suite) -> None:
    suite = load_suite(write_suite(tiny_suite_text(learned=True)), Overrides(episodes=3, timesteps=256))
    plan = make_plan(suite)
    assert len(plan.cells) == 2 * 3 * 2 and len(plan.jobs) == 2  # scenarios x controllers x seeds
    assert {j.timesteps for j in plan.jobs} == {256}
    by_run = {}
    for cell in plan.cells:
        assert len(cell.episode_seeds) == 3
        by_run.setdefault((cell.scenario, cell.seed), set()).add(cell.episode_seeds)
    assert all(len(seeds) == 1 for seeds in by_run.values())  # every controller sees the same episodes
    seed0 = next(iter(by_run[("qwen2.5-7b-h100-bursty", 0)]))
    seed1 = next(iter(by_run[("qwen2.5-7b-h100-bursty", 1)]))
    assert not set(seed0) & set(seed1) and min(seed0) >= 100_000  # disjoint, and not training seeds
    assert len({c.config_hash for c in plan.cells}) == len(plan.cells)
    assert [c.trace is not None for c in plan.cells if c.seed == 0] == [True] * 6
    assert all(c.trace is None for c in plan.cells if c.seed == 1)
    again = make_plan(
        load_suite(write_suite(tiny_suite_text(learned=True), "b.yaml"), Overrides(episodes=3, timesteps=256))
    )
    assert [c.config_hash for c in again.cells] == [c.config_hash for c in plan.cells]  # stable hashes


@pytest.mark.parametrize("name", sorted(set(shipped_suites()) - {"smoke"}))
def test_default_suites_meet_the_issue_minimums(name) -> None:
    suite = load_suite(name)
    assert len(suite.seeds) >= 5
    for env in suite.envs:
        assert env.episodes >= 10
        roles = {s.role for s in env.scenarios}
        assert roles == {"train", "test"}
        heuristics = {c.name for c in env.controllers if c.kind == "heuristic"}
        assert heuristics >= set(heuristic_names(env.env_id))
        oracles = {n for n in baselines.list(env.env_id) if "oracle" in n}
        assert {c.name for c in env.controllers if c.kind == "oracle"} == oracles
        assert any(c.kind == "learned" for c in env.controllers)


def test_the_default_suites_cover_every_env_family() -> None:
    covered = {env.env_id for name in shipped_suites() for env in load_suite(name, check=False).envs}
    assert {
        "servegym/ChunkedPrefill-v0",
        "servegym/SpecDecode-v0",
        "servegym/MecOffload-v0",
        "servegym/DnnSplit-v0",
    } <= covered


def test_a_learned_policy_has_its_own_env_arguments(write_suite) -> None:
    text = tiny_suite_text(learned=True).replace("algo: ppo", "algo: ppo\n          env_kwargs: {load: 0.9}")
    suite = load_suite(write_suite(text))
    plan = make_plan(suite)
    learned = [c for c in plan.cells if c.controller.kind == "learned"]
    others = [c for c in plan.cells if c.controller.kind != "learned"]
    assert learned and all(c.env_kwargs["load"] == 0.9 for c in learned)
    assert all("load" not in c.env_kwargs for c in others)
    assert all(job.env_kwargs["load"] == 0.9 for job in plan.jobs)


def test_a_learned_policy_s_env_arguments_are_checked(write_suite) -> None:
    text = tiny_suite_text(learned=True).replace("algo: ppo", "algo: ppo\n          env_kwargs: {lod: 0.9}")
    with pytest.raises(SchemaError, match=r"controllers\.learned\[0\].*lod"):
        load_suite(write_suite(text))
