"""LearnedController: a trained policy behind the Controller protocol, outside the simulator.

It loads an SB3 zip trained by servegym (without unpickling: see ``sb3_zip``), an exported ONNX
file or a numpy ``.npz`` (none runs code from the file), and checks the policy's observation and
action sizes against its env. Observations are normalised as in training and action masks are
applied (masked scores set to -inf before the argmax).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import PolicyMetadata
from .contract import EnvContract
from .mlp import masked_argmax
from .prometheus import VLLMFleetMetrics

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
        self.contract: EnvContract | None = None  # set by load(); built on first use otherwise
        self._fleet: VLLMFleetMetrics | None = None  # act_from_prometheus's scrape history
        self.policy: Any = None  # the torch policy of an SB3 zip
        self._row_scores: Callable[[np.ndarray], np.ndarray] | None = None  # one-observation fast path
        self.obs_size = int(np.prod(metadata.obs_shape))

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | Path,
        env_id: str | None = None,
        vecnormalize: str | Path | None = None,
        trust_pickle: bool = False,
    ) -> LearnedController:
        """By suffix: ``.zip`` (SB3), ``.onnx`` or ``.npz``; the policy's shapes are checked against
        its env. ``env_id``, ``vecnormalize`` and ``trust_pickle`` are for zips not trained by
        servegym (see ``sb3_zip``: nothing is unpickled unless ``trust_pickle``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".zip":
            return cls._from_sb3(path, env_id, vecnormalize, trust_pickle)
        if suffix == ".onnx":
            controller = cls._from_onnx(path)
        elif suffix == ".npz":
            from .mlp import MlpPolicyArrays

            arrays = MlpPolicyArrays.load_npz(path)
            controller = cls(_scores_backend(arrays.scores), arrays.metadata, f"{path.name} (numpy)")
            controller._row_scores = arrays.scores_row
        else:
            raise ValueError(f"{path}: unknown model format {suffix!r}; expected .zip (SB3), .onnx or .npz")
        if env_id is not None and env_id != controller.metadata.env_id:
            raise ValueError(f"{path} was trained on {controller.metadata.env_id}, not {env_id}")
        controller.contract = _contract(controller.metadata, path)
        return controller

    @classmethod
    def _from_sb3(
        cls, path: Path, env_id: str | None, vecnormalize: str | Path | None, trust_pickle: bool
    ) -> LearnedController:
        import torch

        from .sb3_zip import load_policy, zip_metadata
        from .scores import RecurrentScores, action_scores, supports_scores

        meta = zip_metadata(path, env_id, vecnormalize, trust_pickle)
        contract = _contract(meta, path)
        policy = load_policy(path, meta, contract, trust_pickle)
        norm = meta.normalization
        if supports_scores(policy):

            def scores(obs: np.ndarray) -> np.ndarray:
                x = norm.apply(obs) if norm else obs
                with torch.no_grad():
                    return action_scores(policy, torch.as_tensor(x)).numpy()

            controller = cls(_scores_backend(scores), meta, f"{path.name} ({meta.algo})")
        else:
            recurrent = RecurrentScores(policy)  # LSTM state kept between act() calls, cleared by reset()

            def recurrent_scores(obs: np.ndarray) -> np.ndarray:
                x = norm.apply(obs) if norm else obs
                return recurrent(torch.as_tensor(x), None)  # no state yet = an episode start

            controller = cls(
                _scores_backend(recurrent_scores), meta, f"{path.name} ({meta.algo})", recurrent.reset
            )
        controller.contract = contract
        controller.policy = policy
        return controller

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
        """The action for raw metrics (the env's ``info["metrics"]`` keys), via the env's encoder.

        The metrics are checked against the env's declared contract first: a
        ``servegym.metric_spec.MetricsError`` (a ``ValueError``) lists every missing or invalid one.
        """
        if self.contract is None:
            self.contract = _contract(self.metadata, self.name)
        obs = self.contract.encode(metrics)
        return self.act(obs, None if action_mask is None else {"action_mask": action_mask})

    def act_from_prometheus(
        self,
        scrapes: Iterable[str],
        *,
        now_s: float,
        ready: int,
        starting: int = 0,
        draining: int = 0,
        preference: float | None = None,
    ) -> tuple[int, int, dict[str, float]]:
        """For an autoscaling policy: the action, the replica count it asks for, and the metrics,
        from one scrape of every replica's vLLM ``/metrics`` (Prometheus text) and the fleet's
        counts. Keeps the previous scrape to measure rates and latency over the interval."""
        if self.contract is None:
            self.contract = _contract(self.metadata, self.name)
        env = self.contract._env
        if not hasattr(env, "replicas_for"):
            raise ValueError(f"{self.metadata.env_id} is not an autoscaling env: use act_from_metrics")
        if self._fleet is None:
            slo = self.contract.scenario_values
            w = env.preference if hasattr(env, "preference") else 0.1
            w = w if preference is None else preference
            self._fleet = VLLMFleetMetrics(slo["ttft_slo_s"], slo["tpot_slo_s"], w)
        metrics = self._fleet.observe(scrapes, now_s=now_s, ready=ready, starting=starting, draining=draining)
        action = self.act_from_metrics(metrics)
        return action, env.replicas_for(action, metrics), metrics

    def _bad_obs(self, obs: Any) -> np.ndarray:
        raise ValueError(
            f"observation has shape {np.shape(obs)}; the policy for {self.metadata.env_id} expects "
            f"{self.obs_size} values (shape {self.metadata.obs_shape})"
        )


def _scores_backend(scores: Callable[[np.ndarray], np.ndarray]) -> Backend:
    def act(obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        return masked_argmax(scores(obs), masks)

    return act


def _row(mask: Any, meta: PolicyMetadata) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.size != meta.n_actions:
        raise ValueError(f"action mask has {mask.size} entries; {meta.env_id} has {meta.n_actions} actions")
    return mask.reshape(1, -1)


def _contract(meta: PolicyMetadata, where: Any) -> EnvContract:
    """The env's contract, with the policy's shapes checked against it."""
    contract = EnvContract.of(meta.env_id, meta.env_kwargs, str(where))
    contract.check_policy(meta, str(where))
    return contract
