"""TVM latency backends of the three search modes (all measured by `schedules`' protocol, each result
checked against onnxruntime before its latency counts).

- baseline: one fixed default `ScheduleConfig` for every conv / dense layer (`GlobalPolicy`), the way
  a compiler-agnostic HW-NAS measures: no per-architecture tuning.
- two-stage: MetaSchedule tunes the candidate's workloads the shared database has not seen, then the
  candidate is compiled with the database's best records.
- one-stage: the genome's own per-layer `ScheduleConfig`s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archspace.architecture import Architecture
from archspace.layers import conv_layers
from nacos.config import RunConfig
from nacos.errors import DiskFullError, says_disk_full
from nacos.evaluation import LatencyResult
from nacos.tuning_worker import HOST_CPUS, TuningJob, run_tuning_worker  # HOST_CPUS: read before TVM pins a core

__all__ = ["make_backend", "make_target", "DefaultScheduleLatency", "TunedLatency", "GenomeScheduleLatency", "slot_keys"]


def slot_keys(arch: Architecture, space) -> dict[str, tuple]:
    """slot -> the layer key `schedules.explicit_compile.layer_key` gives the compiled function."""
    keys = {}
    for layer in conv_layers(arch, space):
        if layer.kind == "dense":
            keys[layer.slot] = ("dense", layer.out_channels, 1, 1, layer.in_channels, 1)
        else:
            reduction = 1 if layer.kind == "depthwise_conv2d" else layer.in_channels // layer.groups
            keys[layer.slot] = (layer.kind, layer.out_channels, layer.out_size, layer.out_size, reduction, layer.kernel)
    return keys


class _TVMBackend:
    name = "tvm"

    def __init__(self, cfg: RunConfig) -> None:
        from schedules.measure import Protocol

        self.cfg = cfg
        self.target, self.rpc = make_target(cfg.target, cfg.tuning.threads)
        self.protocol = Protocol(warmup=cfg.tuning.warmup, repeats=cfg.tuning.repeats)

    def _measure(self, compiled) -> LatencyResult:
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
        return LatencyResult(m.median_ms, details=details)

    def _onnxruntime_beside(self, onnx_path: Path, tvm_ms: float) -> dict[str, Any]:
        """onnxruntime's latency of the same model on this CPU, same protocol and thread count, timed in a
        long-lived child process (`schedules.isolated.TimingWorker`): TVM's thread pool pins this process's
        threads to one core, so onnxruntime timed here would run on one core. What a user would deploy is
        the faster of the two; the row says which. A failure here costs the figure, never the candidate."""
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
        return {"onnxruntime_ms": m.median_ms, "onnxruntime_std_ms": m.std_ms, "onnxruntime_p95_ms": m.p95_ms,
                "tvm_over_onnxruntime": tvm_ms / m.median_ms if m.median_ms > 0 else float("nan"),
                "deploy_with": "tvm" if tvm_ms <= m.median_ms else "onnxruntime",
                "deploy_ms": min(tvm_ms, m.median_ms)}

    def _compile_scheduled(self, onnx_path: Path, choose) -> tuple[Any, dict[str, str]]:
        """Import, schedule conv / dense functions by `choose`, build: a `Compiled` and the notes."""
        import time

        import tvm

        from schedules.explicit_compile import schedule_module
        from schedules.frontend import import_onnx, onnx_input_shapes
        from schedules.measure import Compiled

        start = time.perf_counter()
        mod, notes = schedule_module(import_onnx(onnx_path), choose)
        with tvm.target.Target(self.target):
            executable = tvm.compile(mod, target=self.target)
        return Compiled(Path(onnx_path), executable, self.target, onnx_input_shapes(onnx_path),
                        seconds=time.perf_counter() - start), notes


class DefaultScheduleLatency(_TVMBackend):
    """Every conv / dense layer under one fixed `ScheduleConfig` (clamped to fit each layer)."""

    name = "tvm-default-schedule"

    def latency(self, genome: Any, arch: Architecture, onnx_path: Path) -> LatencyResult:
        from schedules.explicit_space import GlobalPolicy, LayerShape
        from schedules.records import ScheduleConfig

        policy = GlobalPolicy(ScheduleConfig())
        compiled, _ = self._compile_scheduled(onnx_path, lambda name, key: policy.for_layer(LayerShape(*key[:5])))
        return self._measure(compiled)


class GenomeScheduleLatency(_TVMBackend):
    """The one-stage genome's config per layer; layers of one shape share the first slot's config."""

    name = "tvm-genome-schedules"

    def __init__(self, cfg: RunConfig, space) -> None:
        super().__init__(cfg)
        self.space = space

    def latency(self, genome: Any, arch: Architecture, onnx_path: Path) -> LatencyResult:
        from schedules.explicit_space import GlobalPolicy, LayerShape

        by_key: dict[tuple, Any] = {}
        keys = slot_keys(arch, self.space)
        for slot, config in genome.schedules:
            by_key.setdefault(keys[slot], config)

        def choose(name: str, key: tuple):
            config = by_key.get(key)
            # a config that does not fit its layer is clamped to fit, as a global policy would be
            return None if config is None else GlobalPolicy(config).for_layer(LayerShape(*key[:5]))

        compiled, notes = self._compile_scheduled(onnx_path, choose)
        result = self._measure(compiled)
        unscheduled = sorted(n for n, v in notes.items() if v != "ok")
        return LatencyResult(result.ms, result.ok, result.reason,
                             {**result.details, "unscheduled_layers": len(unscheduled)})


class TunedLatency(_TVMBackend):
    """Two-stage: tune the unseen workloads into the shared database, then measure with its best records.

    The tuning runs in a worker process (`nacos.tuning_worker`): a segfault, an out-of-memory kill or a
    hang of TVM there (killed after ``tuning.timeout_s``) fails this candidate with the reason, and the
    search goes on. Measuring stays here: it is short, and `schedules.measure` checks each result."""

    name = "tvm-tuned"

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        from schedules.database import TuningDatabase

        self.db = TuningDatabase(Path(cfg.tuning.database))

    def _job(self, onnx_path: Path):
        t = self.cfg.tuning
        return TuningJob(onnx=str(Path(onnx_path).resolve()), database=str(self.db.path.resolve()),
                         target=str(self.target), searcher=t.searcher, metaschedule_trials=t.metaschedule_trials,
                         trials_per_workload=t.trials_per_workload, seed=self.cfg.seed,
                         rpc=self.cfg.target if self.rpc is not None else "", threads=t.threads,
                         memory_mb=t.worker_memory_mb, cpus=HOST_CPUS)

    def latency(self, genome: Any, arch: Architecture, onnx_path: Path) -> LatencyResult:
        import time

        from schedules.frontend import import_onnx
        from schedules.measure import compile
        from schedules.tuner import plan_tuning

        t = self.cfg.tuning
        start = time.perf_counter()
        self.db.refresh()  # what other processes (earlier workers, other searches) committed meanwhile
        todo, reused = plan_tuning(import_onnx(onnx_path), self.db, self.target, explicit=t.searcher != "metaschedule")
        if not todo:  # nothing to tune: no worker (its start alone costs seconds: TVM's import)
            report = {"tuned": 0, "reused": len(reused), "hit_rate": 1.0, "trials": 0,
                      "seconds": time.perf_counter() - start, "faults": 0}
            worker_seconds = 0.0
        else:
            outcome = run_tuning_worker(self._job(onnx_path), t.timeout_s)
            # what the worker committed (or, killed, left behind: a torn last line is moved aside here)
            self.db.refresh()
            if not outcome.ok:
                if says_disk_full(outcome.reason):  # not the candidate's fault: stop, keep its row unfinished
                    raise DiskFullError(f"tuning worker: {outcome.reason}")
                return LatencyResult(float("nan"), ok=False, reason=outcome.reason,
                                     details={"tuning_worker_seconds": outcome.seconds,
                                              "tuning_worker_returncode": outcome.returncode,
                                              "untuned_tasks": len(todo), "reused_tasks": len(reused)})
            report, worker_seconds = outcome.report, outcome.seconds
        result = self._measure(compile(onnx_path, self.db, self.target))
        return LatencyResult(result.ms, result.ok, result.reason,
                             {**result.details, "tuned_tasks": report["tuned"], "reused_tasks": report["reused"],
                              "hit_rate": report["hit_rate"], "trials": report["trials"],
                              "tuning_seconds": report["seconds"], "tuning_faults": report["faults"],
                              "tuning_worker_seconds": worker_seconds})


def make_target(spec: str, threads: int = 0) -> tuple[Any, Any]:
    """(TVM target, RPC device or None) of a config's ``target``: llvm (this CPU), cuda, or
    rpc://HOST:PORT/KEY (code compiled for this CPU's architecture, measured on the device)."""
    from schedules.targets import RpcTarget, cuda_target, host_target

    if spec == "llvm":
        return host_target(threads or None), None
    if spec == "cuda":
        return cuda_target(), None
    rest = spec[len("rpc://"):]
    hostport, _, key = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not key:
        from nacos.errors import ConfigError

        raise ConfigError(f"target: {spec!r} is not rpc://HOST:PORT/KEY")
    return host_target(threads or None), RpcTarget(host, int(port), key)


def make_backend(cfg: RunConfig, space, supernet, run) -> tuple[Any, Any, Any]:
    """(genome space, genome -> Architecture, backend) for `cfg.mode`."""
    if cfg.mode == "baseline":
        return space, (lambda g: g), DefaultScheduleLatency(cfg)
    if cfg.mode == "two-stage":
        return space, (lambda g: g), TunedLatency(cfg)
    from nacos.cospace import CoSpace
    from schedules.explicit_space import ScheduleSpace

    return CoSpace(space, ScheduleSpace()), (lambda g: g.arch), GenomeScheduleLatency(cfg, space)
