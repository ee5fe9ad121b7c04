"""A NAS-Bench-201 record set with real compiled latency: the cells built as real networks, compiled and
timed on this machine four ways, joined with the published accuracies (issue 13, point 3).

HW-NAS-Bench gives NAS-Bench-201 latencies for ten devices, all measured under each framework's
default kernels; none says what a compiler that tunes schedules makes of a cell. Here every sampled cell
is built (`archspace.nb201_net.build_nb201_network`: stem, 3 stages of 5 cells at 16 / 32 / 64 channels,
residual reductions, classifier; random weights, batch 1, 3 x 32 x 32), exported to ONNX and checked
(`archspace.export.export_module`: onnx.checker and onnxruntime against PyTorch), then timed by one
protocol (`schedules.measure.Protocol`), each runtime in a process of its own
(`schedules.isolated.TimingWorker`: one onnxruntime child and one TVM child for the whole run, TVM's
output checked against onnxruntime before it is timed):

- ``onnxruntime``: the CPU provider, what a compiler-agnostic search measures with;
- ``tvm_untuned``: TVM with no database (dlight's default rules: convolutions unscheduled);
- ``tvm_default``: TVM with one fixed default `ScheduleConfig` for every conv / dense layer
  (`schedules.measure.compile_default_schedule`), the "one fixed schedule" baseline;
- ``tvm_tuned``: TVM with the best records of a database pretuned on the cell space's tasks.

The cell space has few distinct conv shapes, so the pretuning is cheap: the distinct tasks of the first
``--task-cells`` sampled cells (their weights: how often a sampled cell calls each) are tuned into
``--database`` by `schedules.pretune.pretune` for ``--pretune-minutes`` (resumable: minutes already
spent count). Every row says how many of its conv / dense tasks the database holds.

The sample: cells whose output does not depend on their input are left out (the exporter folds such a
network to a constant); the remaining cells are split into ``--strata`` equal strata by published
latency on the reference device, shuffled within each stratum (``--seed``) and taken round robin over
the strata, so every prefix of the record set is itself stratified and ``--cells`` can grow across runs.

Output (``--out-dir``, default benchmarks/results/):

- ``nb201_records.csv``: one row per measured cell in the NAS-Bench-201 table layout (``index``,
  ``arch``, the three accuracy columns, ``lat_ms_<way>`` per way plus ``lat_ms_deployed``, the better of
  onnxruntime and tuned TVM), so ``archspace.nb201.NB201Table(path)`` (or `archspace.nb201.load_records`)
  loads it as a table whose "devices" are the four ways: any strategy runs on it in seconds;
- ``nb201_records.schema.json``: a JSON Schema of the columns (the layout is the library's:
  `archspace.nb201.record_columns` / `record_schema`, version `archspace.nb201.RECORD_FORMAT`);
- ``nb201_records.json``: the settings, machine, tool versions, protocol, the tuning budget spent, the
  database digest, failures, and rank correlations (between the ways; each way against every published
  device).

Rows are appended (and fsynced) one cell at a time; a rerun with the same settings resumes (a larger
``--cells`` extends the set). Progress goes to stderr with an ETA.

    python -m benchmarks.nb201_records                      # 2,000 cells (hours; resumable)
    python -m benchmarks.nb201_records --quick --out-dir /tmp/nb201  # 3 cells, tiny pretune (minutes)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from archspace.nb201 import RECORD_FORMAT, RECORD_WAYS, record_columns, record_schema
from benchmarks.common import (
    RESULTS_DIR,
    Size,
    add_nb201_csv_argument,
    add_sizes,
    command_line,
    machine,
    nb201_table_or_skip,
    read_json,
    resolve_sizes,
    spearman_or_none,
    write_json,
)

NAME = "nb201_records"
#: the ways each cell is timed; the record layout is `archspace.nb201.record_columns`, which `load_records` reads
WAYS = RECORD_WAYS

SIZES = {
    "cells": Size(3, 2000, "cells to measure (a rerun with more extends the set)"),
    "strata": Size(3, 20, "strata of published latency the sample is drawn from"),
    "task_cells": Size(2, 48, "sampled cells whose tasks make the cell space's task set"),
    "pretune_minutes": Size(0.5, 40.0, "minutes of MetaSchedule pretuning on the cell space's tasks", float),
    "warmup": Size(1, 3, "untimed runs before timing"),
    "repeats": Size(3, 15, "timed runs (medians)"),
}


# ---------------------------------------------------------------------------------------------------
# The sample
# ---------------------------------------------------------------------------------------------------
def sample_order(table: Any, strata: int, reference_device: str, seed: int) -> list[tuple[int, int]]:
    """(table row, stratum) of every connected cell: strata by published latency, shuffled within each,
    round robin over the strata (every prefix stratified)."""
    from archspace.nb201 import live_edges

    lat = table.latency_columns[reference_device]
    pool = np.array([i for i, a in enumerate(table.archs) if live_edges(a.ops)], dtype=np.int64)
    order = pool[np.argsort(lat[pool], kind="stable")]
    rng = np.random.default_rng(seed)
    chunks = [rng.permutation(c).tolist() for c in np.array_split(order, strata)]
    out = []
    for k in range(max(len(c) for c in chunks)):
        out += [(int(c[k]), s) for s, c in enumerate(chunks) if k < len(c)]
    return out


def export_cell(arch: Any, path: Path, seed: int) -> Path:
    import torch

    from archspace.export import export_module
    from archspace.nb201_net import build_nb201_network

    if path.exists():
        return path
    torch.manual_seed(seed)
    export_module(build_nb201_network(arch.to_string()), torch.zeros(1, 3, 32, 32), path, seed=seed)
    return path


# ---------------------------------------------------------------------------------------------------
# The cell space's tasks, pretuned
# ---------------------------------------------------------------------------------------------------
def cell_space_tasks(table: Any, order: list[tuple[int, int]], n: int, target: Any, work_dir: Path,
                     seed: int, log: Any) -> list[Any]:
    """The distinct tasks of the first `n` cells of `order`, weight = calls per cell on average. Each
    cell's tasks are appended to a JSON-lines log, so a killed enumeration resumes."""
    from schedules.records import LayerWorkload
    from schedules.space_tasks import merge_tasks, onnx_file_tasks, read_enumeration_log

    partial = work_dir / "cell-tasks.jsonl"
    done, mods = read_enumeration_log(partial, "row")
    rows = [r for r, _ in order[:n]]
    with open(partial, "a", encoding="utf-8") as fh:
        for k, r in enumerate(rows):
            if r in done:
                continue
            path = export_cell(table.archs[r], work_dir / "onnx" / f"nb201_{r:05d}.onnx", seed)
            workloads, new = onnx_file_tasks(path, target, mods)
            mods.update(new)
            done[r] = workloads
            fh.write(json.dumps({"row": r, "workloads": workloads, "mods": new}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            log(f"tasks of cell {k + 1}/{len(rows)}: {len(mods)} distinct so far")
    return merge_tasks([(1.0 / len(rows), [LayerWorkload.from_dict(w) for w in done[r]]) for r in rows], mods)


def database_digest(db_dir: Path) -> str:
    """sha256 (16 hex) of the database's record and workload files: which records the rows were timed with."""
    h = hashlib.sha256()
    for name in ("database_workload.json", "database_tuning_record.json"):
        p = db_dir / name
        h.update(p.read_bytes() if p.exists() else b"")
    return h.hexdigest()[:16]


def conv_task_coverage(onnx_path: Path, db: Any, target: Any) -> tuple[int, int]:
    from schedules.frontend import extract_workloads, import_onnx
    from schedules.tuner import EXPLICIT_KINDS

    conv = [w for w in extract_workloads(import_onnx(onnx_path), target) if w.op_kind in EXPLICIT_KINDS]
    cov = db.coverage(conv)
    return cov.tasks_total, cov.tasks_covered


# ---------------------------------------------------------------------------------------------------
# Correlations
# ---------------------------------------------------------------------------------------------------
def correlations(csv_path: Path, source: Any) -> dict[str, Any]:
    """Spearman between the ways (and MACs), and of each way with every published device."""
    from archspace.nb201 import NB201Table

    if not csv_path.exists():
        return {}
    rec = NB201Table(csv_path)
    if len(rec) < 3:
        return {"cells": len(rec)}
    ways = [*WAYS, "deployed"]
    cols = {w: rec.latency_columns[w].tolist() for w in ways}
    macs = [float(r["macs"]) for r in csv.DictReader(open(csv_path, newline=""))]
    between = {f"{a}~{b}": spearman_or_none(cols[a], cols[b]) for i, a in enumerate(ways) for b in ways[i + 1:]}
    between.update({f"{w}~macs": spearman_or_none(cols[w], macs) for w in ways})
    rows = [source.row(a) for a in rec.archs]
    published = {d: {w: spearman_or_none(cols[w], source.latency_columns[d][rows].tolist()) for w in ways}
                 for d in source.devices}
    return {"cells": len(rec), "between_ways": between, "with_published_devices": published}


# ---------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------
def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sizes(p, SIZES, "3 cells of 3 strata, 2 cells' tasks, 30 s of pretuning, 3 repeats (minutes)")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where the .csv, .schema.json and .json go")
    p.add_argument("--database", type=Path, default=None,
                   help="tuning database pretuned on the cell space (default benchmarks/pretuned/nb201-llvm; "
                        "quick: WORK_DIR/db)")
    p.add_argument("--work-dir", type=Path, default=Path(".nacos-cache") / NAME, help="ONNX files, the task log")
    p.add_argument("--reference-device", default="gold_6226", help="published device the strata are drawn on")
    p.add_argument("--seed", type=int, default=0)
    add_nb201_csv_argument(p)
    return resolve_sizes(p.parse_args(argv), SIZES)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    source_csv = nb201_table_or_skip(NAME, args.csv)
    if source_csv is None:
        return 2
    from archspace.nb201 import DATASETS, NB201Table
    from archspace.stats import onnx_layer_stats
    from schedules.database import TuningDatabase
    from schedules.isolated import IsolatedTimingError, TimingWorker, target_spec
    from schedules.measure import Protocol
    from schedules.pretune import PretuneSettings, pretune, space_coverage, state_of
    from schedules.targets import host_target, host_threads, versions
    from schedules.tuner import skip_foreign_intrinsics

    skip_foreign_intrinsics()
    source = NB201Table(source_csv)
    if args.reference_device not in source.latency_columns:
        print(f"{NAME}: device {args.reference_device!r} not in the table ({', '.join(source.devices)})",
              file=sys.stderr)
        return 2
    threads = host_threads()
    target = host_target(threads)
    db_dir = args.database or (args.work_dir / "db" if args.quick else Path("benchmarks/pretuned/nb201-llvm"))
    protocol = Protocol(warmup=args.warmup, repeats=args.repeats, seed=args.seed)
    # what a row's figures depend on (the cell count may grow between runs)
    settings = {"format": RECORD_FORMAT, "strata": args.strata, "task_cells": args.task_cells,
                "pretune_minutes": args.pretune_minutes, "warmup": args.warmup, "repeats": args.repeats,
                "reference_device": args.reference_device, "seed": args.seed, "threads": threads,
                "target": str(target), "database": str(db_dir)}
    out_csv, out_json = args.out_dir / f"{NAME}.csv", args.out_dir / f"{NAME}.json"
    meta = read_json(out_json)
    if out_csv.exists() and (meta is None or meta.get("settings") != settings):
        print(f"{NAME}: {out_csv} holds rows measured with other settings ({out_json}); choose another "
              f"--out-dir or move the old record set aside", file=sys.stderr)
        return 2
    args.work_dir.mkdir(parents=True, exist_ok=True)
    (args.work_dir / "onnx").mkdir(exist_ok=True)
    acc_cols = list(DATASETS.values())
    cols = record_columns(acc_cols)
    write_json(args.out_dir / f"{NAME}.schema.json", record_schema(cols, settings["reference_device"]))
    started = time.time()
    meta = meta or {"benchmark": NAME, "settings": settings, "seconds_measuring": 0.0, "failures": []}
    meta.update(command=command_line(), machine=machine(), versions=dict(versions()),
                protocol={"warmup": protocol.warmup, "repeats": protocol.repeats, "number": protocol.number},
                source={"csv": str(source_csv), "rows": len(source)}, csv=out_csv.name,
                schema=f"{NAME}.schema.json", cells_asked=args.cells)

    order = sample_order(source, args.strata, args.reference_device, args.seed)
    tasks = cell_space_tasks(source, order, args.task_cells, target, args.work_dir, args.seed, _log)
    db = TuningDatabase(db_dir, target=target)
    spent = float(state_of(db).get("seconds", 0.0)) / 60.0
    if args.pretune_minutes - spent > 0.05:
        from costmodels.ms_cost_model import DatabaseXGBCostModel

        _log(f"pretuning {len(tasks)} cell-space tasks for {args.pretune_minutes - spent:.1f} min into {db_dir}")
        # the database-trained cost model, as `nacos pretune` defaults to (pretune_cost_model.json)
        cost_model = DatabaseXGBCostModel.for_tuning(db_dir, target)
        pretune(tasks, db, target, minutes=args.pretune_minutes - spent, cost_model=cost_model,
                settings=PretuneSettings(tasks_per_round=4 if args.quick else 8,
                                         trials_per_round=8 if args.quick else 32, seed=args.seed),
                on_round=lambda r: _log(f"pretune round {r['round']}: {r['trials']} trials, "
                                        f"coverage {r['coverage']['space_task_coverage']:.2f} of tasks, "
                                        f"{r['coverage']['space_mac_coverage']:.2f} of MACs"))
        cost_model.save()
        db.refresh()
    state = state_of(db)
    meta["tuning"] = {"database": str(db_dir), "database_digest": database_digest(db_dir), "cost_model": "database",
                      "cell_space_tasks": len(tasks), "task_cells": args.task_cells,
                      "pretune_seconds": round(float(state.get("seconds", 0.0)), 1),
                      "pretune_trials": int(state.get("trials", 0)), "pretune_rounds": int(state.get("rounds", 0)),
                      "coverage": space_coverage(tasks, db)}

    done: set[str] = set()
    if out_csv.exists():
        done = {r["arch"] for r in csv.DictReader(open(out_csv, newline=""))}
    done |= {f["arch"] for f in meta["failures"]}
    todo = [(r, s) for r, s in order[:args.cells] if source.archs[r].to_string() not in done]
    new_file = not out_csv.exists()
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    spec = target_spec(target)
    workers: dict[str, Any] = {}

    def worker(kind: str) -> Any:
        if kind not in workers:
            workers[kind] = TimingWorker()
        return workers[kind]

    def save() -> None:
        meta["cells_measured"] = sum(1 for _ in open(out_csv)) - 1 if out_csv.exists() else 0
        meta["seconds_measuring"] = round(meta["seconds_measuring"] + time.time() - save.t, 1)
        save.t = time.time()
        meta["correlations"] = correlations(out_csv, source)
        meta["complete"] = meta["cells_measured"] + len(meta["failures"]) >= min(args.cells, len(order))
        write_json(out_json, meta)
    save.t = time.time()

    _log(f"{len(todo)} cells to measure ({len(done)} done before)")
    try:
        with open(out_csv, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new_file:
                writer.writerow([c for c, _, _ in cols])
            for k, (r, stratum) in enumerate(todo):
                arch = source.archs[r]
                t0 = time.time()
                results: dict[str, Any] = {}
                why = ""
                try:
                    path = export_cell(arch, args.work_dir / "onnx" / f"nb201_{r:05d}.onnx", args.seed)
                    n_conv, in_db = conv_task_coverage(path, db, target)
                    results["onnxruntime"] = worker("ort").onnxruntime(path, protocol, threads)
                    results["tvm_untuned"] = worker("tvm").tvm(path, None, spec, protocol, threads)
                    results["tvm_default"] = worker("tvm").tvm(path, None, spec, protocol, threads, schedule="default")
                    results["tvm_tuned"] = worker("tvm").tvm(path, db_dir, spec, protocol, threads)
                    bad = {w: m.error for w, m in results.items() if not m.ok}
                    why = "; ".join(f"{w}: {e}" for w, e in bad.items())
                except IsolatedTimingError as exc:  # a child died or hung: a new one serves the next cell
                    why = f"timing process: {exc}"[:500]
                    for w in list(workers):
                        workers.pop(w).close()
                except Exception as exc:  # noqa: BLE001 - an export or import failure is this cell's finding
                    why = f"{type(exc).__name__}: {exc}"[:500]
                if why:
                    meta["failures"].append({"row": r, "arch": arch.to_string(), "why": why})
                else:
                    lat = {w: results[w].median_ms for w in WAYS}
                    writer.writerow([int(source.benchmark_indices[r]), arch.to_string(),
                                     *[f"{source.accuracy_columns[d][r]:.4f}" for d in DATASETS],
                                     *[f"{lat[w]:.6f}" for w in WAYS],
                                     f"{min(lat['onnxruntime'], lat['tvm_tuned']):.6f}",
                                     *[f"{results[w].std_ms:.6f}" for w in WAYS],
                                     int(sum(st.macs for st in onnx_layer_stats(path))), n_conv, in_db, stratum])
                    fh.flush()
                    os.fsync(fh.fileno())
                save()
                left = (time.time() - started) / (k + 1) * (len(todo) - k - 1)
                summary = why[:120] if why else " ".join(f"{w} {results[w].median_ms:.3f}" for w in WAYS)
                _log(f"cell {k + 1}/{len(todo)} {arch.to_string()}: {summary} ms ({time.time() - t0:.1f} s; "
                     f"ETA {left / 60:.0f} min)")
    finally:
        for w in workers.values():
            w.close()
    save()
    c = meta.get("correlations", {}).get("between_ways", {})
    _log(f"{meta['cells_measured']} cells in {out_csv}; Spearman tuned~onnxruntime "
         f"{c.get('onnxruntime~tvm_tuned')}, failures {len(meta['failures'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
