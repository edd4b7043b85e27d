"""Trace readers on the real Azure 2023 files and on small files with every kind of bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from servegym.workloads import Trace, read_azure_llm_csv, read_trace, read_vidur_trace_csv

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
VIDUR_HEADER = "arrived_at,num_prefill_tokens,num_decode_tokens\n"
# First TIMESTAMP of AzureLLMInferenceTrace_conv.csv (autoscaling_mec.md C2), in 100-ns ticks.
BASE = dt.datetime(2023, 11, 16, 18, 15, 46, tzinfo=dt.timezone.utc)
BASE_TICKS = int(BASE.timestamp()) * 10**7 + 6805900


def azure_timestamp(ticks: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.fffffff`` for a time in 100-ns ticks since the epoch (UTC)."""
    secs, frac = divmod(ticks, 10**7)
    return dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + f".{frac:07d}"


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the real traces -------------------------------------------------------------------------


def test_conv_trace_statistics(conv_path: Path) -> None:
    tr = read_vidur_trace_csv(conv_path)
    s = tr.stats()
    assert len(tr) == s.num_requests == 19_366
    assert tr.arrival_s[0] == 0.0 and tr.rejected_rows == 0
    assert s.prompt.p50 == 1020 and s.output.p50 == 129
    assert s.prompt.max == 14050 and s.output.max == 1000
    assert s.duration_s == pytest.approx(3501.7, abs=0.1)
    assert s.mean_rate == pytest.approx(5.530, abs=0.001)
    assert s.interarrival_cv == pytest.approx(1.09, abs=0.01)
    assert s.output.mean == pytest.approx(211, abs=0.5)
    assert tr.prompt_tokens.min() >= 1 and tr.output_tokens.min() >= 1


def test_code_trace_statistics(code_path: Path) -> None:
    tr = read_trace(code_path)
    s = tr.stats()
    assert s.num_requests == 8_819
    assert s.prompt.p50 == 1469 and s.output.p50 == 13 and s.output.p90 == 55
    assert s.prompt.max == 7437 and s.output.max == 1899
    assert s.mean_rate == pytest.approx(2.567, abs=0.001)
    assert s.interarrival_cv == pytest.approx(13.15, abs=0.01)


def test_azure_format_matches_vidur_format(conv_path: Path, tmp_path: Path) -> None:
    lines = conv_path.read_text().splitlines()[:301]
    vidur = write(tmp_path, "\n".join(lines) + "\n", "vidur.csv")
    rows = [line.split(",") for line in lines[1:]]
    azure_rows = [f"{azure_timestamp(BASE_TICKS + round(float(t) * 1e7))},{p},{o}" for t, p, o in rows]
    azure = write(tmp_path, AZURE_HEADER + "\n".join(azure_rows) + "\n", "azure.csv")
    assert azure_rows[0].startswith("2023-11-16 18:15:46.6805900,")
    a, v = read_azure_llm_csv(azure), read_vidur_trace_csv(vidur)
    np.testing.assert_allclose(a.arrival_s, v.arrival_s, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(a.prompt_tokens, v.prompt_tokens)
    np.testing.assert_array_equal(a.output_tokens, v.output_tokens)
    b = read_trace(azure)  # auto-detected
    np.testing.assert_array_equal(b.arrival_s, a.arrival_s)
    absolute = read_azure_llm_csv(azure, rezero=False)
    assert absolute.arrival_s[0] == pytest.approx(BASE.timestamp() + 0.68059, abs=1e-6)


# --- small files -----------------------------------------------------------------------------


def test_azure_timestamp_variants(tmp_path: Path) -> None:
    text = AZURE_HEADER + (
        "2024-05-10 00:00:00+00:00,10,1\n"  # no fraction, offset (2024 files)
        "2024-05-10 00:00:00.5,11,2\n"  # naive = UTC, short fraction
        "2024-05-10T02:00:01.250000+02:00,12,3\n"  # T separator, +02:00 = 00:00:01.25 UTC
        "2024-05-10 00:00:02.1234567Z,13,4\n"
        '"2024-05-11 00:00:02",14,5\n'  # quoted, next day
    )
    tr = read_azure_llm_csv(write(tmp_path, text))
    np.testing.assert_allclose(tr.arrival_s, [0.0, 0.5, 1.25, 2.1234567, 86402.0], atol=1e-9)
    np.testing.assert_array_equal(tr.prompt_tokens, [10, 11, 12, 13, 14])


def test_extra_columns_blank_lines_and_case(tmp_path: Path) -> None:
    text = "Arrived_At,num_prefill_tokens,extra,num_decode_tokens\n\n1.5,10,x,2\n\n2.5,20,y,3\n"
    tr = read_vidur_trace_csv(write(tmp_path, text))
    np.testing.assert_array_equal(tr.arrival_s, [0.0, 1.0])
    raw = read_vidur_trace_csv(write(tmp_path, text), rezero=False)
    np.testing.assert_array_equal(raw.arrival_s, [1.5, 2.5])


def test_trace_scaled_window_stats() -> None:
    tr = Trace([0.0, 1.0, 2.0, 4.0, 8.0], [10, 20, 30, 40, 50], [1, 2, 3, 4, 5], source="x")
    np.testing.assert_array_equal(tr.scaled(2.0).arrival_s, [0.0, 0.5, 1.0, 2.0, 4.0])
    w = tr.window(1.5, 5.0)  # [1.5, 6.5): 2.0 and 4.0, re-zeroed at 1.5
    np.testing.assert_array_equal(w.arrival_s, [0.5, 2.5])
    np.testing.assert_array_equal(w.prompt_tokens, [30, 40])
    assert len(tr.window(100.0, 5.0)) == 0
    s = tr.stats()
    assert s.mean_rate == pytest.approx(5 / 8)
    gaps = np.array([1.0, 1.0, 2.0, 4.0])
    assert s.interarrival_cv == pytest.approx(gaps.std() / gaps.mean())
    assert s.prompt.p50 == 30 and s.output.max == 5


def test_sort_option(tmp_path: Path) -> None:
    path = write(tmp_path, VIDUR_HEADER + "0.0,1,1\n2.0,2,2\n1.0,3,3\n")
    with pytest.raises(
        ValueError, match=r"t.csv:4: column 'arrived_at': arrival times must be non-decreasing"
    ):
        read_vidur_trace_csv(path)
    tr = read_vidur_trace_csv(path, sort=True)
    np.testing.assert_array_equal(tr.arrival_s, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(tr.prompt_tokens, [1, 3, 2])


def test_zero_tokens_error_or_drop(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        AZURE_HEADER + "2023-11-16 18:15:46.1,5,0\n2023-11-16 18:15:47.1,5,3\n"
        "2023-11-16 18:15:48.1,0,3\n2023-11-16 18:15:49.1,5,3\n",
    )
    with pytest.raises(
        ValueError, match=r"t.csv:2: column 'GeneratedTokens': expected a token count >= 1, got 0 \(2 row"
    ):
        read_azure_llm_csv(path)
    with pytest.warns(UserWarning, match=r"dropped 2 of 4 rows with a zero token count \(lines 2, 4\)"):
        tr = read_trace(path, nonpositive="drop")
    assert tr.rejected_rows == 2
    np.testing.assert_allclose(tr.arrival_s, [0.0, 2.0])


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nope.csv"


BAD_FILES = [
    ("", r"t.csv: file is empty"),
    ("\n\n", r"t.csv: file is empty"),
    (VIDUR_HEADER, r"t.csv: no data rows after the header"),
    ("arrived_at,num_prefill_tokens\n1,2\n", r"t.csv:1: missing column\(s\) num_decode_tokens"),
    ("TIMESTAMP,GeneratedTokens\nx,1\n", r"t.csv:1: missing column\(s\) ContextTokens"),
    (VIDUR_HEADER + "0,1,1\nabc,2,2\n", r"t.csv:3: column 'arrived_at': expected a number, got 'abc'"),
    (
        VIDUR_HEADER + "0,1,1\n1,-2,2\n",
        r"t.csv:3: column 'num_prefill_tokens': expected an integer >= 0, got '-2'",
    ),
    (VIDUR_HEADER + "-1,1,1\n", r"t.csv:2: column 'arrived_at': expected a finite number >= 0, got '-1'"),
    (
        VIDUR_HEADER + "0,1,1\n1,2,2.5\n",
        r"t.csv:3: column 'num_decode_tokens': expected an integer, got '2.5'",
    ),
    (VIDUR_HEADER + "0,1,1\n1,2\n", r"t.csv:3: expected a value in column 'num_decode_tokens'"),
    (VIDUR_HEADER + "0,1,1\n1,2,nan\n", r"t.csv:3: column 'num_decode_tokens': expected an integer"),
    (VIDUR_HEADER + "0,1,1\n1,2,\n", r"t.csv:3: column 'num_decode_tokens': expected an integer, got ''"),
    (
        AZURE_HEADER + "2023-11-16 18:15:46.1,1,1\n16/11/2023 18:15,1,1\n",
        r"t.csv:3: column 'TIMESTAMP': expected 'YYYY",
    ),
    (AZURE_HEADER + "2023-02-30 18:15:46,1,1\n", r"t.csv:2: column 'TIMESTAMP': invalid date"),
    (AZURE_HEADER + "2023-11-16 25:15:46,1,1\n", r"t.csv:2: column 'TIMESTAMP': invalid time of day"),
    (
        AZURE_HEADER + "2023-11-16 18:15:47,1,1\n2023-11-16 18:15:46.5,1,1\n",
        r"t.csv:3: column 'TIMESTAMP': arrival",
    ),
    (
        AZURE_HEADER + "2023-11-16 18:15:47,x,1\n",
        r"t.csv:2: column 'ContextTokens': expected an integer, got 'x'",
    ),
]


@pytest.mark.parametrize(("text", "match"), BAD_FILES)
def test_bad_files(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=match):
        read_trace(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"trace file not found: .*nope.csv"):
        read_trace(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match=r"is a directory"):
        read_vidur_trace_csv(tmp_path)


def test_unrecognised_headers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"t.csv:1: unrecognised trace header 'a,b,c'; expected 'TIMESTAMP"):
        read_trace(write(tmp_path, "a,b,c\n1,2,3\n"))
    functions = write(tmp_path, "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,2\n")
    with pytest.raises(ValueError, match=r"use read_azure_functions_counts"):
        read_trace(functions)


def test_bad_policy_argument(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nonpositive must be 'error' or 'drop', got 'clip'"):
        read_vidur_trace_csv(write(tmp_path, VIDUR_HEADER + "0,1,1\n"), nonpositive="clip")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Trace([0.0, 1.0], [1], [1]), r"same length, got 2, 1, 1"),
        (lambda: Trace([1.0, 0.0], [1, 1], [1, 1]), r"Trace.arrival_s must be sorted; arrival_s\[1\]"),
        (lambda: Trace([0.0], [0], [1]), r"Trace.prompt_tokens\[0\] must be >= 1"),
        (lambda: Trace([0.0], [1], [1]).stats(), r"needs at least 2 requests"),
        (lambda: Trace([0.0], [1], [1]).scaled(-1), r"rate_scale must be > 0"),
        (lambda: Trace([0.0], [1], [1]).window(0.0, -1), r"duration_s must be >= 0"),
    ],
)
def test_trace_bad_arguments(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()
