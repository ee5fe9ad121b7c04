"""The work behind `nacos tune` and `nacos eval`: read the model a user names on the command line (an
ONNX file or an architecture JSON), tune it into the shared database and measure it beside onnxruntime,
or score one architecture the way the search scores a candidate.

Every check of the user's input runs before anything is written (no database directory, no file),
so bad input costs nothing but its message (`NacosError` / `ArchSpaceError`: exit code 2). The
measuring itself is the search's own: `nacos.backends` latency backends and
`nacos.search.evaluation.CandidateEvaluator`, so a figure printed here is the figure a search would record.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacos.errors import NacosError

__all__ = [
    "LATENCY_BACKENDS",
    "ModelInput",
    "Stages",
    "check_model",
    "check_onnx_file",
    "dumps",
    "evaluate_architecture",
    "read_architecture_file",
    "read_space",
    "tune_model",
]

#: `nacos eval --latency` choice -> the latency backend (a name in `nacos.backends.registry.BACKENDS`)
#: that measures it: the backend of the baseline (either option) or of the two-stage search
LATENCY_BACKENDS = {"onnxruntime": "onnxruntime", "tvm-default": "tvm-default-schedule", "tvm-tuned": "tvm-tuned"}


class Stages:
    """A progress bar over the named stages of one long command (stderr, with tqdm's elapsed time and
    ETA); silent when `enabled` is False (--quiet, --json). Starts drawing only once the input is
    checked, so a refused input prints its message alone."""

    def __init__(self, names: Sequence[str], enabled: bool, desc: str) -> None:
        self.bar = None
        self.current: str | None = None
        if enabled:
            import sys

            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(names), desc=desc, unit="stage", file=sys.stderr, dynamic_ncols=True)

    def start(self, name: str) -> None:
        """Finish the current stage (if any) and show `name` as running."""
        self.done()
        self.current = name
        if self.bar is not None:
            self.bar.set_postfix_str(name)

    def done(self) -> None:
        if self.current is not None and self.bar is not None:
            self.bar.update(1)
        self.current = None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.start(name)
        yield
        self.done()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _StagedLatency:
    """A latency backend that marks the start of its stage on the progress bar (the evaluator calls
    it after export and accuracy)."""

    def __init__(self, backend: Any, stages: Stages) -> None:
        self.inner, self.stages, self.name = backend, stages, backend.name

    def latency(self, genome: Any, arch: Any, onnx_path: Path) -> Any:
        self.stages.start(f"latency ({self.name})")
        return self.inner.latency(genome, arch, onnx_path)


def read_space(spec: str | None) -> Any:
    """The `ArchSpace` of ``--space``: None (the default space), a SpaceConfig JSON file, or inline JSON."""
    from archspace.space import ArchSpace, SpaceConfig

    if spec is None:
        return ArchSpace()
    text = spec
    if not spec.lstrip().startswith("{"):
        path = Path(spec)
        if not path.is_file():
            raise NacosError(f"--space: {spec}: no such file (give a SpaceConfig JSON file or inline JSON)")
        text = path.read_text()
    return ArchSpace(SpaceConfig.from_json(text))


def read_architecture_file(path: Path, space: Any) -> Any:
    """The `Architecture` in the JSON file at `path`, checked against `space` (errors name the file
    and the field)."""
    from archspace.architecture import Architecture
    from archspace.errors import ArchSpaceError

    if not path.is_file():
        raise NacosError(f"{path}: no such file")
    try:
        arch = Architecture.from_json(path.read_bytes())
        space.check(arch)
    except ArchSpaceError as exc:
        raise NacosError(f"{path}: {exc}") from exc
    return arch


def check_onnx_file(path: Path) -> None:
    """`onnx.checker` (full check, shapes inferred) on the file; its first line of complaint names the problem."""
    import onnx

    if not path.is_file():
        raise NacosError(f"{path}: no such file")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # ValidationError, DecodeError, InferenceError: all mean "not a valid model"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise NacosError(f"{path}: not a valid ONNX model (onnx.checker: {first})") from exc


@dataclass(frozen=True)
class ModelInput:
    """A checked MODEL argument: an ONNX file (`onnx_path`, and the architecture its metadata names,
    if any) or an architecture JSON (`arch`, `onnx_path` None until `materialize` exports it)."""

    onnx_path: Path | None
    arch: Any
    batch: int

    def materialize(self, space: Any, workdir: Path, supernet: Any = None) -> ModelInput:
        """The same model with an ONNX file: an architecture is exported into `workdir` (random
        weights unless `supernet` is given: latency needs no trained weights)."""
        if self.onnx_path is not None:
            return self
        from archspace.export import export_onnx

        path = export_onnx(self.arch, workdir / f"{self.arch.id}.onnx", batch=self.batch, supernet=supernet,
                           space=space)
        return ModelInput(path, self.arch, self.batch)


def check_model(path: Path, space: Any, batch: int | None = None) -> ModelInput:
    """Check the MODEL argument (writes nothing): an ARCH.json must parse and lie in `space`; a
    MODEL.onnx must pass onnx.checker and keep its own batch (`batch` must then agree with it)."""
    from archspace.export import read_architecture
    from schedules.frontend import onnx_input_shapes

    path = Path(path)
    if batch is not None and batch < 1:
        raise NacosError(f"--batch: must be >= 1, got {batch}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return ModelInput(None, read_architecture_file(path, space), batch or 1)
    if suffix != ".onnx":
        raise NacosError(f"{path}: expected MODEL.onnx or ARCH.json (an architecture's JSON)")
    check_onnx_file(path)
    try:
        shapes = onnx_input_shapes(path)
        own = int(next(iter(shapes.values()))[0]) if shapes else 1
    except Exception as exc:  # ScheduleError (a dynamic non-batch dimension) and the like
        raise NacosError(f"{path}: {exc}") from exc
    if batch is not None and batch != own:
        raise NacosError(f"{path}: the model's batch is {own}; --batch {batch} applies to ARCH.json inputs "
                         f"(re-export the model at batch {batch})")
    try:
        arch = read_architecture(path)
    except Exception:  # noqa: BLE001 - a foreign model's metadata is not ours to judge
        arch = None
    return ModelInput(path, arch, own)


def _run_config(*, target: str = "llvm", database: str | None = None, searcher: str = "auto",
                trials_per_workload: int = 8, threads: int = 0, warmup: int = 5, repeats: int = 30, batch: int = 1,
                checkpoint: str = "default", data: str = "mnist5k", space: dict[str, Any] | None = None,
                seed: int = 0, metaschedule_trials: int = 32) -> Any:
    """A `RunConfig` carrying the command's settings, so that the search's own backends measure
    (validated there: a bad --target is a `ConfigError` naming the option). Its mode is the default
    one: the commands name their backend, and no backend reads the mode."""
    from nacos.config import TuningConfig, config_from_dict

    tuning = {"searcher": searcher, "trials_per_workload": trials_per_workload, "threads": threads,
              "metaschedule_trials": metaschedule_trials,
              "warmup": warmup, "repeats": repeats, "database": database or TuningConfig.database}
    return config_from_dict({"target": target, "batch": batch, "seed": seed,
                             "checkpoint": checkpoint, "data": data, "space": space or {}, "tuning": tuning})


def tune_model(model: Path, *, database: str | None = None, searcher: str = "auto", trials_per_workload: int = 8,
               metaschedule_trials: int = 32,
               target: str = "llvm", threads: int = 0, batch: int | None = None, space: str | None = None,
               warmup: int = 5, repeats: int = 30, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Tune the workloads of `model` (MODEL.onnx or ARCH.json) that the database has not seen, compile
    with the database's best records, and time it beside onnxruntime by one protocol. Returns the
    figures (tasks, tuned, reused, hit rate, trials, tuning seconds, tuned ms, onnxruntime ms)."""
    from nacos.config import TuningConfig

    # Step 1. Every check of the input, before anything is written.
    arch_space = read_space(space)
    cfg = _run_config(target=target, database=database, searcher=searcher,
                      trials_per_workload=trials_per_workload, threads=threads, warmup=warmup, repeats=repeats,
                      space=arch_space.config.to_dict(), seed=seed, metaschedule_trials=metaschedule_trials)
    checked = check_model(Path(model), arch_space, batch)
    from nacos.backends.tvm import make_target

    make_target(cfg.target, threads)  # a malformed rpc:// target is refused here, before the database exists
    stages = Stages(["prepare model", "tune unseen workloads, compile, measure", "measure onnxruntime"],
                    progress, "tune")
    try:
        with tempfile.TemporaryDirectory(prefix="nacos-tune-") as tmp:
            with stages.stage("prepare model"):
                model_in = checked.materialize(arch_space, Path(tmp))
            # Step 2. Tune + compile + measure: the two-stage search's backend, unchanged.
            from nacos.backends.tvm_tuned import TunedLatency
            from schedules.measure import reference_onnxruntime

            with stages.stage("tune unseen workloads, compile, measure"):
                backend = TunedLatency(cfg)
                tuned = backend.latency(None, model_in.arch, model_in.onnx_path)
            # Step 3. onnxruntime on this CPU by the same protocol (warm-up, repeats, median, threads), in a
            # process of its own: the backend timed it beside TVM (its TimingWorker); again only if it could not.
            with stages.stage("measure onnxruntime"):
                ort = None
                if "onnxruntime_ms" not in tuned.details:
                    ort = reference_onnxruntime(model_in.onnx_path, backend.protocol, threads=threads or None,
                                                isolate=True)
    finally:
        stages.close()
    d = tuned.details
    return {"model": str(model), "arch_id": model_in.arch.id if model_in.arch is not None else None,
            "batch": model_in.batch, "database": str(Path(cfg.tuning.database)), "searcher": searcher,
            "target": target, "tvm_target": str(backend.target),
            "tasks": d.get("tuned_tasks", 0) + d.get("reused_tasks", 0), "tuned": d.get("tuned_tasks", 0),
            "reused": d.get("reused_tasks", 0), "hit_rate": d.get("hit_rate"), "trials": d.get("trials", 0),
            "tuning_seconds": d.get("tuning_seconds"), "tuning_faults": d.get("tuning_faults", 0),
            "tuned_ms": tuned.ms if tuned.ok else None, "tuned_ok": tuned.ok, "tuned_error": tuned.reason,
            "tuned_p95_ms": d.get("p95_ms"), "build_seconds": d.get("build_seconds"),
            **_onnxruntime_figures(d, ort),
            "onnxruntime_where": "this CPU, a process of its own", "warmup": warmup, "repeats": repeats,
            "default_database": TuningConfig.database}


def _onnxruntime_figures(details: dict[str, Any], ort: Any) -> dict[str, Any]:
    """onnxruntime's median and p95 (ms): from the backend's row when it timed it, else from `ort`."""
    if ort is None:
        return {"onnxruntime_ms": details.get("onnxruntime_ms"),
                "onnxruntime_p95_ms": details.get("onnxruntime_p95_ms")}
    return {"onnxruntime_ms": ort.median_ms if ort.ok else None, "onnxruntime_p95_ms": ort.p95_ms if ort.ok else None}


def evaluate_architecture(arch_file: Path, *, checkpoint: str = "default", data: str = "mnist5k",
                          latency: str = "onnxruntime", database: str | None = None, target: str = "llvm",
                          trials_per_workload: int = 8, searcher: str = "auto", threads: int = 0,
                          warmup: int = 5, repeats: int = 30, progress: bool = False) -> dict[str, Any]:
    """Accuracy with inherited supernet weights, MACs, parameters, peak memory and latency of one
    architecture, by the search's own `CandidateEvaluator` and latency backends."""
    from archspace.data import load_dataset
    from archspace.training import load_supernet
    from nacos.backends.registry import get_backend
    from nacos.errors import ConfigError
    from nacos.search.evaluation import CandidateEvaluator

    if latency not in LATENCY_BACKENDS:
        raise NacosError(f"--latency: unknown backend {latency!r}; choose one of {sorted(LATENCY_BACKENDS)}")
    if not Path(arch_file).is_file():
        raise NacosError(f"{arch_file}: no such file")
    # Step 1. The input, checked before anything runs: the architecture must lie in the checkpoint's space.
    supernet = load_supernet(None if checkpoint == "default" else checkpoint)
    arch = read_architecture_file(Path(arch_file), supernet.space)
    dataset = load_dataset(data)
    if (dataset.in_channels, dataset.num_classes) != (supernet.in_channels, supernet.num_classes):
        raise ConfigError(f"--data: {data} has {dataset.in_channels} channels / {dataset.num_classes} "
                          f"classes, the supernet {supernet.in_channels} / {supernet.num_classes}")
    cfg = _run_config(target=target, database=database,
                      searcher=searcher, trials_per_workload=trials_per_workload, threads=threads,
                      warmup=warmup, repeats=repeats, checkpoint=checkpoint, data=data,
                      space=supernet.space.config.to_dict())
    if latency != "onnxruntime":
        from nacos.backends.tvm import make_target

        make_target(cfg.target, threads)  # a malformed rpc:// target is refused before a database is made
    # Step 2. The search's own evaluator and backend (the database directory is made here, for tvm-tuned).
    backend = get_backend(LATENCY_BACKENDS[latency], cfg, supernet.space)
    stages = Stages(["export, structure, accuracy", "latency"], progress, "eval")
    try:
        stages.start("export, structure, accuracy (inherited weights)")
        with tempfile.TemporaryDirectory(prefix="nacos-eval-") as tmp:
            # the genome is the architecture itself (CandidateEvaluator's default arch_of)
            evaluation = CandidateEvaluator(cfg, Path(tmp), supernet, dataset, _StagedLatency(backend, stages))(arch)
        stages.done()
    finally:
        stages.close()
    metrics = {k: v for k, v in evaluation.metrics.items() if not k.startswith("over_")}  # no budgets here
    return {"arch_id": arch.id, "arch": arch.to_dict(), "short": arch.short(), "status": evaluation.status,
            "reason": evaluation.reason, "latency": latency, "seconds": evaluation.seconds,
            "checkpoint": checkpoint, "data": data, **metrics}


def dumps(obj: Any) -> str:
    """JSON for --json output (NaN and numpy scalars made printable)."""
    return json.dumps(obj, indent=2, default=str)
