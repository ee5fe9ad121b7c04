"""Run a co-search: propose architectures (and, in one-stage mode, schedules), score each on accuracy
with inherited supernet weights and on latency with the schedules TVM will run, keep what meets the
budgets, and end with a report. Settings come from --config (YAML/TOML) with flags on top; without
--config, the embedded default job (flags on top): a 15-minute two-stage co-search of the default space
on this CPU, aging evolution for the most accurate network under a latency budget set at the median
latency of its random initial population, its tuning database seeded from the pretuned one committed
for the default space (benchmarks/pretuned/, when this is a source checkout).

--mode picks one of the search modes (the records of nacos.search.modes; its help lists each). Killing a run
and rerunning the same command resumes it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nacos.config import SEARCHERS, RunConfig
from nacos.search.modes import MODES, mode_names

#: where the pretuned database of the default space lives in a source checkout
PRETUNED_DEFAULT_SPACE = Path(__file__).resolve().parents[2] / "benchmarks" / "pretuned" / "default-space-llvm"


def default_job() -> dict[str, Any]:
    """The embedded default job (no --config): 15 minutes, a derived latency budget, the pretuned seed."""
    job: dict[str, Any] = {"trials": 400, "time_limit_s": 900.0, "budgets": {"latency_from_population": 0.5}}
    if (PRETUNED_DEFAULT_SPACE / "database_tuning_record.json").is_file():
        job["tuning"] = {"seed_from": str(PRETUNED_DEFAULT_SPACE)}
    return job


QUICK = {"trials": 3, "tuning": {"trials_per_workload": 4, "repeats": 10, "warmup": 2, "searcher": "explicit"},
         "strategy": {"population": 2, "sample_size": 2}}


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="run config (.yaml, .yml, .toml or .json)")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/default"),
                        help="run directory: config, results store, report (rerun to resume)")
    modes = "; ".join(f"{m.name}: {m.description}" for m in MODES.values()).replace("%", "%%")  # argparse formats help
    parser.add_argument("--mode", choices=mode_names(), default=None,
                        help=f"search mode (config default: {RunConfig.mode}). {modes}")
    parser.add_argument("--strategy", choices=("aging", "nsga2", "random"), default=None,
                        help="search strategy (config default: aging)")
    parser.add_argument("--trials", type=int, default=None,
                        help="candidates to evaluate (default job: 400, config default: 6)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="stop proposing after SECONDS (default job: 900)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the strategy (config default: 0)")
    parser.add_argument("--target", default=None,
                        help="llvm (this CPU), cuda, rpc://HOST:PORT/KEY[?mtriple=T&mcpu=C] (a device; the query names "
                             "the "
                             "target of a device of another instruction set), or accel://HARDWARE "
                             "(a ZigZag accelerator: eyeriss-like, tpu-like, ... or a hardware YAML)")
    parser.add_argument("--baseline-latency", choices=("auto", "onnxruntime", "default-schedule", "macs"),
                        default=None, help="--mode baseline: what the compiler-agnostic baseline measures; auto (the "
                        "default) is onnxruntime on llvm, the fixed default TVM schedule on rpc://, cuda and accel://")
    parser.add_argument("--accelerator-sizing", action="store_true", default=None,
                        help="accel:// targets: search the PE array dimensions and on-chip buffer sizes (a grid "
                             "around the target's array) with the architecture; rows record the array and its "
                             "area (objective and budget accel_area)")
    parser.add_argument("--latency-budget", type=float, default=None,
                        help="hard latency budget in ms (replaces the default job's derived one)")
    parser.add_argument("--latency-from-population", type=float, default=None, metavar="Q",
                        help="derive the hard latency budget: the Q quantile (0 < Q <= 1) of the latencies of the "
                             "random initial population, applied to every later candidate (default job: 0.5; "
                             "0: no derived budget)")
    parser.add_argument("--memory-budget", type=float, default=None,
                        help="hard (active) peak activation memory budget in MB")
    parser.add_argument("--trials-per-workload", type=int, default=None,
                        help="schedule-search trials for each unseen workload (config default: 8)")
    parser.add_argument("--searcher", choices=SEARCHERS, default=None,
                        help="two-stage schedule search of unseen workloads: auto (MetaSchedule for the heavy ones, "
                             "the explicit space for the rest), explicit or metaschedule (config default: auto)")
    parser.add_argument("--database", default=None, help="shared tuning database directory")
    parser.add_argument("--executor", default=None, metavar="URL",
                        help="where candidates are evaluated: local (this process), dask://HOST:PORT (workers of "
                             "a running Dask scheduler, see docs/scale-out.md) or dask://local:N (N worker "
                             "processes on this machine, started and stopped with the run); the driver alone "
                             "writes the results store; may change between reruns (config default: local)")
    parser.add_argument("--parallel", type=int, default=None, metavar="N",
                        help="candidates evaluated at once, about the number of workers; it changes what is "
                             "proposed, so a run directory keeps the value it started with (config default: 1)")
    parser.add_argument("--quick", action="store_true", help="a tiny search: 3 candidates, 4 trials per workload")
    parser.add_argument("--dry-run", action="store_true", help="validate the settings, print the plan, run nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the summary (or plan) as JSON")
    parser.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from nacos.config import _deep_merge

    out: dict[str, Any] = default_job() if args.config is None else {}
    if args.quick:
        out = _deep_merge(out, json.loads(json.dumps(QUICK)))
    flat = {"mode": args.mode, "trials": args.trials, "time_limit_s": args.time_limit, "seed": args.seed,
            "target": args.target, "executor": args.executor, "parallel": args.parallel,
            "baseline_latency": args.baseline_latency, "accelerator_sizing": args.accelerator_sizing}
    out.update({k: v for k, v in flat.items() if v is not None})
    derived = args.latency_from_population
    if args.latency_budget is not None or derived is not None:   # a budget given replaces the derived one
        out.get("budgets", {}).pop("latency_from_population", None)
    if derived is not None and derived != 0:
        out = _deep_merge(out, {"budgets": {"latency_from_population": derived}})
    nested = {("strategy", "name"): args.strategy, ("budgets", "latency_ms"): args.latency_budget,
              ("budgets", "active_memory_budget_mb"): args.memory_budget,
              ("tuning", "trials_per_workload"): args.trials_per_workload, ("tuning", "database"): args.database,
              ("tuning", "searcher"): args.searcher}
    for (section, key), value in nested.items():
        if value is not None:
            out = _deep_merge(out, {section: {key: value}})
    return out


def plan(cfg, run_dir: Path) -> dict[str, Any]:
    """What the run will do, for --dry-run and the start of the log."""
    return {"run_dir": str(run_dir), "mode": cfg.mode, "strategy": cfg.strategy.name, "trials": cfg.trials,
            **({"baseline_latency": cfg.baseline_latency} if cfg.mode == "baseline" else {}),
            "time_limit_s": cfg.time_limit_s, "target": cfg.target, "executor": cfg.executor,
            "parallel": cfg.parallel, "objectives": list(cfg.objectives),
            "hard_budgets": {"latency_ms": cfg.budgets.latency_ms,
                             "latency_from_population": cfg.budgets.latency_from_population,
                             "active_memory_budget_mb": cfg.budgets.active_memory_budget_mb},
            "soft_budgets": {"memory_budgets_mb": list(cfg.budgets.memory_budgets_mb),
                             "latency_budgets_ms": list(cfg.budgets.latency_budgets_ms)},
            "tuning": {"trials_per_workload": cfg.tuning.trials_per_workload, "database": cfg.tuning.database},
            "config": cfg.to_dict()}


def run(args: argparse.Namespace) -> int:
    from nacos.config import load_config

    cfg = load_config(args.config, _overrides(args))
    the_plan = plan(cfg, args.run_dir)
    if args.dry_run:
        if args.json:
            print(json.dumps(the_plan, indent=2))
        else:
            print(f"plan: {cfg.mode} search"
                  f"{f' (latency by {cfg.baseline_latency})' if cfg.mode == 'baseline' else ''} with "
                  f"{cfg.strategy.name}, {cfg.trials} candidates"
                  f"{f', at most {cfg.time_limit_s:g} s' if cfg.time_limit_s else ''}, target {cfg.target}, "
                  f"{cfg.tuning.trials_per_workload} trials per unseen workload, database {cfg.tuning.database}")
            print(f"      hard budgets {the_plan['hard_budgets']}, objectives {list(cfg.objectives)}")
            print(f"      executor {cfg.executor}, {cfg.parallel} candidate(s) at once")
            print(f"      run directory {args.run_dir} (nothing written: dry run)")
        return 0
    from nacos.search.run import run_search

    if cfg.executor != "local" and cfg.parallel == 1:
        print(f"nacos search: note: executor {cfg.executor} with parallel 1 evaluates one candidate at a time; "
              f"set --parallel to about the number of workers (fixed for the run directory)", file=sys.stderr)
    summary = run_search(cfg, args.run_dir, progress=not args.quiet and not args.json)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(f"{summary['evaluated']} candidates in {args.run_dir}: {summary['ok']} ok, {summary['rejected']} "
              f"rejected, {summary['failed']} failed; front of {len(summary['front'])}; report in "
              f"{summary['report_dir']}; evaluated on {summary['executor']}", file=sys.stdout)
        ph = summary.get("phases")
        if ph:
            print(f"phases ({ph['strategy']}, population {ph['population']}): {ph['random_initial']} random, "
                  f"{ph['evolved']} evolved ({ph['generations']:g} generations); {ph['screened']} screened before "
                  f"their build ({ph['screened_by']['table']} by the latency table, {ph['priced_by_table']} of them "
                  f"recorded with its predicted latency; {ph['screened_by']['model']} by the cost model), "
                  + (f"{ph['deployed_with_onnxruntime_unbuilt']} deployed with onnxruntime unbuilt (it beat the "
                     "table's prediction), " if ph.get("deployed_with_onnxruntime_unbuilt") else "")
                  + f"{ph['tuned']} tuned workloads, {ph['compiled_and_measured_only']} only compiled and measured; "
                  f"driven by {ph['driven_by']}"
                  + (f" under {', '.join(f'{k} <= {v:g}' for k, v in ph['hard_budgets'].items())}"
                     if ph["hard_budgets"] else ""), file=sys.stdout)
    return 0
