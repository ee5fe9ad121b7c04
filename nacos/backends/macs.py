"""A MACs count instead of a measurement: the latency proxy of FLOP-counting hardware-aware NAS.

`baseline_latency: macs` makes the baseline search the way many compiler-agnostic HW-NAS papers do:
it ranks architectures by multiply-accumulates and never times anything. The value it reports in the
latency slot is millions of MACs (``details["unit"] == "MMAC"``), so a run with it has no latency budget
in milliseconds (the config refuses ``budgets.latency_ms``); the comparisons judge its picks afterwards on
the latency they are deployed with (`benchmarks/nb201_cosearch.py`, `benchmarks/cosearch_vs_baseline.py`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nacos.backends.base import Backend, Built
from nacos.search.evaluation import LatencyResult

__all__ = ["MacsProxy"]


class MacsProxy(Backend):
    """Millions of MACs of the exported model (`archspace.stats.onnx_layer_stats`: the same count the
    layer statistics report); `build` reads the ONNX file, `measure` only reports."""

    name = "macs"

    @classmethod
    def from_config(cls, cfg: Any, space: Any = None) -> MacsProxy:
        return cls()

    def _build(self, genome: Any, arch: Any, onnx_path: Path) -> Built:
        from archspace.stats import onnx_layer_stats

        start = time.perf_counter()
        macs = sum(s.macs for s in onnx_layer_stats(str(onnx_path)))
        if macs <= 0:
            return Built(False, reason=f"{onnx_path.name}: no multiply-accumulates counted",
                         seconds=time.perf_counter() - start)
        return Built(True, artifact=int(macs), seconds=time.perf_counter() - start)

    def _measure(self, built: Built) -> LatencyResult:
        macs = int(built.artifact)
        return LatencyResult(macs / 1e6, details={"macs": macs, "unit": "MMAC", "measured_by": "macs-proxy",
                                                  "runs": 0, "timed_in": "not timed: a MACs count"})
