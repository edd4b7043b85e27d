"""CSV plumbing for the trace readers: opening, header lookup, and ``file:line`` error messages."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def open_csv(path: str | Path) -> Iterator[tuple[str, list[str], Iterator[tuple[int, list[str]]]]]:
    """Yield ``(name, header, rows)``; ``rows`` yields ``(line_number, fields)``, skipping empty lines.

    Raises FileNotFoundError for a missing file and ValueError for a directory or an empty file.
    """
    p = Path(path)
    name = str(p)
    if not p.exists():
        raise FileNotFoundError(f"trace file not found: {name}")
    if p.is_dir():
        raise ValueError(f"{name}: is a directory, expected a CSV file")
    with p.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header: list[str] | None = None
        for fields in reader:
            if any(x.strip() for x in fields):
                header = [x.strip() for x in fields]
                break
        if header is None:
            raise ValueError(f"{name}: file is empty, expected a CSV header line")

        def rows() -> Iterator[tuple[int, list[str]]]:
            try:
                for fields in reader:
                    if len(fields) > 1 or (fields and fields[0].strip()):
                        yield reader.line_num, fields
            except csv.Error as err:
                raise ValueError(f"{name}:{reader.line_num}: malformed CSV: {err}") from None

        yield name, header, rows()


def find_columns(name: str, header: Sequence[str], required: Sequence[str]) -> list[int]:
    """Indices of ``required`` columns (case-insensitive); a ValueError names the missing ones."""
    lower = [h.lower() for h in header]
    missing = [c for c in required if c.lower() not in lower]
    if missing:
        raise ValueError(
            f"{name}:1: missing column(s) {', '.join(missing)}; "
            f"header has: {', '.join(header) or '(nothing)'}"
        )
    return [lower.index(c.lower()) for c in required]


def no_rows(name: str) -> ValueError:
    return ValueError(f"{name}: no data rows after the header (line 1)")


def field(name: str, line: int, fields: list[str], index: int, column: str) -> str:
    """The stripped field ``index`` of a row, or a ValueError if the row is too short."""
    if index >= len(fields):
        raise ValueError(
            f"{name}:{line}: expected a value in column {column!r}, the row has {len(fields)} fields"
        )
    return fields[index].strip()


def nonneg_float(name: str, line: int, column: str, raw: str) -> float:
    """A finite float >= 0 parsed from a field."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}:{line}: column {column!r}: expected a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}:{line}: column {column!r}: expected a finite number >= 0, got {raw!r}")
    return value


def nonneg_int(name: str, line: int, column: str, raw: str) -> int:
    """An integer >= 0 parsed from a field (``"12.0"`` is accepted)."""
    try:
        value = int(raw)
    except ValueError:
        try:
            f = float(raw)
        except ValueError:
            raise ValueError(f"{name}:{line}: column {column!r}: expected an integer, got {raw!r}") from None
        if not (math.isfinite(f) and f.is_integer()):
            raise ValueError(f"{name}:{line}: column {column!r}: expected an integer, got {raw!r}") from None
        value = int(f)
    if value < 0:
        raise ValueError(f"{name}:{line}: column {column!r}: expected an integer >= 0, got {raw!r}")
    return value
