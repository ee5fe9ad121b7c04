"""The tools room: the work behind `nacos tune` / `nacos eval` (`model`), `nacos export` (`export`)
and `nacos doctor` (`doctor`).

Importing the package is cheap: each name is imported from its module on first use.
"""

from __future__ import annotations

from schedules.lazy_exports import lazy_exports

_EXPORTS = {
    "DoctorReport": "nacos.tools.doctor",
    "FileCheck": "nacos.tools.doctor",
    "diagnose": "nacos.tools.doctor",
    "format_report": "nacos.tools.doctor",
    "ExportCheckFailed": "nacos.tools.export",
    "Picked": "nacos.tools.export",
    "export_candidate": "nacos.tools.export",
    "pick_candidate": "nacos.tools.export",
    "LATENCY_BACKENDS": "nacos.tools.model",
    "ModelInput": "nacos.tools.model",
    "Stages": "nacos.tools.model",
    "check_model": "nacos.tools.model",
    "check_onnx_file": "nacos.tools.model",
    "dumps": "nacos.tools.model",
    "evaluate_architecture": "nacos.tools.model",
    "read_architecture_file": "nacos.tools.model",
    "read_space": "nacos.tools.model",
    "tune_model": "nacos.tools.model",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
