"""The contract of a latency backend: `build()` a candidate, then `measure()` what was built.

As MetaSchedule keeps its builder and runner apart (`meta_schedule/builder/`, `runner/`), a backend
splits "how long does this candidate run" into two steps:

- `build(genome, arch, onnx_path) -> Built`: compile the candidate's exported model the backend's way
  (tuning first, where the backend tunes). An expected failure is data: ``Built(ok=False, reason=...)``,
  like MetaSchedule's ``BuilderResult(artifact_path=None, error_msg=...)``.
- `measure(built) -> LatencyResult`: time what was built by the project's one protocol. A `Built` that
  failed comes back as a failed `LatencyResult` with the same reason and details.

`latency(genome, arch, onnx_path)` is build then measure: what `nacos.search.evaluation.CandidateEvaluator`
calls. It lets an unexpected exception of the build through, so the evaluator records it with its
traceback (and stops the search on a full disk) exactly as before the split; `build()` alone returns
that exception as data too (for callers that want no exception, such as `nacos export`).

A subclass writes `_build` and `_measure` (the public `build` / `measure` own the failure handling),
a classmethod `from_config(cfg, space)`, and a unique `name` (recorded in each row as
``latency_backend``), and adds one line to `nacos.backends.registry.BACKENDS`.

Thread safety: a backend instance serves one evaluator, one candidate at a time; executors that
evaluate in other processes pickle it (a backend keeps no unpicklable state, or drops it in
``__getstate__``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacos.errors import DiskFullError, disk_full_cause
from nacos.search.evaluation import LatencyResult

__all__ = ["Backend", "Built"]


@dataclass(frozen=True)
class Built:
    """What `Backend.build` made of one candidate.

    `artifact`: what `measure` times (a `schedules.measure.Compiled` for TVM, the ONNX path for
    onnxruntime); None when the build failed. `reason`: why it failed. `seconds`: the build's wall time
    (tuning included). `details`: what the build learned that the candidate's row should carry (tuning
    report, unscheduled layers); `measure` adds them to its result."""

    ok: bool
    reason: str = ""
    seconds: float = 0.0
    artifact: Any = None
    details: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """One way of building and timing a candidate (see the module docstring for the contract)."""

    name: str = ""
    #: True when the backend compiles with the shared tuning database (``cfg.tuning.database``)
    reads_database: bool = False

    @classmethod
    def from_config(cls, cfg: Any, space: Any = None) -> Backend:
        """The backend of a run: `cfg` is its `RunConfig`, `space` its `ArchSpace`."""
        return cls(cfg)  # type: ignore[call-arg]

    def build(self, genome: Any, arch: Any, onnx_path: Path) -> Built:
        """Compile the candidate; any failure but a full disk is returned as ``Built(ok=False)``."""
        start = time.perf_counter()
        try:
            return self._build(genome, arch, Path(onnx_path))
        except DiskFullError:
            raise
        except Exception as exc:  # noqa: BLE001 - a build failure is data
            if disk_full_cause(exc) is not None:
                raise
            return Built(False, reason=f"{type(exc).__name__}: {exc}".strip()[:500],
                         seconds=time.perf_counter() - start)

    def measure(self, built: Built) -> LatencyResult:
        """Time `built`; a failed build is a failed result with its reason and details."""
        if not built.ok:
            return LatencyResult(float("nan"), ok=False, reason=built.reason, details=dict(built.details))
        return self._measure(built)

    def latency(self, genome: Any, arch: Any, onnx_path: Path) -> LatencyResult:
        """Build, then measure (an unexpected build exception goes to the caller: see the module docstring)."""
        return self.measure(self._build(genome, arch, Path(onnx_path)))

    @abstractmethod
    def _build(self, genome: Any, arch: Any, onnx_path: Path) -> Built:
        """Compile; return ``Built(ok=False, reason=...)`` for an expected failure, raise for anything else."""

    @abstractmethod
    def _measure(self, built: Built) -> LatencyResult:
        """Time an ``ok`` `Built`."""
