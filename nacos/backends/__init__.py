"""Latency backends: one class per way of building and timing a candidate, behind `base.Backend`
(`build()` then `measure()`, failures as data), resolved by name in `registry.BACKENDS`.

A new backend is one module here and one line in `registry.BACKENDS` (see docs/architecture.md).
Importing this package imports no TVM: each backend imports it inside the methods that need it.
"""

from __future__ import annotations

from nacos.backends.base import Backend, Built
from nacos.backends.registry import BACKENDS, backend_class, backend_names, get_backend, register_backend

__all__ = ["BACKENDS", "Backend", "Built", "backend_class", "backend_names", "get_backend", "register_backend"]
