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

from schedules.lazy_exports import exported_names, lazy_exports
from schedules.records import LayerWorkload, Measurement, ScheduleConfig

# module -> the public names it defines (each imported on first access)
_LAZY = {
    "schedules.errors": ("ScheduleError", "DatabaseCorrupted"),
    "schedules.frontend": ("import_onnx", "onnx_input_shapes", "extract_workloads", "extract_tasks"),
    "schedules.database": ("TuningDatabase",),
    "schedules.tuner": ("tune", "explicit_tune", "TuneReport", "TuneSettings"),
    "schedules.measure": ("Protocol", "Compiled", "compile", "compile_scheduled", "measure_onnx",
                          "reference_onnxruntime", "reference_torch"),
    "schedules.targets": ("host_target", "host_threads", "target_threads", "cuda_available", "cuda_target",
                          "RpcTarget"),
    "schedules.explicit.space": ("ScheduleSpace", "GlobalPolicy", "LayerShape"),
    "schedules.explicit.apply": ("apply_config",),
    "schedules.explicit.compile": ("schedule_module", "explicit_search"),
}

__all__ = ["LayerWorkload", "Measurement", "ScheduleConfig", *exported_names(_LAZY)]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
