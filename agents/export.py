"""``servegym export``: an SB3 zip to ONNX and/or numpy, checked against the SB3 policy's actions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

from .bundle import PolicyMetadata
from .contract import EnvContract
from .controller import LearnedController
from .mlp import MlpPolicyArrays, _check_shapes
from .onnx_export import save_onnx
from .scores import ACTOR_CRITIC

ACTIVATION_NAMES = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.ELU: "elu",
    nn.LeakyReLU: "leaky_relu",
    nn.SiLU: "silu",
    nn.GELU: "gelu",
}


@dataclass
class ExportReport:
    outputs: list[Path]
    checked: int  # random observations compared with the SB3 policy's deterministic action
    agreement: dict[str, float]  # output file name -> fraction of identical actions
    contract: EnvContract  # what a live system must send, and what the actions mean


def load_policy_arrays(
    model_path: str | Path,
    env_id: str | None = None,
    vecnormalize: str | Path | None = None,
    trust_pickle: bool = False,
) -> MlpPolicyArrays:
    """The arrays of an SB3 zip (loaded as ``LearnedController.load`` loads it)."""
    return _arrays(_load_zip(model_path, env_id, vecnormalize, trust_pickle))


def _load_zip(
    model_path: str | Path, env_id: str | None, vecnormalize: str | Path | None, trust_pickle: bool
) -> LearnedController:
    path = Path(model_path)
    if path.suffix.lower() != ".zip":
        raise ValueError(f"{path}: export reads an SB3 model .zip (ONNX and .npz files are exports already)")
    return LearnedController.load(path, env_id=env_id, vecnormalize=vecnormalize, trust_pickle=trust_pickle)


def _arrays(controller: LearnedController) -> MlpPolicyArrays:
    return extract_mlp(controller.policy, controller.metadata)


def export_model(
    model_path: str | Path,
    onnx_out: str | Path | None = None,
    numpy_out: str | Path | None = None,
    *,
    env_id: str | None = None,
    vecnormalize: str | Path | None = None,
    check: int = 1000,
    seed: int = 0,
    trust_pickle: bool = False,
) -> ExportReport:
    """Write the requested formats, then compare each with the SB3 zip on ``check`` random observations."""
    if not onnx_out and not numpy_out:
        raise ValueError("give --onnx OUT and/or --numpy OUT")
    if numpy_out and Path(numpy_out).suffix != ".npz":
        raise ValueError(f"--numpy needs a .npz file name, got {numpy_out}")
    reference = _load_zip(model_path, env_id, vecnormalize, trust_pickle)
    arrays = _arrays(reference)
    outputs = []
    if onnx_out:
        save_onnx(arrays, onnx_out)
        outputs.append(Path(onnx_out))
    if numpy_out:
        numpy_out = Path(numpy_out)
        arrays.save_npz(numpy_out)
        outputs.append(numpy_out)
    agreement = {}
    if check > 0:
        obs = random_observations(arrays, check, seed)
        expected = reference.act_batch(obs)
        for out in outputs:
            agreement[out.name] = float(np.mean(LearnedController.load(out).act_batch(obs) == expected))
    return ExportReport(outputs, check, agreement, reference.contract)


def random_observations(arrays: MlpPolicyArrays, n: int, seed: int) -> np.ndarray:
    """Observations spread over the training distribution (mean ± 3 std where normalised, else [0, 1])."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(arrays.metadata.obs_shape))
    norm = arrays.metadata.normalization
    if norm is None:
        return rng.random((n, size), dtype=np.float32)
    std = np.sqrt(np.asarray(norm.var)) + 1e-3
    return (np.asarray(norm.mean) + std * rng.uniform(-3, 3, (n, size))).astype(np.float32)


def extract_mlp(policy: BasePolicy, metadata: PolicyMetadata) -> MlpPolicyArrays:
    """The arrays of a feed-forward SB3 policy over flat observations.

    Supported: PPO, A2C, TRPO, MaskablePPO (actor-critic MLPs), DQN and QR-DQN.
    """
    if isinstance(policy, RecurrentActorCriticPolicy):
        raise ValueError("recurrent (LSTM) policies cannot be exported; load the SB3 zip instead")
    if isinstance(policy, ACTOR_CRITIC):
        _flat_features(policy.pi_features_extractor)
        layers = [*policy.mlp_extractor.policy_net, policy.action_net]
        fold = 1
    elif isinstance(policy, QRDQNPolicy):
        _flat_features(policy.quantile_net.features_extractor)
        layers, fold = list(policy.quantile_net.quantile_net), policy.quantile_net.n_quantiles
    elif isinstance(policy, DQNPolicy):
        _flat_features(policy.q_net.features_extractor)
        layers, fold = list(policy.q_net.q_net), 1
    else:
        raise ValueError(
            f"cannot export a {type(policy).__name__} (supported: actor-critic MLP, DQN, QR-DQN)"
        )
    weights, biases, activations = [], [], []
    for module in layers:
        if isinstance(module, nn.Linear):
            weights.append(module.weight.detach().cpu().numpy().astype(np.float32))
            biases.append(module.bias.detach().cpu().numpy().astype(np.float32))
        elif type(module) in ACTIVATION_NAMES:
            activations.append(ACTIVATION_NAMES[type(module)])
        elif not isinstance(module, (nn.Flatten, nn.Identity)):
            raise ValueError(
                f"cannot export layer {module!r} (supported: Linear and {sorted(ACTIVATION_NAMES.values())})"
            )
    if fold > 1:  # QR-DQN: the action value is the mean of its quantiles, a linear fold of the last layer
        out, hidden = weights[-1].shape
        # its output is viewed as [n_quantiles, n_actions]
        weights[-1] = weights[-1].reshape(fold, out // fold, hidden).mean(axis=0)
        biases[-1] = biases[-1].reshape(fold, out // fold).mean(axis=0)
    _check_shapes(weights, biases, activations, metadata, type(policy).__name__)
    return MlpPolicyArrays(weights, biases, activations, metadata)


def _flat_features(extractor: nn.Module) -> None:
    if not isinstance(extractor, FlattenExtractor):
        raise ValueError(
            f"cannot export a {type(extractor).__name__} feature extractor (only flat observations)"
        )
