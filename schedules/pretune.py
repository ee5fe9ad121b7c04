"""Pretuning: tune the tasks of a whole architecture space into the shared database, where trials buy
the most latency, in rounds that a kill or a deadline can end and a rerun continues.

Why rounds of our own around MetaSchedule's `tune_tasks`: a space has hundreds of distinct tasks, and
MetaSchedule's gradient task scheduler warms up every task it is given (three rounds each) before it
weighs them, which on a 2-core machine is hours before the first priority decision. Here a round picks
the few tasks with the largest expected gain and gives each `trials_per_round` MetaSchedule trials
(evolutionary search seeded with the database's best records of that workload, so a later round goes on
from an earlier one); between rounds the database lock is released, so searches sharing the database
can tune what they miss.

Coverage comes first: while some task of the space has never been tried, a round takes only such tasks
(`first_pass_tasks` of them, heaviest expected gain first) and gives each `first_pass_trials` trials. A
task without a record costs every search that meets it an explicit tuning of its own (tens of seconds a
candidate) and runs unscheduled until then, so a record for each of the space's small tasks is worth more
than the last few percent on an already tuned heavy one; the gains below only order the tasks inside
each pass. (Before this, a pretune on a database that covered 157 of 302 tasks spent 608 trials on the
covered ones and none on the rest.)

Expected gain of a task (its share of an average architecture's latency that the next round may
remove), in the spirit of Ansor's gradient task scheduler:

- a task with no working record: ``weight x predicted run time`` (all of it: an unscheduled conv runs
  15 to 30 times slower than a tuned one), the run time predicted from the MACs at the throughput the
  tuned tasks of the same kind reach here;
- a tuned task: ``weight x best run time x expected relative improvement``, the improvement being the
  last round's (when it had one) or a prior that shrinks with the trials spent, ``R / (trials + R)`` / 2.

Resume needs no bookkeeping of its own: the trials and best run times are read back from the database.
Trials and coverage are those of the target's machine (`TuningDatabase.on`): a database pretuned on
one CPU and taken to another is pretuned again there, seeded with the first machine's records. A small
state file per machine (``pretune-state.<kind>-<cpu>.json``, e.g. ``pretune-state.llvm-znver4.json``,
written atomically after every round) keeps the seconds spent, the rounds, the per-round best run times
(for the gains) and the tasks whose search space ran out.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schedules.database import TuningDatabase
from schedules.errors import ScheduleError
from schedules.space_tasks import SpaceTask
from schedules.targets import target_threads

__all__ = ["PretuneReport", "PretuneSettings", "pretune", "space_coverage", "state_file", "state_of", "task_trials",
           "STATE_FILE"]

log = logging.getLogger(__name__)

#: the state file of a database not bound to a machine (`state_file` names the others)
STATE_FILE = "pretune-state.json"
#: GFLOP/s assumed for a task kind before any task of that kind is tuned (2 FLOP per MAC)
_DEFAULT_GFLOPS = 10.0
#: GB/s assumed for memory-bound (elementwise) tasks before any is tuned
_DEFAULT_GBPS = 5.0


@dataclass(frozen=True)
class PretuneSettings:
    """How a pretune spends its trials.

    `trials_per_round` MetaSchedule trials per chosen task and round (MetaSchedule's XGBoost model scores
    at random until it holds 100 samples: a round of 8 tasks x 32 trials passes that early), up to
    `max_trials_per_task` per task over all rounds and runs. Tasks never tried go first, in rounds of
    `first_pass_tasks` (default: twice `tasks_per_round`) with `first_pass_trials` trials each (at most
    `trials_per_round`): a record for every task before refinements."""

    tasks_per_round: int = 8
    trials_per_round: int = 32
    max_trials_per_task: int = 128
    trials_per_iter: int = 16
    seed: int = 0
    first_pass_trials: int = 8
    first_pass_tasks: int | None = None

    def __post_init__(self) -> None:
        for name in ("tasks_per_round", "trials_per_round", "max_trials_per_task", "trials_per_iter",
                     "first_pass_trials"):
            if getattr(self, name) < 1:
                raise ScheduleError(f"pretune: {name} must be >= 1, got {getattr(self, name)}")
        if self.first_pass_tasks is not None and self.first_pass_tasks < 1:
            raise ScheduleError(f"pretune: first_pass_tasks must be >= 1, got {self.first_pass_tasks}")

    @property
    def coverage_trials(self) -> int:
        """Trials a never-tried task gets in its first round."""
        return min(self.first_pass_trials, self.trials_per_round, self.max_trials_per_task)

    @property
    def coverage_tasks(self) -> int:
        """Tasks of a first-pass round."""
        return self.first_pass_tasks if self.first_pass_tasks is not None else 2 * self.tasks_per_round


@dataclass
class PretuneReport:
    rounds: int = 0
    trials: int = 0
    seconds: float = 0.0
    tuned_tasks: list[str] = field(default_factory=list)     # structural hashes tuned in this call
    stopped: str = ""                                         # why it stopped: done | deadline | interrupted
    faults: int = 0

    @property
    def seconds_per_trial(self) -> float:
        return self.seconds / self.trials if self.trials else float("nan")


def task_trials(db: TuningDatabase) -> dict[str, tuple[int, float | None]]:
    """structural hash -> (records measured, working or failed; best run time in ms or None)."""
    return {key: (rec.records + rec.failed, rec.run_ms if rec.records else None)
            for key, rec in db.record_counts().items()}


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        # the file is only an accelerator of the gains: a damaged one is started afresh, the records stay
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _throughputs(tasks: Sequence[SpaceTask], trials: dict[str, tuple[int, float | None]]) -> dict[str, float]:
    """op kind -> median GFLOP/s (GB/s for elementwise) of this space's tuned tasks of that kind."""
    by_kind: dict[str, list[float]] = {}
    for t in tasks:
        best = trials.get(t.key, (0, None))[1]
        if best is None or best <= 0:
            continue
        work = t.workload.bytes if t.workload.op_kind == "elementwise" else 2 * t.workload.macs
        if work > 0:
            by_kind.setdefault(t.workload.op_kind, []).append(work / (best * 1e-3) / 1e9)
    return {k: statistics.median(v) for k, v in by_kind.items()}


def predicted_ms(task: SpaceTask, throughputs: dict[str, float]) -> float:
    """Predicted tuned run time of a task (ms) from its MACs (bytes when elementwise)."""
    w = task.workload
    if w.op_kind == "elementwise" or w.macs == 0:
        return max(w.bytes, 1) / (throughputs.get("elementwise", _DEFAULT_GBPS) * 1e9) * 1e3
    return 2 * w.macs / (throughputs.get(w.op_kind, _DEFAULT_GFLOPS) * 1e9) * 1e3


def _gain(task: SpaceTask, trials: dict[str, tuple[int, float | None]], history: list[float],
          throughputs: dict[str, float], settings: PretuneSettings) -> float:
    n, best = trials.get(task.key, (0, None))
    if best is None:
        return task.weight * predicted_ms(task, throughputs) * (2.0 if n == 0 else 0.5)  # failed-only: less
    rel = settings.trials_per_round / (n + settings.trials_per_round) / 2
    if len(history) >= 2 and history[-2] > 0:
        rel = max(rel, (history[-2] - history[-1]) / history[-2])
    return task.weight * best * rel


def choose_round(tasks: Sequence[SpaceTask], db: TuningDatabase, state: dict[str, Any],
                 settings: PretuneSettings, trials: dict[str, tuple[int, float | None]] | None = None
                 ) -> tuple[list[SpaceTask], int]:
    """(the tasks the next round tunes, trials for each). Eligible: weight > 0, under the trial cap,
    search space not exhausted. While any eligible task was never tried, the round is a coverage round:
    only never-tried tasks, `settings.coverage_tasks` of them with `settings.coverage_trials` each;
    otherwise the `tasks_per_round` largest expected gains with `trials_per_round` each.
    `trials`: `task_trials(db)`, when the caller has it."""
    trials = task_trials(db) if trials is None else trials
    throughputs = _throughputs(tasks, trials)
    exhausted = set(state.get("exhausted", []))
    history = state.get("history", {})
    eligible = [t for t in tasks if t.weight > 0 and t.key not in exhausted
                and trials.get(t.key, (0, None))[0] < settings.max_trials_per_task]
    eligible.sort(key=lambda t: -_gain(t, trials, history.get(t.key, []), throughputs, settings))
    untried = [t for t in eligible if trials.get(t.key, (0, None))[0] == 0]
    if untried:
        return untried[:settings.coverage_tasks], settings.coverage_trials
    return eligible[:settings.tasks_per_round], settings.trials_per_round


def space_coverage(tasks: Sequence[SpaceTask], db: TuningDatabase) -> dict[str, Any]:
    """How much of a space the database covers: distinct tasks, tasks weighted by their expected calls,
    MACs, and the expected kernel time per architecture (tuned part measured, uncovered part predicted)."""
    trials = task_trials(db)
    throughputs = _throughputs(tasks, trials)
    covered = [t for t in tasks if trials.get(t.key, (0, None))[1] is not None]
    uncovered = [t for t in tasks if trials.get(t.key, (0, None))[1] is None]
    total_w = sum(t.weight for t in tasks) or 1.0
    total_macs = sum(t.expected_macs for t in tasks) or 1.0
    tuned_ms = sum(t.weight * trials[t.key][1] for t in covered)
    uncovered_ms = sum(t.weight * predicted_ms(t, throughputs) for t in uncovered)
    return {
        "tasks_total": len(tasks),
        "tasks_covered": len(covered),
        "space_task_coverage": len(covered) / len(tasks) if tasks else 1.0,
        "space_weighted_task_coverage": sum(t.weight for t in covered) / total_w,
        "space_mac_coverage": sum(t.expected_macs for t in covered) / total_macs,
        "trials_total": sum(trials.get(t.key, (0, None))[0] for t in tasks),
        "expected_tuned_kernel_ms_per_arch": tuned_ms,
        # what the uncovered tasks would cost an average architecture once tuned; today they run
        # unscheduled, 15 to 30 times slower (TVM-NOTES.md): the latency left on the table
        "uncovered_predicted_tuned_ms_per_arch": uncovered_ms,
        "uncovered_share_of_predicted_latency": (uncovered_ms / (tuned_ms + uncovered_ms)
                                                 if tuned_ms + uncovered_ms else 0.0),
        "throughput_by_kind": {k: round(v, 3) for k, v in sorted(throughputs.items())},
    }


_DEADLINE_MARK = "nacos-pretune-deadline-passed"


class _DeadlinePassed(RuntimeError):
    """Raised by the measure callback to end a round at the deadline; `_tune_tasks_until_deadline`
    recognizes it by `_DEADLINE_MARK` in its message (TVM may rewrap it)."""


def _callbacks(names: Sequence[str], deadline: float, on_trials: Callable[[int], None] | None, faults: list,
               stop: threading.Event) -> Any:
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class DeadlineAndProgress(PyMeasureCallback):
        """Counts measured trials for the progress bar; past the deadline or once `stop` is set (Ctrl-C),
        ends the round by raising (what was measured is already in the database: this callback runs after
        AddToDatabase).

        Why not `task_scheduler.terminate_task`: when the callback fires inside the round-robin
        scheduler's own join of the task it is about to hand out, ending that task makes TVM's
        `Tune` loop fail its `!task->is_terminated` check (seen in a 0.5-minute pretune)."""

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            for b, r in zip(builder_results, runner_results):
                if b.error_msg or r.error_msg:
                    faults.append((names[task_id], str(b.error_msg or r.error_msg)[-500:]))
            if on_trials is not None:
                on_trials(len(measure_candidates))
            if time.time() >= deadline or stop.is_set():
                raise _DeadlinePassed(_DEADLINE_MARK)

    return DeadlineAndProgress()


def _first_ctrl_c_ends_the_round() -> tuple[threading.Event, Callable[[], None]]:
    """(stop, restore): while installed, the first Ctrl-C (SIGINT) sets `stop`, which ends the round in
    flight at its next measured batch and then the pretune, with the state saved; a second one interrupts
    at once. Why: a KeyboardInterrupt raised inside MetaSchedule's callbacks is swallowed by its C++ task
    scheduler, which went on tuning. Only the main thread may set signal handlers; elsewhere nothing is
    installed (a KeyboardInterrupt still ends the run between rounds)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return stop, lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        stop.set()
        log.warning("interrupted: ending the round in flight (what it measured is kept); Ctrl-C again to stop now")

    signal.signal(signal.SIGINT, on_sigint)
    return stop, lambda: signal.signal(signal.SIGINT, previous)


def _tune_tasks_until_deadline(ms: Any, **kwargs: Any) -> None:
    """`ms.tune_tasks(**kwargs)`, ended quietly when the deadline callback raises (the error crosses
    TVM's C++ scheduler, which may rewrap it: it is recognized by its message)."""
    try:
        ms.tune_tasks(**kwargs)
    except Exception as exc:
        if _DEADLINE_MARK not in str(exc):
            raise


def _tune_round(batch: Sequence[SpaceTask], per_task: int, db: TuningDatabase, target: Any,
                settings: PretuneSettings, round_index: int, deadline: float, cost_model: Any, builder: Any,
                runner: Any, on_trials: Callable[[int], None] | None, stop: threading.Event) -> tuple[int, int]:
    """One round: MetaSchedule on `batch`, round-robin, `per_task` trials each. (trials, faults)."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.utils import fork_seed

    from schedules.tuner import TuneSettings, make_builder, make_runner, named_handlers_only

    tune_settings = TuneSettings()
    work_dir = db.path / "ms_logs"
    work_dir.mkdir(exist_ok=True)
    names = [t.workload.name for t in batch]
    contexts = []
    with named_handlers_only():  # the dictConfig MetaSchedule builds names every attached handler
        loggers = ms.logging.get_loggers_from_work_dir(str(work_dir), names)
    for task, logger, rand_state in zip(batch, loggers, fork_seed(settings.seed + round_index, n=len(batch))):
        contexts.append(ms.TuneContext(
            mod=task.module(), target=target, space_generator="post-order-apply",
            search_strategy=tune_settings.strategy(), task_name=task.workload.name, logger=logger,
            rand_state=rand_state, num_threads=target_threads(target)).clone())
    faults: list = []
    callbacks = ms.measure_callback.MeasureCallback.create("default") + [
        _callbacks(names, deadline, on_trials, faults, stop)]
    bld = make_builder(builder, target) if isinstance(builder, str) else builder
    run = runner if runner is not None else make_runner(target, 10.0)
    before = len(db.ms)
    with named_handlers_only():
        _tune_tasks_until_deadline(
            ms, tasks=contexts, task_weights=[max(t.weight, 1e-6) for t in batch], work_dir=str(work_dir),
            max_trials_global=per_task * len(batch),
            max_trials_per_task=per_task,
            num_trials_per_iter=min(settings.trials_per_iter, per_task),
            builder=bld, runner=run, database=db.ms,
            cost_model=cost_model if cost_model is not None else tune_settings.cost_model(),
            measure_callbacks=callbacks, task_scheduler="round-robin")
    trials = len(db.ms) - before
    if faults:
        with open(db.path / "faults.jsonl", "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"workload": n, "stage": "pretune", "reason": r}) + "\n" for n, r in faults)
    return trials, len(faults)


def pretune(tasks: Sequence[SpaceTask], db: TuningDatabase, target: Any, *, minutes: float | None = None,
            settings: PretuneSettings = PretuneSettings(), cost_model: Any = None, builder: Any = "inprocess",
            runner: Any = None, max_rounds: int | None = None,
            on_round: Callable[[dict[str, Any]], None] | None = None,
            on_trials: Callable[[int], None] | None = None) -> PretuneReport:
    """Tune `tasks` into `db` round by round until every task has `max_trials_per_task` trials (or its
    search space is exhausted), `minutes` have passed, or `max_rounds` rounds ran.

    `cost_model` (a MetaSchedule cost model object) is shared by every round, so what it learns carries
    over; by default each round makes a fresh MetaSchedule XGBoost model. `on_round` receives a summary
    after each round (for a progress display), `on_trials` the number of trials as they are measured.
    A KeyboardInterrupt ends the call after saving the state; what was measured is in the database."""
    if minutes is not None and not minutes > 0:
        raise ScheduleError(f"pretune: minutes must be > 0, got {minutes}")
    start = time.time()
    deadline = start + minutes * 60 if minutes is not None else math.inf
    db = db.on(target)  # this machine's trials decide what is tuned next
    state_path = state_file(db)
    state = _read_state(state_path)
    report = PretuneReport()
    stop, restore = _first_ctrl_c_ends_the_round()  # restored in the `finally` below, whatever happens
    try:
        while True:
            if max_rounds is not None and report.rounds >= max_rounds:
                report.stopped = "max_rounds"
                break
            if time.time() >= deadline:
                report.stopped = "deadline"
                break
            if stop.is_set():
                report.stopped = "interrupted"
                break
            with db.writing():
                before = task_trials(db)
                batch, per_task = choose_round(tasks, db, state, settings, before)
                if not batch:
                    report.stopped = "done"
                    break
                round_start = time.time()
                trials, faults = _tune_round(batch, per_task, db, target, settings, state.get("rounds", 0),
                                             deadline, cost_model, builder, runner, on_trials, stop)
                db.refresh()
                after = task_trials(db)
            seconds = time.time() - round_start
            history = state.setdefault("history", {})
            exhausted = set(state.get("exhausted", []))
            for t in batch:
                n0, n1 = before.get(t.key, (0, None))[0], after.get(t.key, (0, None))[0]
                best = after.get(t.key, (0, None))[1]
                if best is not None:
                    history.setdefault(t.key, []).append(best)
                    history[t.key] = history[t.key][-4:]
                # fewer than half the trials asked for, no deadline hit, no Ctrl-C: its search space ran out
                if n1 - n0 < per_task // 2 and time.time() < deadline and not stop.is_set():
                    exhausted.add(t.key)
            state["exhausted"] = sorted(exhausted)
            state["rounds"] = state.get("rounds", 0) + 1
            state["trials"] = state.get("trials", 0) + trials
            state["seconds"] = state.get("seconds", 0.0) + seconds
            _write_state(state_path, state)
            report.rounds += 1
            report.trials += trials
            report.faults += faults
            report.tuned_tasks.extend(t.key for t in batch if t.key not in report.tuned_tasks)
            if on_round is not None:
                on_round({"round": state["rounds"], "tasks": [t.workload.name for t in batch], "trials": trials,
                          "seconds": seconds, "coverage": space_coverage(tasks, db)})
            if stop.is_set():
                report.stopped = "interrupted"
                break
    except KeyboardInterrupt:
        report.stopped = "interrupted"
    finally:
        restore()
    report.seconds = time.time() - start
    return report


def state_file(db: TuningDatabase) -> Path:
    """Where the pretune state of `db`'s machine lives (``pretune-state.llvm-znver4.json``; unbound:
    ``pretune-state.json``)."""
    if db.machine is None:
        return db.path / STATE_FILE
    slug = "".join(c if c.isalnum() or c in "._" else "-" for c in db.machine)
    return db.path / f"pretune-state.{slug}.json"


def state_of(db: TuningDatabase) -> dict[str, Any]:
    """The pretune state of `db`'s machine saved beside the database ({} when it was never pretuned there)."""
    return _read_state(state_file(db))
