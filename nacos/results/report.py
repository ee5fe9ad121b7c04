"""The report of a run: tables (CSV and JSON) and plots (PNG) made from the results store's rows.

Inputs are plain candidate rows (``id``, ``seq``, ``status``, ``reason``, ``metrics``, ``genome``,
``finished_at``), so a report can be remade at any time from the store, and the same code reports
the baseline's run beside a co-search run.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from nacos.results.pareto import Objective, best_under_budgets, hypervolume, pareto_front
from nacos_base.records import Status

__all__ = ["build_report", "front_of", "REFERENCE_POINTS"]

#: Hypervolume reference per objective: the worst value a candidate may have and still count.
REFERENCE_POINTS = {"accuracy": 0.0, "latency_ms": None, "peak_memory_mb": None, "params": None,
                    "energy_mj": None, "edp": None}
_SCALAR = (int, float, str, bool, type(None))


def _ok(rows: Iterable[Mapping[str, Any]], objectives: Sequence[Objective]) -> list[Mapping[str, Any]]:
    return [r for r in rows if r["status"] == Status.OK
            and all(isinstance(r["metrics"].get(o.name), (int, float)) and not math.isnan(r["metrics"][o.name])
                    for o in objectives)]


def front_of(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> list[Mapping[str, Any]]:
    """The feasible, non-dominated rows, sorted by the first objective."""
    ok = _ok(rows, objectives)
    idx = pareto_front([[r["metrics"][o.name] for o in objectives] for r in ok], objectives)
    first = objectives[0]
    return sorted((ok[i] for i in idx), key=lambda r: r["metrics"][first.name], reverse=first.sense == "max")


def reference_point(rows_sets: Sequence[Sequence[Mapping[str, Any]]], objectives: Sequence[Objective]) -> list[float]:
    """Accuracy from 0; a `min` objective from 1.1 times the worst value seen in any of the row sets
    (the same point for every run compared, so their hypervolumes compare)."""
    ref = []
    for o in objectives:
        fixed = REFERENCE_POINTS.get(o.name)
        if fixed is not None:
            ref.append(fixed)
            continue
        values = [r["metrics"][o.name] for rows in rows_sets for r in _ok(rows, objectives)]
        worst = (max(values) if o.sense == "min" else min(values)) if values else 1.0
        ref.append(worst * 1.1 if o.sense == "min" else worst * 0.9)
    return ref


def _flat(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k) for k in ("seq", "id", "status", "reason", "finished_at")}
    out.update({k: v for k, v in row["metrics"].items() if isinstance(v, _SCALAR)})
    out["genome"] = row.get("genome")
    return out


def _write_table(path_stem: Path, rows: list[dict[str, Any]]) -> None:
    path_stem.with_suffix(".json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path_stem.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def build_report(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective], out_dir: Path,
                 latency_budgets: Sequence[float] = (), baseline_rows: Sequence[Mapping[str, Any]] | None = None,
                 layers_of: Any = None, title: str = "", phases: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write the tables and plots of a run into `out_dir`; return the summary (also `report.json`).
    `phases`: how many candidates each phase of the search evaluated (`nacos.search.run.search_phases`).

    `layers_of(row)` gives the per-layer statistics (dicts with name, op_type, macs, activation bytes)
    of a chosen candidate, for the layer-wise table and plot."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    objectives = tuple(objectives)
    rows = sorted(rows, key=lambda r: r["seq"])
    front = front_of(rows, objectives)
    ref = reference_point([rows] + ([baseline_rows] if baseline_rows else []), objectives)
    values = [[r["metrics"][o.name] for o in objectives] for r in _ok(rows, objectives)]
    hv = hypervolume(values, objectives, ref) if values else 0.0
    # Step 1. Tables: every candidate, the front, per-precision trade-offs of the front.
    _write_table(out_dir / "candidates", [_flat(r) for r in rows])
    _write_table(out_dir / "front", [_flat(r) for r in front])
    precision = []
    for r in front:
        m = r["metrics"]
        for p in ("fp32", "fp16", "int8"):
            if f"param_mb_{p}" in m:
                precision.append({"id": r["id"], "precision": p, "param_mb": m[f"param_mb_{p}"],
                                  "peak_memory_mb": m.get(f"peak_memory_mb_{p}"), "accuracy": m.get("accuracy"),
                                  "latency_ms_measured_at": m.get("precision")})
    _write_table(out_dir / "precision", precision)
    # Step 2. Best candidate under each latency budget.
    ok = _ok(rows, objectives)
    best: dict[str, Any] = {}
    if latency_budgets and ok and all(k in ok[0]["metrics"] for k in ("accuracy", "latency_ms")):
        picks = best_under_budgets([r["metrics"]["accuracy"] for r in ok], [r["metrics"]["latency_ms"] for r in ok],
                                   latency_budgets)
        best = {f"{b:g}": (None if i is None else {"id": ok[i]["id"], **{k: ok[i]["metrics"][k]
                                                                         for k in ("accuracy", "latency_ms")}})
                for b, i in picks.items()}
    # Step 3. Layer-wise breakdown of the chosen candidates.
    layer_rows = []
    if layers_of is not None:
        for r in front[:5]:
            for i, layer in enumerate(layers_of(r)):
                layer_rows.append({"id": r["id"], "index": i, **layer})
    _write_table(out_dir / "layers", layer_rows)
    counts = {s: sum(r["status"] == s for r in rows) for s in (Status.OK, Status.REJECTED, Status.FAILED)}
    # two-stage: rejected rows the cost model screened out before tuning (a subset of "rejected")
    counts["screened"] = sum(bool(r["metrics"].get("screened")) for r in rows)
    summary = {"title": title, "evaluated": len(rows), **counts,
               "objectives": [o.to_json() for o in objectives], "reference_point": ref, "hypervolume": hv,
               "front": [_flat(r) for r in front], "best_under_latency_budget": best,
               "report_dir": str(out_dir)}
    if phases is not None:
        summary["phases"] = dict(phases)
    summary["deployment"] = deployment_summary(rows)
    summary["soft_budget_violations"] = soft_budget_violations(rows)
    if baseline_rows is not None:
        bvalues = [[r["metrics"][o.name] for o in objectives] for r in _ok(baseline_rows, objectives)]
        summary["baseline_hypervolume"] = hypervolume(bvalues, objectives, ref) if bvalues else 0.0
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _plots(rows, front, objectives, out_dir, baseline_rows, layer_rows, title)
    return summary


def soft_budget_violations(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per soft budget (the rows' ``over_*`` flags): how many evaluated candidates are over it, of how many."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        if r["status"] not in (Status.OK, Status.REJECTED):
            continue
        for key, value in r["metrics"].items():
            if key.startswith("over_") and isinstance(value, bool):
                entry = out.setdefault(key, {"over": 0, "of": 0})
                entry["over"] += int(value)
                entry["of"] += 1
    return dict(sorted(out.items()))


def deployment_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Compiled TVM against onnxruntime over the candidates timed both ways (TVM modes time onnxruntime
    beside each candidate, in a process of its own): which runtime a user should deploy each with."""
    pairs = [(r["metrics"]["latency_ms"], r["metrics"]["latency_onnxruntime_ms"]) for r in rows
             if r.get("status") in (Status.OK, Status.REJECTED)
             and isinstance(r["metrics"].get("latency_onnxruntime_ms"), float)
             and isinstance(r["metrics"].get("latency_ms"), (int, float)) and r["metrics"]["latency_ms"] > 0]
    if not pairs:
        return {"timed_both": 0}
    ratios = [t / o for t, o in pairs if o > 0]
    return {"timed_both": len(pairs), "tvm_faster": sum(t <= o for t, o in pairs),
            "geomean_tvm_over_onnxruntime": (math.exp(sum(math.log(x) for x in ratios) / len(ratios))
                                             if ratios else None),
            "best_tvm_over_onnxruntime": min(ratios) if ratios else None}


#: (metric, axis label, file) of the accuracy-against-cost plots
_COST_PLOTS = (("latency_ms", "latency (ms, as compiled)", "accuracy_vs_latency.png"),
               ("energy_mj", "energy per inference (mJ)", "accuracy_vs_energy.png"),
               ("edp", "energy x latency (mJ x ms)", "accuracy_vs_edp.png"))


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _plots(rows, front, objectives, out_dir: Path, baseline_rows, layer_rows, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [o.name for o in objectives]
    ok = _ok(rows, objectives)
    bfront = front_of(baseline_rows, objectives) if baseline_rows else []
    for key, label, filename in _COST_PLOTS:
        # accuracy against each cost the run's rows carry: the front drawn where the cost is an objective
        if "accuracy" not in names or not ok or not all(_number(r["metrics"].get(key)) for r in ok):
            continue
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.scatter([r["metrics"][key] for r in ok], [100 * r["metrics"]["accuracy"] for r in ok],
                   s=14, alpha=0.5, label="candidates")
        if key in names:
            ax.plot([r["metrics"][key] for r in front], [100 * r["metrics"]["accuracy"] for r in front],
                    "o-", color="C3", label="front")
            if baseline_rows:
                ax.plot([r["metrics"][key] for r in bfront], [100 * r["metrics"]["accuracy"] for r in bfront],
                        "s--", color="C2", label="baseline front")
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(title or f"accuracy vs {label.split(' (')[0]}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / filename, dpi=120)
        plt.close(fig)
    if layer_rows:
        first = layer_rows[0]["id"]
        layers = [row for row in layer_rows
                  if row["id"] == first and (row.get("macs") or row.get("activation_bytes_fp32"))]
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
        a1.bar(range(len(layers)), [row.get("macs", 0) / 1e6 for row in layers], color="C0")
        a1.set_ylabel("MMACs")
        a2.bar(range(len(layers)), [row.get("activation_bytes_fp32", 0) / 1024 for row in layers], color="C1")
        a2.set_ylabel("activation KB (fp32)")
        a2.set_xlabel(f"layer of {first}")
        fig.tight_layout()
        fig.savefig(out_dir / "layers.png", dpi=120)
        plt.close(fig)
    if rows and "accuracy" in names:
        best, curve = -math.inf, []
        for r in rows:
            if r["status"] == Status.OK and isinstance(r["metrics"].get("accuracy"), float):
                best = max(best, r["metrics"]["accuracy"])
            curve.append(100 * best if best > -math.inf else float("nan"))
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(range(1, len(curve) + 1), curve, "-o", ms=3)
        ax.set_xlabel("candidates evaluated")
        ax.set_ylabel("best feasible accuracy (%)")
        ax.set_title("search progress")
        fig.tight_layout()
        fig.savefig(out_dir / "progress.png", dpi=120)
        plt.close(fig)
