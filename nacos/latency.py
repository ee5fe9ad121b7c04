"""The latency backend of a run's mode (`make_latency_backend`, as the mode's record names it), and layer
records for the analytical cost models. The backends themselves live in `nacos.backends` (one module
each, a registry by name); `OnnxRuntimeLatency` stays importable here under its old name.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from nacos.backends.onnxruntime import OnnxRuntimeLatency
from nacos.config import RunConfig
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


def make_latency_backend(cfg: RunConfig, space, supernet, run) -> tuple[Any, Any, Any]:
    """(genome space, genome -> Architecture, latency backend) for the run's mode: what its record in
    `nacos.modes.MODES` names (`supernet` and `run` are unused, kept for the callers)."""
    from nacos.backends.registry import get_backend
    from nacos.modes import get_mode

    mode = get_mode(cfg.mode)
    return mode.genome_space(space), mode.arch_of, get_backend(mode.backend_name(cfg.baseline_latency), cfg, space)
