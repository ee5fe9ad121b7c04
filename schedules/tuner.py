"""MetaSchedule tuning of the workloads a database has not seen, and the explicit space's search,
both writing into one `TuningDatabase`.

The builder: MetaSchedule's stock `LocalBuilder` starts a fresh worker pool for every batch, and each
worker's first build imports ``tvm.s_tir.tensor_intrin``, which spends about 23 s registering the
intrinsics of CUDA, ROCm, Hexagon, ARM and Metal (TVM-NOTES.md). Two builders avoid it:

- ``"inprocess"`` (default): `InProcessBuilder` builds in the tuning process, where TVM is imported
  once. A crash inside LLVM would take the tuning process with it (not seen here); in a search that
  process is a `nacos.backends.tuning_worker`, so the search records the candidate as failed and goes on.
- ``"local"``: the stock `LocalBuilder` (a build in a child process, killed on timeout), with the
  foreign intrinsic modules replaced by empty placeholders in each worker.

On a CUDA target the real intrinsic modules are kept (tensor-core schedules need them).

Failures are data: every failed build or run (its error message) is appended to ``faults.jsonl``
in the database directory and returned in `TuneReport.faults`; tuning goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schedules.database import TuningDatabase
from schedules.errors import ScheduleError
from schedules.frontend import extract_tasks, extract_workloads, workload_of_task
from schedules.records import LayerWorkload
from schedules.targets import foreign_isa, target_threads

__all__ = ["EXPLICIT_KINDS", "Fault", "TuneReport", "TuneSettings", "auto_tune", "explicit_tune", "heavy_tasks",
           "make_builder", "make_runner", "plan_tuning", "skip_foreign_intrinsics", "tune"]

log = logging.getLogger(__name__)

#: the op kinds the explicit `ScheduleConfig` space schedules (`explicit_tune` skips the others)
EXPLICIT_KINDS = ("conv2d", "depthwise_conv2d", "pointwise_conv2d", "dense")

_FOREIGN_INTRINSICS = ("cuda", "rocm", "hexagon", "arm_cpu", "metal", "riscv_cpu")


def skip_foreign_intrinsics() -> None:
    """Empty placeholders for the tensor-intrinsic modules of other targets (CPU-only tuning)."""
    for m in _FOREIGN_INTRINSICS:
        sys.modules.setdefault(f"tvm.s_tir.tensor_intrin.{m}", types.ModuleType(f"tvm.s_tir.tensor_intrin.{m}"))


def _is_gpu(target: Any) -> bool:
    return str(target.kind.name) in ("cuda", "rocm", "vulkan", "metal", "opencl")


@dataclass(frozen=True)
class TuneSettings:
    """Search settings sized for tiny budgets (16 to 64 trials per task) on a small CPU.

    MetaSchedule's defaults (population 512, 4 genetic iterations, XGBoost on every core) spend most
    of a small budget searching and fitting rather than measuring; these keep the evolutionary search
    and the XGBoost cost model, smaller."""

    population_size: int = 128
    genetic_num_iters: int = 2
    init_min_unmeasured: int = 32
    xgb_threads: int = 1
    xgb_early_stopping_rounds: int = 20

    def strategy(self) -> Any:
        from tvm.s_tir import meta_schedule as ms

        return ms.search_strategy.EvolutionarySearch(
            population_size=self.population_size, genetic_num_iters=self.genetic_num_iters,
            init_min_unmeasured=self.init_min_unmeasured)

    def cost_model(self) -> Any:
        from tvm.s_tir import meta_schedule as ms

        return ms.cost_model.XGBModel(
            config=ms.cost_model.xgb_model.XGBConfig(nthread=self.xgb_threads, tree_method="hist"),
            early_stopping_rounds=self.xgb_early_stopping_rounds)


@dataclass(frozen=True)
class Fault:
    """One failed candidate: the stage (build / run / check) and the reason TVM gave."""

    workload: str
    stage: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"workload": self.workload, "stage": self.stage, "reason": self.reason}


@dataclass
class TuneReport:
    tuned: list[LayerWorkload] = field(default_factory=list)      # tuned by this call
    reused: list[LayerWorkload] = field(default_factory=list)     # already in the database
    trials: int = 0
    seconds: float = 0.0
    faults: list[Fault] = field(default_factory=list)

    @property
    def hit_rate(self) -> float:
        """Fraction of the module's tasks found in the database before tuning."""
        n = len(self.tuned) + len(self.reused)
        return len(self.reused) / n if n else 1.0

    @property
    def seconds_per_trial(self) -> float:
        return self.seconds / self.trials if self.trials else float("nan")


def _make_inprocess_builder() -> Any:
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import (
        default_build,
        default_export,
    )

    @derived_object
    class InProcessBuilder(PyBuilder):
        """Builds each candidate in this process (TVM and its intrinsics imported once)."""

        def build(self, build_inputs):
            results = []
            for inp in build_inputs:
                try:
                    rt_mod = default_build(inp.mod, inp.target, None)
                    results.append(BuilderResult(default_export(rt_mod), None))
                except Exception as exc:  # a candidate that does not build is data
                    results.append(BuilderResult(None, f"InProcessBuilder: {type(exc).__name__}: {exc}"))
            return results

    return InProcessBuilder()


def make_builder(kind: str, target: Any, timeout_s: float = 30.0) -> Any:
    """A MetaSchedule builder by name: "inprocess" or "local" (see the module docstring)."""
    from tvm.s_tir import meta_schedule as ms

    if not _is_gpu(target):
        skip_foreign_intrinsics()
    if kind == "inprocess":
        return _make_inprocess_builder()
    if kind == "local":
        init = None if _is_gpu(target) else skip_foreign_intrinsics
        return ms.builder.LocalBuilder(initializer=init, timeout_sec=timeout_s)
    raise ScheduleError(f"Unknown builder: {kind!r}; expected 'inprocess' or 'local'")


def make_runner(target: Any, timeout_s: float = 10.0) -> Any:
    """MetaSchedule's `LocalRunner` whose workers size TVM's thread pool the way the search's measurement
    does (`schedules.measure.set_tvm_threads`, the target's cores). Without it a fresh worker's default
    pool paid about 9 us to launch each parallel kernel (6.5 us more than it costs configured), so
    small kernels' records were chosen and timed under a cost the deployed model does not pay."""
    import functools

    from tvm.s_tir import meta_schedule as ms

    from schedules.measure import set_tvm_threads

    return ms.runner.LocalRunner(timeout_sec=timeout_s,
                                 initializer=functools.partial(set_tvm_threads, target_threads(target)))


def _fault_callback(names: Sequence[str], sink: list[Fault], path: Path) -> Any:
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class RecordFaults(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            new = []
            for b, r in zip(builder_results, runner_results):
                if b.error_msg:
                    new.append(Fault(names[task_id], "build", str(b.error_msg)[-2000:]))
                elif r.error_msg:
                    new.append(Fault(names[task_id], "run", str(r.error_msg)[-2000:]))
            if new:
                sink.extend(new)
                with open(path, "a", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(f.to_dict()) + "\n" for f in new)

    return RecordFaults()


@contextlib.contextmanager
def named_handlers_only() -> Iterator[None]:
    """MetaSchedule rebuilds its loggers from a dictConfig that names the handlers attached to
    ``tvm.s_tir.meta_schedule``; an unnamed one (pytest's log capture, for one) breaks that config on
    the second tuning in a process. Detach the unnamed handlers while tuning, put them back after."""
    logger = logging.getLogger("tvm.s_tir.meta_schedule")
    unnamed = [h for h in logger.handlers if h.get_name() is None]
    for h in unnamed:
        logger.removeHandler(h)
    try:
        yield
    finally:
        for h in unnamed:
            logger.addHandler(h)


def tune(mod: Any, db: TuningDatabase, target: Any, *, trials_per_task: int = 16, trials_per_iter: int = 16,
         builder: str | Any = "inprocess", runner: Any = None, run_timeout_s: float = 10.0, seed: int = 0,
         kinds: Sequence[str] | None = None, only: Sequence[str] | None = None,
         settings: TuneSettings = TuneSettings(), cost_model: Any = None) -> TuneReport:
    """Tune with MetaSchedule the tasks of `mod` that `db` has no working record of.

    Evolutionary search with MetaSchedule's XGBoost cost model, `trials_per_task` measured candidates
    per unseen task (at least 16: with fewer, some tasks get none). `kinds` restricts tuning to those
    op kinds (default: every task, the fused elementwise ones included) and `only` to the workloads
    with those structural hashes (the others count neither as tuned nor as reused). `cost_model`: a
    MetaSchedule cost model object to rank candidates with (default: a fresh `settings.cost_model()`), e.g.
    the project's `costmodels.DatabaseXGBCostModel`, which starts from every record of the database.
    Returns what was tuned, what was reused, the trials, the wall time and the faults."""
    from tvm.s_tir import meta_schedule as ms

    if trials_per_task < 1:
        raise ScheduleError(f"trials_per_task must be >= 1, got {trials_per_task}")
    # tuned means tuned on this machine (other machines' records are only seeds); other processes sharing
    # the database wait, and what they tuned meanwhile is reused
    with db.writing_on(target) as here:
        return _tune_unseen(ms, mod, here, target, trials_per_task, trials_per_iter, builder, runner,
                            run_timeout_s, seed, settings, kinds, only, cost_model)


def _tune_unseen(ms, mod, db, target, trials_per_task, trials_per_iter, builder, runner, run_timeout_s, seed,
                 settings, kinds, only, cost_model=None) -> TuneReport:
    report = TuneReport()
    start = time.perf_counter()
    todo = []
    for task in extract_tasks(mod, target):
        w = workload_of_task(task)
        if db.is_tuned(w):
            report.reused.append(w)
        elif (kinds is None or w.op_kind in kinds) and (only is None or w.structural_hash in only):
            todo.append((task, w))
    if not todo:
        report.seconds = time.perf_counter() - start
        return report
    bld = make_builder(builder, target) if isinstance(builder, str) else builder
    if runner is None:
        if foreign_isa(target):
            raise ScheduleError(f"code for {target.attrs.get('mtriple')} cannot run on this CPU: tune it with the "
                                "device's runner (an rpc://HOST:PORT/KEY?mtriple=... target)")
        runner = make_runner(target, run_timeout_s)
    work_dir = db.path / "ms_logs"
    work_dir.mkdir(exist_ok=True)
    with named_handlers_only():
        _tune_tasks(ms, todo, db, target, bld, runner, trials_per_task, trials_per_iter, seed, settings, report,
                    cost_model)
    db.refresh()
    report.tuned = [w for _, w in todo]
    report.seconds = time.perf_counter() - start
    return report


def _tune_tasks(ms, todo, db, target, bld, runner, trials_per_task, trials_per_iter, seed, settings, report,
                cost_model=None) -> None:
    work_dir = db.path / "ms_logs"
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        [t for t, _ in todo], str(work_dir), strategy=settings.strategy(),
        num_threads=target_threads(target), seed=seed)
    callbacks = ms.measure_callback.MeasureCallback.create("default") + [
        _fault_callback([w.name for _, w in todo], report.faults, db.path / "faults.jsonl")]
    before = len(db.ms)
    ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=str(work_dir),
                  max_trials_global=trials_per_task * len(todo), max_trials_per_task=trials_per_task,
                  num_trials_per_iter=min(trials_per_iter, trials_per_task), builder=bld, runner=runner,
                  database=db.ms, cost_model=cost_model if cost_model is not None else settings.cost_model(),
                  measure_callbacks=callbacks)
    report.trials = len(db.ms) - before


def plan_tuning(mod_or_workloads: Any, db: TuningDatabase, target: Any, *,
                explicit: bool) -> tuple[list[LayerWorkload], list[LayerWorkload]]:
    """(to tune, already tuned): how `explicit_tune` (``explicit=True``) or `tune` (every kind) would split
    the tasks of a module (or its workloads, when the caller extracted them already: `extract_workloads`)
    against what `db` holds now. Reads only; a caller can skip tuning when the first list is empty (another
    process may tune meanwhile: the tuners re-check under the lock)."""
    todo, reused = [], []
    db = db.on(target)
    for w in extract_workloads(mod_or_workloads, target):
        if explicit and w.op_kind not in EXPLICIT_KINDS:
            continue
        (reused if db.is_tuned(w) else todo).append(w)
    return todo, reused


def explicit_tune(mod: Any, db: TuningDatabase, target: Any, *, configs_per_task: int = 16, seed: int = 0,
                  space: Any = None, only_unseen: bool = True) -> TuneReport:
    """Search the explicit `ScheduleConfig` space for each conv2d / dense task of `mod` and commit the
    fastest correct schedule's trace to `db` as a tuning record (so `compile` uses it exactly like a
    MetaSchedule record). Configs whose build fails or whose output differs from the unscheduled
    function are faults with their reason."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    from schedules.explicit.compile import explicit_search
    from schedules.explicit.space import ScheduleSpace

    if foreign_isa(target):
        raise ScheduleError("the explicit searcher times its configs on this CPU, which cannot run code for "
                            f"{target.attrs.get('mtriple')}: tune a device of another instruction set with "
                            "MetaSchedule (searcher metaschedule or auto: its runner measures on the device)")
    space = space or ScheduleSpace()
    with db.writing_on(target) as here:  # tuned on this machine; other processes' tunings reused, as in `tune`
        return _explicit_tune_unseen(ms, ArgInfo, explicit_search, mod, here, target, configs_per_task, seed,
                                     space, only_unseen)


def _explicit_tune_unseen(ms, ArgInfo, explicit_search, mod, db, target, configs_per_task, seed, space,
                          only_unseen) -> TuneReport:
    report = TuneReport()
    start = time.perf_counter()
    for task in extract_tasks(mod, target):
        w = workload_of_task(task)
        if w.op_kind not in EXPLICIT_KINDS:
            continue
        if only_unseen and db.is_tuned(w):
            report.reused.append(w)
            continue
        task_mod = task.dispatched[0]
        result = explicit_search(task_mod["main"], space, target, configs_per_task, seed=seed)
        report.trials += result.tried
        report.faults.extend(Fault(w.name, "explicit", f) for f in result.failures)
        if result.config is None:
            continue
        workload = db.ms.commit_workload(task_mod)
        db.ms.commit_tuning_record(ms.database.TuningRecord(
            result.trace, workload, [result.ms / 1e3], target, ArgInfo.from_prim_func(task_mod["main"])))
        report.tuned.append(w)
    if report.faults:
        with open(db.path / "faults.jsonl", "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(f.to_dict()) + "\n" for f in report.faults)
    db.refresh()
    report.seconds = time.perf_counter() - start
    return report


def heavy_tasks(workloads: Sequence[LayerWorkload], *, share: float = 0.8, at_most: int = 4,
                of_total: int | None = None, min_share: float = 0.0) -> list[LayerWorkload]:
    """The workloads that dominate: heaviest first (MACs x calls), until they hold `share` of the MACs of
    `workloads`, at most `at_most` of them, and only those holding at least `min_share` of `of_total`
    (the whole network's MACs; default: those of `workloads`)."""
    ranked = sorted(workloads, key=lambda w: (-w.macs * w.count, w.name))
    total = sum(w.macs * w.count for w in ranked)
    floor = min_share * (total if of_total is None else of_total)
    out: list[LayerWorkload] = []
    held = 0
    for w in ranked:
        if len(out) >= at_most or (total and held >= share * total) or w.macs * w.count < floor:
            break
        out.append(w)
        held += w.macs * w.count
    return out


#: `auto_tune`: an unseen task gets MetaSchedule's trials only when it holds at least this share of the
#: network's conv / dense MACs. After `nacos pretune` what a candidate still lacks is mostly small tasks
#: (on the default space here: 6 % of the predicted latency uncovered); 128 MetaSchedule trials on them
#: cost minutes per candidate and buy little, a few explicit configs cost seconds.
METASCHEDULE_MIN_SHARE = 0.05


def auto_tune(mod: Any, db: TuningDatabase, target: Any, *, trials_per_task: int = 8, metaschedule_trials: int = 32,
              seed: int = 0, runner: Any = None, share: float = 0.8, at_most: int = 4,
              cost_model: Any = None, min_share: float = METASCHEDULE_MIN_SHARE) -> TuneReport:
    """MetaSchedule where it matters, the explicit space for the rest: of the conv / dense tasks of `mod`
    that `db` has no record of, the heaviest (holding `share` of their MACs, at most `at_most`, each at least
    `min_share` of the network's conv / dense MACs: `METASCHEDULE_MIN_SHARE`) get
    `metaschedule_trials` MetaSchedule trials each, tuned together (so its cost model sees their pooled
    samples), and the others `trials_per_task` explicit configs each. After `nacos pretune` most
    candidates have nothing left to tune, and this costs nothing."""
    start = time.perf_counter()
    todo, reused = plan_tuning(mod, db, target, explicit=True)
    report = TuneReport(reused=list(reused))
    # a device of another instruction set: the explicit configs cannot be timed here, so MetaSchedule's
    # runner (on the device) tunes every task
    whole = sum(w.macs * w.count for w in [*todo, *reused])
    heavy = list(todo) if foreign_isa(target) else heavy_tasks(todo, share=share, at_most=at_most, of_total=whole,
                                                               min_share=min_share)
    if heavy:
        ms_report = tune(mod, db, target, trials_per_task=max(16, metaschedule_trials), runner=runner, seed=seed,
                         only=[w.structural_hash for w in heavy], cost_model=cost_model)
        report.tuned += ms_report.tuned
        report.trials += ms_report.trials
        report.faults += ms_report.faults
    if len(heavy) < len(todo):
        ex_report = explicit_tune(mod, db, target, configs_per_task=trials_per_task, seed=seed)
        report.tuned += ex_report.tuned
        report.trials += ex_report.trials
        report.faults += ex_report.faults
    report.seconds = time.perf_counter() - start
    return report
