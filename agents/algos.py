"""The SB3 / sb3-contrib algorithms servegym trains, under rl_zoo3's names."""

from __future__ import annotations

from gymnasium import spaces
from sb3_contrib import QRDQN, TRPO, MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm

ALGOS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "qrdqn": QRDQN,
    "trpo": TRPO,
    "maskable_ppo": MaskablePPO,
    "ppo_lstm": RecurrentPPO,
    "sac": SAC,
    "td3": TD3,
}
"""rl_zoo3's names (``ppo_lstm`` is RecurrentPPO); ``maskable_ppo`` is servegym's own."""

ALIASES = {"recurrent_ppo": "ppo_lstm", "maskableppo": "maskable_ppo", "recurrentppo": "ppo_lstm"}
CONTINUOUS_ONLY = {"sac", "td3"}
OFF_POLICY = {"dqn", "qrdqn", "sac", "td3"}


def resolve_algo(name: str) -> str:
    """The canonical algorithm name; unknown names list the choices."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in ALGOS:
        choices = ", ".join(sorted(ALGOS) + sorted(ALIASES))
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {choices}")
    return key


def check_action_space(algo: str, action_space: spaces.Space, env_id: str) -> None:
    """Refuse an algorithm that cannot act in ``action_space``, saying which would."""
    if algo in CONTINUOUS_ONLY and not isinstance(action_space, spaces.Box):
        usable = ", ".join(sorted(set(ALGOS) - CONTINUOUS_ONLY))
        raise ValueError(
            f"{algo} needs a continuous (Box) action space; {env_id} has {action_space}. Use one of: {usable}"
        )
