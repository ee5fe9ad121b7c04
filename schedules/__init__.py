"""The inner loop: TVM import, per-workload schedule search, a shared tuning database, measurement.

Importing this package is cheap: the records are plain dataclasses, and every name that needs TVM is
resolved lazily (module `__getattr__`) on first use, so that `costmodels/` can read
`schedules.records` without paying for ``import tvm``.

    from schedules import import_onnx, extract_workloads, host_target, TuningDatabase, tune, compile
    from schedules.measure import measure      # the function; `schedules.measure` is its module

Modules: `frontend` (ONNX -> Relax, workloads), `database` (the shared tuning database), `tuner`
(MetaSchedule and explicit-space tuning of unseen workloads), `measure` (compile, the onnxruntime
gate, the measurement protocol, references), `targets` (host CPU, CUDA, RPC), `explicit/`
(the project's own ScheduleConfig space: `space`, `apply`, `compile`), `pretune`, `space_tasks`, `records`,
`errors`.
"""

from __future__ import annotations

from schedules.lazy_exports import lazy_exports
from schedules.records import LayerWorkload, Measurement, ScheduleConfig

# public name -> module that defines it (imported on first access)
_LAZY = {
    "ScheduleError": "schedules.errors",
    "DatabaseCorrupted": "schedules.errors",
    "import_onnx": "schedules.frontend",
    "onnx_input_shapes": "schedules.frontend",
    "extract_workloads": "schedules.frontend",
    "extract_tasks": "schedules.frontend",
    "TuningDatabase": "schedules.database",
    "tune": "schedules.tuner",
    "explicit_tune": "schedules.tuner",
    "TuneReport": "schedules.tuner",
    "TuneSettings": "schedules.tuner",
    "Protocol": "schedules.measure",
    "Compiled": "schedules.measure",
    "compile": "schedules.measure",
    "compile_scheduled": "schedules.measure",
    "measure_onnx": "schedules.measure",
    "reference_onnxruntime": "schedules.measure",
    "reference_torch": "schedules.measure",
    "host_target": "schedules.targets",
    "host_threads": "schedules.targets",
    "cuda_available": "schedules.targets",
    "cuda_target": "schedules.targets",
    "RpcTarget": "schedules.targets",
    "ScheduleSpace": "schedules.explicit.space",
    "GlobalPolicy": "schedules.explicit.space",
    "LayerShape": "schedules.explicit.space",
    "apply_config": "schedules.explicit.apply",
    "schedule_module": "schedules.explicit.compile",
    "explicit_search": "schedules.explicit.compile",
}

__all__ = ["LayerWorkload", "Measurement", "ScheduleConfig", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
