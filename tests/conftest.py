"""Shared fixtures for the servegym test suite.

Real measurement data (Vidur's public A100 profiles) lives outside the repository, in
``<repo>/../shared/data/vidur``; tests that need it skip when it is absent.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VIDUR_DIR = REPO_ROOT / ".." / "shared" / "data" / "vidur"
# Replicas' service curves are tabulated once and shared by the test workers (not the user cache).
os.environ.setdefault("SERVEGYM_CACHE", str(REPO_ROOT / ".pytest_cache" / "servegym"))


def pytest_addoption(parser: pytest.Parser) -> None:
    # CI (.ci/run) and the README run `pytest -n 2 --runslow`; plain `pytest` skips slow tests.
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow test: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def vidur_dir() -> Path:
    """Root of the real Vidur data (profiling/a100, network/a100_*); skips if absent."""
    if not (VIDUR_DIR / "profiling" / "a100").is_dir():
        pytest.skip(f"Vidur data not found at {VIDUR_DIR.resolve()}")
    return VIDUR_DIR.resolve()


@pytest.fixture(scope="session")
def a100_measurements(vidur_dir: Path):
    """Every record of the real A100 tree (profiling + network), loaded once per worker."""
    from servegym.hardware import load_measurements

    return load_measurements(vidur_dir)


@pytest.fixture(scope="session")
def a100_gemm_records(vidur_dir: Path):
    """GEMM records of two real A100 mlp.csv files (Llama-3-8B and Llama-2-70B)."""
    from servegym.hardware import load_measurements

    base = vidur_dir / "profiling" / "a100" / "meta-llama"
    out = []
    for name in ("Meta-Llama-3-8B", "Llama-2-70b-hf"):
        out += [r for r in load_measurements(base / name / "mlp.csv") if r.group == "gemm"]
    return out


def _copy_rows(src: Path, dst: Path, rows: Sequence[int]) -> Path:
    with open(src, newline="", encoding="utf-8") as fh:
        lines = list(csv.reader(fh))
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(lines[0])
        for i in rows:
            writer.writerow(lines[1 + i])
    return dst


@pytest.fixture
def vidur_excerpt(vidur_dir: Path) -> Callable[[str, Path, Sequence[int]], Path]:
    """``excerpt(relative_src, dst, row_indices)`` copies the header and some data rows of a
    real Vidur CSV (``relative_src`` is relative to the Vidur root) to ``dst``."""

    def excerpt(relative_src: str, dst: Path, rows: Sequence[int]) -> Path:
        return _copy_rows(vidur_dir / relative_src, dst, rows)

    return excerpt


@pytest.fixture
def isolated_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries registered during the test are forgotten afterwards."""
    from servegym.hardware import catalog

    for registry in (catalog._DEVICES, catalog._MODELS, catalog._DNNS):
        monkeypatch.setattr(registry, "_entries", dict(registry._load()))
