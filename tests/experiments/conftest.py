"""Tiny suites and an in-process backend shared by the experiment tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TINY_SUITE = """\
name: tiny
seeds: 2
episodes: 2
envs:
  - id: servegym/ChunkedPrefill-v0
    env_kwargs: {horizon_s: 4}
    scenarios:
      train: [llama3-8b-a100-chat-strict]
      test: [qwen2.5-7b-h100-bursty]
    controllers:
      heuristics: [sarathi-static, slack-feedback]
    metrics:
      primary: return
      secondary: {slo_attainment: max, ttft_p99_s: min}
    series: {time: time_s, load: arrival_rate, decision: budget}
    latency: {requests: ttft_s}
"""

LEARNED = """\
      learned:
        - name: ppo
          algo: ppo
          timesteps: 128
          n_envs: 1
          hyperparams: {n_steps: 64, batch_size: 64, n_epochs: 1}
          eval_points: 2
          eval_episodes: 1
"""


def tiny_suite_text(learned: bool = False, episodes: int = 2) -> str:
    text = TINY_SUITE.replace("episodes: 2", f"episodes: {episodes}")
    if learned:  # the decision interval agents/hyperparams/ppo.yml trains ChunkedPrefill with
        text = text.replace("{horizon_s: 4}", "{horizon_s: 4, control_interval_s: 1.0}")
        text = text.replace(
            "      heuristics: [sarathi-static, slack-feedback]\n",
            "      heuristics: [sarathi-static, slack-feedback]\n" + LEARNED,
        )
    return text


@pytest.fixture
def write_suite(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write_suite(text, name)``: a suite file in the test's folder."""

    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


class _Handle:
    def __init__(self, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args


class SerialBackend:
    """Runs each unit in this process when the runner asks for its result (tests can monkeypatch)."""

    name = "serial"
    capacity = 1

    def submit(self, fn: Callable[..., dict[str, Any]], *args: Any) -> _Handle:
        return _Handle(fn, args)

    def wait(self, handles: list[_Handle], timeout: float) -> list[_Handle]:
        return handles[:1]

    def result(self, handle: _Handle) -> dict[str, Any]:
        return handle.fn(*handle.args)

    def shutdown(self) -> None:
        pass
