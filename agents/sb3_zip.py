"""Read an SB3 zip's policy without unpickling anything, or with SB3 when the user trusts it.

A zip written by ``servegym train`` carries ``servegym.json`` (env id and kwargs, algorithm,
policy class and keyword arguments, normalisation). From it and the env's spaces the policy is
rebuilt, and ``policy.pth`` is read with ``torch.load(weights_only=True)``, which accepts
tensors only. SB3's own ``data`` member (cloudpickled spaces and schedules) is never read.

Anything that needs unpickling — a plain SB3 / rl_zoo3 zip, a servegym zip from before the
policy arguments were stored, a ``VecNormalize`` pickle — is refused unless ``trust_pickle``.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.policies import BasePolicy

from .algos import ALGOS
from .bundle import Normalization, PolicyMetadata, read_zip_metadata
from .contract import EnvContract
from .hyperparams import ACTIVATIONS

TRAINING_ONLY_KWARGS = ("optimizer_class", "optimizer_kwargs")
TRUST_HINT = "pass --trust-pickle (trust_pickle=True) only if you trust where the file came from"


def policy_kwargs_to_json(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The policy's constructor arguments as JSON (activations by name; optimizer settings dropped)."""
    names = {cls: f"nn.{name}" for name, cls in ACTIVATIONS.items()}
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in TRAINING_ONLY_KWARGS:
            continue
        if isinstance(value, type):
            if value not in names:
                known = sorted(ACTIVATIONS)
                raise ValueError(
                    f"policy_kwargs[{key!r}] = {value!r} cannot be stored (activations: {known})"
                )
            value = names[value]
        out[key] = value
    return out


def policy_kwargs_from_json(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: ACTIVATIONS[v[3:]] if isinstance(v, str) and v.startswith("nn.") and v[3:] in ACTIVATIONS else v
        for k, v in kwargs.items()
    }


def zip_metadata(
    path: Path, env_id: str | None, vecnormalize: str | Path | None, trust_pickle: bool
) -> PolicyMetadata:
    """servegym's metadata from the zip, or (trusted only) built from a plain SB3 / rl_zoo3 zip."""
    try:
        meta = read_zip_metadata(path)
    except ValueError:
        if env_id is None:
            raise
        if not trust_pickle:
            raise ValueError(
                f"{path} has no servegym metadata: its spaces and policy arguments are pickled, and "
                f"loading it would unpickle them; {TRUST_HINT}"
            ) from None
        meta = _plain_zip_metadata(path, env_id)
    if env_id is not None and env_id != meta.env_id:
        raise ValueError(f"{path} was trained on {meta.env_id}, not {env_id}")
    if vecnormalize:
        if not trust_pickle:
            raise ValueError(
                f"{vecnormalize} is a pickle (VecNormalize) and loading it runs code; {TRUST_HINT}"
            )
        with open(vecnormalize, "rb") as f:  # trusted, as the caller said
            meta.normalization = Normalization.from_vec_normalize(pickle.load(f))
    return meta


def load_policy(path: Path, meta: PolicyMetadata, contract: EnvContract, trust_pickle: bool) -> BasePolicy:
    """The SB3 policy of a zip on CPU, in evaluation mode."""
    if meta.policy_kwargs is None or meta.algo not in ALGOS:
        if meta.algo not in ALGOS:
            raise ValueError(f"{path}: unknown algorithm {meta.algo!r} (known: {sorted(ALGOS)})")
        if not trust_pickle:
            raise ValueError(
                f"{path} does not record its policy arguments (written by an older servegym or by SB3); "
                f"loading it would unpickle SB3's data; {TRUST_HINT}"
            )
        model = ALGOS[meta.algo].load(path, device="cpu")
        _check_spaces(meta, tuple(model.observation_space.shape), int(model.action_space.n), str(path))
        return model.policy
    aliases = ALGOS[meta.algo].policy_aliases
    if meta.policy not in aliases:
        raise ValueError(f"{path}: unknown policy {meta.policy!r} for {meta.algo} (known: {sorted(aliases)})")
    env = contract._env
    try:
        policy = aliases[meta.policy](
            env.observation_space,
            env.action_space,
            _no_learning,
            **policy_kwargs_from_json(meta.policy_kwargs),
        )
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{path}: cannot rebuild the {meta.algo} policy from {meta.policy_kwargs}: {err}"
        ) from None
    policy.load_state_dict(read_state_dict(path))
    policy.set_training_mode(False)
    return policy


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """``policy.pth`` of an SB3 zip, read with ``weights_only=True`` (tensors only, no code)."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read("policy.pth")
    except KeyError:
        raise ValueError(f"{path} has no policy.pth (not an SB3 model zip)") from None
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path} is not a zip file (an SB3 model is one): {err}") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{path}: policy.pth holds more than tensors or is corrupt; refused ({first})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: policy.pth is not a state dict of tensors")
    return state


def _no_learning(_progress: float) -> float:
    return 0.0


def _check_spaces(meta: PolicyMetadata, obs_shape: tuple[int, ...], n_actions: int, where: str) -> None:
    if tuple(meta.obs_shape) != obs_shape or meta.n_actions != n_actions:
        raise ValueError(
            f"{where}: the policy has observations {obs_shape} and {n_actions} actions, but its metadata "
            f"says {meta.obs_shape} and {meta.n_actions} ({meta.env_id})"
        )


def _plain_zip_metadata(path: Path, env_id: str) -> PolicyMetadata:
    """Metadata from a plain SB3 zip's pickled data (the caller trusts the file)."""
    from stable_baselines3.common.save_util import load_from_zip_file

    data, _, _ = load_from_zip_file(path, device="cpu", load_data=True)
    policy_class = data.get("policy_class")
    algo = next((name for name, cls in ALGOS.items() if policy_class in cls.policy_aliases.values()), None)
    algo = algo or ("ppo" if "ActorCritic" in getattr(policy_class, "__name__", "") else "dqn")
    obs_space, act_space = data["observation_space"], data["action_space"]
    return PolicyMetadata(env_id, algo, tuple(obs_space.shape), int(getattr(act_space, "n", 0)))
