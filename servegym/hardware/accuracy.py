"""Held-out accuracy of few-sample calibration (the protocol of ``servegym calibrate --from``).

For one device: per operator group draw ``k`` measurements stratified over their size
(token count, chunk, KV volume, buffer size), calibrate on all drawn samples, score every other
measurement of the device, repeat over seeds and average. Groups: GEMM, elementwise,
prefill attention, decode attention, all-reduce per node topology and GPU count (scored
per topology), CPU overhead. Whole-layer
sums add up the per-layer operators of one profiled configuration (Vidur's per-layer set) and
are scored only where none of their operators was drawn. ``k = 0`` is the zero-shot score
(datasheet + prior).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .calibration import calibrate
from .device import Device
from .features import FeatureTable
from .kernels import LAYER_OPS
from .measurements import Measurement
from .params import Prior

LAYER_KEY = "layer (sum of per-layer ops)"


def score_group(m: Measurement) -> str:
    """The operator group a measurement is scored in."""
    if m.op in ("attn_prefill", "attn_decode"):
        return m.op
    if m.op == "all_reduce":
        return f"all_reduce {m.topology_key}"
    return m.group


def sample_group(m: Measurement) -> str:
    """The group ``k`` calibration samples are drawn from (all-reduce: per GPU count too)."""
    if m.op == "all_reduce":
        return f"all_reduce {m.topology_key} n{m.num_gpus}"
    return score_group(m)


def stratified_draw(records: Sequence[int], keys: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """One random record from each of ``k`` equal-count bins of log(size)."""
    if k <= 0 or not records:
        return []
    if len(records) <= k:
        return list(records)
    order = np.argsort(np.log1p(keys), kind="stable")
    bins = np.array_split(order, k)
    return [records[int(rng.choice(b))] for b in bins if len(b)]


@dataclass
class GroupScore:
    mape: float
    median_ape: float
    p90_ape: float
    n_scored: int


def _score(ape: np.ndarray) -> GroupScore:
    return GroupScore(float(np.mean(ape)), float(np.median(ape)), float(np.quantile(ape, 0.9)), len(ape))


def _layer_sums(records: Sequence[Measurement]) -> dict[tuple, list[int]]:
    rows: dict[tuple, list[int]] = defaultdict(list)
    for i, m in enumerate(records):
        if m.op in LAYER_OPS:
            rows[(m.model, m.tp, m.num_tokens)].append(i)
    return rows


def evaluate(
    device: Device,
    records: Sequence[Measurement],
    *,
    k: int = 10,
    seeds: int = 10,
    prior: Prior | None = None,
    seed0: int = 0,
) -> dict[str, GroupScore]:
    """Mean over seeds of each group's held-out error after calibrating on ``k`` per group."""
    records = list(records)
    table = FeatureTable(records)
    groups: dict[str, list[int]] = defaultdict(list)
    scored: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(records):
        groups[sample_group(m)].append(i)
        scored[score_group(m)].append(i)
    sizes = np.array([m.size_key for m in records])
    layers = _layer_sums(records)
    per_seed: dict[str, list[GroupScore]] = defaultdict(list)
    for s in range(seeds if k > 0 else 1):
        drawn: set[int] = set()
        for name, idx in groups.items():
            # One stream per (seed, group): a group's draws do not depend on the other groups.
            rng = np.random.default_rng([seed0 + s, zlib.crc32(name.encode())])
            drawn.update(stratified_draw(idx, sizes[idx], k, rng))
        fitted = calibrate(device, [records[i] for i in sorted(drawn)], prior)
        pred = table.predict(fitted)
        ape = np.abs(pred / table.measured - 1.0)
        held = np.ones(len(records), dtype=bool)
        held[list(drawn)] = False
        for name, idx in scored.items():
            idx = np.asarray(idx)
            idx = idx[held[idx]]
            if len(idx):
                per_seed[name].append(_score(ape[idx]))
        sums_meas, sums_pred = [], []
        for idx in layers.values():
            if held[idx].all():
                sums_meas.append(table.measured[idx].sum())
                sums_pred.append(pred[idx].sum())
        if sums_meas:
            per_seed[LAYER_KEY].append(_score(np.abs(np.array(sums_pred) / np.array(sums_meas) - 1.0)))
    return {
        name: GroupScore(
            float(np.mean([x.mape for x in scores])),
            float(np.mean([x.median_ape for x in scores])),
            float(np.mean([x.p90_ape for x in scores])),
            int(np.mean([x.n_scored for x in scores])),
        )
        for name, scores in sorted(per_seed.items())
    }


def format_table(results: dict[str, dict[str, GroupScore]]) -> str:
    """Rows: operator groups; columns: MAPE / median / p90 APE per setting (e.g. k=0, k=10)."""
    from servegym.tables import render_table

    settings = list(results)
    names = sorted({n for r in results.values() for n in r})
    headers = ["operator group"]
    for setting in settings:
        headers += [f"MAPE ({setting})", "median APE", "p90 APE"]
    rows = []
    for n in names:
        cells = [n]
        for s in settings:
            g = results[s].get(n)
            cells += [f"{g.mape:.1%}", f"{g.median_ape:.1%}", f"{g.p90_ape:.1%}"] if g else ["", "", ""]
        rows.append(cells)
    return render_table(headers, rows, right=range(1, len(headers)))
