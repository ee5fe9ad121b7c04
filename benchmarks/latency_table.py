"""The latency table against the built model: how well a candidate's tuned latency can be read off the
tuning database (`schedules.latency_table`: each task's fastest record on this machine, times its calls)
without building it, and what that saves.

For N sampled architectures of the default space: the table's kernel time (import + task extraction +
lookup, timed), then the same model compiled with the database and measured (TVM is the only runtime
timed here; onnxruntime runs once, on one thread, as `schedules.measure`'s correctness gate, and is not
timed). The summary gives the rank agreement (Spearman, Kendall) of the table with the measured latency,
measured / table (median and range), a least-squares fit ``measured = a + b * table`` (the intercept is
the VM's own cost), and the seconds each path took.

    python -m benchmarks.latency_table            # 20 architectures, the committed pretuned database
    python -m benchmarks.latency_table --quick    # 3 architectures

Rows are written as they finish; a rerun with the same settings resumes. A row whose tasks are not all
tuned on this machine is kept with ``complete: false`` and left out of the summary (its table misses
kernels).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, ResultFile, Size, add_sizes, resolve_sizes

SIZES = {"n_archs": Size(quick=3, full=20, help="sampled architectures"),
         "repeats": Size(quick=5, full=30, help="timed runs of each compiled model")}
DEFAULT_DATABASE = Path(__file__).resolve().parent / "pretuned" / "default-space-llvm"


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sizes(p, SIZES, "3 architectures, 5 timed runs each")
    p.add_argument("--database", type=Path, default=DEFAULT_DATABASE, help="tuning database (read only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the architecture sample")
    p.add_argument("--threads", type=int, default=2, help="TVM threads")
    p.add_argument("--out", type=Path, default=None,
                   help="result JSON (default: benchmarks/results/latency_table_<machine>.json)")
    return resolve_sizes(p.parse_args(argv), SIZES)


def main(argv=None) -> int:
    from archspace.export import export_onnx
    from archspace.space import ArchSpace
    from schedules.database import TuningDatabase
    from schedules.frontend import import_onnx
    from schedules.latency_table import table_latency
    from schedules.measure import Protocol, compile, measure, set_tvm_threads
    from schedules.targets import host_target, machine_key

    args = _parse(argv)
    if not args.database.is_dir():
        raise SystemExit(f"latency_table: {args.database}: no tuning database there")
    target = host_target(args.threads)
    machine = machine_key(target)
    out = args.out or RESULTS_DIR / f"latency_table_{machine.replace('/', '-')}.json"
    settings = {"quick": args.quick, "n_archs": args.n_archs, "repeats": args.repeats, "seed": args.seed,
                "threads": args.threads, "database": str(args.database), "machine_key": machine}
    result = ResultFile("latency_table", out, settings)
    rows = result.payload.setdefault("rows", [])
    done = {r["id"] for r in rows}
    db = TuningDatabase(args.database, target=target)
    set_tvm_threads(args.threads)
    protocol = Protocol(warmup=3, repeats=args.repeats)
    space, rng = ArchSpace(), random.Random(args.seed)
    archs = [space.sample(rng) for _ in range(args.n_archs)]
    with tempfile.TemporaryDirectory() as tmp:
        for i, arch in enumerate(archs):
            if arch.id in done:
                continue
            path = Path(tmp) / f"{arch.id}.onnx"
            export_onnx(arch, path)
            t0 = time.perf_counter()
            mod = import_onnx(path)
            table = table_latency(mod, db, target)
            table_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            compiled = compile(path, db, target, mod=mod)
            build_s = time.perf_counter() - t0
            m = measure(compiled, protocol, threads=args.threads)
            rows.append({"id": arch.id, "arch": arch.to_dict(), **table.to_dict(), "table_seconds": table_s,
                         "build_seconds": build_s, "measured_ms": m.median_ms if m.ok else None,
                         "measured_std_ms": m.std_ms if m.ok else None, "measure_status": m.status})
            _summarize(result)
            print(f"[{i + 1}/{len(archs)}] {arch.id}: table {table.kernel_ms:.4f} ms ({table.calls} calls, "
                  f"{len(table.missing)} missing, {table_s:.2f} s), measured "
                  f"{rows[-1]['measured_ms'] if m.ok else m.status} ms (build {build_s:.1f} s)", flush=True)
    summary = _summarize(result)
    print(f"{summary['n_complete']} complete rows: spearman {summary['spearman']}, measured/table median "
          f"{summary['ratio_median']} -> {out}")
    return 0


def _summarize(result: ResultFile) -> dict:
    import numpy as np
    from scipy import stats

    rows = result.payload["rows"]
    ok = [r for r in rows if r["complete"] and r["measured_ms"]]
    table = np.array([r["kernel_ms"] for r in ok])
    measured = np.array([r["measured_ms"] for r in ok])
    summary: dict = {"n_rows": len(rows), "n_complete": len(ok), "spearman": None, "kendall_tau": None,
                     "ratio_median": None, "ratio_min": None, "ratio_max": None, "fit": None}
    if len(ok) >= 3:
        ratio = measured / table
        slope, intercept = np.polyfit(table, measured, 1)
        summary.update({
            "spearman": float(stats.spearmanr(table, measured).statistic),
            "kendall_tau": float(stats.kendalltau(table, measured).statistic),
            "ratio_median": float(np.median(ratio)), "ratio_min": float(ratio.min()), "ratio_max": float(ratio.max()),
            "fit": {"slope": float(slope), "intercept_ms": float(intercept)},
        })
    if rows:
        summary["table_seconds_median"] = float(np.median([r["table_seconds"] for r in rows]))
        summary["build_seconds_median"] = float(np.median([r["build_seconds"] for r in rows]))
    result.payload.update(summary)
    result.payload["complete"] = len(rows) == result.payload["settings"]["n_archs"]
    result.save()
    result.table(["id", "calls", "missing", "table ms", "measured ms", "table s", "build s"],
                 [[r["id"], r["calls"], len(r["missing"]), r["kernel_ms"], r["measured_ms"], r["table_seconds"],
                   r["build_seconds"]] for r in rows], digits=4)
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
