"""Iteration-level LLM serving engine: batching, paged KV cache, speculation, metrics."""

from .config import EngineConfig, kv_capacity_blocks
from .engine import ServingEngine, StepResult
from .metrics import LogHistogram, WindowCounters
from .speculation import ACCEPTANCE_PRESETS, expected_tokens_per_step, sample_accepted

__all__ = [
    "ACCEPTANCE_PRESETS",
    "EngineConfig",
    "LogHistogram",
    "ServingEngine",
    "StepResult",
    "WindowCounters",
    "expected_tokens_per_step",
    "kv_capacity_blocks",
    "sample_accepted",
]
