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
