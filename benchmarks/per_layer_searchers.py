"""Per layer, where each schedule searcher stands: unscheduled, the explicit space's default rule, the
best of N explicit configs, and MetaSchedule with T trials, timed side by side in one run.

The layers are the conv / dense tasks of two real networks at their deployed sizes: MobileNet-V2
(`archspace.zoo`, 10 classes, 1x3x32x32) and the first architecture the default space samples
(`ArchSpace().sample(Random(0))`, exported with `archspace.export_onnx`). For each network the
`--tasks-per-network` tasks with the most MACs x calls are taken (the ones latency depends on).

Each kernel is one built PrimFunc timed with TVM's own time evaluator (`time_evaluator`, median of
`--repeat` samples of at least 20 ms each), 2 threads (`host_target(2)` and TVM's pool sized to 2);
every schedule's output is checked against the unscheduled function's before its time counts.
MetaSchedule tunes only that task (`schedules.tuner.tune(..., only=[hash])`) into a temporary
database; its best record is applied to the same PrimFunc and timed by the same evaluator.

Resumable: every finished row is appended to the JSON at once (written atomically), a rerun skips
the rows it holds and goes on; `--max-seconds` stops cleanly between rows so that one locked command
stays short. Run the full benchmark under the shared CPU lock:

    flock /tmp/nacos-cpu.lock python -m benchmarks.per_layer_searchers --max-seconds 270   # repeat until complete
"""

from __future__ import annotations

import argparse
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, ResultFile, Size, add_sizes, geomean_or_none, resolve_sizes

DEFAULT_OUT = RESULTS_DIR / "per_layer_searchers.json"
NETWORKS = ("mobilenet_v2", "arch0")
THREADS = 2


def _export(name: str, work: Path, quick: bool) -> Path:
    """The network's ONNX file (exported once into `work`)."""
    import torch

    path = work / f"{name}{'_quick' if quick else ''}.onnx"
    if path.exists():
        return path
    if name == "mobilenet_v2":
        from archspace.export import export_module
        from archspace.zoo import build_zoo_model

        torch.manual_seed(0)
        res = 16 if quick else 32
        return export_module(build_zoo_model("mobilenet_v2", num_classes=10), torch.randn(1, 3, res, res), path)
    if name == "arch0":
        from archspace import ArchSpace
        from archspace.export import export_onnx

        space = ArchSpace()
        return export_onnx(space.sample(random.Random(0)), path, space=space)
    raise SystemExit(f"unknown network {name!r}; choose from {NETWORKS}")


def _time_us(func: Any, target: Any, args: list[Any], repeat: int) -> tuple[float, Any]:
    """(median us per run, output) of a PrimFunc built for `target`."""
    import numpy as np
    import tvm

    lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target)
    lib = lib.jit() if hasattr(lib, "jit") else lib
    lib["main"](*args)
    out = args[-1].numpy().copy()
    timer = lib.time_evaluator("main", tvm.cpu(), number=1, repeat=repeat, min_repeat_ms=20)
    return float(np.median(timer(*args).results) * 1e6), out


def _check(out: Any, expected: Any) -> str:
    import numpy as np

    diff = float(np.abs(out - expected).max())
    tol = 1e-4 * max(1.0, float(np.abs(expected).max()))
    return "" if diff <= tol else f"wrong result: max abs diff {diff:.3g} > {tol:.3g}"


def _metaschedule_func(mod: Any, task_mod: Any, workload: Any, target: Any, trials: int,
                       seed: int) -> tuple[Any, float]:
    """(scheduled PrimFunc or None, tuning seconds) of MetaSchedule on this one task."""
    from schedules.database import TuningDatabase
    from schedules.tuner import tune

    with tempfile.TemporaryDirectory(prefix="per_layer_ms_") as tmp:
        db = TuningDatabase(Path(tmp) / "db")
        start = time.perf_counter()
        tune(mod, db, target, trials_per_task=trials, trials_per_iter=min(16, trials), seed=seed,
             only=[workload.structural_hash])
        seconds = time.perf_counter() - start
        sch = db.ms.query_schedule(task_mod, target=target, workload_name="main")
        return (None if sch is None else sch.mod["main"]), seconds


def _row(network: str, mod: Any, task: Any, target: Any, args_ns: argparse.Namespace) -> dict[str, Any]:
    from schedules.explicit.apply import apply_config, layer_shape_of, template_of
    from schedules.explicit.compile import _random_args, explicit_search
    from schedules.explicit.space import GlobalPolicy, ScheduleSpace
    from schedules.frontend import workload_of_task
    from schedules.records import ScheduleConfig

    w = workload_of_task(task)
    task_mod = task.dispatched[0]
    func = task_mod["main"]
    shape = layer_shape_of(func)
    args = _random_args(func)
    row: dict[str, Any] = {
        "network": network, "task": str(task.task_name), "kind": w.op_kind, "count": w.count, "macs": w.macs,
        "input_shapes": [list(s) for s in w.input_shapes], "output_shape": list(w.output_shape),
        "kernel": list(w.kernel), "strides": list(w.strides), "groups": w.groups,
        "shape": {"out_channels": shape.out_channels, "out_h": shape.out_h, "out_w": shape.out_w,
                  "reduction": shape.reduction},
        "errors": [],
    }
    # Step 1. Unscheduled (the reference output) and the default rule for this layer.
    row["unscheduled_us"], expected = _time_us(func, target, args, args_ns.repeat)
    default = GlobalPolicy(ScheduleConfig()).for_layer(shape)
    row["default_config"] = default.to_dict()
    row["default_template"] = template_of(shape, default)
    us, out = _time_us(apply_config(func, default).mod["main"], target, args, args_ns.repeat)
    bad = _check(out, expected)
    row["default_us"] = float("nan") if bad else us
    if bad:
        row["errors"].append(f"default: {bad}")
    # Step 2. Best of N explicit configs (searched with its own quick timing, re-timed here like the others).
    start = time.perf_counter()
    result = explicit_search(func, ScheduleSpace(), target, args_ns.configs, seed=args_ns.seed)
    row["explicit_search_seconds"] = time.perf_counter() - start
    row["explicit_tried"] = result.tried
    row["explicit_failures"] = len(result.failures)
    if result.config is None:
        row["explicit_us"] = float("nan")
        row["errors"].append("explicit: no config built and matched")
    else:
        row["explicit_config"] = result.config.to_dict()
        row["explicit_template"] = template_of(shape, result.config)
        us, out = _time_us(apply_config(func, result.config).mod["main"], target, args, args_ns.repeat)
        bad = _check(out, expected)
        row["explicit_us"] = float("nan") if bad else us
        if bad:
            row["errors"].append(f"explicit: {bad}")
    # Step 3. MetaSchedule on this task alone.
    row["metaschedule_trials"] = args_ns.trials
    if args_ns.trials > 0:
        ms_func, seconds = _metaschedule_func(mod, task_mod, w, target, args_ns.trials, args_ns.seed)
        row["metaschedule_seconds"] = seconds
        if ms_func is None:
            row["metaschedule_us"] = float("nan")
            row["errors"].append("metaschedule: no working record")
        else:
            us, out = _time_us(ms_func, target, args, args_ns.repeat)
            bad = _check(out, expected)
            row["metaschedule_us"] = float("nan") if bad else us
            if bad:
                row["errors"].append(f"metaschedule: {bad}")
    else:
        row["metaschedule_us"] = float("nan")
    ms_us = row["metaschedule_us"]
    for name in ("unscheduled", "default", "explicit"):
        value = row[f"{name}_us"]
        row[f"{name}_over_metaschedule"] = value / ms_us if ms_us > 0 and value > 0 else float("nan")
    return row


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": len(rows)}
    for name in ("unscheduled", "default", "explicit"):
        out[f"geomean_{name}_over_metaschedule"] = geomean_or_none(r[f"{name}_over_metaschedule"] for r in rows)
    out["explicit_within_1_5x_of_metaschedule"] = sum(1 for r in rows if r["explicit_over_metaschedule"] <= 1.5)
    out["explicit_beats_metaschedule"] = sum(1 for r in rows if r["explicit_over_metaschedule"] < 1.0)
    out["sum_us_weighted_by_count"] = {
        name: sum(r[f"{name}_us"] * r["count"] for r in rows if math.isfinite(r[f"{name}_us"]))
        for name in ("unscheduled", "default", "explicit", "metaschedule")}
    return out


def _pick_tasks(mod: Any, target: Any, k: int) -> list[Any]:
    from schedules.frontend import extract_tasks, workload_of_task
    from schedules.tuner import EXPLICIT_KINDS

    tasks = []
    for task in extract_tasks(mod, target):
        w = workload_of_task(task)
        if w.op_kind in EXPLICIT_KINDS:
            tasks.append((w.macs * w.count, str(task.task_name), task))
    tasks.sort(key=lambda t: (-t[0], t[1]))
    return [t for _, _, t in tasks[:k]]


SIZES = {"tasks_per_network": Size(quick=2, full=8, help="heaviest tasks (MACs x calls) per network"),
         "configs": Size(quick=2, full=8, help="explicit configs per task (best of N)"),
         "trials": Size(quick=4, full=64, help="MetaSchedule trials per task (0 skips it)"),
         "repeat": Size(quick=2, full=7, help="time-evaluator samples per kernel (>= 20 ms each)")}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_sizes(p, SIZES, "tiny budgets: MobileNet-V2 only, 2 tasks, 2 configs, 4 trials")
    p.add_argument("--networks", nargs="+", default=None, choices=NETWORKS,
                   help=f"networks (default all: {' '.join(NETWORKS)}; quick mobilenet_v2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=0.0, help="stop between rows after this long (0: no limit)")
    p.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "nacos-per-layer")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--fresh", action="store_true", help="ignore the rows already in --out")
    ns = resolve_sizes(p.parse_args(argv), SIZES)
    ns.networks = ns.networks or (["mobilenet_v2"] if ns.quick else list(NETWORKS))
    return ns


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TVM_NUM_THREADS", str(THREADS))
    from schedules.frontend import import_onnx
    from schedules.measure import set_tvm_threads
    from schedules.targets import host_target

    start = time.perf_counter()
    target = host_target(THREADS)
    set_tvm_threads(THREADS)
    settings = {"networks": args.networks, "tasks_per_network": args.tasks_per_network, "configs": args.configs,
                "trials": args.trials, "repeat": args.repeat, "seed": args.seed, "threads": THREADS,
                "quick": args.quick}
    result = ResultFile("per_layer_searchers", args.out, settings, resume=not args.fresh)
    if not result.resumed and args.out.exists() and not args.fresh:
        print(f"{args.out}: rows taken with other settings; starting afresh")
    rows: list[dict[str, Any]] = result.payload.setdefault("rows", [])
    done = {(r["network"], r["task"]) for r in rows}
    args.work_dir.mkdir(parents=True, exist_ok=True)
    complete = True

    def save(is_complete: bool) -> None:
        result.payload.update({"target": str(target), "complete": is_complete, "summary": _summary(rows)})
        result.save()
        result.table(["network", "task", "unscheduled us", "default us", "explicit us", "MetaSchedule us",
                      "explicit / MS"],
                     [[r["network"], r["task"], r["unscheduled_us"], r["default_us"], r["explicit_us"],
                       r["metaschedule_us"], r["explicit_over_metaschedule"]] for r in rows], digits=2)

    for network in args.networks:
        mod = import_onnx(_export(network, args.work_dir, args.quick))
        for task in _pick_tasks(mod, target, args.tasks_per_network):
            if (network, str(task.task_name)) in done:
                continue
            if args.max_seconds and time.perf_counter() - start > args.max_seconds:
                complete = False
                break
            row = _row(network, mod, task, target, args)
            rows.append(row)
            done.add((network, row["task"]))
            save(False)
            print(f"{network:13s} {row['task']:45s} unsched {row['unscheduled_us']:8.1f}  default "
                  f"{row['default_us']:7.1f}  explicit {row['explicit_us']:7.1f}  MS {row['metaschedule_us']:7.1f} us"
                  f"  explicit/MS {row['explicit_over_metaschedule']:.2f}", flush=True)
        if not complete:
            break
    save(complete)
    print(f"{'complete' if complete else 'partial (rerun to continue)'}: {len(rows)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
