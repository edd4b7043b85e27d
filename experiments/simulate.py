"""Run one bare serving-engine scenario, print its KPIs and optionally plot it (``servegym simulate``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from servegym.envs.serving import EngineConfig, ServingEngine
from servegym.envs.serving.summary import summarize
from servegym.tables import render_table
from servegym.workloads import Requests


@dataclass
class Timeline:
    """Per-iteration samples for plotting (kept only when a plot is asked for)."""

    t: list[float] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    iteration_s: list[float] = field(default_factory=list)


def run(
    config: EngineConfig,
    requests: Requests,
    rng: np.random.Generator,
    duration_s: float,
    plot: str | Path | None = None,
) -> int:
    """Simulate ``requests`` on one engine to completion; print the KPIs, draw ``plot`` if given."""
    engine = ServingEngine(config, requests, rng)
    print(
        f"{engine.lm.model.name} on {engine.lm.device.name} x{config.tp}, {config.policy}, budget "
        f"{config.token_budget}, KV {engine.capacity_blocks * config.block_size} tokens; "
        f"{len(requests)} requests over {duration_s:.0f} s"
    )
    timeline = Timeline() if plot else None
    while not engine.done:
        result = engine.step()
        if timeline is not None and result.duration_s > 0:
            timeline.t.append(engine.now)
            timeline.waiting.append(len(engine.waiting))
            timeline.running.append(engine.num_running)
            timeline.iteration_s.append(result.duration_s)
    kpis = summarize(engine)
    print(render_table(["KPI", "value"], [[name, f"{value:.4g}"] for name, value in kpis.items()], right=[1]))
    if engine.rejected:
        for reason, count in engine.rejected.items():
            print(f"  rejected ({reason}): {count}")
    if timeline is not None:
        _plot(engine, timeline, Path(plot))
        print(f"plot: {plot}")
    return 0


def _plot(engine: ServingEngine, tl: Timeline, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    axes[0].plot(tl.t, tl.waiting, lw=0.8)
    axes[0].set_ylabel("waiting requests")
    axes[1].plot(tl.t, tl.running, lw=0.8, color="tab:green")
    axes[1].set_ylabel("running (batch)")
    req = engine.requests
    started = ~np.isnan(req.first_token_s)
    axes[2].scatter(req.first_token_s[started], req.first_token_s[started] - req.arrival_s[started], s=2)
    axes[2].axhline(engine.config.ttft_slo_s, color="red", lw=0.8, ls="--", label="TTFT SLO")
    axes[2].set_ylabel("TTFT (s)")
    axes[2].legend(loc="upper left")
    axes[3].plot(tl.t, tl.iteration_s, lw=0.5, color="tab:purple")
    axes[3].axhline(engine.config.tbt_slo_s, color="red", lw=0.8, ls="--", label="TBT SLO")
    axes[3].set_ylabel("iteration = TBT (s)")
    axes[3].set_xlabel("simulated time (s)")
    axes[3].legend(loc="upper left")
    fig.suptitle(f"{engine.lm.model.name} on {engine.lm.device.name}: {engine.config.policy}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
