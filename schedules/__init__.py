"""The inner loop: TVM import, per-workload schedule search, a shared tuning database, measurement.

Importing this package is cheap: TVM is imported by the modules that need it (reached lazily from
here), so that `costmodels/` can read `schedules.records` without paying for `import tvm`.
"""

from __future__ import annotations

import importlib
from typing import Any

from schedules.errors import DatabaseCorrupted, ScheduleError
from schedules.records import LayerWorkload, Measurement, RecordError, ScheduleConfig

_LAZY = {
    "import_onnx": "schedules.frontend",
    "extract_workloads": "schedules.frontend",
    "TuningDatabase": "schedules.database",
    "Coverage": "schedules.database",
    "BestRecord": "schedules.database",
    "tune": "schedules.tuner",
    "explicit_tune": "schedules.tuner",
    "TuneReport": "schedules.tuner",
    "TuneSettings": "schedules.tuner",
    "Protocol": "schedules.measure",
    "compile": "schedules.measure",
    "measure": "schedules.measure",
    "measure_onnx": "schedules.measure",
    "reference_onnxruntime": "schedules.measure",
    "reference_torch": "schedules.measure",
    "host_target": "schedules.targets",
    "cuda_target": "schedules.targets",
    "RpcTarget": "schedules.targets",
    "ScheduleSpace": "schedules.explicit_space",
    "GlobalPolicy": "schedules.explicit_space",
    "LayerShape": "schedules.explicit_space",
    "apply_config": "schedules.explicit_apply",
}

__all__ = ["LayerWorkload", "Measurement", "ScheduleConfig", "RecordError", "ScheduleError", "DatabaseCorrupted",
           *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'schedules' has no attribute {name!r}")
