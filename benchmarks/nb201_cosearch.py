"""Does searching with the compiler in the loop find better NAS-Bench-201 cells than a compiler-agnostic
search? On the compiled-latency record set (`benchmarks/nb201_records.py`), in seconds (issue 13, point 4).

Every mode runs the same strategy (NSGA-II on (CIFAR-10 accuracy max, latency min), the same query
budget, the same seeds) over the measured cells (`archspace.nb201.NB201Subspace`: the space's operators,
each result moved to the nearest measured cell); they differ only in the latency the search sees:

- ``baseline_onnxruntime``: onnxruntime's latency, what a compiler-agnostic hardware-aware NAS measures
  (the baseline of the headline ratio);
- ``baseline_default_schedule``: TVM under one fixed default schedule;
- ``baseline_macs``: MACs, a proxy with no measurement;
- ``two_stage``: TVM tuned from the pretuned database (the compiler in the loop).

Every mode's queried cells are then judged on the latency they would be deployed with (the record's
``lat_ms_deployed``: the better of onnxruntime and tuned TVM), so the comparison asks only whether the
search found better cells, not which runtime is faster:

- hypervolume of (accuracy, deployed latency) of the queried cells, one reference point for all (the
  lowest accuracy and the highest deployed latency of the record set); the ratio two-stage / baseline
  of the mean over seeds, with a 95 % paired bootstrap interval over seeds;
- per latency budget (the 25th, 50th, 75th percentile of deployed latency): each mode's pick is its most
  accurate queried cell that meets the budget by the latency it searched with (for MACs, the same
  percentile of MACs), judged by its deployed latency (a pick over the budget is a violation);
- ``overlooked``: over the whole record set, cells that meet a budget when tuned, are refused under
  onnxruntime's latency, and are more accurate than the best cell onnxruntime's latency admits.

One-stage (architecture and per-layer schedule genes searched together) needs per-layer schedules that a
record of whole-network latencies does not hold: it is compared on the MBConv space
(`benchmarks/cosearch_vs_baseline.py`).

    python -m benchmarks.nb201_cosearch                 # 20 seeds (seconds to minutes)
    python -m benchmarks.nb201_cosearch --quick         # 3 seeds
    python -m benchmarks.nb201_cosearch --records CSV   # another record set of the same layout

Writes benchmarks/results/nb201_cosearch.json (+ .md table). Besides the figures, the JSON holds each
mode's latency column (``modes``) and, per mode and seed, the record-set rows its run queried in order
(``queried_rows``; 0-based data rows of the CSV, as `archspace.nb201.load_records` numbers them), so every
figure can be recomputed from the record set.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, ResultFile, Size, add_sizes, ratio_ci, resolve_sizes, spearman_or_none

NAME = "nb201_cosearch"
#: mode -> the record column its search sees as latency ("macs": the MACs column)
MODES = {"baseline_onnxruntime": "onnxruntime", "baseline_default_schedule": "tvm_default",
         "baseline_macs": "macs", "two_stage": "tvm_tuned"}
BASELINES = ("baseline_onnxruntime", "baseline_default_schedule", "baseline_macs")
PERCENTILES = (25, 50, 75)
#: the full design's share of the record set a run queries (150 of 2,000 cells) and its least generations
QUERY_SHARE = 150 / 2000
GENERATIONS = 3

SIZES = {
    "seeds": Size(3, 20, "seeds per mode"),
    "queries": Size(24, 150, "queries per run (unless given: at most 7.5 % of the record set, the full "
                             "design's share, and at least 8)"),
    "population": Size(8, 24, "NSGA-II population (unless given: at most a third of the queries, at least 4)"),
    "bootstrap": Size(500, 5000, "bootstrap resamples of the seeds for the 95 % interval"),
}


class Records:
    """The record set: cells, accuracy, every way's latency, MACs."""

    def __init__(self, path: Path, dataset: str) -> None:
        from archspace.nb201 import load_records

        self.path = Path(path)
        self.table = load_records(self.path)
        self.archs = list(self.table.archs)
        self.accuracy = self.table.accuracy_columns[dataset]
        with open(self.path, newline="") as fh:
            macs = {r["arch"]: float(r["macs"]) for r in csv.DictReader(fh)}
        self.signal = {w: self.table.latency_columns[w] for w in self.table.devices}
        self.signal["macs"] = np.array([macs[a.to_string()] for a in self.archs])
        self.deployed = self.table.latency_columns["deployed"]
        self.row = {a: i for i, a in enumerate(self.archs)}

    def __len__(self) -> int:
        return len(self.archs)


def run_mode(rec: Records, mode: str, seed: int, queries: int, population: int) -> list[int]:
    """The record rows one NSGA-II run of `mode` queried, in order."""
    from archspace.nb201 import NB201Subspace
    from nacos.strategies import make_strategy

    signal = rec.signal[MODES[mode]]
    strategy = make_strategy("nsga2", NB201Subspace(rec.archs), seed,
                             objectives=[("accuracy", "max"), ("latency_ms", "min")], population=population)
    rows = []
    for _ in range(queries):
        arch = strategy.ask()
        i = rec.row[arch]
        strategy.tell(arch, [float(rec.accuracy[i]), float(signal[i])], True)
        rows.append(i)
    return rows


def hypervolume_of(rec: Records, rows: list[int], reference: tuple[float, float]) -> float:
    from nacos.results.pareto import hypervolume

    pts = np.stack([rec.accuracy[rows], rec.deployed[rows]], axis=1)
    return float(hypervolume(pts, ("max", "min"), reference))


def pick_under(rec: Records, rows: list[int], mode: str, percentile: float) -> dict[str, Any]:
    """The mode's most accurate queried cell within the budget by its own latency signal, judged deployed."""
    budget_ms = float(np.percentile(rec.deployed, percentile))
    signal = rec.signal[MODES[mode]]
    limit = float(np.percentile(signal, percentile)) if MODES[mode] == "macs" else budget_ms
    ok = [i for i in rows if signal[i] <= limit]
    if not ok:
        return {"accuracy": None, "deployed_ms": None, "violates": False}
    i = max(ok, key=lambda j: (rec.accuracy[j], -rec.deployed[j]))
    return {"accuracy": float(rec.accuracy[i]), "deployed_ms": float(rec.deployed[i]),
            "violates": bool(rec.deployed[i] > budget_ms), "arch": rec.archs[i].to_string()}


def overlooked(rec: Records, percentile: float) -> dict[str, Any]:
    budget = float(np.percentile(rec.deployed, percentile))
    ort, tuned = rec.signal["onnxruntime"], rec.signal["tvm_tuned"]
    admitted = ort <= budget
    best_ort = float(rec.accuracy[admitted].max()) if admitted.any() else -math.inf
    hits = np.flatnonzero((tuned <= budget) & ~admitted & (rec.accuracy > best_ort))
    return {"budget_ms": budget, "count": int(len(hits)), "best_accuracy_onnxruntime_admits":
            None if not admitted.any() else best_ort,
            "best_overlooked_accuracy": float(rec.accuracy[hits].max()) if len(hits) else None}


def scaled_budget(args: argparse.Namespace, cells: int) -> tuple[int, int]:
    """Queries and population for a record set of `cells`: what the user gave, else the full design's share
    of the set (150 queries of 2,000 cells, `QUERY_SHARE`) and at least `GENERATIONS` generations. With
    150 queries on a set of 187 cells every mode sees 80 % of the cells and the modes cannot differ."""
    queries = args.queries if args.queries_given else min(args.queries, max(8, round(QUERY_SHARE * cells)))
    population = args.population if args.population_given else min(args.population, max(4, queries // GENERATIONS))
    return min(queries, cells - 1), population


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    from archspace.nb201 import records_table_path

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sizes(p, SIZES, "3 seeds, 24 queries, population 8")
    p.add_argument("--records", type=Path, default=records_table_path(), help="the record set (CSV)")
    p.add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100", "imagenet16_120"))
    p.add_argument("--out", type=Path, default=RESULTS_DIR / f"{NAME}.json")
    args = p.parse_args(argv)
    args.queries_given, args.population_given = args.queries is not None, args.population is not None
    return resolve_sizes(args, SIZES)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if not args.records.is_file():
        print(f"{NAME}: no record set at {args.records}; build one with `python -m benchmarks.nb201_records`",
              file=sys.stderr)
        return 2
    rec = Records(args.records, args.dataset)
    queries, population = scaled_budget(args, len(rec))
    if queries < population:
        print(f"{NAME}: the record set holds {len(rec)} cells, too few for {args.population}-cell populations",
              file=sys.stderr)
        return 2
    settings = {"records": str(args.records), "cells": len(rec), "dataset": args.dataset, "seeds": args.seeds,
                "queries": queries, "population": population, "strategy": "nsga2",
                "bootstrap": args.bootstrap, "budget_percentiles": list(PERCENTILES)}
    out = ResultFile(NAME, args.out, settings, resume=False)
    reference = (float(rec.accuracy.min()) - 1e-6, float(rec.deployed.max()) * 1.000001)
    runs = {m: [run_mode(rec, m, s, queries, population) for s in range(args.seeds)] for m in MODES}
    hv = {m: np.array([hypervolume_of(rec, r, reference) for r in runs[m]]) for m in MODES}
    ratios = {}
    for b in BASELINES:
        value, ci = ratio_ci(hv["two_stage"], hv[b], args.bootstrap)
        ratios[b] = {"hypervolume_ratio_two_stage_over_baseline": value, "hypervolume_ratio_ci95": ci}
    head = ratios["baseline_onnxruntime"]
    picks = {m: {str(p): [pick_under(rec, r, m, p) for r in runs[m]] for p in PERCENTILES} for m in MODES}

    def mean_acc(m: str, p: int) -> float | None:
        vals = [x["accuracy"] for x in picks[m][str(p)] if x["accuracy"] is not None and not x["violates"]]
        return float(np.mean(vals)) if vals else None

    over = {str(p): overlooked(rec, p) for p in PERCENTILES}
    lo = head["hypervolume_ratio_ci95"][0]
    verdict = (f"two-stage / onnxruntime baseline hypervolume {head['hypervolume_ratio_two_stage_over_baseline']:.3f} "
               f"(95 % CI {head['hypervolume_ratio_ci95'][0]:.3f} to {head['hypervolume_ratio_ci95'][1]:.3f}, "
               f"{args.seeds} seeds, {len(rec)} cells): "
               + ("the interval lies above 1, the co-search finds better cells" if lo > 1 else
                  "the interval does not lie above 1"))
    out.payload.update({
        "cells_measured": len(rec),
        "hypervolume_ratio_two_stage_over_baseline": head["hypervolume_ratio_two_stage_over_baseline"],
        "hypervolume_ratio_ci95": head["hypervolume_ratio_ci95"],
        "overlooked": int(sum(o["count"] for o in over.values())),
        "spearman_tuned_vs_ort": spearman_or_none(rec.signal["tvm_tuned"], rec.signal["onnxruntime"]),
        "baselines": ratios,
        "hypervolume": {m: {"mean": float(v.mean()), "per_seed": v.tolist()} for m, v in hv.items()},
        "modes": MODES,
        "queried_rows": runs,
        "reference_point": {"accuracy": reference[0], "deployed_ms": reference[1]},
        "overlooked_per_budget": over,
        "best_accuracy_under_budgets": {m: {str(p): {"mean_accuracy": mean_acc(m, p),
                                                     "violations": sum(x["violates"] for x in picks[m][str(p)])}
                                            for p in PERCENTILES} for m in MODES},
        "one_stage": "not run on the record set: its per-layer schedule genes need per-layer schedules, which "
                     "whole-network records do not hold; see cosearch_vs_baseline.json",
        "records": args.records.name,
        "verdict": verdict,
    })
    out.save()
    rows = [[m, float(hv[m].mean()), *[mean_acc(m, p) for p in PERCENTILES],
             ratios[m]["hypervolume_ratio_two_stage_over_baseline"] if m in ratios else None] for m in MODES]
    print(out.table(["mode", "hypervolume", *[f"best acc @p{p}" for p in PERCENTILES], "two-stage / this"], rows))
    print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
