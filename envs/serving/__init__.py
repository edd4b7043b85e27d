"""Iteration-level LLM serving engine: batching, paged KV cache, speculation, metrics."""

from .config import EngineConfig
from .engine import ServingEngine, StepResult
from .kv_blocks import kv_capacity_blocks
from .metrics import LogHistogram, WindowCounters
from .requests import RequestTable
from .speculation import ACCEPTANCE_PRESETS, expected_tokens_per_step, sample_accepted

__all__ = [
    "ACCEPTANCE_PRESETS",
    "EngineConfig",
    "LogHistogram",
    "RequestTable",
    "ServingEngine",
    "StepResult",
    "WindowCounters",
    "expected_tokens_per_step",
    "kv_capacity_blocks",
    "sample_accepted",
]
