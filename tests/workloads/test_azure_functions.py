"""Azure Functions 2019 per-minute counts -> arrival times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from servegym.workloads import read_azure_functions_counts

MINUTES = 1440
HEADER = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(m) for m in range(1, MINUTES + 1))


def row(function: str, counts: dict[int, int], trigger: str = "http") -> str:
    cells = ["0"] * MINUTES
    for minute, n in counts.items():
        cells[minute - 1] = str(n)
    return f"owner,app,{function},{trigger}," + ",".join(cells)


@pytest.fixture
def counts_file(tmp_path: Path) -> Path:
    path = tmp_path / "invocations_per_function_md.anon.d01.csv"
    lines = [HEADER, row("f1", {1: 3, 2: 0, 10: 5}), row("f2", {10: 2, 1440: 4}, "timer")]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_all_functions_summed(counts_file: Path) -> None:
    t = read_azure_functions_counts(counts_file, np.random.default_rng(0))
    assert t.dtype == np.float64 and np.all(np.diff(t) >= 0)
    minute = (t // 60).astype(np.int64) + 1
    np.testing.assert_array_equal(np.bincount(minute, minlength=MINUTES + 1)[[1, 2, 10, 1440]], [3, 0, 7, 4])
    assert t.size == 14 and t.min() >= 0 and t.max() < 86400


def test_one_function(counts_file: Path) -> None:
    t = read_azure_functions_counts(counts_file, np.random.default_rng(0), function="f2")
    minute = (t // 60).astype(np.int64) + 1
    np.testing.assert_array_equal(minute, [10, 10, 1440, 1440, 1440, 1440])


def test_spread_uniformly_and_deterministic(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "\n" + row("f", {5: 20_000}) + "\n")
    a = read_azure_functions_counts(path, np.random.default_rng(1))
    b = read_azure_functions_counts(path, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    within = a - 240.0
    assert within.min() >= 0 and within.max() < 60
    assert within.mean() == pytest.approx(30.0, abs=0.5)
    assert np.histogram(within, bins=6)[0].min() > 3000


def test_unknown_function(counts_file: Path) -> None:
    with pytest.raises(ValueError, match=r"function 'zzz' not found in column HashFunction \(2 rows\)"):
        read_azure_functions_counts(counts_file, np.random.default_rng(0), function="zzz")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"c.csv: file is empty"),
        (HEADER + "\n", r"c.csv: no data rows after the header"),
        ("HashOwner,HashApp,Trigger,1,2\no,a,http,1,2\n", r"c.csv:1: missing column\(s\) HashFunction"),
        ("HashOwner,HashApp,HashFunction,Trigger\no,a,f,http\n", r"c.csv:1: missing minute columns 1..1440"),
        (
            "HashOwner,HashApp,HashFunction,Trigger,1,2,4\no,a,f,http,1,2,3\n",
            r"c.csv:1: missing minute column\(s\) 3 ",
        ),
        (
            "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,-2\n",
            r"c.csv:2: column '2': expected a count >= 0",
        ),
        (
            "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,x,2\n",
            r"c.csv:2: column '1': expected an integer",
        ),
        (
            "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1\n",
            r"c.csv:2: expected 6 fields, the row has 5",
        ),
    ],
)
def test_bad_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "c.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_azure_functions_counts(path, np.random.default_rng(0))


def test_missing_file_and_bad_rng(tmp_path: Path, counts_file: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"trace file not found"):
        read_azure_functions_counts(tmp_path / "nope.csv", np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"numpy.random.Generator"):
        read_azure_functions_counts(counts_file, 0)  # type: ignore[arg-type]
