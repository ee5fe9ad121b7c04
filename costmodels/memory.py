"""Analytical memory model: parameter bytes by precision, peak activation memory from a liveness walk
over an execution order, and budgets (reporting budgets plus one active budget that rejects).

The execution order is plain data, so the model needs no ONNX or TVM: a list of `OpStep`s (name,
input tensor names, output tensor names) in the order they run, and the size in bytes of every
tensor. A tensor is live from the step that produces it (or from the start, for a graph input) to
the last step that reads it (or to the end, for a graph output); during a step its inputs and
outputs are live together. The peak is the largest sum of live bytes over the steps.

Budgets follow the edge-optimization seed's names: `memory_budgets_mb` (a list, reported with one
violation flag each) and `active_memory_budget_mb` (one budget that rejects). MB here is 2**20 bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from costmodels.errors import CostModelError
from costmodels.workloads import PRECISION_BYTES, layer_params
from schedules.records import LayerWorkload

__all__ = [
    "MB",
    "OpStep",
    "PeakMemory",
    "MemoryBudgets",
    "MemoryReport",
    "param_bytes",
    "peak_activation",
    "sequential_steps",
    "memory_report",
]

MB = 1 << 20


def _precision_bytes(precision: str) -> int:
    try:
        return PRECISION_BYTES[precision]
    except KeyError:
        raise CostModelError(f"unknown precision {precision!r}; expected one of {sorted(PRECISION_BYTES)}") from None


def param_bytes(layers: Sequence[LayerWorkload] | int, precision: str = "fp32", *, bias: bool = True) -> int:
    """Bytes of the parameters at `precision` (fp32 4, fp16 2, int8 1 byte each); `layers` is a list
    of workloads (each counted `count` times) or a parameter count."""
    eb = _precision_bytes(precision)
    if isinstance(layers, int):
        if layers < 0:
            raise CostModelError("a parameter count must be >= 0")
        return layers * eb
    return eb * sum(layer_params(w, bias=bias) * w.count for w in layers)


@dataclass(frozen=True)
class OpStep:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class PeakMemory:
    peak_bytes: int
    peak_step: str
    live_at_peak: tuple[str, ...]
    #: Live bytes during each step, in execution order.
    per_step: tuple[int, ...] = field(default_factory=tuple)


def peak_activation(steps: Sequence[OpStep], tensor_bytes: Mapping[str, int], *,
                    graph_inputs: Sequence[str] = (), graph_outputs: Sequence[str] = ()) -> PeakMemory:
    """Peak live activation bytes over `steps` (see the module docstring for the liveness rule)."""
    if not steps:
        raise CostModelError("an execution order needs at least one step")
    produced_at: dict[str, int] = {t: -1 for t in graph_inputs}
    last_use: dict[str, int] = {}
    for i, st in enumerate(steps):
        for t in st.inputs:
            if t not in produced_at:
                raise CostModelError(f"step {i} ({st.name}) reads {t!r} before any step produces it; "
                                     "list it in graph_inputs or fix the order")
            last_use[t] = i
        for t in st.outputs:
            if t in produced_at:
                raise CostModelError(f"tensor {t!r} is produced twice (step {i}, {st.name})")
            produced_at[t] = i
    for t in list(produced_at) + list(graph_outputs):
        if t not in tensor_bytes:
            raise CostModelError(f"no size for tensor {t!r}")
        if tensor_bytes[t] < 0:
            raise CostModelError(f"tensor {t!r} has a negative size")
    for t in graph_outputs:
        if t not in produced_at:
            raise CostModelError(f"graph output {t!r} is never produced")
        last_use[t] = len(steps)
    per_step = []
    best = (-1, 0, ())
    for i, st in enumerate(steps):
        live = [t for t, p in produced_at.items() if p <= i and last_use.get(t, p) >= i]
        total = sum(int(tensor_bytes[t]) for t in live)
        per_step.append(total)
        if total > best[0]:
            best = (total, i, tuple(sorted(live)))
    return PeakMemory(best[0], steps[best[1]].name, best[2], tuple(per_step))


def sequential_steps(layers: Sequence[LayerWorkload], precision: str = "fp32"
                     ) -> tuple[list[OpStep], dict[str, int], list[str], list[str]]:
    """A chain network: layer i reads layer i-1's output (the first reads the input). Returns
    (steps, tensor_bytes, graph_inputs, graph_outputs) for `peak_activation`."""
    if not layers:
        raise CostModelError("no layers")
    eb = _precision_bytes(precision)
    sizes = {"input": eb * math.prod(layers[0].input_shapes[0])}
    steps = []
    prev = "input"
    for i, w in enumerate(layers):
        out = f"{w.name or 'layer'}#{i}"
        sizes[out] = eb * math.prod(w.output_shape)
        steps.append(OpStep(w.name, (prev,), (out,)))
        prev = out
    return steps, sizes, ["input"], [prev]


@dataclass(frozen=True)
class MemoryBudgets:
    memory_budgets_mb: tuple[float, ...] = ()
    active_memory_budget_mb: float | None = None

    def __post_init__(self) -> None:
        for b in tuple(self.memory_budgets_mb) + ((self.active_memory_budget_mb,) if self.active_memory_budget_mb
                                                  is not None else ()):
            if not (isinstance(b, (int, float)) and math.isfinite(b) and b > 0):
                raise CostModelError(f"memory budgets must be positive finite MB, got {b!r}")


@dataclass(frozen=True)
class MemoryReport:
    precision: str
    param_bytes: int
    peak_activation_bytes: int
    #: Parameters plus peak activations: what must fit on the device.
    total_bytes: int
    #: Per reporting budget (in MB, as given): True when total exceeds it.
    violations: dict[float, bool]
    active_budget_mb: float | None
    rejected: bool
    reason: str

    @property
    def total_mb(self) -> float:
        return self.total_bytes / MB

    def to_dict(self) -> dict:
        return {"precision": self.precision, "param_bytes": self.param_bytes,
                "peak_activation_bytes": self.peak_activation_bytes, "total_bytes": self.total_bytes,
                "total_mb": self.total_mb, "violations": {str(k): v for k, v in self.violations.items()},
                "active_budget_mb": self.active_budget_mb, "rejected": self.rejected, "reason": self.reason}


def memory_report(n_param_bytes: int, peak_activation_bytes: int, budgets: MemoryBudgets | None = None, *,
                  precision: str = "fp32") -> MemoryReport:
    """Total footprint against the budgets: one flag per reporting budget; rejected when over the
    active budget (a candidate over budget is data with a reason, not an exception)."""
    budgets = budgets or MemoryBudgets()
    total = int(n_param_bytes) + int(peak_activation_bytes)
    violations = {float(b): total > b * MB for b in budgets.memory_budgets_mb}
    active = budgets.active_memory_budget_mb
    rejected = active is not None and total > active * MB
    reason = (f"needs {total / MB:.3f} MB ({precision}: params {n_param_bytes / MB:.3f} + peak activations "
              f"{peak_activation_bytes / MB:.3f}) > active budget {active} MB") if rejected else ""
    return MemoryReport(precision, int(n_param_bytes), int(peak_activation_bytes), total, violations, active,
                        rejected, reason)
