"""Latency backends by name: `get_backend("tvm-tuned", cfg, space)` or an instance passed through.

Each entry is ``name: "module:Class"``, imported only when asked for, so a backend with heavy or
optional dependencies (a CUDA runtime, an accelerator model) costs nothing until a run uses it.
A new backend is one module under `nacos/backends/` and one line here (or `register_backend`).
"""

from __future__ import annotations

import importlib
from typing import Any

from nacos.errors import ConfigError

__all__ = ["BACKENDS", "backend_class", "backend_names", "get_backend", "register_backend"]

#: name -> "module:Class"; one line per backend (the name is the class's `name`, recorded in each row)
BACKENDS: dict[str, str] = {
    "macs": "nacos.backends.macs:MacsProxy",
    "onnxruntime": "nacos.backends.onnxruntime:OnnxRuntimeLatency",
    "tvm-default-schedule": "nacos.backends.tvm_default:DefaultScheduleLatency",
    "tvm-genome-schedules": "nacos.backends.tvm_genome:GenomeScheduleLatency",
    "tvm-database": "nacos.backends.tvm_tuned:DatabaseLatency",
    "tvm-tuned": "nacos.backends.tvm_tuned:TunedLatency",
    "zigzag": "nacos.backends.accelerator:AcceleratorLatency",
    "zigzag-fixed": "nacos.backends.accelerator:FixedMappingAccelerator",
    "zigzag-genome": "nacos.backends.accelerator:GenomeMappingAccelerator",
}


def register_backend(name: str, where: str) -> None:
    """Register ``where`` ("module:Class") under `name` (for backends that live outside nacos)."""
    if ":" not in where:
        raise ConfigError(f"register_backend: {where!r} is not 'module:Class'")
    BACKENDS[name] = where


def backend_names() -> tuple[str, ...]:
    return tuple(sorted(BACKENDS))


def backend_class(name: str) -> type:
    """The class registered under `name`; `ConfigError` naming the choices for an unknown one."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend: {name}; choose one of {', '.join(backend_names())}")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def get_backend(name_or_instance: Any, cfg: Any = None, space: Any = None) -> Any:
    """The backend `name_or_instance` names, built for the run `cfg` over `space`; an instance (anything
    with a ``latency`` method) passes through unchanged."""
    if not isinstance(name_or_instance, str):
        if not callable(getattr(name_or_instance, "latency", None)):
            raise ConfigError(f"get_backend: {name_or_instance!r} is neither a backend name nor a backend "
                              f"(no latency method)")
        return name_or_instance
    cls = backend_class(name_or_instance)
    if cfg is None:
        raise ConfigError(f"get_backend: backend {name_or_instance} needs the run's config")
    return cls.from_config(cfg, space)
