"""The autoscaling envs' reward: a cost term and an SLO term, scalarised by the preference w,
and the episode's primary KPI, which is minus the return."""

from __future__ import annotations

from collections.abc import Mapping

PRIMARY_KPI = "weighted_cost"
"""``w * cost_term + (1 - w) * slo_term`` over the episode (lower is better)."""


class CostSloReward:
    """Scalarises each decision's ``{"cost", "slo"}`` terms (both <= 0) with weights
    ``{cost: w, slo: 1 - w}`` and sums them over the episode."""

    def __init__(self) -> None:
        self.reset(0.0)

    def reset(self, preference: float) -> None:
        self.preference = preference
        self._sums = {"cost": 0.0, "slo": 0.0}

    @property
    def weights(self) -> dict[str, float]:
        return {"cost": self.preference, "slo": 1.0 - self.preference}

    def __call__(self, terms: Mapping[str, float]) -> float:
        for name in self._sums:
            self._sums[name] += terms[name]
        return float(self.preference * terms["cost"] + (1.0 - self.preference) * terms["slo"])

    def kpis(self) -> dict[str, float]:
        """``cost_term``, ``slo_term`` (the episode's sums, as positive costs) and the KPI."""
        cost, slo = -self._sums["cost"], -self._sums["slo"]
        return {
            "cost_term": cost,
            "slo_term": slo,
            PRIMARY_KPI: self.preference * cost + (1.0 - self.preference) * slo,
        }
