"""Compatibility module: the TVM latency backends now live in `nacos.backends` (one module each:
`tvm_default`, `tvm_genome`, `tvm_tuned`, shared parts in `tvm`). The old names stay importable here.

To patch the two-stage backend's tuning worker, patch `nacos.backends.tvm_tuned.run_tuning_worker`
(the name the backend looks up); patching this module's copy has no effect.
"""

from __future__ import annotations

from typing import Any

from nacos.backends.tvm import TVMBackend, make_target, slot_keys
from nacos.backends.tvm_default import DefaultScheduleLatency
from nacos.backends.tvm_genome import GenomeScheduleLatency
from nacos.backends.tvm_tuned import DatabaseLatency, TunedLatency
from nacos.config import RunConfig
from nacos.tuning_worker import HOST_CPUS, TuningJob, run_tuning_worker  # noqa: F401 - old names

__all__ = ["make_backend", "make_target", "DatabaseLatency", "DefaultScheduleLatency", "TunedLatency",
           "GenomeScheduleLatency", "slot_keys"]

_TVMBackend = TVMBackend  # the old private name


def make_backend(cfg: RunConfig, space, supernet, run) -> tuple[Any, Any, Any]:
    """(genome space, genome -> Architecture, backend) for `cfg`'s mode (`nacos.modes`); the old name of
    `nacos.latency.make_latency_backend`."""
    from nacos.latency import make_latency_backend

    return make_latency_backend(cfg, space, supernet, run)
