"""The inner loop over sampled architectures: one tuning database shared by all of them.

For each architecture (sampled from `ArchSpace()` with seeds 0, 1, ...), in order:
export ONNX (1x1xRxR), extract its workloads, look them up in the shared database (hit rate), tune
the unseen ones (MetaSchedule on the `--tune-top` unseen tasks with the most MACs, `--trials-per-task`
each; the explicit `ScheduleConfig` space, `--explicit-configs` configs each, on the remaining unseen
conv / dense tasks; fused elementwise tasks without a record are left to TVM's default lowering),
then measure untuned TVM, tuned TVM, onnxruntime and torch eager by one protocol and thread count.
Achieved GFLOP/s (2 FLOPs per MAC) is set against this machine's measured peak (best of a few fp32
matrix products through numpy's BLAS with the same threads).

    python -m benchmarks.inner_loop            # full size: 10 architectures
    python -m benchmarks.inner_loop --quick    # 2 architectures, smaller budgets (minutes)

Rows are written after every architecture (atomic rewrite of the JSON); a rerun of the same command
resumes after the last finished architecture, reusing the database in --work-dir.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, command_line, machine, read_json, write_json

CONV_KINDS = ("conv2d", "depthwise_conv2d", "pointwise_conv2d", "dense")


def measured_peak_gflops(threads: int, n: int = 1024, tries: int = 5) -> float:
    """Best fp32 GFLOP/s of an n x n matrix product (numpy's BLAS) on `threads` threads."""
    import numpy as np

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # numpy's BLAS then uses its own default thread count
        threadpool_limits = None
    a = np.random.default_rng(0).standard_normal((n, n)).astype("float32")
    b = a.T.copy()
    best = math.inf
    ctx = threadpool_limits(threads) if threadpool_limits else None
    try:
        for _ in range(tries):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    finally:
        if ctx is not None:
            ctx.unregister() if hasattr(ctx, "unregister") else None
    return 2.0 * n ** 3 / best / 1e9


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 architectures, smaller budgets")
    p.add_argument("--archs", type=int, default=None, help="architectures (default 10, quick 2)")
    p.add_argument("--trials-per-task", type=int, default=16, help="MetaSchedule trials per tuned task")
    p.add_argument("--tune-top", type=int, default=None,
                   help="MetaSchedule-tune this many unseen tasks per architecture, most MACs first (default 4, quick 1)")
    p.add_argument("--explicit-configs", type=int, default=None,
                   help="explicit-space configs per remaining unseen conv/dense task (default 4, quick 2)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 30, quick 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", type=Path, default=Path(".nacos-cache/inner_loop"),
                   help="tuning database and ONNX files (kept: a rerun resumes)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "inner_loop.json")
    p.add_argument("--remeasure", action="store_true",
                   help="measure the finished rows again (references, untuned, tuned with the database as it is "
                        "now), keeping their tuning figures; for a fix in compile or measure")
    args = p.parse_args(argv)
    quick = args.quick
    args.archs = args.archs if args.archs is not None else (2 if quick else 10)
    args.tune_top = args.tune_top if args.tune_top is not None else (1 if quick else 4)
    args.explicit_configs = args.explicit_configs if args.explicit_configs is not None else (2 if quick else 4)
    args.repeats = args.repeats if args.repeats is not None else (10 if quick else 30)
    return args


def _settings(args) -> dict[str, Any]:
    return {"archs": args.archs, "trials_per_task": args.trials_per_task, "tune_top": args.tune_top,
            "explicit_configs": args.explicit_configs, "warmup": args.warmup, "repeats": args.repeats,
            "seed": args.seed}


def _geomean(xs) -> float | None:
    xs = [x for x in xs if x is not None and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def _summarize(payload: dict[str, Any]) -> None:
    rows = payload["rows"]
    payload["geomean_tvm_over_ort"] = _geomean(r["tvm_over_ort"] for r in rows)
    payload["geomean_untuned_over_ort"] = _geomean(
        (r["tvm_untuned_ms"] / r["ort_ms"]) if r["tvm_untuned_ms"] and r["ort_ms"] else None for r in rows)
    payload["hit_rate_last"] = rows[-1]["hit_rate"] if rows else None
    trials = sum(r["ms_trials"] for r in rows)
    secs = sum(r["ms_seconds"] for r in rows)
    payload["seconds_per_trial"] = secs / trials if trials else None
    payload["tuning_seconds_total"] = sum(r["tune_seconds"] for r in rows)
    payload["complete"] = len(rows) >= payload["settings"]["archs"]


def _table(rows) -> str:
    head = f"{'#':>2} {'res':>3} {'tasks':>5} {'hit':>5} {'untuned':>8} {'tuned':>8} {'ort':>8} {'torch':>8} {'tvm/ort':>7} {'tune s':>7} {'GF/s':>6}"
    lines = [head]
    for r in rows:
        f = lambda x: f"{x:8.3f}" if isinstance(x, (int, float)) and x is not None and math.isfinite(x) else f"{'-':>8}"
        lines.append(f"{r['index']:>2} {r['resolution']:>3} {r['tasks']:>5} {r['hit_rate']:>5.2f} {f(r['tvm_untuned_ms'])} "
                     f"{f(r['tvm_tuned_ms'])} {f(r['ort_ms'])} {f(r['torch_ms'])} "
                     f"{(r['tvm_over_ort'] or float('nan')):7.2f} {r['tune_seconds']:7.1f} {(r['tuned_gflops'] or 0):6.2f}")
    return "\n".join(lines)


def _measure_row(arch, space, onnx_path, shape, db, target, protocol, threads, workloads, peak) -> dict[str, Any]:
    """The latency figures of one architecture: references, untuned TVM, tuned TVM."""
    from archspace import build_network
    from schedules.measure import (
        compile,
        measure,
        reference_onnxruntime,
        reference_torch,
    )

    # the references first (TVM's runtime threads keep spinning for a while after a run and would
    # steal the cores torch's threads need)
    ort = reference_onnxruntime(onnx_path, protocol, threads=threads)
    torch_m = reference_torch(build_network(arch, space, 1, 10), shape, protocol, threads=threads)
    untuned = measure(compile(onnx_path, None, target), protocol)
    tuned = measure(compile(onnx_path, db, target), protocol)
    macs = sum(w.macs * w.count for w in workloads)
    ok = lambda m: m.median_ms if m.ok else None
    row = {
        "macs": macs, "tvm_untuned_ms": ok(untuned), "tvm_tuned_ms": ok(tuned), "ort_ms": ok(ort),
        "torch_ms": ok(torch_m), "tvm_tuned": tuned.to_dict(),
        "errors": {k: m.error for k, m in (("untuned", untuned), ("tuned", tuned), ("ort", ort), ("torch", torch_m))
                   if not m.ok},
        "tvm_over_ort": (tuned.median_ms / ort.median_ms) if tuned.ok and ort.ok else None,
        "tuned_gflops": (2 * macs / (tuned.median_ms * 1e-3) / 1e9) if tuned.ok else None,
    }
    row["fraction_of_peak"] = row["tuned_gflops"] / peak if row["tuned_gflops"] else None
    return row


def main(argv=None) -> int:
    args = _parse(argv)
    from archspace import ArchSpace, export_onnx
    from schedules.database import TuningDatabase
    from schedules.frontend import extract_workloads, import_onnx
    from schedules.measure import (
        Protocol,
    )
    from schedules.targets import host_target, host_threads
    from schedules.tuner import TuneReport, explicit_tune, tune

    threads = host_threads()
    target = host_target(threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    db = TuningDatabase(args.work_dir / "db")
    protocol = Protocol(warmup=args.warmup, repeats=args.repeats)
    previous = read_json(args.out)
    settings = _settings(args)
    if previous and previous.get("settings") == settings and previous.get("work_dir") == str(args.work_dir):
        payload = previous
        payload["command"] = command_line()
    else:
        payload = {"benchmark": "inner_loop", "command": command_line(), "settings": settings,
                   "work_dir": str(args.work_dir), "target": str(target), "threads": threads,
                   "machine": machine(), "peak_gflops": measured_peak_gflops(threads), "rows": []}
    done = {r["index"] for r in payload["rows"]}
    space = ArchSpace()
    for i in range(args.archs):
        arch = space.sample(random.Random(args.seed + i))
        onnx_path = export_onnx(arch, args.work_dir / f"arch{args.seed + i}.onnx", batch=1)
        shape = (1, 1, arch.resolution, arch.resolution)
        mod = import_onnx(onnx_path)
        workloads = extract_workloads(mod, target)
        if i in done:
            if args.remeasure:
                row = next(r for r in payload["rows"] if r["index"] == i)
                row.update(_measure_row(arch, space, onnx_path, shape, db, target, protocol, threads, workloads,
                                        payload["peak_gflops"]))
                row["remeasured"] = time.strftime("%Y-%m-%dT%H:%M:%S")
                _summarize(payload)
                write_json(args.out, payload)
                print(_table([row]), flush=True)
            continue
        unseen = db.unseen(workloads)
        hit_rate = 1 - len(unseen) / len(workloads)
        # Step 1. MetaSchedule on the largest unseen tasks.
        t0 = time.perf_counter()
        top = sorted(unseen, key=lambda w: -w.macs * w.count)[: args.tune_top]
        names = {w.name for w in top}
        ms_report = None
        if top:
            keep = {w.structural_hash for w in top}
            ms_report = tune(mod, db, target, trials_per_task=args.trials_per_task, seed=args.seed,
                             kinds=None, only=keep)
        # Step 2. Explicit space on the remaining unseen conv / dense tasks.
        ex_report = (explicit_tune(mod, db, target, configs_per_task=args.explicit_configs, seed=args.seed)
                     if args.explicit_configs > 0 else TuneReport())
        tune_s = time.perf_counter() - t0
        cov = db.coverage(workloads)
        row = {
            "index": i, "arch": arch.to_json(), "resolution": arch.resolution, "tasks": len(workloads),
            "new_tasks": len(unseen), "hit_rate": hit_rate,
            "ms_tuned_tasks": sorted(names), "ms_trials": ms_report.trials if ms_report else 0,
            "ms_seconds": ms_report.seconds if ms_report else 0.0,
            "explicit_tuned_tasks": len(ex_report.tuned), "explicit_configs_tried": ex_report.trials,
            "faults": len(ex_report.faults) + (len(ms_report.faults) if ms_report else 0),
            "tune_seconds": tune_s, "coverage_tasks": cov.tasks, "coverage_macs": cov.macs,
            **_measure_row(arch, space, onnx_path, shape, db, target, protocol, threads, workloads,
                           payload["peak_gflops"]),
        }
        payload["rows"].append(row)
        _summarize(payload)
        write_json(args.out, payload)
        print(_table(payload["rows"][-1:]) if len(payload["rows"]) > 1 else _table(payload["rows"]), flush=True)
    _summarize(payload)
    write_json(args.out, payload)
    print(_table(payload["rows"]))
    print(f"geomean tuned TVM / onnxruntime: {payload['geomean_tvm_over_ort']}, hit rate of the last "
          f"architecture: {payload['hit_rate_last']}, seconds per MetaSchedule trial: {payload['seconds_per_trial']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
