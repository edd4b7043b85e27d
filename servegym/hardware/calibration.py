"""Fit a device's efficiency parameters to measurements (MAP in log space).

Each positive parameter theta gets a Gaussian prior on log(theta); each measurement contributes
a residual log(pred/measured) / sigma_noise. With no measurements the fit returns the prior
means (zero-shot); with ~10 per operator group the data dominates where it is informative and
the prior fills the rest. ``p`` (the smooth-max exponent) is kept from the prior.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy.optimize import least_squares

from .._version import __version__
from .catalog import get_device
from .device import Device
from .features import FeatureTable
from .kernels import KERNEL_TYPE
from .measurements import Measurement, MeasurementSet
from .params import Prior, all_reduce_keys, default_prior

NOISE_SIGMA = 0.15
"""Log-space measurement noise assumed by the fit (kernel-selection jitter is ~0.1)."""


def free_parameters(measurements: Sequence[Measurement]) -> list[str]:
    """The parameters these measurements inform."""
    names: list[str] = []
    groups = {m.group for m in measurements}
    if groups & {"gemm", "layer"}:
        names += ["gemm.eta_c", "gemm.eta_b", "gemm.t0_s"]
    ktypes = sorted({KERNEL_TYPE[m.op] for m in measurements if m.op in KERNEL_TYPE})
    if "layer" in groups:
        ktypes = sorted({*ktypes, "norm", "rope", "act", "add"})
    if ktypes:
        names.append("elem.eta_b")
        for k in ktypes:
            names += [f"elem.{k}.rho", f"elem.{k}.t0_s"]
    ops = {m.op for m in measurements}
    if ops & {"attn_prefill", "attn_decode"}:
        names += ["attn.eta_c", "attn.eta_b"]
    if "attn_prefill" in ops:
        names += ["attn.gamma", "attn.prefill_t0_s"]
    if "attn_decode" in ops:
        names.append("attn.decode_t0_s")
    for topo, n in sorted({(m.topology_key, m.num_gpus) for m in measurements if m.op == "all_reduce"}):
        names += [f"ar.{topo}.n{n}.alpha_s", f"ar.{topo}.n{n}.bw_eff"]
    if "cpu_overhead" in groups:
        names += ["cpu.c0_s", "cpu.c1_s"]
    return names + [n for n in dnn_parameters(measurements) if n not in names]


def dnn_parameters(measurements: Sequence[Measurement]) -> list[str]:
    """Parameters that DNN kernel and whole-network measurements inform."""
    from .catalog import get_dnn
    from .dnn import type_params
    from .dnn_kernels import activation_type

    kernels, contexts = [], set()
    for m in measurements:
        if m.op == "dnn_kernels":
            kernels += m.kernels
            contexts.add(m.context)
        elif m.op == "dnn":
            kernels += get_dnn(m.model).kernels
            contexts.add("network")
    names: list[str] = []
    types = {k.kernel_type for k in kernels} | {activation_type(k.act) for k in kernels if k.act}
    for ktype in sorted(types):
        names += list(type_params(ktype))
        if contexts - {"cold"}:
            names.append(f"dnn.{ktype}.cache_ratio")
    if any(k.op == "attention" and k.causal for k in kernels):
        names.append("dnn.attn.gamma")
    if "network" in contexts:
        names.append("dnn.cache_bytes")
    return names


def prior_for(name: str, prior: Prior) -> tuple[float, float]:
    """(mean, log-sigma) of a parameter, walking all-reduce names from specific to generic."""
    if name in prior.mean:
        return prior.mean[name], prior.sigma[name]
    if name.startswith("ar."):
        suffix = name.rsplit(".", 1)[1]
        _, topo, rest = name.split(".", 2)
        n = rest.split(".")[0]
        candidates = all_reduce_keys(topo, int(n[1:])) if n.startswith("n") else [f"ar.{topo}", "ar"]
        for prefix in candidates:
            key = f"{prefix}.{suffix}"
            if key in prior.mean:
                return prior.mean[key], prior.sigma[key]
    from .params import GENERIC_PRIOR

    return GENERIC_PRIOR.mean[name], GENERIC_PRIOR.sigma[name]


def calibrate(
    device: Device | str,
    measurements: MeasurementSet | Iterable[Measurement],
    prior: Prior | None = None,
    *,
    noise_sigma: float = NOISE_SIGMA,
    source: str | None = None,
    extra_free: Sequence[str] = (),
) -> Device:
    """A copy of ``device`` whose efficiencies are fitted to ``measurements``.

    Works from zero measurements (prior means) upward. ``extra_free`` names parameters
    fitted in addition to those the measurements inform (e.g. ``("p",)`` when learning a
    prior; they need a non-zero prior sigma). The fit uses a soft-L1 loss so one outlying
    kernel timing cannot drag the efficiencies. Returns the device with the fitted
    parameters and provenance (counts per operator group, in-sample error, prior used).
    """
    device = get_device(device)
    prior = prior or default_prior()
    records = list(measurements)
    names = free_parameters(records) + [n for n in extra_free if records]
    base = {k: v for k, v in device.efficiency.items() if k not in names}
    # Parameters that are neither fitted nor already set come from this prior.
    for key, value in prior.mean.items():
        base.setdefault(key, value)
    means = np.array([prior_for(n, prior)[0] for n in names])
    sigmas = np.array([max(prior_for(n, prior)[1], 1e-6) for n in names])
    table = FeatureTable(records) if records else None
    logmeas = np.log(table.measured) if table is not None else np.zeros(0)

    def params_of(x: np.ndarray) -> dict[str, float]:
        return {**base, **dict(zip(names, np.exp(x), strict=True))}

    def residuals(x: np.ndarray) -> np.ndarray:
        data = (np.log(table.predict(device, params_of(x))) - logmeas) / noise_sigma
        return np.concatenate([data, (x - np.log(means)) / sigmas])

    fitted = dict(base)
    in_sample: dict[str, float] = {}
    if names and table is not None:
        x0 = np.log(means)
        result = least_squares(residuals, x0, method="trf", loss="soft_l1", max_nfev=2000)
        fitted = params_of(result.x)
        pred = table.predict(device, fitted)
        ape = np.abs(pred / table.measured - 1.0)
        for group in sorted({m.group for m in records}):
            sel = np.array([m.group == group for m in records])
            in_sample[group] = float(np.mean(ape[sel]))
    counts: dict[str, int] = {}
    for m in records:
        counts[m.group] = counts.get(m.group, 0) + 1
    files = list(measurements.files) if isinstance(measurements, MeasurementSet) else []
    provenance = {
        "fitted_by": f"servegym {__version__} calibrate (MAP, log space, noise sigma {noise_sigma})",
        "date": _dt.date.today().isoformat(),
        "source": source or (", ".join(sorted(set(files))[:5]) if files else "in-memory measurements"),
        "measurements": counts,
        "fitted_parameters": names,
        "in_sample_mape": {k: round(v, 4) for k, v in in_sample.items()},
        "prior": dict(prior.provenance).get("source", "custom prior"),
    }
    return device.with_efficiency(_only_device_specific(fitted, prior), **provenance)


def _only_device_specific(params: Mapping[str, float], prior: Prior) -> dict[str, float]:
    """Keep every parameter (explicit is auditable), rounded to 6 significant digits."""
    return {k: float(f"{v:.6g}") for k, v in sorted(params.items())}


def learn_prior(
    fitted_devices: Sequence[Device], base: Prior, *, min_sigma: float = 0.1, source: str = ""
) -> Prior:
    """A prior whose means are the geometric means of devices' fitted parameters.

    With two or more devices the log-sigma is their spread (at least ``min_sigma``); with one
    the base prior's sigma is kept, since one device says nothing about spread.
    """
    if not fitted_devices:
        raise ValueError("learn_prior needs at least one calibrated device")
    fitted_devices = [
        d.with_efficiency(_with_topology_means(d.efficiency), **d.provenance) for d in fitted_devices
    ]
    keys = set(base.mean)
    for d in fitted_devices:
        keys |= set(d.efficiency)
    mean: dict[str, float] = {}
    sigma: dict[str, float] = {}
    for key in sorted(keys):
        values = [d.efficiency[key] for d in fitted_devices if key in d.efficiency]
        if not values:
            mean[key], sigma[key] = base.mean[key], base.sigma[key]
            continue
        logs = np.log(values)
        mean[key] = float(f"{np.exp(logs.mean()):.6g}")
        base_sigma = prior_for(key, base)[1]
        sigma[key] = base_sigma if len(values) < 2 else max(float(logs.std(ddof=1)), min_sigma)
        if key == "p":
            sigma[key] = 0.0
    return Prior(
        mean=mean,
        sigma=sigma,
        provenance={
            "source": source or f"learned from {', '.join(d.name for d in fitted_devices)}",
            "devices": [d.name for d in fitted_devices],
        },
    )


def _with_topology_means(params: Mapping[str, float]) -> dict[str, float]:
    """Add ``ar.<topo>.<x>``: the geometric mean over GPU counts of ``ar.<topo>.n<N>.<x>``."""
    groups: dict[str, list[float]] = {}
    for key, value in params.items():
        parts = key.split(".")
        if key.startswith("ar.") and len(parts) == 4 and parts[2].startswith("n"):
            groups.setdefault(f"ar.{parts[1]}.{parts[3]}", []).append(value)
    out = dict(params)
    for key, values in groups.items():
        out.setdefault(key, float(f"{np.exp(np.mean(np.log(values))):.6g}"))
    return out
