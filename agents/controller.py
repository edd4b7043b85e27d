"""LearnedController: a trained policy behind the Controller protocol, outside the simulator.

It loads an SB3 zip (trusted input only: SB3 unpickles parts of it), an exported ONNX file or a
numpy ``.npz`` (neither runs code from the file). Observations are normalised as in training
and action masks are applied (masked scores set to -inf before the argmax).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Normalization, PolicyMetadata, read_zip_metadata
from .mlp import masked_argmax

Backend = Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (obs [B, n], masks [B, A]) -> actions [B]


class LearnedController:
    """``act(obs, info)`` for simulators, ``act_from_metrics(metrics)`` for live systems.

    Not thread-safe (a recurrent policy's state and the numpy path's buffers are per instance):
    give each thread its own controller, or serialise calls (as ``servegym serve-policy`` does).
    """

    def __init__(
        self,
        backend: Backend,
        metadata: PolicyMetadata,
        name: str,
        reset_fn: Callable[[], None] | None = None,
    ):
        self._backend, self.metadata, self.name = backend, metadata, name
        self._reset_fn = reset_fn
        self._encoder: Callable[[Mapping[str, Any]], np.ndarray] | None = None
        self._row_scores: Callable[[np.ndarray], np.ndarray] | None = None  # one-observation fast path
        self.obs_size = int(np.prod(metadata.obs_shape))

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(
        cls, path: str | Path, env_id: str | None = None, vecnormalize: str | Path | None = None
    ) -> LearnedController:
        """By suffix: ``.zip`` (SB3; ``env_id``/``vecnormalize`` for zips not trained by servegym),
        ``.onnx`` or ``.npz``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".zip":
            return cls._from_sb3(path, env_id, vecnormalize)
        if suffix == ".onnx":
            return cls._from_onnx(path)
        if suffix == ".npz":
            from .mlp import MlpPolicyArrays

            arrays = MlpPolicyArrays.load_npz(path)
            controller = cls(_scores_backend(arrays.scores), arrays.metadata, f"{path.name} (numpy)")
            controller._row_scores = arrays.scores_row
            return controller
        raise ValueError(f"{path}: unknown model format {suffix!r}; expected .zip (SB3), .onnx or .npz")

    @classmethod
    def _from_sb3(cls, path: Path, env_id: str | None, vecnormalize: str | Path | None) -> LearnedController:
        import torch

        from .algos import ALGOS
        from .scores import RecurrentScores, action_scores, supports_scores

        meta = _sb3_metadata(path, env_id, vecnormalize)
        model = ALGOS[meta.algo].load(path, device="cpu")
        _check_spaces(meta, tuple(model.observation_space.shape), int(model.action_space.n), str(path))
        norm = meta.normalization
        policy = model.policy
        if supports_scores(policy):

            def scores(obs: np.ndarray) -> np.ndarray:
                x = norm.apply(obs) if norm else obs
                with torch.no_grad():
                    return action_scores(policy, torch.as_tensor(x)).numpy()

            return cls(_scores_backend(scores), meta, f"{path.name} ({meta.algo})")
        recurrent = RecurrentScores(policy)  # LSTM state kept between act() calls, cleared by reset()

        def recurrent_scores(obs: np.ndarray) -> np.ndarray:
            x = norm.apply(obs) if norm else obs
            return recurrent(torch.as_tensor(x), None)  # no state yet = an episode start

        return cls(_scores_backend(recurrent_scores), meta, f"{path.name} ({meta.algo})", recurrent.reset)

    @classmethod
    def _from_onnx(cls, path: Path) -> LearnedController:
        import onnxruntime as ort

        from .onnx_export import read_onnx_metadata

        meta = read_onnx_metadata(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = {i.name: i.shape for i in session.get_inputs()}
        if set(inputs) != {"obs", "action_mask"} or inputs["obs"][-1] != int(np.prod(meta.obs_shape)):
            raise ValueError(f"{path}: inputs {inputs} do not match the metadata (obs of {meta.obs_shape})")
        run = session.run
        all_true = np.ones((1, meta.n_actions), dtype=bool)

        def act(obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
            if masks is None:
                masks = all_true if len(obs) == 1 else np.ones((len(obs), meta.n_actions), dtype=bool)
            return run(["action"], {"obs": obs, "action_mask": masks})[0]

        return cls(act, meta, f"{path.name} (onnx)")

    # -- Controller protocol -----------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        if self._reset_fn:
            self._reset_fn()

    def act(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> int:
        """The action for one observation; ``info["action_mask"]`` is applied when present."""
        x = np.asarray(obs, dtype=np.float32)
        if x.size != self.obs_size:
            self._bad_obs(obs)
        if x.ndim != 1:
            x = x.reshape(-1)
        if not math.isfinite(x.dot(x)):  # one call (a sum of squares beyond float32, |x| > 1e19, also fails)
            raise ValueError("observation contains NaN or infinite values")
        mask = info.get("action_mask") if info else None
        if self._row_scores is not None:
            scores = self._row_scores(x)
            if mask is None:
                return int(scores.argmax())
            return int(masked_argmax(scores[None], _row(mask, self.metadata))[0])
        return int(self._backend(x[None], None if mask is None else _row(mask, self.metadata))[0])

    def act_batch(self, obs: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """Actions for [B, n_obs] observations and optional [B, n_actions] boolean masks."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.obs_size:
            self._bad_obs(obs)
        if masks is not None:
            masks = np.asarray(masks, dtype=bool)
            if masks.shape != (len(obs), self.metadata.n_actions):
                raise ValueError(
                    f"action mask has shape {masks.shape}; {self.metadata.env_id} needs "
                    f"({len(obs)}, {self.metadata.n_actions})"
                )
        if not np.all(np.isfinite(obs)):
            raise ValueError("observation contains NaN or infinite values")
        return self._backend(obs, masks)

    def act_from_metrics(self, metrics: Mapping[str, Any], action_mask: Any = None) -> int:
        """The action for raw metrics (the env's ``info["metrics"]`` keys), via the env's encoder."""
        if self._encoder is None:
            self._encoder = observation_encoder(self.metadata.env_id, self.metadata.env_kwargs)
        try:
            obs = self._encoder(metrics)
        except KeyError as err:
            raise ValueError(
                f"metrics lack {err.args[0]!r}, which {self.metadata.env_id}'s observation needs"
            ) from err
        return self.act(obs, None if action_mask is None else {"action_mask": action_mask})

    def _bad_obs(self, obs: Any) -> np.ndarray:
        raise ValueError(
            f"observation has shape {np.shape(obs)}; the policy for {self.metadata.env_id} expects "
            f"{self.obs_size} values (shape {self.metadata.obs_shape})"
        )


def observation_encoder(
    env_id: str, env_kwargs: Mapping[str, Any]
) -> Callable[[Mapping[str, Any]], np.ndarray]:
    """The env's pure metrics -> observation function (the env is built once, not stepped)."""
    import gymnasium as gym

    import servegym  # noqa: F401 - registers the ids

    env = gym.make(env_id, **dict(env_kwargs)).unwrapped
    if not hasattr(env, "observation_from_metrics"):
        raise ValueError(f"{env_id} has no observation_from_metrics(); act_from_metrics is unavailable")
    return env.observation_from_metrics


def _scores_backend(scores: Callable[[np.ndarray], np.ndarray]) -> Backend:
    def act(obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        return masked_argmax(scores(obs), masks)

    return act


def _row(mask: Any, meta: PolicyMetadata) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.size != meta.n_actions:
        raise ValueError(f"action mask has {mask.size} entries; {meta.env_id} has {meta.n_actions} actions")
    return mask.reshape(1, -1)


def _check_spaces(meta: PolicyMetadata, obs_shape: tuple[int, ...], n_actions: int, where: str) -> None:
    if tuple(meta.obs_shape) != obs_shape or meta.n_actions != n_actions:
        raise ValueError(
            f"{where}: the policy has observations {obs_shape} and {n_actions} actions, but its metadata "
            f"says {meta.obs_shape} and {meta.n_actions} ({meta.env_id})"
        )


def _sb3_metadata(path: Path, env_id: str | None, vecnormalize: str | Path | None) -> PolicyMetadata:
    """servegym's metadata from the zip, or built from the zip's spaces for a plain SB3 / rl_zoo3 zip."""
    try:
        meta = read_zip_metadata(path)
    except ValueError:
        if env_id is None:
            raise
        meta = _plain_zip_metadata(path, env_id, vecnormalize)
    if env_id is not None and env_id != meta.env_id:
        raise ValueError(f"{path} was trained on {meta.env_id}, not {env_id}")
    return meta


def _plain_zip_metadata(path: Path, env_id: str, vecnormalize: str | Path | None) -> PolicyMetadata:
    import gymnasium as gym
    from stable_baselines3.common.save_util import load_from_zip_file

    import servegym  # noqa: F401

    from .algos import ALGOS

    data, _, _ = load_from_zip_file(path, device="cpu", load_data=True)
    policy_class = data.get("policy_class")
    algo = next((name for name, cls in ALGOS.items() if policy_class in cls.policy_aliases.values()), None)
    algo = algo or ("ppo" if "ActorCritic" in getattr(policy_class, "__name__", "") else "dqn")
    if env_id not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}")
    obs_space, act_space = data["observation_space"], data["action_space"]
    meta = PolicyMetadata(env_id, algo, tuple(obs_space.shape), int(getattr(act_space, "n", 0)))
    if vecnormalize:
        import pickle

        with open(vecnormalize, "rb") as f:  # trusted input, like the zip itself
            meta.normalization = Normalization.from_vec_normalize(pickle.load(f))
    return meta
