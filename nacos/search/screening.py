"""Two-stage screening: the cost model decides which candidates are worth tuning.

Tuning a candidate's unseen workloads is the expensive step of the two-stage search (a minute or more
per new architecture here). Before paying it, `LatencyScreen` predicts the candidate's *tuned*
latency with `costmodels.ArchLatencyModel` (trained on the candidates this run has already measured;
a split-conformal 90 % interval from its K-fold errors) and lets the candidate through unless, even
at the optimistic end of the interval,

* it would be over the hard latency budget (``budgets.latency_ms``), or
* a candidate already measured dominates it: at least as good on every objective (its accuracy and
  other objectives are known before latency; latency compared with the interval's low end).

A `margin` widens the interval (the model is trained on few rows early on), and nothing is screened
until `min_samples` candidates have been measured. A screened candidate is recorded as ``rejected``
with ``screened: true``, its prediction and the reason, so a report shows what the model saved.

The screen's history is rebuilt from the results store (`observe_record` on every committed row, on
resume as during the run), and the model is refitted from scratch on that history, so the decisions
are a function of the committed rows: a resumed run screens as an uninterrupted one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from archspace.architecture import Architecture
from archspace.layers import conv_layers
from nacos_base.records import Status
from schedules.records import LayerWorkload

__all__ = ["ScreenDecision", "LatencyScreen", "arch_workloads", "conformal_half_width", "decide"]


def arch_workloads(arch: Architecture, space: Any, batch: int = 1, in_channels: int = 1,
                   num_classes: int = 10) -> list[LayerWorkload]:
    """The conv / dense layers of `arch` as plain `LayerWorkload` records (fp32 bytes), computed from
    the genotype alone (and the data's channels and classes): no export, so the driver can featurize any
    committed row."""
    out = []
    for layer in conv_layers(arch, space, in_channels, num_classes):
        hw = (layer.out_size, layer.out_size) if layer.kind != "dense" else (1, 1)
        in_shape = (batch, layer.in_channels, layer.in_size, layer.in_size)
        out_shape = (batch, layer.out_channels, *hw)
        weights = layer.out_channels * (layer.in_channels // layer.groups) * layer.kernel ** 2
        elements = batch * layer.in_channels * layer.in_size ** 2 + weights + batch * layer.out_channels * hw[0] * hw[1]
        shape_key = (layer.kind, in_shape, out_shape, layer.kernel, layer.stride, layer.groups)
        out.append(LayerWorkload(name=layer.slot, op_kind=layer.kind, input_shapes=(in_shape,),
                                 output_shape=out_shape, structural_hash=repr(shape_key),
                                 macs=layer.macs * batch, bytes=4 * elements,
                                 kernel=(layer.kernel, layer.kernel), strides=(layer.stride, layer.stride),
                                 groups=layer.groups))
    return out


@dataclass(frozen=True)
class ScreenDecision:
    """A screen's verdict: `passed` (build and measure it), else why not. `cause`: "budget" (over the hard
    latency budget), "dominated" or "onnxruntime-faster". `priced_ms`: set when the candidate, not built, is
    to be recorded with this latency instead of rejected (`nacos.search.table_screen`); `priced_source` says
    what that latency is: "predicted" (the screen's prediction; the row is marked screened) or "onnxruntime"
    (measured: under the deployed latency, onnxruntime beats the tuned build's optimistic prediction)."""

    passed: bool
    reason: str = ""
    predicted: dict[str, Any] = field(default_factory=dict)
    cause: str = ""
    priced_ms: float | None = None
    priced_source: str = "predicted"


class LatencyScreen:
    """Decides, before tuning, whether a candidate can still matter (see the module docstring)."""

    def __init__(self, space: Any, objectives: Sequence[tuple[str, str]], *, latency_budget_ms: float | None,
                 min_samples: int = 5, margin: float = 0.1, batch: int = 1, seed: int = 0,
                 model_dir: Path | None = None, in_channels: int = 1, num_classes: int = 10) -> None:
        self.space = space
        self.io = (in_channels, num_classes)   # the data's: the stem and the classifier depend on them
        self.objectives = list(objectives)
        self.latency_budget_ms = latency_budget_ms
        self.min_samples = min_samples
        self.margin = margin
        self.batch = batch
        self.seed = seed
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self._samples: list[Any] = []              # costmodels.arch_latency.ArchSample
        self._points: list[tuple[str, dict[str, float]]] = []   # (arch id, objective values) of measured rows
        self._model: Any = None
        self._fitted_on = 0
        self._half_width = math.inf

    @property
    def n_measured(self) -> int:
        return len(self._samples)

    # ------------------------------------------------------------------ history
    def observe(self, arch: Architecture, metrics: Mapping[str, Any]) -> None:
        """Learn from a measured candidate (an ok row with a finite latency)."""
        from costmodels.arch_latency import ArchSample

        ms = metrics.get("latency_ms")
        if not isinstance(ms, (int, float)) or not ms > 0 or ms != ms or ms == float("inf"):
            return
        workloads = tuple(arch_workloads(arch, self.space, self.batch, *self.io))
        self._samples.append(ArchSample(workloads, float(ms), arch.id))
        values = {name: float(metrics[name]) for name, _ in self.objectives
                  if isinstance(metrics.get(name), (int, float))}
        self._points.append((arch.id, values))

    def observe_record(self, record: Any, parse: Callable[[str], Any], arch_of: Callable[[Any], Architecture]) -> None:
        """`observe` a committed `CandidateRecord` of the results store if it was measured."""
        if record.status == Status.OK:
            self.observe(arch_of(parse(record.genome)), record.metrics)

    # ------------------------------------------------------------------ decision
    def _fit(self) -> tuple[Any, float]:
        """The model on the whole history, and the conformal half-width of its log-latency interval.

        XGBoost's own quantile interval is poorly placed on a few dozen rows (its low quantile hardly
        moves off the training minimum), so the interval is split-conformal instead: the 90 % quantile
        of the absolute log errors of K-fold predictions (folds by architecture), which covers a new
        candidate's latency with about that probability whatever the model's own calibration.
        """
        if self._model is None or self._fitted_on != len(self._samples):
            from costmodels.arch_latency import ArchLatencyModel, ArchModelConfig

            config = ArchModelConfig(seed=self.seed, n_rounds=200)
            n = len(self._samples)
            k = min(5, n)
            errors = []
            for fold in range(k):
                train = [s for i, s in enumerate(self._samples) if i % k != fold]
                test = [s for i, s in enumerate(self._samples) if i % k == fold]
                pred = ArchLatencyModel(config).fit(train).predict(test)
                errors += [abs(math.log(p) - math.log(s.latency_ms)) for p, s in zip(pred, test)]
            self._half_width = conformal_half_width(errors)
            self._model = ArchLatencyModel(config).fit(self._samples)
            self._fitted_on = n
            if self.model_dir is not None:
                self._model.save(self.model_dir)
        return self._model, self._half_width

    @property
    def points(self) -> list[tuple[str, dict[str, float]]]:
        """(arch id, objective values) of every measured candidate (what a new one is compared with)."""
        return list(self._points)

    def check(self, arch: Architecture, metrics: Mapping[str, Any], onnx_path: Path | None = None) -> ScreenDecision:
        """Whether to tune and measure `arch`, whose non-latency metrics (accuracy, memory, ...) are known
        (`onnx_path`, its exported model, is not needed here: the model reads the genotype)."""
        if len(self._samples) < self.min_samples:
            return ScreenDecision(True, f"warming up ({len(self._samples)}/{self.min_samples} measured)")
        model, half_width = self._fit()
        mid = float(model.predict([arch_workloads(arch, self.space, self.batch, *self.io)])[0])
        return decide(arch.id, metrics, mid, half_width, objectives=self.objectives, points=self._points,
                      budget_ms=self.latency_budget_ms, margin=self.margin, what="predicted tuned latency")


def conformal_half_width(log_errors: Sequence[float], level: float = 0.9) -> float:
    """The split-conformal half-width of a log-latency interval at `level` from held-out absolute log errors
    (their ceil((n + 1) level) / n quantile, the largest error when there are too few; 0 at level 0)."""
    n = len(log_errors)
    if level <= 0 or not n:
        return 0.0                   # level 0: the point prediction itself
    q = min(1.0, math.ceil((n + 1) * level) / n)
    return float(np.quantile(log_errors, q, method="higher"))


def decide(arch_id: str, metrics: Mapping[str, Any], mid: float, half_width: float, *,
           objectives: Sequence[tuple[str, str]], points: Sequence[tuple[str, Mapping[str, float]]],
           budget_ms: float | None, margin: float, what: str) -> ScreenDecision:
    """The screen's verdict on a candidate whose latency is predicted `mid` ms, with a 90 % interval of
    ``mid x exp(+-half_width)``: rejected when even the interval's low end, divided by ``1 + margin``, is
    over `budget_ms` or dominated by one of the measured `points`; `what` names the prediction."""
    low, high = mid * math.exp(-half_width), mid * math.exp(half_width)
    optimistic = low / (1.0 + margin)
    predicted = {"latency_predicted_ms": mid, "latency_predicted_low_ms": low, "latency_predicted_high_ms": high}
    if budget_ms is not None and optimistic > budget_ms:
        return ScreenDecision(False, f"{what} {mid:.4f} ms (90% conformal interval {low:.4f}..{high:.4f}, "
                                     f"margin {margin:g}) is over the budget {budget_ms:g} ms", predicted, "budget")
    mine = {name: metrics.get(name) for name, _ in objectives}
    mine["latency_ms"] = optimistic
    if any(not isinstance(mine.get(name), (int, float)) for name, _ in objectives):
        return ScreenDecision(True, "objectives not all known before latency: no dominance check", predicted)
    for other, theirs in points:
        if other != arch_id and _dominates(theirs, mine, objectives):
            return ScreenDecision(False, f"dominated by measured candidate {other} even at the optimistic "
                                         f"{what} {optimistic:.4f} ms", predicted, "dominated")
    return ScreenDecision(True, "may enter the front", predicted)


def _dominates(a: Mapping[str, float], b: Mapping[str, float], objectives: Sequence[tuple[str, str]]) -> bool:
    """a is at least as good as b on every objective and better on one."""
    if any(name not in a for name, _ in objectives):
        return False
    better = False
    for name, sense in objectives:
        x, y = (a[name], b[name]) if sense == "min" else (-a[name], -b[name])
        if x > y:
            return False
        better = better or x < y
    return better
