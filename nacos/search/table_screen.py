"""Two-stage screening by the latency table: a candidate's tuned latency read off the tuning database.

After `nacos pretune`, every task of the space has a record on this machine, so a candidate's tuned kernel
time is known from its import alone (`schedules.latency_table`: the sum over its tasks of calls x the fastest
record's run time; 0.4 s, where building and timing it costs several seconds). That sum leaves out what is not
a kernel (the Relax VM's calls and allocations) and MetaSchedule times kernels warm, so the table is
calibrated on this run's own measured candidates: ``measured = a + b x table`` by least squares (``a, b >= 0``;
a ratio ``measured = r x table``, its median, until there are 4), with a split-conformal interval
(``tuning.table_interval``, e.g. 0.9; the default 0 is the point prediction) from its leave-one-out log errors. On the
default space on a 2-core Xeon the table ranks 20 sampled architectures as their measured latency does
with Kendall 0.75, the ratio measured / table spanning 1.47 to 2.01 (`benchmarks/latency_table.py`), far
tighter than the genotype model of `nacos.search.screening` on a few dozen rows.

`TableScreen` decides as `LatencyScreen` does (`nacos.search.screening.decide`: over the hard latency budget,
or dominated by a measured candidate, even at the interval's optimistic end), and only the candidates that
may enter the front are built and measured. One over the budget is rejected; a dominated one is recorded
with its predicted latency (``latency_source: predicted``, ``screened: true``; ``price=False``: rejected),
so the strategy ranks it by its prediction rather than as a failure, for the price of its table. It can
never be on the run's front: a measured candidate dominates it even at the optimistic end. A candidate with
a task the database has no record of here (its table is incomplete) is left to the genotype model
(`LatencyScreen`), which it wraps; so is one whose exported model is not at hand.
Each row says which predicted it (``latency_predicted_by``), and a measured one carries both figures: the
table's reading (``latency_table_kernel_ms``, from the backend) beside its measured ``latency_ms``.

Like `LatencyScreen`, its history is rebuilt from the committed rows, so a resumed run screens as an
uninterrupted one does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from nacos.search.screening import LatencyScreen, ScreenDecision, conformal_half_width, decide
from nacos_base.records import Status

__all__ = ["TableScreen", "fit_table"]

#: measured candidates before the two-parameter fit (fewer: one ratio)
LINEAR_FROM = 4


def fit_table(pairs: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(a, b) of ``measured = a + b x table`` over (table ms, measured ms) `pairs`: least squares with
    ``a, b >= 0`` from `LINEAR_FROM` pairs on, else ``(0, median ratio)``."""
    t = np.array([p[0] for p in pairs], dtype=float)
    m = np.array([p[1] for p in pairs], dtype=float)
    if len(pairs) >= LINEAR_FROM and np.ptp(t) > 0:
        b, a = np.polyfit(t, m, 1)
        if a >= 0 and b > 0:
            return float(a), float(b)
        if b > 0:                    # a negative intercept: through the origin instead
            return 0.0, float(np.dot(t, m) / np.dot(t, t))
    return 0.0, float(np.median(m / t))


class TableScreen:
    """Screens a two-stage candidate by the calibrated latency table (see the module docstring).

    `database`: the backend's `schedules.database.TuningDatabase` (shared, not opened again: a pretuned
    database takes seconds to read), `target` the TVM target its records are looked up for; `fallback`
    the genotype screen for candidates the table cannot price."""

    def __init__(self, fallback: LatencyScreen, database: Any, target: Any, *, min_samples: int = 3,
                 margin: float = 0.0, price: bool = True, level: float = 0.0,
                 onnxruntime: Callable[[Path], Mapping[str, Any]] | None = None) -> None:
        self.fallback = fallback
        self.database = database
        self.target = target
        self.min_samples = max(2, int(min_samples))
        self.margin = margin
        #: a dominated candidate is recorded with its predicted latency (True) instead of rejected
        self.price = price
        #: coverage of the conformal interval whose optimistic end is compared (0: the point prediction)
        self.level = level
        #: searching with the deployed latency (``tuning.search_latency: deployed``): times a candidate's
        #: exported model with onnxruntime (the backend's `onnxruntime_timing`); None: tuned TVM alone
        self.onnxruntime = onnxruntime
        self._pairs: list[tuple[float, float]] = []    # (table kernel ms, measured ms) of measured rows
        self._fit: tuple[int, float, float, float] | None = None   # (pairs, a, b, half width)

    # the run sets the budget once the initial population fixes it: both screens use it
    @property
    def latency_budget_ms(self) -> float | None:
        return self.fallback.latency_budget_ms

    @latency_budget_ms.setter
    def latency_budget_ms(self, value: float | None) -> None:
        self.fallback.latency_budget_ms = value

    @property
    def n_measured(self) -> int:
        return self.fallback.n_measured

    @property
    def n_calibrated(self) -> int:
        """Measured candidates whose table reading calibrates the table."""
        return len(self._pairs)

    # ------------------------------------------------------------------ history
    def observe(self, arch: Any, metrics: Mapping[str, Any]) -> None:
        """Learn from a measured candidate: the genotype model from its latency, the table's calibration
        from its table reading beside it (rows measured with a complete table only)."""
        if metrics.get("latency_source") == "predicted":
            return                   # priced by this screen: nothing was measured
        self.fallback.observe(arch, metrics)
        # the compiled model's own time (under ``search_latency: deployed``, latency_ms may be onnxruntime's)
        ms, table = metrics.get("latency_median_ms", metrics.get("latency_ms")), metrics.get("latency_table_kernel_ms")
        if metrics.get("latency_table_complete") is True and _positive(ms) and _positive(table):
            self._pairs.append((float(table), float(ms)))

    def observe_record(self, record: Any, parse: Callable[[str], Any], arch_of: Callable[[Any], Any]) -> None:
        """`observe` a committed `CandidateRecord` of the results store if it was measured."""
        if record.status == Status.OK:
            self.observe(arch_of(parse(record.genome)), record.metrics)

    # ------------------------------------------------------------------ decision
    def calibration(self) -> tuple[float, float, float]:
        """(a, b, half width) of the table's calibration on the pairs seen so far."""
        n = len(self._pairs)
        if self._fit is None or self._fit[0] != n:
            errors = []
            for i, (t, m) in enumerate(self._pairs):
                a, b = fit_table(self._pairs[:i] + self._pairs[i + 1:])
                errors.append(abs(math.log(m) - math.log(max(a + b * t, 1e-12))))
            a, b = fit_table(self._pairs)
            self._fit = (n, a, b, conformal_half_width(errors, self.level))
        return self._fit[1:]

    def reading(self, onnx_path: Path) -> Any:
        """The database's `schedules.latency_table.TableLatency` of the exported model at `onnx_path`."""
        from schedules.frontend import import_onnx
        from schedules.latency_table import table_latency

        self.database.refresh()      # what tunings committed meanwhile (a stat when nothing was appended)
        return table_latency(import_onnx(onnx_path), self.database, self.target)

    def check(self, arch: Any, metrics: Mapping[str, Any], onnx_path: Path | None = None) -> ScreenDecision:
        """Whether to build and measure `arch` (tuning what is missing first), whose non-latency metrics
        are known; `onnx_path`: its exported model (without it, the genotype model decides)."""
        if onnx_path is None:
            return self._by_model(arch, metrics, {}, "no exported model to read the table of")
        table = self.reading(Path(onnx_path))
        read = {"table_kernel_ms": table.kernel_ms, "table_calls": table.calls,
                "table_missing_tasks": len(table.missing)}
        if not table.complete:
            return self._by_model(arch, metrics, read, f"latency table incomplete ({len(table.missing)} of "
                                                       f"{table.tasks} tasks without a record on this machine)")
        if len(self._pairs) < self.min_samples:
            return ScreenDecision(True, f"calibrating the latency table ({len(self._pairs)}/{self.min_samples} "
                                        "measured)", {**read, "latency_predicted_by": "table (uncalibrated)"})
        a, b, half_width = self.calibration()
        mid = a + b * table.kernel_ms
        what = (f"latency table ({a:.4f} ms + {b:.3f} x {table.kernel_ms:.4f} ms, calibrated on {len(self._pairs)} "
                "measured)")
        ort = self._onnxruntime(onnx_path, read)
        if ort is not None and ort <= mid * math.exp(-half_width) / (1.0 + self.margin):
            # deployed latency: onnxruntime, measured, beats even the table's optimistic end; nothing to build
            return ScreenDecision(False, f"onnxruntime {ort:.4f} ms is faster than the tuned build's optimistic "
                                         f"{what} {mid:.4f} ms: deployed with onnxruntime, not built",
                                  {**read, "latency_predicted_ms": mid, "latency_predicted_by": "table"},
                                  "onnxruntime-faster", ort, "onnxruntime")
        d = decide(arch.id, metrics, mid, half_width, objectives=self.fallback.objectives,
                   points=self.fallback.points, budget_ms=self.latency_budget_ms, margin=self.margin, what=what)
        priced = None
        if self.price and d.cause == "dominated":   # deployed: the better of onnxruntime and the prediction
            priced = d.predicted["latency_predicted_ms"] if ort is None else min(ort, mid)
        return ScreenDecision(d.passed, d.reason, {**read, **d.predicted, "latency_predicted_by": "table"},
                              d.cause, priced)

    def _onnxruntime(self, onnx_path: Path, read: dict[str, Any]) -> float | None:
        """Under the deployed latency, onnxruntime's measured ms of the candidate (its figures go into `read`);
        None when the screen searches tuned TVM alone or onnxruntime could not time it."""
        if self.onnxruntime is None:
            return None
        timing = dict(self.onnxruntime(Path(onnx_path)))
        read.update({f"latency_{k}": v for k, v in timing.items()})   # as a built row's onnxruntime figures
        ms = timing.get("onnxruntime_ms")
        return float(ms) if _positive(ms) else None

    def _by_model(self, arch: Any, metrics: Mapping[str, Any], read: dict[str, Any], why: str) -> ScreenDecision:
        d = self.fallback.check(arch, metrics)
        return ScreenDecision(d.passed, f"{why}: {d.reason}", {**read, **d.predicted, "latency_predicted_by": "model"})


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0
