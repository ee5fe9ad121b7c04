"""The tools room: the work behind `nacos tune` / `nacos eval` (`model`), `nacos export` (`export`),
`nacos doctor` (`doctor`) and `nacos calibrate --nb201-shots` (`device_calibration`).

Importing the package is cheap: each name is imported from its module on first use.
"""

from __future__ import annotations

from schedules.lazy_exports import exported_names, lazy_exports

_EXPORTS = {
    "nacos.tools.device_calibration": ("CALIBRATION_FORMAT", "RUNTIMES", "calibrate_nb201"),
    "nacos.tools.doctor": ("DoctorReport", "FileCheck", "diagnose", "format_report"),
    "nacos.tools.export": ("ExportCheckFailed", "Picked", "export_candidate", "pick_candidate"),
    "nacos.tools.model": (
        "LATENCY_BACKENDS", "ModelInput", "Stages", "check_model", "check_onnx_file", "dumps",
        "evaluate_architecture", "read_architecture_file", "read_space", "tune_model",
    ),
}

__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
