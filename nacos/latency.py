"""Latency backends, one per way of running a candidate, chosen by the search mode.

- `OnnxRuntimeLatency`: onnxruntime on this CPU, timed in a worker process of its own (the "what
  users run instead" reference; the baseline's optional latency source).
- TVM backends (`schedules/`): the baseline's one fixed default schedule, the two-stage search's
  tuned schedules from the shared database, and the one-stage genome's per-layer schedules.

Every backend measures by one protocol (warm-up runs, then repeats; the median counts) and returns a
`LatencyResult`; a failure is a result with a reason, not an exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from archspace.architecture import Architecture
from nacos.config import RunConfig
from nacos.evaluation import LatencyResult
from schedules.records import LayerWorkload

__all__ = ["OnnxRuntimeLatency", "make_latency_backend", "layer_workloads", "summarize_times"]

_KIND = {"Conv": "conv2d", "Gemm": "dense", "MatMul": "dense"}


def layer_workloads(layers: Sequence[dict[str, Any]]) -> list[LayerWorkload]:
    """Plain `LayerWorkload` records (fp32 bytes of inputs, weights and output) from layer statistics
    (`archspace.stats.LayerStat.to_dict()`), for the analytical cost models."""
    out = []
    for i, layer in enumerate(layers):
        if not layer.get("macs") and not layer.get("output_shape"):
            continue
        elements = layer.get("input_elements", 0) + layer["params"] + int(np.prod(layer["output_shape"] or [0]))
        out.append(LayerWorkload(name=layer["name"] or f"layer{i}", op_kind=_KIND.get(layer["op_type"], "elementwise"),
                                 input_shapes=(), output_shape=tuple(layer["output_shape"]), macs=int(layer["macs"]),
                                 bytes=4 * int(elements)))
    return out


def summarize_times(times_ms: Sequence[float]) -> dict[str, float]:
    t = np.asarray(times_ms, dtype=float)
    return {"median_ms": float(np.median(t)), "mean_ms": float(t.mean()), "std_ms": float(t.std()),
            "p95_ms": float(np.percentile(t, 95)), "min_ms": float(t.min()), "runs": int(t.size)}


class OnnxRuntimeLatency:
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

    def latency(self, genome: Any, arch: Architecture, onnx_path: Path) -> LatencyResult:
        from schedules.isolated import IsolatedTimingError, TimingWorker
        from schedules.measure import Protocol
        from schedules.targets import host_threads

        threads = self.threads or host_threads()
        if self._worker is None:
            self._worker = TimingWorker()
        try:
            m = self._worker.onnxruntime(onnx_path, Protocol(warmup=self.warmup, repeats=self.repeats), threads)
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


def make_latency_backend(cfg: RunConfig, space, supernet, run) -> tuple[Any, Any, Any]:
    """(genome space, genome -> Architecture, latency backend) for the run's mode."""
    if cfg.mode == "baseline" and cfg.baseline_latency == "onnxruntime":
        t = cfg.tuning
        return space, (lambda g: g), OnnxRuntimeLatency(t.warmup, t.repeats, t.threads)
    from nacos import tvm_latency

    return tvm_latency.make_backend(cfg, space, supernet, run)
