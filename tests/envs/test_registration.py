"""Registration: ids at ``import servegym``, idempotence, module-qualified ids from a fresh
interpreter, and other projects registering their own variants of the env classes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import gymnasium as gym
import pytest

import servegym
from servegym.envs.chunked_prefill import ChunkedPrefillEnv
from servegym.envs.spec_decode import SpecDecodeEnv

from ._helpers import CHUNK_ID, ENV_IDS, SPEC_ID

ENTRY_POINTS = {
    CHUNK_ID: ("servegym.envs.chunked_prefill:ChunkedPrefillEnv", 1200),
    SPEC_ID: ("servegym.envs.spec_decode:SpecDecodeEnv", 20000),
}


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def scratch_ids():
    """Ids a test registers are removed from the registry afterwards."""
    ids: list[str] = []
    yield ids
    for env_id in ids:
        gym.registry.pop(env_id, None)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_import_registers_ids(env_id):
    spec = gym.spec(env_id)
    entry_point, max_steps = ENTRY_POINTS[env_id]
    assert spec.entry_point == entry_point
    assert spec.max_episode_steps == max_steps
    assert spec.namespace == "servegym"


def test_register_envs_is_idempotent():
    before = {env_id: gym.registry[env_id] for env_id in ENV_IDS}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first = servegym.register_envs()
        assert set(ENV_IDS) <= set(first)
        assert servegym.register_envs() == first
    assert [str(w.message) for w in record] == []  # no "Overriding environment" warnings
    for env_id, spec in before.items():
        assert gym.registry[env_id] is spec


def test_import_servegym_imports_no_simulator_code():
    result = _run_python(
        """
        import sys
        import gymnasium as gym
        import servegym
        assert "servegym/SpecDecode-v0" in gym.registry
        heavy = sorted(m for m in sys.modules if m.startswith(("servegym.envs", "servegym.hardware")))
        print("HEAVY", heavy)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_module_qualified_id_from_fresh_interpreter():
    result = _run_python(
        """
        import sys
        import gymnasium as gym
        assert "servegym" not in sys.modules
        env = gym.make("servegym:servegym/SpecDecode-v0", horizon_s=5)
        obs, info = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(2)
        print("OK", type(env.unwrapped).__name__, obs.shape, env.spec.id, info["metrics"]["spec_tokens"])
        """
    )
    assert result.returncode == 0, result.stderr
    assert "OK SpecDecodeEnv (27,) servegym/SpecDecode-v0 2.0" in result.stdout


def test_other_project_registers_a_variant_with_the_class(scratch_ids):
    scratch_ids.append("myproj/StrictChunk-v0")
    gym.register(
        id="myproj/StrictChunk-v0",
        entry_point=ChunkedPrefillEnv,
        kwargs={"scenario": "llama3-8b-a100-lowload", "tbt_slo_s": 0.05},
        max_episode_steps=40,
    )
    env = gym.make("myproj/StrictChunk-v0", horizon_s=60)
    scenario = env.unwrapped.scenario
    assert isinstance(env.unwrapped, ChunkedPrefillEnv)
    assert env.unwrapped.scenario_name == "llama3-8b-a100-lowload"
    assert (scenario.tbt_slo_s, scenario.load, scenario.horizon_s) == (0.05, 0.3, 60)
    obs, info = env.reset(seed=0)
    assert info["scenario"].tbt_slo_s == 0.05 and obs in env.observation_space
    for steps in range(1, 100):  # noqa: B007
        *_, terminated, truncated, info = env.step(0)
        if terminated or truncated:
            break
    assert steps == 40 and truncated  # the variant's own TimeLimit
    # Its kwargs can be overridden at make time like any registered env's.
    assert gym.make("myproj/StrictChunk-v0", tbt_slo_s=0.2).unwrapped.scenario.tbt_slo_s == 0.2


def test_other_project_registers_a_spec_variant_by_string(scratch_ids):
    scratch_ids.append("myproj/CodeSpec-v0")
    gym.register(
        id="myproj/CodeSpec-v0",
        entry_point="servegym.envs.spec_decode:SpecDecodeEnv",
        kwargs={"scenario": "llama3-8b-1b-code", "decision_iterations": 4, "horizon_s": 5},
    )
    env = gym.make("myproj/CodeSpec-v0")
    assert isinstance(env.unwrapped, SpecDecodeEnv)
    assert env.unwrapped.decision_iterations == 4
    assert env.unwrapped.scenario.acceptance == "code"
    env.reset(seed=0)
    assert env.step(3)[0] in env.observation_space
