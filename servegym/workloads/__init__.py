"""Workloads: seeded arrival processes, token-length distributions and real-trace readers.

All randomness comes from a ``numpy.random.Generator`` passed in. Times are seconds, lengths
tokens.

>>> import numpy as np
>>> from servegym.workloads import GammaArrivals, Workload, length_preset
>>> w = Workload(GammaArrivals(rate=5.0, cv=2.0), length_preset("azure-conv"))
>>> reqs = w.sample(np.random.default_rng(0), horizon_s=60.0)
"""

from ._checks import request_arrays
from .arrivals import (
    MMPP2,
    ArrivalProcess,
    Diurnal,
    GammaArrivals,
    Periodic,
    PiecewiseRate,
    Poisson,
    Replay,
)
from .azure_functions import read_azure_functions_counts, read_azure_functions_minute_counts
from .lengths import LENGTH_PRESETS, EmpiricalLengths, LengthDistribution, LognormalLengths, length_preset
from .traces import (
    LengthStats,
    Trace,
    TraceStats,
    read_azure_llm_csv,
    read_trace,
    read_vidur_trace_csv,
)
from .workload import Requests, ShiftingMix, Workload

__all__ = [
    "LENGTH_PRESETS",
    "MMPP2",
    "ArrivalProcess",
    "Diurnal",
    "EmpiricalLengths",
    "GammaArrivals",
    "LengthDistribution",
    "LengthStats",
    "LognormalLengths",
    "Periodic",
    "PiecewiseRate",
    "Poisson",
    "Replay",
    "Requests",
    "ShiftingMix",
    "Trace",
    "TraceStats",
    "Workload",
    "length_preset",
    "read_azure_functions_counts",
    "read_azure_functions_minute_counts",
    "read_azure_llm_csv",
    "read_trace",
    "read_vidur_trace_csv",
    "request_arrays",
]
