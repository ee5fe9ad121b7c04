"""Which cost model should pretuning rank MetaSchedule's candidates with: MetaSchedule's own `XGBModel`
(empty at the start of every round: random scores until it holds 100 samples) or the project's
`costmodels.ms_cost_model.DatabaseXGBCostModel` (pretrained on every record of the database, so a task
starts from what the other tasks taught it)?

Side by side, same tasks, same trials, same seed, same machine, one arm after the other (the order
alternates with the seed: the first arm of a process pays TVM's warm-up):

- held-out tasks: the `--tasks` heaviest tasks of the default space (weight x MACs, from the pretuned
  database's task file) that the pretuned database covers;
- each arm tunes them into a fresh empty database with `schedules.pretune.pretune` (one round,
  `--trials` MetaSchedule trials each), arm ``metaschedule-xgb`` with pretune's default model,
  arm ``database-xgb`` with a `DatabaseXGBCostModel` pretrained on the pretuned database's records
  of every OTHER workload (the held-out tasks' own records are left out: it has never seen them);
- per task: the best run time after the first half of the trials and after all of them, and the
  pretuned database's best (its own trials, for scale).

    python -m benchmarks.pretune_cost_model --pretuned .nacos-cache/tuning-db
    python -m benchmarks.pretune_cost_model --pretuned .nacos-cache/tuning-db --quick   # 2 tasks x 8 trials: minutes

Writes benchmarks/results/pretune_cost_model.json after every arm; a rerun of the same command resumes
(arms already in the file are kept). Headline: ``geomean_best_database_over_metaschedule`` (< 1: the
database-trained model finds faster schedules with the same trials) and the same at half the trials.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, ResultFile, Size, add_sizes, geomean_or_none, resolve_sizes

ARMS = ("metaschedule-xgb", "database-xgb")
SIZES = {"tasks": Size(quick=2, full=6, help="held-out tasks (heaviest covered ones first)"),
         "trials": Size(quick=8, full=32, help="MetaSchedule trials per task and arm"),
         "seeds": Size(quick=1, full=1, help="seeds 0 .. N-1, each a pair of arms")}


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pretuned", type=Path, required=True, metavar="DIR",
                   help="a database `nacos pretune` filled for the default space (with its space-tasks file)")
    add_sizes(p, SIZES, "2 tasks x 8 trials (a check that it runs, not a figure)")
    p.add_argument("--threads", type=int, default=0, help="threads of the tuned kernels (0: every core)")
    p.add_argument("--work-dir", type=Path, default=Path(".nacos-cache/pretune_cost_model"))
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "pretune_cost_model.json")
    args = resolve_sizes(p.parse_args(argv), SIZES)
    if not (args.pretuned / "database_tuning_record.json").is_file():
        p.error(f"--pretuned: {args.pretuned} is not a tuning database (no database_tuning_record.json)")
    if args.tasks < 1 or args.trials < 2 or args.seeds < 1:
        p.error("--tasks >= 1, --trials >= 2 and --seeds >= 1")
    return args


def _space_tasks(pretuned: Path, target: Any) -> list[Any]:
    from archspace import ArchSpace
    from nacos.search.space_tasks import space_task_file
    from schedules.space_tasks import read_task_file

    path = space_task_file(pretuned, ArchSpace(), target)
    if not path.exists():
        raise SystemExit(f"{pretuned}: no task file of the default space ({path.name}); run `nacos pretune "
                         f"--database {pretuned} --enumerate-only` first")
    return read_task_file(path)[0]


def _records_in_order(db_dir: Path, machine: str | None = None) -> dict[str, list[float]]:
    """structural hash -> median run seconds of its records, in the order they were measured (failed: inf);
    given `machine` (`schedules.targets.machine_key`), the records measured on it only."""
    from schedules.targets import machine_key

    hashes = [json.loads(line)[0] for line in (db_dir / "database_workload.json").read_text().splitlines() if line]
    out: dict[str, list[float]] = {}
    for line in (db_dir / "database_tuning_record.json").read_text().splitlines():
        if not line.strip():
            continue
        widx, rec = json.loads(line)
        if machine is not None and machine_key(rec[2]) != machine:
            continue
        secs = [float(s) for s in (rec[1] or [])]
        med = sorted(secs)[len(secs) // 2] if secs else math.inf
        out.setdefault(hashes[widx], []).append(med if med < 1e9 else math.inf)
    return out


def _best_ms(secs: list[float], first: int | None = None) -> float | None:
    best = min(secs[:first] if first else secs, default=math.inf)
    return best * 1e3 if math.isfinite(best) else None


def _database_model(pretuned: Path, held_out: set[str], target: Any) -> tuple[Any, dict[str, Any]]:
    from costmodels.ms_cost_model import DatabaseXGBCostModel, read_workload_records

    t0 = time.perf_counter()
    model = DatabaseXGBCostModel()
    records = [r for r in read_workload_records(pretuned, target, featurizer=model._fz) if r.key not in held_out]
    model.add_records(records)
    return model, {"pretrained_workloads": len(records), "pretrained_samples": model.n_samples,
                   "pretrain_seconds": time.perf_counter() - t0}


def _label(task: Any) -> str:
    """A task's name with the head of its structural hash: TVM reuses a fused function's name for tasks
    of other shapes (six held-out tasks had three names), so the name alone does not identify it."""
    return f"{task.workload.name}#{task.key[:8]}"


def _run_arm(arm: str, seed: int, tasks: list[Any], args, target: Any) -> dict[str, Any]:
    from schedules.database import TuningDatabase
    from schedules.pretune import PretuneSettings, pretune

    work = args.work_dir / f"seed{seed}" / arm
    shutil.rmtree(work, ignore_errors=True)  # an arm interrupted midway starts again
    work.mkdir(parents=True)
    db = TuningDatabase(work)
    extra: dict[str, Any] = {}
    cost_model = None
    if arm == "database-xgb":
        cost_model, extra = _database_model(args.pretuned, {t.key for t in tasks}, target)
    settings = PretuneSettings(tasks_per_round=len(tasks), trials_per_round=args.trials,
                               max_trials_per_task=args.trials, seed=seed)
    t0 = time.perf_counter()
    report = pretune(tasks, db, target, settings=settings, cost_model=cost_model, max_rounds=1)
    seconds = time.perf_counter() - t0
    measured = _records_in_order(work)
    half = max(args.trials // 2, 1)
    per_task = {_label(t): {"best_ms": _best_ms(measured.get(t.key, [])),
                                  "best_ms_half": _best_ms(measured.get(t.key, []), half),
                                  "trials": len(measured.get(t.key, []))} for t in tasks}
    return {"arm": arm, "seed": seed, "seconds": seconds, "trials": report.trials, "faults": report.faults,
            "seconds_per_trial": seconds / report.trials if report.trials else None, "tasks": per_task, **extra}


def _summarize(payload: dict[str, Any]) -> None:
    runs = payload["runs"]
    ratios, ratios_half = [], []
    for seed in sorted({r["seed"] for r in runs}):
        pair = {r["arm"]: r for r in runs if r["seed"] == seed}
        if set(pair) != set(ARMS):
            continue
        for name in pair["metaschedule-xgb"]["tasks"]:
            a, b = pair["database-xgb"]["tasks"][name], pair["metaschedule-xgb"]["tasks"][name]
            if a["best_ms"] and b["best_ms"]:
                ratios.append(a["best_ms"] / b["best_ms"])
            if a["best_ms_half"] and b["best_ms_half"]:
                ratios_half.append(a["best_ms_half"] / b["best_ms_half"])
    payload["pairs"] = len(ratios)
    payload["geomean_best_database_over_metaschedule"] = geomean_or_none(ratios)
    payload["geomean_best_half_trials_database_over_metaschedule"] = geomean_or_none(ratios_half)
    payload["database_better_tasks"] = sum(1 for r in ratios if r < 1.0)
    g = payload["geomean_best_database_over_metaschedule"]
    payload["verdict"] = ("no complete pair yet" if g is None else
                          f"database-trained model: {g:.3f}x MetaSchedule's best run time after the same trials "
                          f"(geomean over {len(ratios)} task-seed pairs; < 1 is better), "
                          f"{payload['geomean_best_half_trials_database_over_metaschedule']:.3f}x at half the trials")


def _save(result: ResultFile) -> None:
    """The summary into `result`, saved with a markdown table of the best run time per task and arm."""
    payload = result.payload
    _summarize(payload)
    result.save()
    rows = []
    for run in payload["runs"]:
        for name, t in run["tasks"].items():
            rows.append([name, run["seed"], run["arm"], t["trials"], t["best_ms_half"], t["best_ms"],
                         payload["pretuned_best_ms"].get(name)])
    result.table(["task", "seed", "arm", "trials", "best ms (half the trials)", "best ms", "pretuned best ms"],
                 rows, digits=4)


def main(argv=None) -> int:
    args = _parse(argv)
    from schedules.targets import host_target, machine_key

    target = host_target(args.threads or None)
    measured = _records_in_order(args.pretuned, machine_key(target))  # this machine's records only
    tasks = [t for t in sorted(_space_tasks(args.pretuned, target), key=lambda t: -t.expected_macs)
             if _best_ms(measured.get(t.key, [])) is not None][:args.tasks]
    settings = {"pretuned": str(args.pretuned), "tasks": [_label(t) for t in tasks], "trials": args.trials,
                "seeds": args.seeds, "target": str(target)}
    result = ResultFile("pretune_cost_model", args.out, settings)
    payload = result.payload
    if not result.resumed:
        payload.update({"runs": [], "pretuned_best_ms": {_label(t): _best_ms(measured[t.key]) for t in tasks},
                        "pretuned_trials": {_label(t): len(measured[t.key]) for t in tasks}})
    done = {(r["seed"], r["arm"]) for r in payload["runs"]}
    for seed in range(args.seeds):
        # the arm that runs first pays TVM's warm-up in this process: alternate the order with the seed
        for arm in (ARMS if seed % 2 == 0 else ARMS[::-1]):
            if (seed, arm) in done:
                continue
            print(f"[{time.strftime('%H:%M:%S')}] seed {seed}, {arm}: {len(tasks)} tasks x {args.trials} trials",
                  flush=True)
            payload["runs"].append(_run_arm(arm, seed, tasks, args, target))
            _save(result)
    _save(result)
    print(payload["verdict"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
