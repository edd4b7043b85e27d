"""Training checkpoints written as one unit, and the newest complete one found again.

A checkpoint is a directory ``checkpoints/step_<steps>/`` holding the SB3 zip (with
servegym's metadata), the ``VecNormalize`` statistics when the run normalises, the replay buffer
of an off-policy algorithm (kept in the two newest checkpoints only), the training state (env
states, RNG states, evaluation history and schedules) and ``manifest.json`` with each file's
size and SHA-256. Everything is written into a temporary directory first, flushed to disk, and
then renamed: a checkpoint either exists whole or not at all. ``find_resume_point`` checks each
candidate against its manifest, newest first, and says why it skipped the ones it could not use.

The training state and the statistics are pickles (SB3's formats); resuming reads the run's
own files, never a policy from elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1
MANIFEST = "manifest.json"
MODEL = "model.zip"
STATS = "vecnormalize.pkl"
STATE = "training_state.pkl"
REPLAY = "replay_buffer.pkl"
KEEP_REPLAY = 2
PREFIX = "step_"
TMP_PREFIX = ".tmp-"
_STEP = re.compile(rf"^{PREFIX}(\d+)$")


@dataclass
class ResumePoint:
    path: Path
    steps: int
    manifest: dict[str, Any]

    def file(self, name: str) -> Path | None:
        return self.path / name if name in self.manifest["files"] else None


def write_checkpoint(
    root: Path, steps: int, writers: dict[str, Callable[[Path], None]], info: dict[str, Any]
) -> Path:
    """Write ``writers`` (file name -> function writing it) as ``root/step_<steps>`` atomically."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{steps:012d}"
    tmp = root / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files = {}
    for name, write in writers.items():
        write(tmp / name)
        _fsync(tmp / name)
        files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": sha256(tmp / name)}
    manifest = {"format": FORMAT, "steps": steps, **info, "files": files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    _fsync(tmp / MANIFEST)
    _fsync(tmp)
    if final.exists():  # the same step again (a resumed run's last checkpoint): replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync(root)
    return final


def find_resume_point(root: Path) -> tuple[ResumePoint | None, list[tuple[str, str]]]:
    """The newest complete checkpoint under ``root`` and (name, reason) for each one skipped."""
    skipped: list[tuple[str, str]] = []
    candidates: list[tuple[int, Path]] = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        match = _STEP.match(entry.name)
        if match and entry.is_dir():
            candidates.append((int(match.group(1)), entry))
        elif entry.name.startswith(TMP_PREFIX):
            skipped.append((entry.name, "unfinished: the run stopped while writing it"))
        else:
            skipped.append((entry.name, "not a servegym checkpoint directory (older format or a stray file)"))
    for steps, path in sorted(candidates, reverse=True):
        manifest, problem = _verify(path)
        if manifest is not None:
            return ResumePoint(path, steps, manifest), skipped
        skipped.append((path.name, problem))
    return None, skipped


def _verify(path: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except FileNotFoundError:
        return None, f"{MANIFEST} is missing"
    except (ValueError, KeyError, TypeError) as err:
        return None, f"{MANIFEST} is unreadable ({err})"
    if manifest.get("format") != FORMAT:
        return None, f"checkpoint format {manifest.get('format')!r} (expected {FORMAT})"
    if REPLAY in manifest.get("pruned", ()):
        return None, f"its {REPLAY} was pruned (only the {KEEP_REPLAY} newest checkpoints keep one)"
    required = [MODEL, STATE] + ([STATS] if manifest.get("normalize") else [])
    required += [REPLAY] if manifest.get("off_policy") else []
    for name in required:
        if name not in files:
            return None, f"the manifest lists no {name}"
    for name, entry in files.items():
        file = path / name
        if not file.is_file():
            return None, f"{name} is missing"
        size = file.stat().st_size
        if size != entry["bytes"]:
            return None, f"{name} is truncated or changed ({size:,} of {entry['bytes']:,} bytes)"
        if sha256(file) != entry["sha256"]:
            return None, f"{name} is corrupt (its SHA-256 differs from the manifest's)"
    return manifest, ""


def prune_replay_buffers(root: Path, keep: int = KEEP_REPLAY) -> None:
    """Delete the replay buffers of all but the ``keep`` newest checkpoints (hundreds of MB each);
    their manifests record it, and those checkpoints keep their model but no longer resume."""
    steps = sorted((p for p in root.iterdir() if _STEP.match(p.name) and p.is_dir()), reverse=True)
    for path in steps[keep:]:
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if REPLAY not in manifest.get("files", {}):
            continue
        manifest["files"].pop(REPLAY)
        manifest["pruned"] = [*manifest.get("pruned", []), REPLAY]
        text = json.dumps(manifest, indent=1)
        replace_atomically(path / MANIFEST, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
        (path / REPLAY).unlink(missing_ok=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary name in the same directory, then rename it over ``path``."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}{path.suffix}")
    write(tmp)
    _fsync(tmp)
    os.replace(tmp, path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
