"""The inner loop over a stream of sampled architectures: tuned TVM against untuned TVM, onnxruntime
and torch eager, with one tuning database shared by all of them.

    python -m benchmarks.inner_loop_reuse [--quick] [--archs 10] [--trials 16] [--out PATH] [--db DIR]

For each architecture (ArchSpace().sample(Random(seed)), seeds 0, 1, ...): export to ONNX, tune with
MetaSchedule the workloads the database has not seen (`trials` per workload), then measure untuned
TVM, tuned TVM (after the onnxruntime correctness gate), onnxruntime and torch eager by one protocol
with the same thread count. A row is appended to the JSON after each architecture (atomic write); a
rerun with the same arguments resumes after the last finished row, reusing the database.

Top level: `geomean_tvm_over_ort` (tuned TVM / onnxruntime, geometric mean), `hit_rate_last` (share of
the last architecture's tasks found in the database before tuning), `seconds_per_trial` (tuning wall
time over trials, all rows), `peak_gflops` (numpy fp32 matmul on this machine), the command and machine.
`--quick` (2 architectures, 1 trial per regular-conv workload, 5 repeats) is a smoke test.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS_DIR, command_line, machine, read_json, write_json


def peak_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Measured fp32 matmul throughput (numpy/BLAS, all cores): the machine's practical peak."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype("float32")
    a @ a
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def summarize(rows: list[dict]) -> dict:
    ratios = [r["tvm_tuned_ms"] / r["onnxruntime_ms"] for r in rows
              if r.get("tvm_tuned_ms") and r.get("onnxruntime_ms")]
    trials = sum(r["tuning_trials"] for r in rows)
    secs = sum(r["tuning_seconds"] for r in rows)
    return {
        "geomean_tvm_over_ort": float(np.exp(np.mean(np.log(ratios)))) if ratios else None,
        "hit_rate_last": rows[-1]["hit_rate"] if rows else None,
        "seconds_per_trial": secs / trials if trials else None,
    }


def run_arch(seed: int, args, db, work: Path, threads: int) -> dict:
    import torch

    from archspace import ArchSpace
    from archspace.export import export_onnx
    from archspace.supernet import build_network
    from schedules import extract_workloads, import_onnx, measure, reference_latency, tune
    from schedules.measurement import compile as tvm_compile

    space = ArchSpace()
    arch = space.sample(random.Random(seed))
    path = export_onnx(arch, work / f"arch{seed}.onnx", batch=1, seed=seed)
    mod = import_onnx(path)
    workloads = extract_workloads(mod, args.target_spec)
    macs = sum(w.macs * w.count for w in workloads)
    report = tune(mod, db, args.target_spec, args.trials, kinds=args.kinds, builder=args.builder, seed=seed)
    proto = dict(warmup=args.warmup, repeats=args.repeats)
    untuned = measure(tvm_compile(path, None, args.target_spec), **proto)
    tuned = measure(tvm_compile(path, db, args.target_spec), **proto)
    ort = reference_latency(path, "onnxruntime", threads, **proto)
    torch.manual_seed(seed)
    net = build_network(arch, space, 1, 10)
    tor = reference_latency(path, "torch", threads, module=net, **proto)
    ms_or_none = lambda m: m.median_ms if m.ok else None  # noqa: E731
    return {
        "seed": seed, "arch": arch.id, "resolution": arch.resolution, "tasks": len(workloads), "macs": macs,
        "tvm_untuned_ms": ms_or_none(untuned), "tvm_tuned_ms": ms_or_none(tuned),
        "onnxruntime_ms": ms_or_none(ort), "torch_ms": ms_or_none(tor),
        "tvm_tuned_status": tuned.status if tuned.ok else f"failed: {tuned.error}",
        "tvm_untuned_status": untuned.status if untuned.ok else f"failed: {untuned.error}",
        "tuned_tasks": len(report.tuned_tasks), "reused_tasks": len(report.reused_tasks),
        "hit_rate": report.hit_rate, "tuning_trials": report.trials, "tuning_seconds": report.seconds,
        "tuning_failures": len(report.failures),
        "coverage_tasks_macs": list(db.coverage(workloads)),
        "tuned_gflops": 2 * macs / tuned.median_ms / 1e6 if tuned.ok else None,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--archs", type=int, default=10)
    p.add_argument("--trials", type=int, default=16, help="MetaSchedule trials per unseen workload")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="default: every core this process may use")
    p.add_argument("--builder", default="local", choices=["local", "inprocess"])
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "inner_loop_reuse.json")
    p.add_argument("--db", type=Path, default=None, help="tuning database (default: beside --out)")
    args = p.parse_args(argv)
    args.kinds = None
    if args.quick:
        args.archs, args.trials, args.repeats, args.warmup, args.kinds = 2, 1, 5, 1, ("conv2d",)
        args.builder = "inprocess"
    from schedules import TuningDatabase, make_target
    from schedules.target import host_cores

    threads = args.threads or host_cores()
    args.target_spec = make_target("llvm", threads)
    db = TuningDatabase(args.db or args.out.with_suffix(".db"))
    work = args.out.with_suffix(".onnx")
    work.mkdir(parents=True, exist_ok=True)
    settings = {"archs": args.archs, "trials_per_workload": args.trials, "repeats": args.repeats,
                "warmup": args.warmup, "threads": threads, "builder": args.builder,
                "kinds": list(args.kinds) if args.kinds else "all", "target": str(args.target_spec)}
    old = read_json(args.out)
    rows = old["rows"] if old and old.get("settings") == settings else []
    payload = {"command": command_line(), "machine": machine(), "settings": settings,
               "peak_gflops": old.get("peak_gflops") if rows else peak_gflops(), "rows": rows}
    for seed in range(len(rows), args.archs):
        t0 = time.perf_counter()
        row = run_arch(seed, args, db, work, threads)
        row["wall_seconds"] = time.perf_counter() - t0
        rows.append(row)
        payload.update(summarize(rows), command=command_line())
        write_json(args.out, payload)
        print(f"arch {seed}: untuned {row['tvm_untuned_ms']} tuned {row['tvm_tuned_ms']} ort {row['onnxruntime_ms']} "
              f"torch {row['torch_ms']} ms; hit rate {row['hit_rate']:.2f}; {row['tuning_trials']} trials in "
              f"{row['tuning_seconds']:.0f} s", flush=True)
    payload.update(summarize(rows))
    write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
