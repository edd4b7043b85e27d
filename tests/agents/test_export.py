"""Exported policies (ONNX, numpy) act exactly as SB3's deterministic predict, masks included."""

from __future__ import annotations

import itertools
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from servegym.agents.algos import ALGOS
from servegym.agents.controller import LearnedController
from servegym.agents.export import export_model, load_policy_arrays, random_observations


def _sb3_actions(run, obs: np.ndarray) -> np.ndarray:
    """What SB3 itself does: VecNormalize's transform, then predict(deterministic=True)."""
    model = ALGOS[run_algo(run)].load(run.model_path, device="cpu")
    with open(run.out / "vecnormalize.pkl", "rb") as f:
        normalizer = pickle.load(f)
    actions, _ = model.predict(normalizer.normalize_obs(obs), deterministic=True)
    return actions


def run_algo(run) -> str:
    from servegym.agents.bundle import read_zip_metadata

    return read_zip_metadata(run.model_path).algo


@pytest.mark.parametrize(
    ("env_id", "algo"),
    [
        ("servegym/MecOffload-v0", "ppo"),
        ("servegym/ChunkedPrefill-v0", "ppo"),
        ("servegym/MecOffload-v0", "dqn"),
        ("servegym/MecOffload-v0", "qrdqn"),
        ("servegym/MecOffload-v0", "a2c"),
        ("servegym/MecOffload-v0", "maskable_ppo"),
    ],
)
def test_exports_match_sb3_predict_on_1000_random_observations(
    trained, tmp_path, env_id: str, algo: str
) -> None:
    run = trained(env_id, algo)
    report = export_model(run.model_path, tmp_path / "p.onnx", tmp_path / "p.npz")
    assert report.agreement == {"p.onnx": 1.0, "p.npz": 1.0}
    obs = random_observations(load_policy_arrays(run.model_path), 1000, seed=1)
    expected = _sb3_actions(run, obs)
    for path in (run.model_path, tmp_path / "p.onnx", tmp_path / "p.npz"):
        controller = LearnedController.load(path)
        np.testing.assert_array_equal(controller.act_batch(obs), expected, err_msg=str(path))
    single = LearnedController.load(tmp_path / "p.npz")
    assert [single.act(o) for o in obs[:50]] == expected[:50].tolist()


def test_masks_are_applied_identically_by_every_format(trained, tmp_path) -> None:
    run = trained("servegym/MecOffload-v0", "ppo")
    export_model(run.model_path, tmp_path / "p.onnx", tmp_path / "p.npz", check=0)
    controllers = [
        LearnedController.load(p) for p in (run.model_path, tmp_path / "p.onnx", tmp_path / "p.npz")
    ]
    rng = np.random.default_rng(3)
    obs = random_observations(load_policy_arrays(run.model_path), 500, seed=2)
    masks = rng.random((500, controllers[0].metadata.n_actions)) < 0.3
    masks[np.arange(500), rng.integers(0, masks.shape[1], 500)] = True  # at least one allowed ...
    masks[:5] = False  # ... except here: nothing allowed falls back to the unmasked argmax
    actions = [c.act_batch(obs, masks) for c in controllers]
    for other in actions[1:]:
        np.testing.assert_array_equal(other, actions[0])
    assert masks[np.arange(5, 500), actions[0][5:]].all()
    np.testing.assert_array_equal(actions[0][:5], controllers[0].act_batch(obs[:5]))


def test_the_numpy_and_onnx_paths_import_no_torch(trained, tmp_path) -> None:
    run = trained("servegym/MecOffload-v0", "ppo")
    export_model(run.model_path, tmp_path / "p.onnx", tmp_path / "p.npz", check=0)
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'stable_baselines3', 'sb3_contrib'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
import numpy as np
from servegym.agents.controller import LearnedController
for path in ({str(tmp_path / "p.npz")!r}, {str(tmp_path / "p.onnx")!r}):
    c = LearnedController.load(path)
    print(c.act(np.zeros(c.obs_size, dtype=np.float32)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 2


def test_recurrent_policies_are_refused_by_export_but_load_as_zip(trained, tmp_path) -> None:
    run = trained("servegym/MecOffload-v0", "ppo_lstm")
    with pytest.raises(ValueError, match="recurrent"):
        export_model(run.model_path, tmp_path / "p.onnx")
    controller = LearnedController.load(run.model_path)
    obs = np.zeros(controller.obs_size, dtype=np.float32)
    first = [controller.act(obs) for _ in range(3)]
    controller.reset()
    assert [controller.act(obs) for _ in range(3)] == first


def test_corrupt_and_foreign_files_give_clear_errors(trained, tmp_path) -> None:
    garbage = tmp_path / "bad.onnx"
    garbage.write_bytes(b"\x08\x01garbage" * 10)
    with pytest.raises(ValueError, match=r"bad\.onnx"):
        LearnedController.load(garbage)
    with pytest.raises(ValueError, match="not a zip file"):
        (tmp_path / "bad.zip").write_bytes(b"nope")
        LearnedController.load(tmp_path / "bad.zip")
    with pytest.raises(ValueError, match="not a servegym numpy policy"):
        np.savez(tmp_path / "bad.npz", W0=np.zeros((2, 2)))
        LearnedController.load(tmp_path / "bad.npz")
    pickled = tmp_path / "pickled.npz"  # an object array would need pickle to load: refused
    np.savez(
        pickled, metadata=np.array([{"x": 1}], dtype=object), activations=np.array([]), W0=np.zeros((1, 1))
    )
    with pytest.raises(ValueError, match=r"pickled\.npz"):
        LearnedController.load(pickled)
    with pytest.raises(ValueError, match=r"unknown model format '\.pt'"):
        (tmp_path / "m.pt").write_bytes(b"")
        LearnedController.load(tmp_path / "m.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LearnedController.load(tmp_path / "missing.onnx")
    plain = tmp_path / "plain.zip"  # an SB3 zip without servegym's metadata
    with (
        zipfile.ZipFile(trained("servegym/MecOffload-v0", "ppo").model_path) as src,
        zipfile.ZipFile(plain, "w") as dst,
    ):
        for name in src.namelist():
            if name != "servegym.json":
                dst.writestr(name, src.read(name))
    with pytest.raises(ValueError, match="without servegym metadata"):
        LearnedController.load(plain)


def test_a_plain_sb3_zip_loads_with_env_and_vecnormalize(trained, tmp_path) -> None:
    run = trained("servegym/MecOffload-v0", "ppo")
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(run.model_path) as src, zipfile.ZipFile(plain, "w") as dst:
        for name in src.namelist():
            if name != "servegym.json":
                dst.writestr(name, src.read(name))
    stats = run.out / "vecnormalize.pkl"
    with pytest.raises(ValueError, match=r"no servegym metadata.*--trust-pickle"):
        LearnedController.load(plain, env_id="servegym/MecOffload-v0", vecnormalize=stats)
    controller = LearnedController.load(
        plain, env_id="servegym/MecOffload-v0", vecnormalize=stats, trust_pickle=True
    )
    obs = random_observations(load_policy_arrays(run.model_path), 200, seed=4)
    np.testing.assert_array_equal(
        controller.act_batch(obs), LearnedController.load(run.model_path).act_batch(obs)
    )
    with pytest.raises(ValueError, match="trained on servegym/MecOffload-v0, not servegym/DnnSplit-v0"):
        LearnedController.load(run.model_path, env_id="servegym/DnnSplit-v0")


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "leaky_relu", "silu", "gelu"])
def test_the_one_observation_numpy_path_equals_the_batched_one(activation: str) -> None:
    from servegym.agents.bundle import Normalization, PolicyMetadata
    from servegym.agents.mlp import MlpPolicyArrays

    rng = np.random.default_rng(5)
    sizes = [6, 16, 16, 4]
    norm = Normalization(rng.normal(size=6).tolist(), rng.uniform(0.1, 4, 6).tolist(), 10.0, 1e-8)
    meta = PolicyMetadata("servegym/MecOffload-v0", "ppo", (6,), 4, normalization=norm)
    arrays = MlpPolicyArrays(
        [rng.normal(size=(o, i)).astype(np.float32) for i, o in itertools.pairwise(sizes)],
        [rng.normal(size=o).astype(np.float32) for o in sizes[1:]],
        [activation, activation],
        meta,
    )
    obs = rng.normal(scale=3.0, size=(200, 6)).astype(np.float32)
    batched = arrays.scores(obs)
    rows = np.stack([arrays.scores_row(o).copy() for o in obs])
    np.testing.assert_allclose(rows, batched, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(rows.argmax(axis=1), batched.argmax(axis=1))
