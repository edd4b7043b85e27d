"""Normal runs print no library warnings: render_mode, masked-action floods, numpy overflows."""

from __future__ import annotations

import warnings

import numpy as np

from servegym.agents.mlp import _np_activation
from servegym.agents.train import train

from .conftest import TINY


def _train_recording(tmp_path, env_id: str, **kwargs) -> tuple[list[str], object]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(
            env_id, "ppo", timesteps=256, n_envs=2, out=tmp_path / "run", hyperparams=TINY["ppo"],
            eval_freq=128, checkpoint_freq=0, log=lambda _: None, **kwargs,
        )  # fmt: skip
    return [str(w.message) for w in caught], result


def test_training_raises_no_render_mode_warning(tmp_path) -> None:
    messages, _ = _train_recording(tmp_path, "servegym/ChunkedPrefill-v0", env_kwargs={"horizon_s": 10.0})
    assert not [m for m in messages if "render" in m or "\x1b[" in m], messages


def test_rejected_masked_actions_are_counted_not_warned(tmp_path, capsys) -> None:
    messages, result = _train_recording(tmp_path, "servegym/DnnSplit-v0")
    assert not [m for m in messages if "is masked" in m], messages
    assert result.rejected_actions > 0  # an untrained policy picks invalid splits: counted instead


def test_the_numpy_silu_does_not_overflow() -> None:
    x = np.array([-1e4, -100.0, -1.0, 0.0, 3.0, 1e4], dtype=np.float32)
    with np.errstate(all="raise"):
        out = _np_activation("silu", x.copy())
    np.testing.assert_allclose(
        out, x / (1.0 + np.exp(-x.astype(np.float64).clip(-700, 700))), rtol=1e-6, atol=1e-30
    )
