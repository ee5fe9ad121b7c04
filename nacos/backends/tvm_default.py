"""The baseline's TVM backend: one fixed default `ScheduleConfig` for every conv / dense layer
(`GlobalPolicy`), the way a compiler-agnostic HW-NAS measures: no per-architecture tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nacos.backends.base import Built
from nacos.backends.tvm import TVMBackend

__all__ = ["DefaultScheduleLatency"]


class DefaultScheduleLatency(TVMBackend):
    """Every conv / dense layer under one fixed `ScheduleConfig` (clamped to fit each layer)."""

    name = "tvm-default-schedule"

    def describe(self, genome: Any) -> dict[str, Any]:
        from schedules.records import ScheduleConfig

        return {"source": "default schedule (baseline)", "config": ScheduleConfig().to_dict()}

    def _build(self, genome: Any, arch: Any, onnx_path: Path) -> Built:
        from schedules.explicit.space import GlobalPolicy, LayerShape
        from schedules.records import ScheduleConfig

        policy = GlobalPolicy(ScheduleConfig())
        compiled, _ = self._compile_scheduled(onnx_path, lambda name, key: policy.for_layer(LayerShape(*key[:5])))
        return self._built(compiled)
