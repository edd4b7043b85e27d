"""The metric contract every env declares: complete, and checked before an encoder runs."""

from __future__ import annotations

import math
from collections.abc import Mapping

import gymnasium as gym
import numpy as np
import pytest

import servegym  # noqa: F401
from servegym.metric_spec import Metric, MetricsError, check_metrics
from servegym.registration import ENVS

SPEC = (
    Metric("slo_s", "s", "an SLO", low_open=True),
    Metric("share", "fraction", "a share", high=1.0),
    Metric("index", "index", "an index", high=4, integer=True),
    Metric("flags", "flag", "flags", high=1, integer=True, per="slot"),
    Metric("estimates", "s", "per action", allow_inf=True, per="action"),
)
SHAPES = {"flags": (3,), "estimates": (2,)}
GOOD = {
    "slo_s": 0.5,
    "share": 0.2,
    "index": 3,
    "flags": [True, 0, 1],
    "estimates": [0.1, math.inf],
    "extra": "x",
}


class Recording(Mapping):
    """A metrics mapping that records which keys an encoder reads."""

    def __init__(self, data: Mapping) -> None:
        self.data, self.read = dict(data), set()

    def __getitem__(self, key):
        self.read.add(key)
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_good_metrics_pass_and_unknown_keys_are_ignored() -> None:
    values = check_metrics(SPEC, GOOD, SHAPES)
    assert values["slo_s"] == 0.5 and isinstance(values["index"], float) and "extra" not in values
    np.testing.assert_array_equal(values["flags"], [1.0, 0.0, 1.0])
    assert values["estimates"][1] == math.inf


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"slo_s": "0.5"}, "slo_s", "expected a number (s), got a string '0.5'"),
        ({"slo_s": [0.5]}, "slo_s", "expected a number (s), got a list of shape [1]"),
        ({"slo_s": [[0.5]]}, "slo_s", "got a list of shape [1, 1]"),
        ({"slo_s": None}, "slo_s", "got null"),
        ({"slo_s": True}, "slo_s", "got a boolean (true)"),
        ({"slo_s": {"a": 1}}, "slo_s", "got an object"),
        ({"slo_s": 0}, "slo_s", "must be > 0 (s), got 0"),
        ({"slo_s": -1.0}, "slo_s", "must be > 0 (s), got -1"),
        ({"slo_s": math.nan}, "slo_s", "must be a finite number, got nan"),
        ({"slo_s": math.inf}, "slo_s", "must be a finite number, got inf"),
        ({"slo_s": 10**400}, "slo_s", "an integer too large for a float"),
        ({"share": 1.5}, "share", "must be in [0, 1] (fraction), got 1.5"),
        ({"index": 2.5}, "index", "must be an integer, got 2.5"),
        ({"index": 5}, "index", "must be in [0, 4], integer (index), got 5"),
        ({"flags": [1, 1]}, "flags", "expected a list of shape [3] (flag), got shape [2]"),
        ({"flags": [1, "a", 0]}, "flags", "got a list with non-numbers"),
        ({"flags": [[1, 0], [1]]}, "flags", "ragged"),
        ({"flags": [0, 2, 0]}, "flags", "at index [1], got 2"),
        ({"estimates": [0.1, -math.inf]}, "estimates", "must be a finite number (or +inf) at index [1]"),
        ({"estimates": [math.nan, 0.1]}, "estimates", "at index [0], got nan"),
    ],
)
def test_every_bad_value_names_its_field_and_what_was_expected(
    change: dict, field: str, message: str
) -> None:
    with pytest.raises(MetricsError) as err:
        check_metrics(SPEC, {**GOOD, **change}, SHAPES)
    assert err.value.problems == [(field, err.value.problems[0][1])]
    assert message in err.value.problems[0][1]


def test_missing_metrics_are_reported_all_at_once_and_defaults_fill_them() -> None:
    partial = {k: v for k, v in GOOD.items() if k not in ("slo_s", "index", "flags")}
    with pytest.raises(MetricsError) as err:
        check_metrics(SPEC, {**partial, "share": 2.0}, SHAPES)
    assert err.value.problems[:3] == [("slo_s", "missing"), ("index", "missing"), ("flags", "missing")]
    assert err.value.problems[3][0] == "share"
    assert str(err.value).startswith("slo_s: missing; index: missing; flags: missing; share: must be")
    values = check_metrics(SPEC, {**partial, "flags": [0, 0, 0]}, SHAPES, {"slo_s": 2.0, "index": 1.0})
    assert values["slo_s"] == 2.0 and values["index"] == 1.0
    with pytest.raises(MetricsError, match="expected an object"):
        check_metrics(SPEC, [1, 2], SHAPES)


@pytest.mark.parametrize("env_id", sorted(ENVS))
def test_each_env_declares_exactly_the_metrics_its_encoder_reads(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    _, info = env.reset(seed=4)
    shapes = {k: np.shape(v) for k, v in info["metrics"].items()}
    rng = np.random.default_rng(0)
    read: set[str] = set()
    for _ in range(60):  # along a random rollout: the env's own metrics satisfy its declared ranges,
        assert set(check_metrics(env.METRICS, info["metrics"], shapes)) == {m.name for m in env.METRICS}
        recording = Recording(info["metrics"])  # and the encoder reads only declared metrics
        env.observation_from_metrics(recording)
        read |= recording.read
        _, _, terminated, truncated, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
        if terminated or truncated:
            _, info = env.reset()
    declared = [m.name for m in env.METRICS]
    assert len(declared) == len(set(declared))
    assert set(declared) == read
    assert len(env.get_action_meanings()) == env.action_space.n
