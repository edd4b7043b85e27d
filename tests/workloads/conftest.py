"""Shared fixtures: the real Azure LLM 2023 traces in ../shared/data/traces (tests skip without them)."""

from __future__ import annotations

from pathlib import Path

import pytest

# <repo>/tests/workloads/conftest.py -> <repo>/../shared/data/traces
TRACES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "traces"


def real_trace(name: str) -> Path:
    """Path of a shared trace file, or skip the test if it is not there."""
    path = TRACES_DIR / name
    if not path.is_file():
        pytest.skip(f"shared trace {path} not available")
    return path


@pytest.fixture
def conv_path() -> Path:
    return real_trace("azure_llm_2023_conv.csv")


@pytest.fixture
def code_path() -> Path:
    return real_trace("azure_llm_2023_code.csv")
