"""MetaSchedule tuning of the workloads a `TuningDatabase` has not seen.

Evolutionary search with MetaSchedule's XGBoost cost model, a budget in trials per workload, and only
the workloads with no working record in the database: a workload tuned for one architecture is never
tuned again for another that contains it.

The builder. MetaSchedule's stock `LocalBuilder` starts a fresh worker pool for every batch and each
worker's first build imports ``tvm.s_tir.tensor_intrin``, which spends about 23 s registering the
intrinsics of CUDA, ROCm, Hexagon, ARM and Metal (TVM-NOTES.md). On a CPU target the foreign intrinsic
modules are replaced by empty placeholders, in this process and in every worker (`LocalBuilder`'s
``initializer``), so a batch no longer pays it. ``builder="local"`` (default) keeps each build in a
child process, killed at `build_timeout_s`; ``builder="inprocess"`` builds in this process (no pool
at all; a crash inside LLVM would take the tuner with it). On a GPU target the real modules are kept.

Failures are data: every candidate whose build fails, whose run fails or which times out is recorded
as a `Failure` with the reason TVM gave, appended to ``failures.jsonl`` in the database directory and
returned in `TuneReport.failures`; tuning goes on with the next candidate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from schedules.exceptions import ScheduleError
from schedules.records import LayerWorkload
from schedules.tuning_database import TuningDatabase

__all__ = ["tune", "TuneReport", "Failure", "skip_foreign_intrinsics", "make_builder"]

_FOREIGN_INTRINSICS = ("cuda", "rocm", "hexagon", "arm_cpu", "metal", "riscv_cpu")


def skip_foreign_intrinsics() -> None:
    """Empty placeholders for other targets' tensor-intrinsic modules (CPU-only processes)."""
    for m in _FOREIGN_INTRINSICS:
        sys.modules.setdefault(f"tvm.s_tir.tensor_intrin.{m}", types.ModuleType(f"tvm.s_tir.tensor_intrin.{m}"))


@dataclass(frozen=True)
class Failure:
    """One failed candidate: its workload, the stage ("build", "run", "timeout") and TVM's reason."""

    workload: str
    stage: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"workload": self.workload, "stage": self.stage, "reason": self.reason}


@dataclass
class TuneReport:
    """What one `tune` call did."""

    tuned_tasks: list[LayerWorkload] = field(default_factory=list)     # tuned by this call
    reused_tasks: list[LayerWorkload] = field(default_factory=list)    # found in the database
    trials: int = 0                                                    # candidates measured
    seconds: float = 0.0                                               # wall time of the call
    failures: list[Failure] = field(default_factory=list)

    @property
    def hit_rate(self) -> float:
        """Fraction of the module's tasks found in the database before tuning (1.0 for none)."""
        n = len(self.tuned_tasks) + len(self.reused_tasks)
        return len(self.reused_tasks) / n if n else 1.0

    @property
    def seconds_per_trial(self) -> float:
        return self.seconds / self.trials if self.trials else float("nan")


def _inprocess_builder(build_func: Callable[..., Any] | None) -> Any:
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export

    func = build_func or default_build

    @derived_object
    class InProcessBuilder(PyBuilder):
        """Builds each candidate in this process, where TVM is imported once."""

        def build(self, build_inputs):  # noqa: ANN001, ANN201 - MetaSchedule's signature
            results = []
            for inp in build_inputs:
                try:
                    results.append(BuilderResult(default_export(func(inp.mod, inp.target, None)), None))
                except Exception as exc:  # a candidate that does not build is data
                    results.append(BuilderResult(None, f"InProcessBuilder: {type(exc).__name__}: {exc}"))
            return results

    return InProcessBuilder()


def make_builder(kind: str | Any, target: Any, *, build_timeout_s: float = 30.0,
                 build_func: Callable[..., Any] | None = None) -> Any:
    """A MetaSchedule builder: "local" (child processes, timeout) or "inprocess"; an object is
    returned as is. `build_func(mod, target, params)` replaces TVM's default build ("inprocess" only)."""
    from tvm.s_tir import meta_schedule as ms

    from schedules.target import make_target

    if not isinstance(kind, str):
        return kind
    gpu = make_target(target).is_gpu
    if not gpu:
        skip_foreign_intrinsics()
    if kind == "inprocess":
        return _inprocess_builder(build_func)
    if kind == "local":
        if build_func is not None:
            raise ScheduleError("build_func is only taken by builder='inprocess'")
        return ms.builder.LocalBuilder(timeout_sec=build_timeout_s, initializer=None if gpu else skip_foreign_intrinsics)
    raise ScheduleError(f"Unknown builder: {kind!r}; expected 'local' or 'inprocess'")


def _failure_recorder(names: Sequence[str], sink: list[Failure], counter: list[int], path: Any) -> Any:
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class RecordFailures(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):  # noqa
            counter[0] += len(builder_results)
            new = []
            for b, r in zip(builder_results, runner_results):
                msg = b.error_msg or r.error_msg
                if not msg:
                    continue
                msg = str(msg)
                stage = "timeout" if "timeout" in msg.lower() else ("build" if b.error_msg else "run")
                new.append(Failure(names[task_id], stage, msg[-2000:]))
            if new:
                sink.extend(new)
                with open(path, "a", encoding="utf-8") as fh:
                    for f in new:
                        fh.write(json.dumps(f.to_dict()) + "\n")

    return RecordFailures()


@contextlib.contextmanager
def _named_handlers_only() -> Iterator[None]:
    """MetaSchedule rebuilds its loggers from a dictConfig naming the handlers already attached to
    ``tvm.s_tir.meta_schedule``; an unnamed one (pytest's log capture, for one) breaks that config.
    Detach the unnamed handlers while tuning and put them back after."""
    logger = logging.getLogger("tvm.s_tir.meta_schedule")
    unnamed = [h for h in logger.handlers if h.get_name() is None]
    for h in unnamed:
        logger.removeHandler(h)
    try:
        yield
    finally:
        for h in unnamed:
            logger.addHandler(h)


def tune(mod_or_tasks: Any, db: TuningDatabase, target: Any = "llvm", trials_per_workload: int = 16, *,
         trials_per_iter: int = 16, builder: str | Any = "local", runner: Any = None,
         build_timeout_s: float = 30.0, run_timeout_s: float = 10.0, build_func: Callable[..., Any] | None = None,
         kinds: Sequence[str] | None = None, seed: int = 0) -> TuneReport:
    """Tune with MetaSchedule the workloads of `mod_or_tasks` that `db` has no working record of.

    `mod_or_tasks`: a Relax module from `import_onnx`, or `WorkloadTask`s from `extract_tasks`.
    `target`: a `TargetSpec`, a string for `make_target` or a `tvm.target.Target`; an RPC target
    measures on its device. `trials_per_workload` measured candidates per unseen workload (at least 16
    advised: with fewer MetaSchedule leaves some tasks without any). `kinds` restricts tuning to those
    op kinds. Returns the tuned and reused tasks, the trials, the wall time and the failures."""
    from tvm.s_tir import meta_schedule as ms

    from schedules.target import make_target
    from schedules.workloads import WorkloadTask, extract_tasks

    if trials_per_workload < 1:
        raise ScheduleError(f"trials_per_workload must be >= 1, got {trials_per_workload}")
    start = time.perf_counter()
    spec = make_target(target)
    bld = make_builder(builder, spec, build_timeout_s=build_timeout_s, build_func=build_func)
    if isinstance(mod_or_tasks, (list, tuple)):
        if not all(isinstance(t, WorkloadTask) for t in mod_or_tasks):
            raise ScheduleError("tune: give a Relax module or the WorkloadTasks of schedules.extract_tasks")
        tasks = list(mod_or_tasks)
    else:
        tasks = extract_tasks(mod_or_tasks, spec)
    report = TuneReport()
    with db.writing() as msdb:
        todo = []
        for t in tasks:
            if t.workload in db:
                report.reused_tasks.append(t.workload)
            elif kinds is None or t.workload.op_kind in kinds:
                todo.append(t)
        if todo:
            if runner is None:
                runner = (spec.rpc.ms_runner(run_timeout_s) if spec.rpc is not None
                          else ms.runner.LocalRunner(timeout_sec=run_timeout_s))
            work_dir = db.path / "ms_logs"
            work_dir.mkdir(exist_ok=True)
            counter = [0]
            callbacks = ms.measure_callback.MeasureCallback.create("default") + [
                _failure_recorder([t.workload.name for t in todo], report.failures, counter,
                                  db.path / "failures.jsonl")]
            with _named_handlers_only():  # both calls below rebuild MetaSchedule's loggers
                contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                    [t.task for t in todo], str(work_dir), num_threads=max(1, spec.threads), seed=seed)
                ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=str(work_dir),
                              max_trials_global=trials_per_workload * len(todo),
                              max_trials_per_task=trials_per_workload,
                              num_trials_per_iter=min(trials_per_iter, trials_per_workload), builder=bld,
                              runner=runner, database=msdb, cost_model="xgb", measure_callbacks=callbacks)
            report.trials = counter[0]
            report.tuned_tasks = [t.workload for t in todo]
    report.seconds = time.perf_counter() - start
    return report
