"""Register servegym's environment ids with Gymnasium (idempotent; runs at ``import servegym``).

Entry points are strings, so registering imports no simulator code. Gymnasium >= 1.0 has no
plugin entry points: tools that take an id string use ``gym.make("servegym:servegym/<Env>-v0")``,
which imports servegym first.
"""

from __future__ import annotations

import gymnasium as gym

VECTOR_ENTRY_POINTS = {"servegym/MecOffload-v0": "servegym.envs.mec_vector:MecOffloadVectorEnv"}

ENVS = {
    # id: (entry point, max_episode_steps) -- 300 s horizons
    "servegym/ChunkedPrefill-v0": ("servegym.envs.chunked_prefill:ChunkedPrefillEnv", 1200),
    "servegym/SpecDecode-v0": ("servegym.envs.spec_decode:SpecDecodeEnv", 20000),
    # 100 tasks per episode (truncated by the env itself; the limit is a safety net)
    "servegym/MecOffload-v0": ("servegym.envs.mec_offload:MecOffloadEnv", 100000),
    "servegym/DnnSplit-v0": ("servegym.envs.mec_offload:DnnSplitEnv", 100000),
    # an hour of 15 s decisions by default (the env truncates itself; the limit is a safety net)
    "servegym/Autoscale-v0": ("servegym.envs.autoscale:AutoscaleEnv", 100000),
    # an hour of 2 s decisions by default (the env truncates itself; the limit is a safety net)
    "servegym/ServerlessAutoscale-v0": ("servegym.envs.serverless:ServerlessAutoscaleEnv", 1000000),
}


def register_envs() -> list[str]:
    """Register every servegym id that is not registered yet; returns the ids."""
    for env_id, (entry_point, max_steps) in ENVS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=entry_point,
                max_episode_steps=max_steps,
                vector_entry_point=VECTOR_ENTRY_POINTS.get(env_id),
            )
    return list(ENVS)


def check_env_id(env_id: str, what: str = "env id") -> None:
    """Raise ``ValueError`` for an unregistered id, suggesting the closest registered one."""
    if env_id in gym.registry:
        return
    import difflib

    register_envs()
    ours = sorted(k for k in gym.registry if k.startswith("servegym/"))
    if env_id in gym.registry:
        return
    short = {k.split("/")[-1].lower(): k for k in ours}
    name = str(env_id).split("/")[-1].lower()
    close = [short[m] for m in difflib.get_close_matches(name, short, n=1, cutoff=0.6)]
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown {what} {env_id!r}; {hint}servegym's ids: {', '.join(ours)}")
