"""Latency backends, one per way of running a candidate, chosen by the search mode.

- `OnnxRuntimeLatency`: onnxruntime on this CPU (the "what users run instead" reference; the
  baseline's optional latency source).
- TVM backends (`schedules/`): the baseline's one fixed default schedule, the two-stage search's
  tuned schedules from the shared database, and the one-stage genome's per-layer schedules.

Every backend measures by one protocol (warm-up runs, then repeats; the median counts) and returns a
`LatencyResult`; a failure is a result with a reason, not an exception.
"""

from __future__ import annotations

import time
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
    """Median latency of onnxruntime (CPU provider, `threads` intra-op threads) on random input."""

    name = "onnxruntime"

    def __init__(self, warmup: int = 5, repeats: int = 30, threads: int = 0) -> None:
        self.warmup, self.repeats, self.threads = warmup, repeats, threads

    def latency(self, genome: Any, arch: Architecture, onnx_path: Path) -> LatencyResult:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        feeds = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(np.float32)
                 for i in session.get_inputs()}
        for _ in range(self.warmup):
            session.run(None, feeds)
        times = []
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            session.run(None, feeds)
            times.append((time.perf_counter() - t0) * 1e3)
        stats = summarize_times(times)
        return LatencyResult(stats["median_ms"], details={**stats, "warmup": self.warmup})


def make_latency_backend(cfg: RunConfig, space, supernet, run) -> tuple[Any, Any, Any]:
    """(genome space, genome -> Architecture, latency backend) for the run's mode."""
    if cfg.mode == "baseline" and cfg.baseline_latency == "onnxruntime":
        t = cfg.tuning
        return space, (lambda g: g), OnnxRuntimeLatency(t.warmup, t.repeats, t.threads)
    from nacos import tvm_latency

    return tvm_latency.make_backend(cfg, space, supernet, run)
