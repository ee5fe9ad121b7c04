"""A latency budget the search derives from its own first population (``budgets.latency_from_population``).

A fixed budget in milliseconds means nothing before a user knows what the space costs on the device;
without one, aging evolution (single-objective) climbs to the largest, most accurate networks. The
derived budget asks instead for the most accurate network at most as slow as a typical one of the space:
once the initial random population (the first ``strategy.population`` rows) has been evaluated, the
``quantile`` of the latencies it measured becomes a hard budget for every later candidate, which is
rejected above it (``latency_budget_ms`` and the reason on the row), and the two-stage screen skips the
tuning of candidates predicted to be over it.

The driver applies it when it commits a row (`nacos.search.loop.run_search`'s ``judge``), in proposal
order, and rebuilds it from the committed rows on resume, so a resumed run judges as an uninterrupted
one: the budget is a function of the store's first rows. Rows of the initial population are not judged
(they define it). On the macs baseline the "latency" is a MACs count, and so is the budget.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from nacos_base.records import Evaluation, Status

__all__ = ["PopulationLatencyBudget"]


class PopulationLatencyBudget:
    """The ``quantile`` of the first `population` rows' measured latencies, fixed once they are committed."""

    def __init__(self, quantile: float, population: int) -> None:
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
        if population < 1:
            raise ValueError(f"population must be >= 1, got {population!r}")
        self.quantile = quantile
        self.population = population
        self._seen = 0
        self._latencies: list[float] = []
        self.budget_ms: float | None = None
        self.unit = "ms"

    def observe(self, seq: int, metrics: Mapping[str, Any]) -> None:
        """Learn from one committed row (in commit order; `seq` is its 1-based place in the store)."""
        if self.budget_ms is not None or seq > self.population:
            return
        self._seen += 1
        lat = metrics.get("latency_ms")
        if isinstance(lat, (int, float)) and not isinstance(lat, bool) and math.isfinite(lat) and lat > 0:
            self._latencies.append(float(lat))
            if metrics.get("latency_unit") == "MMAC":
                self.unit = "MMAC"
        if self._seen >= self.population and self._latencies:
            self.budget_ms = float(np.quantile(self._latencies, self.quantile))

    def observe_record(self, record: Any) -> None:
        self.observe(record.seq, record.metrics)

    @classmethod
    def rebuilt(cls, quantile: float, population: int,
                rows: Iterable[tuple[int, Mapping[str, Any]]]) -> PopulationLatencyBudget:
        """The budget as committed rows ``(seq, metrics)`` fix it (a resume, a report), in seq order."""
        budget = cls(quantile, population)
        for seq, metrics in sorted(rows, key=lambda r: r[0]):
            budget.observe(seq, metrics)
        return budget

    def judge(self, evaluation: Evaluation) -> Evaluation:
        """`evaluation` as the budget judges it: an ok row over the budget becomes rejected, with the reason;
        every row evaluated once the budget is fixed carries ``latency_budget_ms``."""
        if self.budget_ms is None:
            return evaluation
        metrics = {**evaluation.metrics, "latency_budget_ms": self.budget_ms}
        lat = metrics.get("latency_ms")
        if evaluation.status == Status.OK and isinstance(lat, (int, float)) and lat > self.budget_ms:
            return Evaluation(Status.REJECTED, metrics,
                              f"latency {lat:.4f} {self.unit} over the budget {self.budget_ms:.4f} {self.unit} (the "
                              f"{self.quantile:g} quantile of the initial population's {len(self._latencies)} "
                              f"latencies)", evaluation.seconds)
        return Evaluation(evaluation.status, metrics, evaluation.reason, evaluation.seconds)

    def describe(self) -> dict[str, Any]:
        return {"quantile": self.quantile, "population": self.population, "budget": self.budget_ms,
                "unit": self.unit, "from_rows": len(self._latencies)}
