"""Scoring one candidate: accuracy, latency, memory, size, energy; hard budgets reject, soft ones flag.

The order is cheapest first, so that a candidate a hard budget rejects costs as little as possible:
structure and memory (from the exported graph) before accuracy, accuracy before latency (which may
mean tuning). Expected failures (an export that does not check, a build that fails) are returned as
data with a reason; the search records them and goes on.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from archspace.architecture import Architecture
from nacos.config import RunConfig
from nacos.errors import DiskFullError, disk_full_cause
from nacos_base.records import Evaluation, Status

__all__ = ["Evaluation", "LatencyResult", "LatencyBackend", "CandidateEvaluator", "budget_flags"]

MB = 1024 * 1024


@dataclass(frozen=True)
class LatencyResult:
    """What a latency backend found for one candidate. `ok=False` carries the reason."""

    ms: float
    ok: bool = True
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class LatencyBackend(Protocol):
    """Measures (or looks up) the latency of one candidate's exported model."""

    name: str

    def latency(self, genome: Any, arch: Architecture, onnx_path: Path) -> LatencyResult: ...


def budget_flags(cfg: RunConfig, metrics: dict[str, Any]) -> dict[str, bool]:
    """Soft budgets: one violation flag per reporting budget (as the edge-optimization seed does)."""
    flags: dict[str, bool] = {}
    peak = metrics.get("peak_memory_mb")
    for b in cfg.budgets.memory_budgets_mb:
        flags[f"over_memory_{b:g}mb"] = peak is not None and peak > b
    lat = metrics.get("latency_ms")
    for b in cfg.budgets.latency_budgets_ms:
        flags[f"over_latency_{b:g}ms"] = lat is not None and lat > b
    if cfg.budgets.params_budget is not None:
        flags["over_params_budget"] = metrics.get("params", 0) > cfg.budgets.params_budget
    return flags


class CandidateEvaluator:
    """Turns a genome into an `Evaluation` with the run's supernet, data and latency backend."""

    def __init__(self, cfg: RunConfig, artifacts_dir: Path, supernet: Any, dataset: Any,
                 latency: LatencyBackend, arch_of: Callable[[Any], Architecture] = lambda g: g,
                 energy: Callable[[dict[str, Any]], dict[str, float]] | None = None,
                 screen: Any = None) -> None:
        self.cfg = cfg
        self.artifacts_dir = Path(artifacts_dir)
        self.supernet = supernet
        self.dataset = dataset
        self.latency_backend = latency
        self.arch_of = arch_of
        self.energy = energy
        #: two-stage: a screen (`nacos.search.table_screen.TableScreen`, `nacos.search.screening.LatencyScreen`)
        #: that may skip the build (and tuning) of a candidate that cannot enter the front
        self.screen = screen

    def __call__(self, genome: Any) -> Evaluation:
        t0 = time.time()
        try:
            status, metrics, reason = self._evaluate(genome)
        except Exception as exc:  # an unexpected failure of one candidate must not stop the search
            if disk_full_cause(exc) is not None:
                # ... unless the disk is full: that is not the candidate's fault, and recording it as failed
                # would lose it for good. Its row stays unfinished and is evaluated again on resume.
                raise DiskFullError(f"candidate {getattr(genome, 'id', '?')}: {disk_full_cause(exc)}") from exc
            status, metrics = Status.FAILED, {}
            reason = f"{type(exc).__name__}: {exc}".strip()[:500]
            metrics["traceback"] = traceback.format_exc(limit=4)[-2000:]
        return Evaluation(status, metrics, reason, time.time() - t0)

    def _evaluate(self, genome: Any) -> tuple[Status, dict[str, Any], str]:
        from archspace.accuracy import evaluate
        from archspace.stats import PRECISION_BYTES, onnx_layer_stats, peak_memory

        cfg = self.cfg
        arch = self.arch_of(genome)
        # Step 1. Export (checked) and read the structure off the graph.
        onnx_path = self.artifacts_dir / arch.id / "model.onnx"
        if not onnx_path.exists():
            from archspace.export import export_onnx

            export_onnx(arch, onnx_path, batch=cfg.batch, supernet=self.supernet)
        layers = onnx_layer_stats(onnx_path)
        bytes_per = PRECISION_BYTES[cfg.precision]
        peaks = {p: peak_memory(onnx_path, p) for p in PRECISION_BYTES}  # every precision: the report's trade-offs
        peak = peaks[cfg.precision]
        params = sum(s.params for s in layers)
        metrics: dict[str, Any] = {
            "arch_id": arch.id, "macs": sum(s.macs for s in layers), "params": params,
            "param_mb": params * bytes_per / MB, "peak_memory_mb": peak.bytes / MB,
            "peak_memory_node": peak.node, "precision": cfg.precision, "batch": cfg.batch,
        }
        for p in PRECISION_BYTES:
            metrics[f"param_mb_{p}"] = params * PRECISION_BYTES[p] / MB
            metrics[f"peak_memory_mb_{p}"] = peaks[p].bytes / MB
        # Step 2. The hard memory budgets reject before anything costly runs.
        for limit, key, what in (
                (cfg.budgets.active_memory_budget_mb, "peak_memory_mb", "peak activation memory {:.3f} MB over the "
                 "active budget {:g} MB"),
                (cfg.budgets.param_memory_budget_mb, "param_mb", f"weights {{:.3f}} MB ({cfg.precision}) over the "
                 "parameter-memory budget {:g} MB")):
            if limit is not None and metrics[key] > limit:
                metrics.update(budget_flags(cfg, metrics))
                return Status.REJECTED, metrics, what.format(metrics[key], limit)
        # Step 3. Accuracy with inherited weights.
        metrics["accuracy"] = evaluate(self.supernet, arch, self.dataset)
        if cfg.precision == "int8":
            # int8 runs through onnxruntime's quantized model (nacos.search.int8): its own accuracy counts,
            # and its latency is measured on it
            from nacos.search.int8 import onnx_accuracy, quantize_candidate

            onnx_path = quantize_candidate(self.supernet, arch, self.dataset, onnx_path.parent)
            metrics["accuracy_fp32"] = metrics["accuracy"]
            metrics["accuracy"] = onnx_accuracy(onnx_path, self.dataset, arch.resolution)
        # Step 3b. Two-stage: is this candidate worth its build and tuning? (the latency table or cost model screens)
        decision = None
        if self.screen is not None:
            decision = self.screen.check(arch, metrics, onnx_path=onnx_path)
            metrics.update(decision.predicted)
            if not decision.passed:
                metrics["screened"] = decision.priced_source == "predicted"
                if decision.priced_ms is None:
                    metrics.update(budget_flags(cfg, metrics))
                    return Status.REJECTED, metrics, f"screened: {decision.reason}"
        # Step 4. Latency (tuned, default schedule, or a reference runtime: the backend decides), or, for a
        # candidate the screen priced (dominated, by its prediction; deployed with onnxruntime, measured by
        # it), that latency: nothing is built.
        if decision is not None and decision.priced_ms is not None:
            lat = LatencyResult(float(decision.priced_ms))
            metrics["latency_source"] = decision.priced_source
            metrics["screen_reason"] = decision.reason
            if decision.priced_source == "onnxruntime":
                metrics["latency_deploy_with"] = "onnxruntime"
        else:
            lat = self.latency_backend.latency(genome, arch, onnx_path)
            metrics.update({f"latency_{k}": v for k, v in lat.details.items() if not isinstance(v, (dict, list))})
        metrics["latency_backend"] = self.latency_backend.name
        if not lat.ok:
            return Status.FAILED, metrics, f"latency: {lat.reason}"
        metrics["latency_ms"] = lat.ms
        if isinstance(lat.details.get("energy_mj"), (int, float)):
            metrics["energy_mj"] = float(lat.details["energy_mj"])  # the backend prices energy (an accelerator)
            metrics["energy_source"] = lat.details.get("measured_by", metrics["latency_backend"])
        elif self.energy is not None:
            metrics.update(self.energy({**metrics, "layers": [s.to_dict() for s in layers]}))
            metrics["energy_source"] = "costmodels.energy (operation-level)"
        if isinstance(lat.details.get("accel_area"), (int, float)):
            metrics["accel_area"] = float(lat.details["accel_area"])  # a sized accelerator (accelerator_sizing)
        if isinstance(metrics.get("energy_mj"), (int, float)) and metrics.get("latency_unit") != "MMAC":
            metrics["edp"] = metrics["energy_mj"] * lat.ms   # mJ x ms, on every backend that times
        metrics.update(budget_flags(cfg, metrics))
        # Step 5. The hard latency, energy and EDP budgets.
        if cfg.budgets.latency_ms is not None and lat.ms > cfg.budgets.latency_ms:
            return Status.REJECTED, metrics, f"latency {lat.ms:.4f} ms over the budget {cfg.budgets.latency_ms:g} ms"
        for key, unit in (("energy_mj", "mJ"), ("edp", "mJ x ms"), ("accel_area", "area units")):
            limit = getattr(cfg.budgets, key)
            if limit is not None and metrics.get(key) is None:
                return Status.REJECTED, metrics, f"{key}: no {key} for this candidate, and a budget on it"
            if limit is not None and metrics[key] > limit:
                return Status.REJECTED, metrics, f"{key} {metrics[key]:.4g} {unit} over the budget {limit:g} {unit}"
        return Status.OK, metrics, ""
