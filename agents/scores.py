"""The per-action scores behind an SB3 policy's deterministic action (logits or Q-values).

The deterministic action of every supported policy is the argmax of these scores, so masking
is "set masked scores to -inf, then argmax": the same rule in training-time evaluation, the
controller, the ONNX graph and the numpy MLP.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.dqn.policies import DQNPolicy

from .mlp import masked_argmax

ACTOR_CRITIC = (ActorCriticPolicy, MaskableActorCriticPolicy)


def supports_scores(policy: BasePolicy) -> bool:
    """Feed-forward policies whose action is an argmax (not recurrent, not continuous)."""
    if isinstance(policy, RecurrentActorCriticPolicy):
        return False
    if isinstance(policy, ACTOR_CRITIC):
        return hasattr(policy.action_net, "out_features")
    return isinstance(policy, (DQNPolicy, QRDQNPolicy))


def action_scores(policy: BasePolicy, obs: torch.Tensor) -> torch.Tensor:
    """[B, n_actions] scores of (already normalised) observations."""
    if isinstance(policy, ACTOR_CRITIC) and not isinstance(policy, RecurrentActorCriticPolicy):
        features = policy.extract_features(obs, policy.pi_features_extractor)
        return policy.action_net(policy.mlp_extractor.forward_actor(features))
    if isinstance(policy, QRDQNPolicy):
        return policy.quantile_net(obs).mean(dim=1)
    if isinstance(policy, DQNPolicy):
        return policy.q_net(obs)
    raise ValueError(
        f"{type(policy).__name__} has no per-action scores (supported: actor-critic, DQN, QR-DQN)"
    )


class RecurrentScores:
    """Logits of a recurrent (LSTM) actor, carrying its state from call to call."""

    def __init__(self, policy: RecurrentActorCriticPolicy) -> None:
        self.policy = policy
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        self.state = None

    def __call__(self, obs: torch.Tensor, episode_start: np.ndarray | None) -> np.ndarray:
        lstm = self.policy.lstm_actor
        if self.state is None or self.state[0].shape[1] != len(obs):
            zeros = torch.zeros(lstm.num_layers, len(obs), lstm.hidden_size)
            self.state = (zeros, zeros.clone())
            episode_start = np.ones(len(obs))
        starts = torch.as_tensor(
            np.zeros(len(obs)) if episode_start is None else episode_start, dtype=torch.float32
        )
        with torch.no_grad():
            distribution, self.state = self.policy.get_distribution(obs, self.state, starts)
        return distribution.distribution.logits.numpy()


class MaskedPredictor:
    """``predict`` with the env's action masks applied (for ``evaluate_policy`` on a VecEnv)."""

    def __init__(self, model: BaseAlgorithm, venv: Any) -> None:
        self.model, self.venv = model, venv
        policy = model.policy
        self.recurrent = RecurrentScores(policy) if isinstance(policy, RecurrentActorCriticPolicy) else None
        if self.recurrent is None and not supports_scores(policy):
            raise ValueError(f"{type(policy).__name__} has no per-action scores to mask")

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        masks = np.stack(self.venv.env_method("action_masks"))
        obs, _ = self.model.policy.obs_to_tensor(observation)
        if self.recurrent is not None:
            scores = self.recurrent(obs, episode_start)
        else:
            with torch.no_grad():
                scores = action_scores(self.model.policy, obs).cpu().numpy()
        return masked_argmax(scores, masks), state
