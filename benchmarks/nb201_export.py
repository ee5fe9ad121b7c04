"""NAS-Bench-201 cells as real networks through TVM, against the ten published devices.

A stratified sample of NAS-Bench-201 cells is built as real PyTorch networks
(`archspace.nb201_net.build_nb201_network`: stem, 3 stages of 5 cells at 16 / 32 / 64 channels, residual
reductions, classifier; random weights, batch 1, 3 x 32 x 32), exported to ONNX
(`archspace.export.export_module`: legacy exporter at opset 17, `onnx.checker` full check, onnxruntime's
output compared with PyTorch's within 1e-4 of the output scale before the file is kept), imported into
Relax (`schedules.frontend.import_onnx`) and compiled with TVM for this CPU. Per cell, in order:

1. untuned: `schedules.measure.compile` with no database (dlight's default rules; convolutions
   unscheduled), checked against onnxruntime and timed by `schedules.measure.Protocol`;
2. tuning: the cell's conv / dense tasks that the shared database has not seen are searched with the
   explicit `ScheduleConfig` space (`schedules.tuner.explicit_tune`, `--configs-per-task` configs each)
   into ONE database shared by all cells (NAS-Bench-201 has few distinct workloads, so later cells find
   most of theirs tuned: the hit rate per cell is recorded);
3. tuned: `compile` with the database's best records, checked and timed by the same protocol;
4. onnxruntime (CPU provider, same threads), same protocol, for reference.

The sample: cells whose output does not depend on their input (no path of non-`none` edges from the
cell's input to its output: the exporter folds such a network to a constant and drops its input) are
left out of the pool, and their count is recorded; the remaining cells are split into `strata` equal
strata by their published latency on `--reference-device` (default gold_6226), and `per_stratum` cells
are drawn from each with `--seed`. Then Spearman and Kendall rank correlation (scipy.stats) between this
machine's latencies (untuned TVM, tuned TVM, onnxruntime; and the exported network's MACs for
comparison) and each published device's latency, over the sampled cells measured without failure.

Besides: a build check of a larger random sample of the whole cell space (degenerate cells included):
each is built in PyTorch and run forward once (output shape (1, 10), finite). A sample, not every cell.

    python -m benchmarks.nb201_export            # full size: 12 strata x 2 cells
    python -m benchmarks.nb201_export --quick    # 4 strata x 1 cell, fewer repeats and configs

Results go to benchmarks/results/nb201_export.json (+ .png, and .md: the correlation table), rewritten
atomically after every cell (`benchmarks.common.ResultFile`); a rerun of the same command (same settings,
work directory and table) resumes where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    RESULTS_DIR,
    ResultFile,
    Size,
    add_nb201_csv_argument,
    add_sizes,
    nb201_table_or_skip,
    read_json,
    resolve_sizes,
)

NAME = "nb201_export"
#: this machine's figures correlated with each published device's latency
BACKENDS = ("tvm_untuned", "tvm_tuned", "onnxruntime")


#: the options whose default differs between --quick and a full run
SIZES = {"strata": Size(quick=4, full=12, help="equal strata of the connected cells by published latency"),
         "per_stratum": Size(quick=1, full=2, help="cells drawn from each stratum"),
         "configs_per_task": Size(quick=1, full=3, help="explicit configs per unseen conv / dense task"),
         "warmup": Size(quick=1, full=2, help="untimed runs"),
         "repeats": Size(quick=3, full=10, help="timed runs"),
         "build_check_cells": Size(quick=10, full=200, help="random cells of the whole space built in PyTorch")}


@dataclass(frozen=True)
class Settings:
    """One run's settings (the JSON's ``settings``, in this order)."""

    strata: int = SIZES["strata"].full
    per_stratum: int = SIZES["per_stratum"].full
    reference_device: str = "gold_6226"
    configs_per_task: int = SIZES["configs_per_task"].full
    warmup: int = SIZES["warmup"].full
    repeats: int = SIZES["repeats"].full
    build_check_cells: int = SIZES["build_check_cells"].full
    seed: int = 0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    @property
    def cells(self) -> int:
        return self.strata * self.per_stratum

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


# ---------------------------------------------------------------------------------------------------
# The sample
# ---------------------------------------------------------------------------------------------------
def connected(ops: tuple[str, ...]) -> bool:
    """True when the cell's output depends on its input (some live edge)."""
    from archspace.nb201 import live_edges

    return bool(live_edges(ops))


def stratified_sample(table, s: Settings) -> tuple[list[dict[str, Any]], int]:
    """(sample, degenerate count): `s.strata` equal-count strata of the connected cells by published latency
    on the reference device, `s.per_stratum` cells drawn from each (deterministic by `s.seed`)."""
    lat = table.latency_columns[s.reference_device]
    pool = np.array([i for i, a in enumerate(table.archs) if connected(a.ops)], dtype=np.int64)
    degenerate = len(table) - len(pool)
    order = pool[np.argsort(lat[pool], kind="stable")]
    rng = np.random.default_rng(s.seed)
    out = []
    for k, chunk in enumerate(np.array_split(order, s.strata)):
        for i in sorted(rng.choice(chunk, size=min(s.per_stratum, len(chunk)), replace=False).tolist()):
            out.append({"row": int(i), "arch": table.archs[int(i)].to_string(), "stratum": k,
                        "stratum_ms": [float(lat[chunk[0]]), float(lat[chunk[-1]])]})
    return out, degenerate


def build_check(table, n: int, seed: int) -> dict[str, Any]:
    """Build `n` random cells of the whole space in PyTorch and run each forward once."""
    import torch

    from archspace.nb201_net import build_nb201_network

    t0 = time.time()
    rng = np.random.default_rng(seed + 1)
    rows = rng.choice(len(table), size=min(n, len(table)), replace=False)
    x = torch.zeros(1, 3, 32, 32)
    bad = []
    n_degenerate = 0
    with torch.no_grad():
        for i in rows:
            arch = table.archs[int(i)]
            n_degenerate += not connected(arch.ops)
            try:
                y = build_nb201_network(arch.to_string())(x)
                if tuple(y.shape) != (1, 10) or not bool(torch.isfinite(y).all()):
                    bad.append({"arch": arch.to_string(), "error": f"output shape {tuple(y.shape)} / not finite"})
            except Exception as exc:  # noqa: BLE001 - a build error is the finding
                bad.append({"arch": arch.to_string(), "error": f"{type(exc).__name__}: {exc}"[:300]})
    return {"sampled_cells": int(len(rows)), "of": len(table), "degenerate_in_sample": int(n_degenerate),
            "built_and_forward_ok": int(len(rows) - len(bad)), "failures": bad,
            "what": "random sample of the whole cell space (seeded), built in PyTorch, one forward of "
                    "1x3x32x32, output shape (1, 10) and finite; not compiled",
            "seconds": round(time.time() - t0, 2)}


# ---------------------------------------------------------------------------------------------------
# One cell
# ---------------------------------------------------------------------------------------------------
def _m(m, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    extra = extra or {}
    if not m.ok:
        return {"ok": False, "median_ms": None, "error": m.error, **extra}
    return {"ok": True, "median_ms": m.median_ms, "std_ms": m.std_ms, "p95_ms": m.p95_ms, "min_ms": m.min_ms,
            "runs": m.runs, **extra}


def _compile_measure(path: Path, db, target, protocol) -> dict[str, Any]:
    from schedules.measure import compile, measure

    t0 = time.perf_counter()
    try:
        compiled = compile(path, db, target)
    except Exception as exc:  # noqa: BLE001 - a build error is data
        text = str(exc).strip().splitlines()
        return {"ok": False, "median_ms": None,
                "error": f"build error: {type(exc).__name__}: {(text[-1] if text else '')[:300]}"}
    build_s = time.perf_counter() - t0
    return _m(measure(compiled, protocol), {"build_s": round(build_s, 2)})


def run_cell(entry: dict[str, Any], table, db, target, protocol, s: Settings, work_dir: Path) -> dict[str, Any]:
    import torch

    from archspace.export import export_module
    from archspace.nb201_net import build_nb201_network
    from archspace.stats import onnx_layer_stats
    from schedules.frontend import extract_workloads, import_onnx
    from schedules.measure import reference_onnxruntime
    from schedules.targets import host_threads
    from schedules.tuner import EXPLICIT_KINDS, explicit_tune, plan_tuning

    t_cell = time.perf_counter()
    arch = table.archs[entry["row"]]
    row: dict[str, Any] = {**entry, "benchmark_index": int(table.benchmark_indices[entry["row"]]),
                           "published_ms": {d: float(table.latency_columns[d][entry["row"]]) for d in table.devices}}
    path = work_dir / "onnx" / f"nb201_{entry['row']:05d}.onnx"
    t0 = time.perf_counter()
    torch.manual_seed(s.seed)
    try:  # export_module runs onnx.checker (full) and compares onnxruntime with PyTorch before keeping it
        export_module(build_nb201_network(arch.to_string()), torch.zeros(1, 3, 32, 32), path, seed=s.seed)
    except Exception as exc:  # noqa: BLE001
        row.update(ok=False, error=f"export: {type(exc).__name__}: {exc}"[:400])
        return row
    row["export_s"] = round(time.perf_counter() - t0, 2)
    row["export_checked"] = "onnx.checker full_check + onnxruntime vs PyTorch within 1e-4 x output scale"
    row["macs"] = int(sum(st.macs for st in onnx_layer_stats(path)))
    row["tvm_untuned"] = _compile_measure(path, None, target, protocol)
    # tuning: the cell's conv / dense tasks the shared database has not seen
    mod = import_onnx(path)
    todo, reused = plan_tuning(mod, db, target, explicit=True)
    report = explicit_tune(mod, db, target, configs_per_task=s.configs_per_task, seed=s.seed)
    conv = [w for w in extract_workloads(mod, target) if w.op_kind in EXPLICIT_KINDS]
    cov = db.coverage(conv)
    n_tasks = len(todo) + len(reused)
    row["tuning"] = {"conv_tasks": n_tasks, "reused": len(report.reused), "tuned": len(report.tuned),
                     "hit_rate": (len(report.reused) / n_tasks) if n_tasks else 1.0,
                     "configs_tried": report.trials, "faults": len(report.faults),
                     "seconds": round(report.seconds, 2),
                     "coverage_after": {"tasks": cov.tasks, "macs": cov.macs}}
    row["tvm_tuned"] = _compile_measure(path, db, target, protocol)
    row["onnxruntime"] = _m(reference_onnxruntime(path, protocol, threads=host_threads()))
    row["ok"] = all(row[b]["ok"] for b in BACKENDS)
    row["seconds"] = round(time.perf_counter() - t_cell, 2)
    return row


# ---------------------------------------------------------------------------------------------------
# Correlations
# ---------------------------------------------------------------------------------------------------
def _rank(x: list[float], y: list[float]) -> dict[str, Any]:
    from scipy import stats

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"spearman": None, "kendall": None, "n": len(x)}
    rho = stats.spearmanr(x, y).statistic
    tau = stats.kendalltau(x, y).statistic
    def f(v):
        return None if v is None or not math.isfinite(float(v)) else float(v)
    return {"spearman": f(rho), "kendall": f(tau), "n": len(x)}


def correlations(rows: list[dict[str, Any]], devices: tuple[str, ...]) -> dict[str, Any]:
    """Per device: rank correlation of each of this machine's latencies (and MACs) with the device's, over
    the cells where every backend measured without failure (the same cells for every column)."""
    ok = [r for r in rows if r.get("ok")]
    ours = {b: [r[b]["median_ms"] for r in ok] for b in BACKENDS}
    ours["macs"] = [float(r["macs"]) for r in ok]
    out = {d: {b: _rank(v, [r["published_ms"][d] for r in ok]) for b, v in ours.items()} for d in devices}
    out["_between_ours"] = {f"{a}~{b}": _rank(ours[a], ours[b])
                            for i, a in enumerate(BACKENDS) for b in (*BACKENDS[i + 1:], "macs")}
    return out


# ---------------------------------------------------------------------------------------------------
# Figure, table
# ---------------------------------------------------------------------------------------------------
def _plot(result: dict[str, Any]) -> Any:
    """Spearman's rho of each backend (and MACs) with each device; per cell, latency here against published."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corr = result.get("correlations", {})
    devices = [d for d in corr if not d.startswith("_")]
    cols = (*BACKENDS, "macs")
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.6), gridspec_kw={"width_ratios": [2.2, 1]})
    ax = axes[0]
    w = 0.8 / len(cols)
    for k, b in enumerate(cols):
        ys = [corr[d][b]["spearman"] for d in devices]
        ax.bar(np.arange(len(devices)) + (k - (len(cols) - 1) / 2) * w, [np.nan if y is None else y for y in ys],
               w, label={"macs": "MACs (exported)"}.get(b, b))
    ax.axhline(0, c="k", lw=0.6)
    ax.set_xticks(np.arange(len(devices)), devices, rotation=30, ha="right")
    ax.set_ylim(-1, 1)
    ax.set_ylabel("Spearman rho with the device")
    n = sum(r.get("ok", False) for r in result.get("rows", []))
    ax.set_title(f"this machine vs published device latency ({n} NAS-Bench-201 cells)")
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[1]
    ref = result["settings"]["reference_device"]
    ok = [r for r in result.get("rows", []) if r.get("ok")]
    for b, mk in zip(BACKENDS, "os^"):
        ax.scatter([r["published_ms"][ref] for r in ok], [r[b]["median_ms"] for r in ok], marker=mk, s=18, label=b)
    ax.set_xlabel(f"published latency on {ref} (ms)")
    ax.set_ylabel("latency here (ms)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("per cell")
    fig.tight_layout()
    return fig


TABLE_HEADER = ("device", "TVM untuned ρ / τ", "TVM tuned ρ / τ", "onnxruntime ρ / τ", "MACs ρ / τ")


def _table_rows(result: dict[str, Any]) -> list[list[str]]:
    """Per published device: "Spearman / Kendall" of each backend and of MACs (as the README's table)."""
    def f(v):
        return "-" if v is None else f"{v:.2f}"
    return [[d, *(f"{f(c[b]['spearman'])} / {f(c[b]['kendall'])}" for b in (*BACKENDS, "macs"))]
            for d, c in result["correlations"].items() if not d.startswith("_")]


# ---------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------
def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sizes(p, SIZES, "4 strata x 1 cell, 1 config per task, 3 repeats")
    p.add_argument("--reference-device", default=Settings.reference_device,
                   help=f"published device whose latency the strata follow (default {Settings.reference_device})")
    p.add_argument("--seed", type=int, default=Settings.seed, help="sample, export and measurement seed")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / f"{NAME}.json",
                   help="result JSON (PNG and markdown table beside it)")
    p.add_argument("--work-dir", type=Path, default=Path(".nacos-cache") / NAME,
                   help="ONNX files and the shared tuning database")
    add_nb201_csv_argument(p)
    return resolve_sizes(p.parse_args(argv), SIZES)


def main(argv=None) -> int:
    from archspace.nb201 import NB201Table

    args = _parse(argv)
    s = Settings.from_args(args)
    csv = nb201_table_or_skip(NAME, args.csv)
    if csv is None:
        return 2
    from schedules.database import TuningDatabase
    from schedules.measure import Protocol
    from schedules.targets import host_target, host_threads, versions
    from schedules.tuner import skip_foreign_intrinsics

    skip_foreign_intrinsics()  # CPU only: spare the ~23 s import of other targets' tensor intrinsics
    table = NB201Table(csv)
    if s.reference_device not in table.latency_columns:
        raise SystemExit(f"device {s.reference_device!r} not in the table ({table.devices})")
    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
    started = time.time()
    threads = host_threads()
    target = host_target(threads)
    protocol = Protocol(warmup=s.warmup, repeats=s.repeats, seed=s.seed)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    # Resume (`ResultFile`: same benchmark, same `settings`) only a file of the same work dir (its rows' hit
    # rates describe that directory's database) and of a table of the same size (the sample's rows index it).
    previous = read_json(args.out) or {}
    same_place = (previous.get("work_dir") == str(args.work_dir)
                  and previous.get("source", {}).get("rows") == len(table))
    out = ResultFile(NAME, args.out, s.to_json(), resume=same_place)
    result = out.payload
    if out.resumed:
        log(f"resuming {args.out}")
    else:
        sample, degenerate = stratified_sample(table, s)
        result.update({
            "complete": False, "work_dir": str(args.work_dir), "source": {"csv": str(csv), "rows": len(table)},
            "sample": {"cells": sample, "stratified_by": f"published latency on {s.reference_device}",
                       "degenerate_cells_in_table": degenerate,
                       "degenerate_handling": ("left out of the sampling pool: a cell with no path of non-none "
                                               "edges from its input to its output makes the whole network "
                                               "a constant (the exporter drops the input), so there is "
                                               "nothing to compile or time")},
            "rows": [], "seconds_total": 0.0})
    result.update(backends=list(BACKENDS), versions=dict(versions()), target=str(target), threads=threads,
                  protocol=dataclasses.asdict(protocol))
    spent_before = float(result.get("seconds_total", 0.0))
    measured_now = 0

    def save() -> str:
        """Correlations, counts, the JSON rewritten atomically and the markdown table beside it (returned)."""
        result["correlations"] = correlations(result["rows"], table.devices)
        result["cells_measured_this_run"] = measured_now
        result["seconds_total"] = round(spent_before + time.time() - started, 2)
        out.save()
        return out.table(TABLE_HEADER, _table_rows(result))

    if "build_check" not in result:
        result["build_check"] = build_check(table, s.build_check_cells, s.seed)
        log(f"build check: {result['build_check']['built_and_forward_ok']}/{result['build_check']['sampled_cells']}")
        save()
    db = TuningDatabase(args.work_dir / "db")
    done = {r["arch"] for r in result["rows"]}
    for entry in result["sample"]["cells"]:
        if entry["arch"] in done:
            continue
        row = run_cell(entry, table, db, target, protocol, s, args.work_dir)
        result["rows"].append(row)
        measured_now += 1
        save()
        out.figure(_plot(result))
        def g(b):
            return row.get(b, {}).get("median_ms")
        log(f"cell {len(result['rows'])}/{len(result['sample']['cells'])} {entry['arch']}: untuned {g('tvm_untuned')} "
            f"tuned {g('tvm_tuned')} ort {g('onnxruntime')} ms, hit rate "
            f"{row.get('tuning', {}).get('hit_rate')}, {row.get('seconds')} s")
    result["complete"] = len(result["rows"]) == len(result["sample"]["cells"])
    result["failed_cells"] = [{"arch": r["arch"], "why": r.get("error") or {b: r[b].get("error") for b in BACKENDS
                                                                          if b in r and not r[b]["ok"]}}
                              for r in result["rows"] if not r.get("ok")]
    text = save()
    out.figure(_plot(result))
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
