"""What the TVM backends share: the target of a config, the measuring protocol, the timing of a
`schedules.measure.Compiled` (its output checked against onnxruntime first) and onnxruntime timed
beside it, and the build of a model with conv / dense functions scheduled by a chooser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archspace.architecture import Architecture
from archspace.layers import conv_layers
from nacos.backends.base import Backend, Built
from nacos.search.evaluation import LatencyResult

__all__ = ["TVMBackend", "make_target", "slot_keys"]


def make_target(spec: str, threads: int = 0) -> tuple[Any, Any]:
    """(TVM target, RPC device or None) of a config's ``target``: llvm (this CPU), cuda, or
    ``rpc://HOST:PORT/KEY[?mtriple=...&mcpu=...]`` (code compiled for the device the URL's query names,
    else for this CPU's architecture; measured on the device: `schedules.targets.parse_rpc_spec`)."""
    from nacos.errors import ConfigError
    from schedules.errors import ScheduleError
    from schedules.targets import RpcTarget, cuda_target, host_target, rpc_device_target

    if spec == "llvm":
        return host_target(threads or None), None
    if spec == "cuda":
        return cuda_target(), None
    try:
        return rpc_device_target(spec, threads or None), RpcTarget.from_url(spec)
    except ScheduleError as exc:
        raise ConfigError(str(exc)) from exc


def model_io(onnx_path: Path | str, graph: Any = None) -> tuple[int, int]:
    """(input channels, classes) of an exported candidate: what its data set has, read off the model (the
    genotype does not hold them: a user's supernet may take 3 channels and 4 classes). `graph`: the
    model's graph when the caller has loaded it already."""
    if graph is None:
        import onnx

        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    channels = graph.input[0].type.tensor_type.shape.dim[1].dim_value
    classes = graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    return int(channels) or 1, int(classes) or 10


def slot_keys(arch: Architecture, space, in_channels: int = 1, num_classes: int = 10) -> dict[str, tuple]:
    """slot -> the layer key `schedules.explicit.compile.layer_key` gives the compiled function, for a
    network of `in_channels` inputs and `num_classes` outputs (`model_io` reads them off the model)."""
    keys = {}
    for layer in conv_layers(arch, space, in_channels, num_classes):
        if layer.kind == "dense":
            keys[layer.slot] = ("dense", layer.out_channels, 1, 1, layer.in_channels, 1)
        else:
            reduction = 1 if layer.kind == "depthwise_conv2d" else layer.in_channels // layer.groups
            keys[layer.slot] = (layer.kind, layer.out_channels, layer.out_size, layer.out_size, reduction, layer.kernel)
    return keys


def _model_key(onnx_path: Path | str) -> tuple[str, int]:
    """Which exported model a path holds now: its resolved path and modification time."""
    path = Path(onnx_path).resolve()
    return str(path), path.stat().st_mtime_ns


def configs_by_layer_key(genome: Any, keys: dict[str, tuple]) -> dict[tuple, Any]:
    """layer key -> the one-stage genome's config of the first slot with that key (`keys`: `slot_keys`)."""
    by_key: dict[tuple, Any] = {}
    for slot, config in genome.schedules:
        by_key.setdefault(keys[slot], config)
    return by_key


class TVMBackend(Backend):
    """A backend whose artifact is a `schedules.measure.Compiled`; subclasses say how it is scheduled."""

    name = "tvm"

    def __init__(self, cfg: Any) -> None:
        from schedules.measure import Protocol

        self.cfg = cfg
        self.target, self.rpc = make_target(cfg.target, cfg.tuning.threads)
        self.protocol = Protocol(warmup=cfg.tuning.warmup, repeats=cfg.tuning.repeats)

    def describe(self, genome: Any) -> dict[str, Any]:
        """The schedules this backend builds `genome` with, as plain JSON (``nacos export``'s schedules.json)."""
        return {"source": self.name}

    def _built(self, compiled: Any, details: dict[str, Any] | None = None, seconds: float | None = None) -> Built:
        return Built(True, seconds=compiled.seconds if seconds is None else seconds, artifact=compiled,
                     details=dict(details or {}))

    def _measure(self, built: Built) -> LatencyResult:
        result = self._time(built.artifact)
        if not built.details:
            return result
        return LatencyResult(result.ms, result.ok, result.reason, {**result.details, **built.details})

    def _time(self, compiled: Any) -> LatencyResult:
        """Time a `schedules.measure.Compiled` (its output checked against onnxruntime first), and
        onnxruntime beside it (in a process of its own: see `_onnxruntime_beside`)."""
        from schedules.measure import measure

        m = measure(compiled, self.protocol, threads=self.cfg.tuning.threads or None, rpc=self.rpc)
        details = {"median_ms": m.median_ms, "std_ms": m.std_ms, "p95_ms": m.p95_ms, "runs": m.runs,
                   "build_seconds": compiled.seconds, "measured_by": m.backend}   # tvm | tvm-rpc
        if self.rpc is not None:
            details["device"] = self.rpc.url
        if not m.ok:
            return LatencyResult(float("nan"), ok=False, reason=m.error, details=details)
        details.update(self._onnxruntime_beside(compiled.onnx_path, m.median_ms))
        if self.cfg.tuning.search_latency == "deployed" and isinstance(details.get("deploy_ms"), float):
            return LatencyResult(details["deploy_ms"], details=details)   # the better of the two runtimes
        return LatencyResult(m.median_ms, details=details)

    def onnxruntime_timing(self, onnx_path: Path) -> dict[str, Any]:
        """onnxruntime's latency of the model at `onnx_path` on this CPU, same protocol and thread count, timed
        in a long-lived child process (`schedules.isolated.TimingWorker`): TVM's thread pool pins this
        process's threads to one core, so onnxruntime timed here would run on one core. ``{"onnxruntime_ms",
        "onnxruntime_std_ms"}``, ``{"onnxruntime_error"}`` when it failed (a failure costs the figure, never
        the candidate), ``{}`` when the config times no onnxruntime or the target is an RPC device. The
        figure is handed to the next build of the same model (`_onnxruntime_beside`), once, so a screen that
        timed it first (`nacos.search.table_screen`) and the build beside it pay one timing."""
        out = self._time_onnxruntime(onnx_path)
        self._ort_handed = (_model_key(onnx_path), out)
        return dict(out)

    def _time_onnxruntime(self, onnx_path: Path) -> dict[str, Any]:
        if not self.cfg.tuning.time_onnxruntime or self.rpc is not None:  # an RPC device has no onnxruntime here
            return {}
        from schedules.isolated import TimingWorker
        from schedules.targets import host_threads

        try:
            if getattr(self, "_ort_worker", None) is None:
                self._ort_worker = TimingWorker()
            m = self._ort_worker.onnxruntime(onnx_path, self.protocol, self.cfg.tuning.threads or host_threads())
        except Exception as exc:  # noqa: BLE001 - the worker died or timed out: the next call starts another
            self._ort_worker = None
            return {"onnxruntime_error": f"{type(exc).__name__}: {exc}"[:300]}
        if not m.ok:
            return {"onnxruntime_error": str(m.error)[:300]}
        return {"onnxruntime_ms": m.median_ms, "onnxruntime_std_ms": m.std_ms}

    def _onnxruntime_beside(self, onnx_path: Path, tvm_ms: float) -> dict[str, Any]:
        """onnxruntime's timing of the model (the one `onnxruntime_timing` handed over for it, else a new one)
        beside its TVM latency `tvm_ms`, and which of the two a user would deploy with (the faster:
        ``deploy_with``, ``deploy_ms``)."""
        handed, self._ort_handed = getattr(self, "_ort_handed", None), None
        out = (dict(handed[1]) if handed is not None and handed[0] == _model_key(onnx_path)
               else self._time_onnxruntime(onnx_path))
        ort = out.get("onnxruntime_ms")
        if not isinstance(ort, float):
            return out
        return {**out, "tvm_over_onnxruntime": tvm_ms / ort if ort > 0 else float("nan"),
                "deploy_with": "tvm" if tvm_ms <= ort else "onnxruntime", "deploy_ms": min(tvm_ms, ort)}

    def _compile_scheduled(self, onnx_path: Path, choose) -> tuple[Any, dict[str, str]]:
        """Import, schedule conv / dense functions by `choose`, build: a `Compiled` and the notes."""
        from schedules.measure import compile_scheduled

        return compile_scheduled(onnx_path, choose, self.target)
