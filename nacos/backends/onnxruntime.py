"""onnxruntime on this CPU: the "what users run instead" reference, and the baseline's optional latency
source. Nothing to compile: the artifact is the ONNX file, and onnxruntime builds its session in the
timing worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nacos.backends.base import Backend, Built
from nacos.search.evaluation import LatencyResult

__all__ = ["OnnxRuntimeLatency"]


class OnnxRuntimeLatency(Backend):
    """Median latency of onnxruntime (`schedules.measure.reference_onnxruntime`: the project's one
    onnxruntime timer and protocol, `threads` intra-op threads) on random input, timed in a process
    of its own: one `schedules.isolated.TimingWorker` kept for the whole search, so a candidate pays
    a request (0.04 to 0.08 s here) rather than a process start (1.2 to 2.3 s), and no thread pool of the
    search process (torch's accuracy evaluation, TVM's) shares the timing's cores or affinity.
    A worker that dies fails that candidate with the reason; the next candidate starts a new one."""

    name = "onnxruntime"

    def __init__(self, warmup: int = 5, repeats: int = 30, threads: int = 0) -> None:
        self.warmup, self.repeats, self.threads = warmup, repeats, threads
        self._worker = None

    @classmethod
    def from_config(cls, cfg: Any, space: Any = None) -> OnnxRuntimeLatency:
        t = cfg.tuning
        return cls(t.warmup, t.repeats, t.threads)

    def _build(self, genome: Any, arch: Any, onnx_path: Path) -> Built:
        return Built(True, artifact=Path(onnx_path))

    def _measure(self, built: Built) -> LatencyResult:
        from schedules.isolated import IsolatedTimingError, TimingWorker
        from schedules.measure import Protocol
        from schedules.targets import host_threads

        threads = self.threads or host_threads()
        if self._worker is None:
            self._worker = TimingWorker()
        try:
            m = self._worker.onnxruntime(built.artifact, Protocol(warmup=self.warmup, repeats=self.repeats), threads)
        except IsolatedTimingError as exc:
            self.close()
            return LatencyResult(float("nan"), ok=False, reason=str(exc))
        if not m.ok:
            return LatencyResult(float("nan"), ok=False, reason=m.error)
        stats = {"median_ms": m.median_ms, "mean_ms": m.mean_ms, "std_ms": m.std_ms, "p95_ms": m.p95_ms,
                 "min_ms": m.min_ms, "runs": m.runs}
        return LatencyResult(m.median_ms, details={**stats, "warmup": self.warmup, "threads": m.threads,
                                                   "timed_in": "own process"})

    def __getstate__(self) -> dict[str, Any]:
        # a copy sent to another process (a Dask worker) starts its own timing worker there
        return {**self.__dict__, "_worker": None}

    def close(self) -> None:
        """Stop the timing worker (it also ends by itself when this process ends)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()
