"""Joint (prompt, output) token-length distributions.

``sample(rng, n)`` returns two int64 arrays (prompt tokens, output tokens), each >= 1 and
clipped to ``max_prompt`` / ``max_output``. ``length_preset(name)`` returns lognormal fits to
public statistics; each preset's ``source`` says where its numbers come from.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ._checks import in_range, integer, positive, rng_check, token_array

# z-score of the 90th percentile of the standard normal.
Z90 = 1.2815515655446004
# Cap used when no maximum is given, so rounding never overflows int64.
UNBOUNDED_TOKENS = 1_000_000_000


class LengthDistribution(ABC):
    """Base class: checks ``rng`` and ``n``, then rounds and clips what ``_sample`` draws."""

    max_prompt: int | None
    max_output: int | None

    @abstractmethod
    def _sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Unclipped prompt and output lengths (any numeric dtype)."""

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (prompt_tokens, output_tokens) pairs as int64 arrays, each in [1, max]."""
        rng_check(rng)
        count = integer("n", n, 0)
        prompts, outputs = self._sample(rng, count)
        return _to_tokens(prompts, self.max_prompt), _to_tokens(outputs, self.max_output)


def _to_tokens(values: np.ndarray, maximum: int | None) -> np.ndarray:
    hi = UNBOUNDED_TOKENS if maximum is None else maximum
    return np.clip(np.rint(values), 1, hi).astype(np.int64)


def _optional_max(name: str, value: int | None) -> int | None:
    return None if value is None else integer(name, value, 1)


@dataclass(frozen=True)
class LognormalLengths(LengthDistribution):
    """Lognormal prompt and output lengths, each fitted to a median and a 90th percentile.

    ``log(len) ~ N(log(median), σ²)`` with ``σ = log(p90 / median) / z₀.₉``. The two lengths are
    joined by a Gaussian copula: ``correlation`` is the correlation of the two normal scores
    (equal to the correlation of the log lengths before rounding and clipping).
    """

    prompt_median: float
    prompt_p90: float
    output_median: float
    output_p90: float
    correlation: float = 0.0
    max_prompt: int | None = None
    max_output: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        for kind in ("prompt", "output"):
            med = positive(f"LognormalLengths.{kind}_median", getattr(self, f"{kind}_median"))
            p90 = positive(f"LognormalLengths.{kind}_p90", getattr(self, f"{kind}_p90"))
            if p90 < med:
                raise ValueError(
                    f"LognormalLengths.{kind}_p90 must be >= {kind}_median = {med:g}, got {p90:g}"
                )
            object.__setattr__(self, f"{kind}_median", med)
            object.__setattr__(self, f"{kind}_p90", p90)
        rho = in_range("LognormalLengths.correlation", self.correlation, -1.0, 1.0)
        object.__setattr__(self, "correlation", rho)
        object.__setattr__(self, "max_prompt", _optional_max("LognormalLengths.max_prompt", self.max_prompt))
        object.__setattr__(self, "max_output", _optional_max("LognormalLengths.max_output", self.max_output))

    @property
    def prompt_sigma(self) -> float:
        return math.log(self.prompt_p90 / self.prompt_median) / Z90

    @property
    def output_sigma(self) -> float:
        return math.log(self.output_p90 / self.output_median) / Z90

    def _sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        z = rng.standard_normal((2, n))
        rho = self.correlation
        z_out = rho * z[0] + math.sqrt(max(1.0 - rho * rho, 0.0)) * z[1]
        prompts = self.prompt_median * np.exp(self.prompt_sigma * z[0])
        outputs = self.output_median * np.exp(self.output_sigma * z_out)
        return prompts, outputs


@dataclass(frozen=True, eq=False)
class EmpiricalLengths(LengthDistribution):
    """Resamples observed (prompt, output) pairs jointly, with replacement."""

    prompts: np.ndarray
    outputs: np.ndarray
    max_prompt: int | None = None
    max_output: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        p = token_array("EmpiricalLengths.prompts", self.prompts)
        o = token_array("EmpiricalLengths.outputs", self.outputs)
        if p.size == 0:
            raise ValueError("EmpiricalLengths.prompts must not be empty")
        if p.size != o.size:
            raise ValueError(
                f"EmpiricalLengths: prompts and outputs must have the same length, got {p.size} and {o.size}"
            )
        object.__setattr__(self, "prompts", p)
        object.__setattr__(self, "outputs", o)
        object.__setattr__(self, "max_prompt", _optional_max("EmpiricalLengths.max_prompt", self.max_prompt))
        object.__setattr__(self, "max_output", _optional_max("EmpiricalLengths.max_output", self.max_output))

    def __len__(self) -> int:
        return int(self.prompts.size)

    def _sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, self.prompts.size, n)
        return self.prompts[idx], self.outputs[idx]


# Presets. The Azure numbers are the "computed statistics" of autoscaling_mec.md §C2 (the 2023
# CSVs, identical to vidur's data/processed_traces/splitwise_{conv,code}.csv). Their copula
# correlation is measured on those CSVs (one-off numpy/scipy check): conv log-length Pearson
# 0.087, Spearman 0.073 (Gaussian-copula equivalent 2·sin(π·0.073/6) = 0.076) -> 0.08;
# code log-length Pearson -0.005, Spearman -0.021 -> 0.0.
_PRESETS: dict[str, LognormalLengths] = {
    "azure-conv": LognormalLengths(
        prompt_median=1020,
        prompt_p90=2735,
        output_median=129,
        output_p90=424,
        correlation=0.08,
        max_prompt=14050,
        max_output=1000,
        source=(
            "Azure LLM inference trace 2023, conversation (Splitwise, ISCA'24; 19,366 requests): "
            "prompt median 1020 / p90 2735 / max 14050, output median 129 / p90 424 / max 1000 "
            "(autoscaling_mec.md C2, computed); correlation 0.08 from the trace's log lengths"
        ),
    ),
    "azure-code": LognormalLengths(
        prompt_median=1469,
        prompt_p90=5188,
        output_median=13,
        output_p90=55,
        correlation=0.0,
        max_prompt=7437,
        max_output=1899,
        source=(
            "Azure LLM inference trace 2023, code (Splitwise, ISCA'24; 8,819 requests): "
            "prompt median 1469 / p90 5188 / max 7437, output median 13 / p90 55 / max 1899 "
            "(autoscaling_mec.md C2, computed); measured correlation ~0 (log Pearson -0.005)"
        ),
    ),
    # Only the prompt median (1730) is in the reference (Sarathi-Serve Table 2 via chunk_spec.md
    # C.8; openchat_sharegpt4, max_seq_len 8192 per chunk_spec.md A.2). The prompt p90 and the
    # output median / p90 are ASSUMPTIONS (a recollection of the same table, not verified here).
    "sharegpt": LognormalLengths(
        prompt_median=1730,
        prompt_p90=5696,
        output_median=415,
        output_p90=834,
        correlation=0.0,
        max_prompt=8192,
        max_output=8192,
        source=(
            "ShareGPT/openchat_sharegpt4 as used by Sarathi-Serve (OSDI'24, Table 2): prompt median "
            "1730 (chunk_spec.md C.8); max 8192 = Sarathi's max_seq_len (chunk_spec.md A.2). ASSUMED, "
            "not in the reference: prompt p90 5696, output median 415 / p90 834, correlation 0"
        ),
    ),
    # vidur arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv (28,257 requests). Its
    # decode p99 (3271) shows a heavier tail than this lognormal (p99 ~720). The 4096 maxima are an
    # assumption (the file is filtered for Llama-2's 4096-token context). Sarathi's own arXiv
    # set is longer (median 7059 prompt tokens, max_seq_len 16384; chunk_spec.md C.8).
    "arxiv-summarization": LognormalLengths(
        prompt_median=2730,
        prompt_p90=3702,
        output_median=167,
        output_p90=372,
        correlation=0.0,
        max_prompt=4096,
        max_output=4096,
        source=(
            "vidur arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv: prefill median 2730 / "
            "p90 3702, decode median 167 / p90 372 (autoscaling_mec.md C2); maxima 4096 and "
            "correlation 0 assumed"
        ),
    ),
}

LENGTH_PRESETS: tuple[str, ...] = tuple(_PRESETS)


def length_preset(name: str) -> LognormalLengths:
    """The named preset (case-insensitive; ``_`` and spaces count as ``-``)."""
    if not isinstance(name, str):
        raise ValueError(f"length preset name must be a string, got {name!r}")
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    if key not in _PRESETS:
        raise ValueError(f"unknown length preset {name!r}; available: {', '.join(LENGTH_PRESETS)}")
    return _PRESETS[key]
