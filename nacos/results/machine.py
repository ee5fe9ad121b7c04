"""What machine a figure was measured on: CPU model, cores, tool versions, date."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from importlib import metadata

from costmodels.roofline import cpu_model

__all__ = ["cpu_model", "machine_info", "tool_versions"]


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("nacos", "torch", "apache-tvm", "apache-tvm-ffi", "onnx", "onnxruntime", "xgboost-cpu", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def machine_info() -> dict[str, object]:
    """A JSON-ready description of this machine for every result file."""
    return {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "versions": tool_versions(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
