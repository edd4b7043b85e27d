#!/usr/bin/env bash
# Check the layer contract ([tool.importlinter] in pyproject.toml). import-linter reads packages
# from the file system, and servegym maps top-level folders (envs/, agents/, ...) into the package,
# so the check runs on a plain (non-editable) install in a temporary folder.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pip install --quiet --no-deps --target "$tmp/site" "$repo" 2>/dev/null
rm -rf "$repo/build"  # setuptools builds in the tree
cd "$tmp" && PYTHONPATH="$tmp/site" lint-imports "$repo/pyproject.toml" --no-cache
