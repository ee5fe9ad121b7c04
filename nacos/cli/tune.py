"""Tune one model into the shared tuning database and time it beside onnxruntime.

MODEL is an ONNX file (checked with onnx.checker first) or an architecture JSON (checked against the
space, then exported with random weights: latency needs no trained ones). Only the workloads the
database has no working record of are tuned; the rest are reused. The model is then compiled with the
database's best records, its output checked against onnxruntime, and both are timed by one protocol
(warm-up runs, then repeats; medians; the same thread count), onnxruntime in a process of its own
(`schedules.measure.reference_onnxruntime` does so wherever TVM is loaded: TVM's thread pool pins
this process's threads to one core). `--per-layer` adds a table of TVM's kernel times beside
onnxruntime's profiler node times (`schedules.per_layer`, each runtime in a fresh process).
Exit codes: 0 done, 1 the tuned model failed to build, run or match onnxruntime, 2 bad input
(nothing written)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nacos.config import SEARCHERS, TuningConfig


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, metavar="MODEL.onnx|ARCH.json", help="the model to tune")
    parser.add_argument("--database", default=TuningConfig.database,
                        help="tuning database directory, shared with searches (relative: to the current directory)")
    parser.add_argument("--searcher", choices=SEARCHERS, default=TuningConfig.searcher,
                        help="auto: MetaSchedule (--metaschedule-trials each) for the heaviest unseen conv / dense "
                             "workloads, the explicit space for the rest; explicit: the ScheduleConfig space only; "
                             "metaschedule: every unseen workload (give it >= 16 trials per workload)")
    parser.add_argument("--trials-per-workload", type=int, default=TuningConfig.trials_per_workload,
                        help="schedule-search trials for each unseen workload")
    parser.add_argument("--metaschedule-trials", type=int, default=TuningConfig.metaschedule_trials,
                        help="auto: MetaSchedule trials of each heavy unseen workload (>= 16)")
    parser.add_argument("--target", default="llvm", help="llvm (this CPU) or rpc://HOST:PORT/KEY (a device "
                        "behind a TVM RPC tracker; onnxruntime is still timed on this CPU; ?mtriple=...&mcpu=... for a "
                        "device of "
                        "another instruction set: docs/scale-out.md)")
    parser.add_argument("--threads", type=int, default=0, help="threads for TVM and onnxruntime (0: every core)")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size of an ARCH.json's export (default 1; an ONNX file keeps its own)")
    parser.add_argument("--space", default=None, metavar="SPACE.json|JSON",
                        help="the architecture space an ARCH.json is checked against (SpaceConfig keys; "
                             "default: the default space)")
    parser.add_argument("--repeats", type=int, default=TuningConfig.repeats, help="timed runs of each runtime")
    parser.add_argument("--warmup", type=int, default=TuningConfig.warmup, help="untimed runs before timing")
    parser.add_argument("--seed", type=int, default=0, help="seed of the schedule search")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--per-layer", action="store_true",
                        help="also time each layer: TVM's kernels beside onnxruntime's profiler nodes, each "
                             "runtime in a process of its own (this CPU only; JSON key 'per_layer')")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (no progress bar)")
    parser.set_defaults(func=run)


def _ms(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def _per_layer(args: argparse.Namespace, result: dict) -> list[dict]:
    """`schedules.per_layer.per_layer_table` of the tuned model (an ARCH.json is exported again:
    `tune_model` keeps no file), with the database and TVM target it was measured with."""
    import json
    import tempfile

    from nacos.tools.model import check_model, read_space
    from schedules.measure import Protocol
    from schedules.per_layer import per_layer_table
    from schedules.targets import host_threads

    space = read_space(args.space)
    with tempfile.TemporaryDirectory(prefix="nacos-tune-layers-") as tmp:
        model_in = check_model(args.model, space, args.batch).materialize(space, Path(tmp))
        return per_layer_table(model_in.onnx_path, result["database"], json.loads(result["tvm_target"]),
                               Protocol(warmup=args.warmup, repeats=args.repeats), args.threads or host_threads())


def run(args: argparse.Namespace) -> int:
    from nacos.errors import NacosError
    from nacos.tools.model import dumps, tune_model

    if args.trials_per_workload < 1 or args.threads < 0 or args.repeats < 1 or args.warmup < 0:
        raise NacosError("--trials-per-workload and --repeats must be >= 1, --threads and --warmup >= 0")
    if args.per_layer and args.target != "llvm":
        raise NacosError(f"--per-layer: profiles on this CPU only (--target llvm), not {args.target}")
    result = tune_model(args.model, database=args.database, searcher=args.searcher,
                        metaschedule_trials=args.metaschedule_trials,
                        trials_per_workload=args.trials_per_workload, target=args.target, threads=args.threads,
                        batch=args.batch, space=args.space, warmup=args.warmup, repeats=args.repeats,
                        seed=args.seed, progress=not (args.quiet or args.json))
    if args.per_layer and result["tuned_ok"]:
        result["per_layer"] = _per_layer(args, result)
    if args.json:
        print(dumps(result))
    else:
        header = f"{'tasks':>5}  {'tuned':>5}  {'reused':>6}  {'hit rate':>8}  {'trials':>6}  {'tuning s':>8}  " \
                 f"{'tuned ms':>9}  {'onnxruntime ms':>14}"
        print(f"{result['model']} (batch {result['batch']}) -> database {result['database']}, {result['searcher']}")
        print(header)
        print("-" * len(header))
        print(f"{result['tasks']:>5}  {result['tuned']:>5}  {result['reused']:>6}  {result['hit_rate']:>8.2f}  "
              f"{result['trials']:>6}  {result['tuning_seconds']:>8.1f}  {_ms(result['tuned_ms']):>9}  "
              f"{_ms(result['onnxruntime_ms']):>14}")
        if result.get("per_layer"):
            from schedules.per_layer import format_table

            print()
            print(format_table(result["per_layer"]))
    if not result["tuned_ok"]:
        import sys

        print(f"nacos tune: the tuned model failed: {result['tuned_error']}", file=sys.stderr)
        return 1
    return 0
