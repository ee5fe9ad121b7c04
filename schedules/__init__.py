"""The inner loop: TVM import, per-workload schedule search, a shared tuning database, measurement.

Importing this package is cheap: the records are plain dataclasses, and every name that needs TVM is
resolved lazily (module `__getattr__`) on first use, so that `costmodels/` can read
`schedules.records` without paying for ``import tvm``.

    from schedules import import_onnx, extract_workloads, make_target, TuningDatabase, tune, compile, measure
"""

from __future__ import annotations

import importlib
from typing import Any

from schedules.records import LayerWorkload, Measurement, ScheduleConfig

# public name -> module that defines it (imported on first access)
_LAZY = {
    "ScheduleError": "schedules.exceptions",
    "DatabaseCorruptError": "schedules.exceptions",
    "DatabaseRepairWarning": "schedules.exceptions",
    "import_onnx": "schedules.importer",
    "onnx_input_shapes": "schedules.importer",
    "extract_workloads": "schedules.workloads",
    "extract_tasks": "schedules.workloads",
    "WorkloadTask": "schedules.workloads",
    "make_target": "schedules.target",
    "TargetSpec": "schedules.target",
    "RpcEndpoint": "schedules.target",
    "has_cuda": "schedules.target",
    "host_cpu": "schedules.target",
    "host_cores": "schedules.target",
    "TuningDatabase": "schedules.tuning_database",
    "RecordSummary": "schedules.tuning_database",
    "tune": "schedules.tuning",
    "TuneReport": "schedules.tuning",
    "Failure": "schedules.tuning",
    "Compiled": "schedules.measurement",
    "compile": "schedules.measurement",
    "measure": "schedules.measurement",
    "reference_latency": "schedules.measurement",
    # The second implementation (schedules/{errors,frontend,database,tuner,measure,targets}.py, which
    # nacos/ and benchmarks/inner_loop.py use): names that do not collide with the ones above.
    # Colliding names (import_onnx, TuningDatabase, tune, compile, measure, ...) are reached through
    # their modules, e.g. `from schedules.measure import compile`.
    "DatabaseCorrupted": "schedules.errors",
    "explicit_tune": "schedules.tuner",
    "TuneSettings": "schedules.tuner",
    "Protocol": "schedules.measure",
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

__all__ = ["LayerWorkload", "Measurement", "ScheduleConfig", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'schedules' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
