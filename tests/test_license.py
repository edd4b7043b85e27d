"""pyproject.toml promises the MIT licence; the file that grants it ships with the code."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_mit_license_file_matches_pyproject() -> None:
    text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
    assert 'license = { text = "MIT" }' in (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
