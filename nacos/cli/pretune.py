"""Pay for the compiler once per workload of the space: tune every distinct task the architecture space can
produce into the shared tuning database, before (or between) searches.

The tasks are enumerated exactly, with real TVM imports of a few networks that together contain every
block the space allows at every resolution, width, kernel size, expand ratio and stage position (cached
beside the database). Each task is weighted by how often an average architecture calls it; rounds of
MetaSchedule trials go to the tasks where they are expected to remove the most latency (untuned heavy
tasks first, then refinements whose last round still paid off), up to --max-trials-per-task each.

Resumable: everything measured is in the database the moment it is measured, so a rerun of the same
command (after a kill, Ctrl-C or --minutes running out) goes on where the last stopped. A search that
uses the same --database then compiles and measures each candidate and tunes only what is missing.
Exit codes: 0 done or out of time, 2 bad input, 130 interrupted (what was measured is kept)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from nacos.config import TuningConfig


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", default=None, metavar="SPACE.json|JSON",
                        help="the architecture space (SpaceConfig keys; default: the default space)")
    parser.add_argument("--target", default="llvm", help="llvm (this CPU) or rpc://HOST:PORT/KEY (trials run "
                        "on a device behind a TVM RPC tracker; ?mtriple=...&mcpu=... for a device of another "
                        "instruction set: docs/scale-out.md)")
    parser.add_argument("--database", default=TuningConfig.database,
                        help="tuning database directory, shared with searches (relative: to the current directory)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop after this many minutes (default: until every task has its trials)")
    parser.add_argument("--threads", type=int, default=0, help="threads the tuned kernels run with (0: every core)")
    parser.add_argument("--in-channels", type=int, default=1, help="input channels of the networks (the data's)")
    parser.add_argument("--num-classes", type=int, default=10, help="classes of the networks' classifier")
    parser.add_argument("--tasks-per-round", type=int, default=8, help="tasks tuned together in one round")
    parser.add_argument("--trials-per-round", type=int, default=32, help="MetaSchedule trials per task and round")
    parser.add_argument("--max-trials-per-task", type=int, default=128,
                        help="trials after which a task is left alone (over all rounds and runs)")
    parser.add_argument("--first-pass-trials", type=int, default=8,
                        help="trials a task never tried gets first: every task of the space gets a record before "
                             "any is refined (a task without one costs each search that meets it a tuning of its own)")
    parser.add_argument("--first-pass-tasks", type=int, default=None,
                        help="tasks of a first-pass round (default: twice --tasks-per-round)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the schedule search")
    parser.add_argument("--cost-model", choices=COST_MODELS, default="database",
                        help="what ranks MetaSchedule's candidates: database (the default: "
                             "costmodels.ms_cost_model.DatabaseXGBCostModel, pretrained on every record of the "
                             "database, kept across rounds and runs as XGBoost JSON in DATABASE/ms_cost_model) or "
                             "metaschedule (its own XGBoost model, fresh each round, random until 100 samples); "
                             "benchmarks/results/pretune_cost_model.json: database reaches 0.67x MetaSchedule's "
                             "best kernel time after the same 32 trials")
    parser.add_argument("--enumerate-only", action="store_true",
                        help="list the space's tasks and the database's coverage of them; tune nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    parser.set_defaults(func=run)


COST_MODELS = ("metaschedule", "database")


def _cost_model(kind: str, db: Any, target: Any, show: bool) -> Any:
    """The database-trained model of `db` (pretune's default), or None for MetaSchedule's own XGBModel."""
    if kind != "database":
        return None
    from costmodels.ms_cost_model import DatabaseXGBCostModel

    if show:
        print(f"cost model: pretraining on the records of {db.path} (or loading the saved one)", file=sys.stderr)
    return DatabaseXGBCostModel.for_tuning(db.path, target)


def _check(args: argparse.Namespace) -> None:
    from nacos.errors import NacosError

    if args.minutes is not None and not args.minutes > 0:
        raise NacosError(f"--minutes must be > 0, got {args.minutes}")
    for name in ("tasks_per_round", "trials_per_round", "max_trials_per_task", "in_channels", "num_classes",
                 "first_pass_trials"):
        if getattr(args, name) < 1:
            raise NacosError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.first_pass_tasks is not None and args.first_pass_tasks < 1:
        raise NacosError(f"--first-pass-tasks must be >= 1, got {args.first_pass_tasks}")
    if args.threads < 0:
        raise NacosError(f"--threads must be >= 0, got {args.threads}")
    if args.target == "cuda":
        raise NacosError("--target cuda: pretuning tunes for this CPU or an RPC device; CUDA is not supported here")
    if args.target != "llvm" and not args.target.startswith("rpc://"):
        raise NacosError(f"--target: {args.target!r}; expected llvm or rpc://HOST:PORT/KEY")


def _bar(enabled: bool, **kw):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(file=sys.stderr, dynamic_ncols=True, **kw)


def run(args: argparse.Namespace) -> int:
    _check(args)
    from nacos.tools.model import dumps, read_space

    space = read_space(args.space)          # bad input is refused before anything is written
    from nacos.backends.tvm import make_target
    from nacos.search.space_tasks import enumerate_space_tasks, space_task_file
    from schedules.database import TuningDatabase
    from schedules.pretune import PretuneSettings, pretune, space_coverage, state_of, task_trials
    from schedules.space_tasks import task_file_digest

    settings = PretuneSettings(tasks_per_round=args.tasks_per_round, trials_per_round=args.trials_per_round,
                               max_trials_per_task=args.max_trials_per_task, seed=args.seed,
                               first_pass_trials=args.first_pass_trials, first_pass_tasks=args.first_pass_tasks)
    target, rpc = make_target(args.target, args.threads)
    show = not (args.quiet or args.json)
    db = TuningDatabase(args.database, target=target)  # trials and coverage of this target's machine
    bar = _bar(show, desc="enumerating the space's tasks", unit="network")

    def on_network(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    tasks = enumerate_space_tasks(space, target, db.path, in_channels=args.in_channels,
                                  num_classes=args.num_classes, progress=on_network)
    if bar is not None:
        bar.close()
    report = None
    if not args.enumerate_only:
        trials = task_trials(db)
        planned = sum(max(0, settings.max_trials_per_task - trials.get(t.key, (0, None))[0]) for t in tasks
                      if t.weight > 0)
        until = f" (until {time.strftime('%H:%M', time.localtime(time.time() + args.minutes * 60))})" \
            if args.minutes else ""
        bar = _bar(show, desc=f"pretuning {len(tasks)} tasks{until}", unit="trial", total=planned)

        def on_trials(n: int) -> None:
            if bar is not None:
                bar.update(n)

        def on_round(info: dict) -> None:
            if bar is not None:
                cov = info["coverage"]
                bar.set_postfix_str(f"round {info['round']}, tasks {cov['tasks_covered']}/{cov['tasks_total']}, "
                                    f"MACs {cov['space_mac_coverage']:.0%}")

        runner = rpc.ms_runner() if rpc is not None else None
        import contextlib

        cost_model = _cost_model(args.cost_model, db, target, show)
        with contextlib.redirect_stdout(sys.stderr):  # MetaSchedule logs to stdout; it carries --json alone
            try:
                report = pretune(tasks, db, target, minutes=args.minutes, settings=settings, runner=runner,
                                 cost_model=cost_model, on_round=on_round, on_trials=on_trials)
            finally:
                if cost_model is not None:
                    cost_model.save()  # what it learnt, for the next run (XGBoost JSON, no pickle)
        if bar is not None:
            bar.close()
    db.refresh()
    cov = space_coverage(tasks, db)
    state = state_of(db)
    summary = {
        "database": str(db.path), "tasks_file": str(space_task_file(db.path, space, target,
                                                                      in_channels=args.in_channels,
                                                                      num_classes=args.num_classes)),
        "space_tasks_digest": task_file_digest(tasks), "target": args.target, "tasks": len(tasks),
        "rounds": report.rounds if report else 0, "trials": report.trials if report else 0,
        "seconds": round(report.seconds, 2) if report else 0.0,
        "seconds_per_trial": round(report.seconds_per_trial, 3) if report and report.trials else None,
        "stopped": report.stopped if report else "enumerate-only", "faults": report.faults if report else 0,
        "cost_model": args.cost_model,
        "pretune_seconds_total": round(state.get("seconds", 0.0), 1), "pretune_trials_total": state.get("trials", 0),
        "coverage": cov,
    }
    if args.json:
        print(dumps(summary))
    else:
        print(f"space: {len(tasks)} distinct tasks -> database {db.path}")
        if report:
            print(f"this run: {report.rounds} rounds, {report.trials} trials in {report.seconds:.0f} s "
                  f"({summary['seconds_per_trial'] or '-'} s a trial), stopped: {report.stopped}")
        print(f"coverage: {cov['tasks_covered']}/{cov['tasks_total']} tasks ({cov['space_task_coverage']:.0%}), "
              f"{cov['space_mac_coverage']:.1%} of the space's expected MACs; an average architecture's tuned "
              f"kernels {cov['expected_tuned_kernel_ms_per_arch']:.3f} ms, uncovered ones predicted "
              f"{cov['uncovered_predicted_tuned_ms_per_arch']:.3f} ms once tuned (unscheduled today)")
        print(f"pretuned in all: {summary['pretune_seconds_total']} s, {summary['pretune_trials_total']} trials")
    return 130 if report is not None and report.stopped == "interrupted" else 0
