"""(architecture, mapping) co-search on an analytical accelerator: does searching the mapping with the
architecture find better networks than a search that holds the mapping fixed? (issue 15)

On the MBConv space, each mode runs the same strategy (NSGA-II on (accuracy max, EDP min)), the same number
of candidates and the same seeds, on ``target: accel://HARDWARE`` (ZigZag, `nacos.backends.accelerator`):

- ``baseline``: one fixed mapping rule for every layer (`zigzag-fixed`), a compiler-agnostic HW-NAS on a
  fixed-dataflow accelerator;
- ``two-stage``: the architecture searched outside, ZigZag's LOMA mapping search per layer inside
  (`zigzag`);
- ``one-stage``: the genome holds the architecture and a mapping rule per layer (loop order and tiles,
  the explicit space's `ScheduleConfig`), searched by one evolutionary algorithm (`zigzag-genome`).

Every queried candidate is then judged on the EDP it would be deployed with: the best of the fixed rule,
ZigZag's searched mapping and the mapping it ran with (each layer costed both ways, from the shared
layer cache), so the
comparison asks whether the search found better architectures, not which mapping is better. Reported:

- the hypervolume of (accuracy, deployed EDP) of each run's candidates, one reference point for all
  (the lowest accuracy and the highest deployed EDP of any candidate), and the ratios two-stage /
  baseline and one-stage / baseline of the means over seeds (top-level
  ``hypervolume_ratio_two_stage_over_baseline``); also the hypervolume by the EDP each mode searched with;
- per seed, each mode's pick: its lowest-EDP candidate (by the EDP it searched with) whose accuracy is at
  least the floor (the median accuracy of all candidates of all runs), judged by its deployed EDP;
- per distinct layer of every queried architecture: the fixed rule's latency and EDP over the searched
  mapping's (``mapping_speedup``);
- ``spearman_vs_published_eyeriss``: from `benchmarks/accelerator_eyeriss.py`'s result (how close the
  model ranks NAS-Bench-201 cells to HW-NAS-Bench's Eyeriss column).

On NAS-Bench-201 (``nb201``): a seeded sample of connected cells, each built as its real network
(`archspace.nb201_net`, 1x3x32x32) and costed by ZigZag under the fixed rule and under the searched mapping;
then NSGA-II over the sample (`archspace.nb201.NB201Subspace`, the same queries and seeds per mode) on
(published CIFAR-10 accuracy, EDP): baseline sees the fixed rule's EDP, two-stage the searched mapping's;
the queried cells judged by the better of the two, hypervolume ratio two-stage / baseline. One-stage is
not run on the cells: a cell's genome holds no per-layer mapping genes.

The accelerator's sizing (PE array, buffers) as a third axis is a run option (``accelerator_sizing: true``,
`nacos.search.sized_space`); this comparison holds the array fixed, so the modes differ only in mapping.

    python -m benchmarks.accelerator_cosearch            # 5 seeds x 24 candidates per mode
    python -m benchmarks.accelerator_cosearch --quick    # 2 seeds x 3 candidates

Resumable: each search is a run directory under --work-dir (a rerun resumes it; the layer cache there is
shared by every run), and benchmarks/results/accelerator_cosearch.json is rewritten after each run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import (
    RESULTS_DIR,
    ResultFile,
    Size,
    add_sizes,
    geomean_or_none,
    read_json,
    resolve_sizes,
    spearman_or_none,
)

NAME = "accelerator_cosearch"
MODES = ("baseline", "two-stage", "one-stage")
SIZES = {
    "seeds": Size(2, 5, "seeds per mode"),
    "trials": Size(3, 24, "candidates per search"),
    "population": Size(2, 8, "NSGA-II population"),
    "nb201_cells": Size(0, 200, "NAS-Bench-201 cells in the sample (0: skip that part)"),
    "nb201_queries": Size(12, 50, "queries per NAS-Bench-201 run"),
}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accelerator_cosearch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sizes(parser, SIZES, "2 seeds x 3 candidates (a smoke run; its verdict means nothing)")
    parser.add_argument("--hardware", default="eyeriss-like", help="a shipped ZigZag array or a hardware YAML")
    parser.add_argument("--work-dir", type=Path, default=Path(".nacos-cache") / NAME)
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/)")
    parser.add_argument("--quiet", action="store_true")
    return resolve_sizes(parser.parse_args(argv), SIZES)


def run_config(args: argparse.Namespace, mode: str, seed: int) -> Any:
    from nacos.config import config_from_dict

    return config_from_dict({
        "mode": mode, "seed": seed, "trials": args.trials, "target": f"accel://{args.hardware}",
        "objectives": ["accuracy", "edp"],
        "strategy": {"name": "nsga2", "population": args.population, "sample_size": min(3, args.population)},
        "tuning": {"database": str(args.work_dir / "db")},   # the layer cache lives beside it
    })


def run_one(args: argparse.Namespace, mode: str, seed: int) -> list[dict[str, Any]]:
    """Run (or resume) one search; its ok candidates as plain dicts."""
    from nacos.results.store import RunDir
    from nacos.search.run import run_search

    run_dir = args.work_dir / f"{mode}-seed{seed}"
    run_search(run_config(args, mode, seed), run_dir, progress=not args.quiet)
    store = RunDir.existing(run_dir).open_store(readonly=True)
    try:
        records = store.completed()
    finally:
        store.close()
    return [{"id": r.id, "arch_id": r.metrics["arch_id"], "accuracy": r.metrics["accuracy"],
             "edp": r.metrics["edp"], "energy_mj": r.metrics["energy_mj"], "latency_ms": r.metrics["latency_ms"],
             "onnx": str(run_dir / "artifacts" / r.metrics["arch_id"] / "model.onnx")}
            for r in records if r.status == "ok"]


def deployed_costs(args: argparse.Namespace, rows: list[dict[str, Any]]) -> tuple[dict[str, dict[str, float]],
                                                                                   list[dict[str, Any]]]:
    """Each architecture costed under the fixed rule and under the searched mapping (the shared cache:
    most layers are hits). (arch_id -> {fixed_edp, searched_edp, deployed_edp}, per distinct layer:
    the fixed rule over the searched mapping in cycles and EDP.)"""
    from costmodels.accelerator import AcceleratorModel
    from costmodels.accelerator_mapping import MappingRule
    from nacos.backends.accelerator import CACHE_NAME, cost_edp

    model = AcceleratorModel(args.hardware, cache=args.work_dir / CACHE_NAME)
    per_arch: dict[str, dict[str, float]] = {}
    layers: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["arch_id"] in per_arch:
            continue
        searched, fixed = model.cost(row["onnx"]), model.cost(row["onnx"], MappingRule())
        edps = [cost_edp(c) for c in (fixed, searched)]   # mJ x ms, as the rows
        per_arch[row["arch_id"]] = {"fixed_edp": edps[0], "searched_edp": edps[1], "deployed_edp": min(edps)}
        for f, s in zip(fixed.layers, searched.layers):
            layers.setdefault(s.shape_key, {"op_type": s.op_type, "cycles_fixed_over_searched":
                                            f.latency_cycles / s.latency_cycles,
                                            "edp_fixed_over_searched": f.edp / s.edp})
    return per_arch, list(layers.values())


def _hv(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    from nacos.results.pareto import hypervolume

    return float(hypervolume(points, ("max", "min"), reference)) if points else 0.0


def summarize(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]],
              per_arch: dict[str, dict[str, float]], layers: list[dict[str, Any]]) -> dict[str, Any]:
    every = [r for rows in runs.values() for r in rows]

    def deployed(r: dict[str, Any]) -> float:
        # the better of the fixed rule, the searched mapping and the mapping the row itself ran with
        return min(per_arch[r["arch_id"]]["deployed_edp"], r["edp"])

    reference = (min(r["accuracy"] for r in every), max(deployed(r) for r in every) * 1.0001)
    searched_ref = (reference[0], max(r["edp"] for r in every) * 1.0001)
    floor = statistics.median(r["accuracy"] for r in every)
    per_mode: dict[str, Any] = {}
    for mode in MODES:
        hv, hv_searched, picks = [], [], []
        for seed in range(args.seeds):
            rows = runs.get(f"{mode}-seed{seed}", [])
            hv.append(_hv([(r["accuracy"], deployed(r)) for r in rows], reference))
            hv_searched.append(_hv([(r["accuracy"], r["edp"]) for r in rows], searched_ref))
            ok = [r for r in rows if r["accuracy"] >= floor]
            pick = min(ok, key=lambda r: r["edp"]) if ok else None
            picks.append(None if pick is None else {"arch_id": pick["arch_id"], "accuracy": pick["accuracy"],
                                                    "searched_edp": pick["edp"],
                                                    "deployed_edp": deployed(pick)})
        found = [p["deployed_edp"] for p in picks if p is not None]
        per_mode[mode] = {"hypervolume_per_seed": hv, "hypervolume_mean": statistics.fmean(hv),
                          "hypervolume_searched_edp_mean": statistics.fmean(hv_searched), "picks": picks,
                          "pick_deployed_edp_mean": statistics.fmean(found) if found else None}
    base = per_mode["baseline"]["hypervolume_mean"]
    ratio = {m: (per_mode[m]["hypervolume_mean"] / base if base > 0 else None) for m in MODES[1:]}
    cycles = [x["cycles_fixed_over_searched"] for x in layers]
    edp = [x["edp_fixed_over_searched"] for x in layers]
    return {
        "reference_point": {"accuracy": reference[0], "deployed_edp": reference[1]}, "accuracy_floor": floor,
        "modes": per_mode,
        "hypervolume_ratio_two_stage_over_baseline": ratio["two-stage"],
        "hypervolume_ratio_one_stage_over_baseline": ratio["one-stage"],
        "mapping_speedup": {"layers": len(layers), "cycles_geomean": geomean_or_none(cycles),
                            "cycles_range": [min(cycles), max(cycles)] if cycles else None,
                            "edp_geomean": geomean_or_none(edp), "edp_range": [min(edp), max(edp)] if edp else None,
                            "layers_where_fixed_is_worse": sum(1 for x in edp if x > 1.0)},
    }


def nb201_part(args: argparse.Namespace) -> dict[str, Any] | None:
    """The NAS-Bench-201 comparison (module docstring); None when the table is absent or no cells asked."""
    from benchmarks.common import nb201_table_or_skip

    csv = nb201_table_or_skip(NAME, None) if args.nb201_cells else None
    if csv is None:
        return None
    import numpy as np
    import torch

    from archspace.export import export_module
    from archspace.nb201 import NB201Subspace, NB201Table, sample_cells
    from archspace.nb201_net import build_nb201_network
    from costmodels.accelerator import AcceleratorModel
    from costmodels.accelerator_mapping import MappingRule
    from nacos.backends.accelerator import CACHE_NAME, cost_edp
    from nacos.results.pareto import hypervolume
    from nacos.strategies import make_strategy

    table = NB201Table(csv)
    model = AcceleratorModel(args.hardware, cache=args.work_dir / CACHE_NAME)
    cells = sample_cells(table, args.nb201_cells, seed=0)
    edp = {"fixed": [], "searched": []}
    for k, i in enumerate(cells):
        path = args.work_dir / "nb201" / f"nb201_{i:05d}.onnx"
        if not path.is_file():
            torch.manual_seed(0)
            export_module(build_nb201_network(table.archs[i].to_string()), torch.zeros(1, 3, 32, 32), path, seed=0)
        for way, rule in (("fixed", MappingRule()), ("searched", None)):
            edp[way].append(cost_edp(model.cost(path, rule)))
        if not args.quiet and (k + 1) % 20 == 0:
            print(f"[{NAME}] nb201: {k + 1}/{len(cells)} cells costed", file=sys.stderr)
    archs = [table.archs[i] for i in cells]
    accuracy = np.array([table.accuracy(a, "cifar10") for a in archs])
    fixed, searched = np.array(edp["fixed"]), np.array(edp["searched"])
    deployed = np.minimum(fixed, searched)
    reference = (float(accuracy.min()), float(deployed.max()) * 1.0001)
    row = {a: j for j, a in enumerate(archs)}
    queries = min(args.nb201_queries, len(archs) - 1)
    hv: dict[str, list[float]] = {"baseline": [], "two-stage": []}
    for seed in range(args.seeds):
        for mode, signal in (("baseline", fixed), ("two-stage", searched)):
            strategy = make_strategy("nsga2", NB201Subspace(archs), seed,
                                     objectives=[("accuracy", "max"), ("edp", "min")], population=args.population)
            asked = []
            for _ in range(queries):
                arch = strategy.ask()
                j = row[arch]
                strategy.tell(arch, [float(accuracy[j]), float(signal[j])], True)
                asked.append(j)
            pts = np.stack([accuracy[asked], deployed[asked]], axis=1)
            hv[mode].append(float(hypervolume(pts, ("max", "min"), reference)))
    means = {m: statistics.fmean(v) for m, v in hv.items()}
    return {"cells": len(cells), "queries": queries, "dataset": "cifar10", "reference_point": list(reference),
            "hypervolume_per_seed": hv, "hypervolume_mean": means,
            "hypervolume_ratio_two_stage_over_baseline": (means["two-stage"] / means["baseline"]
                                                          if means["baseline"] > 0 else None),
            "fixed_over_searched_edp": {"geomean": geomean_or_none(list(fixed / searched)),
                                        "range": [float((fixed / searched).min()), float((fixed / searched).max())]},
            "spearman_fixed_vs_searched_edp": spearman_or_none(list(fixed), list(searched))}


def _published_spearman() -> float | None:
    result = read_json(RESULTS_DIR / "accelerator_eyeriss.json") or {}
    return result.get("spearman_vs_published_eyeriss")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    settings = {"seeds": args.seeds, "trials": args.trials, "population": args.population,
                "nb201_cells": args.nb201_cells, "nb201_queries": args.nb201_queries,
                "hardware": args.hardware, "space": "MBConv (ArchSpace())", "strategy": "nsga2",
                "objectives": ["accuracy", "edp"]}
    result = ResultFile(NAME, args.out or RESULTS_DIR / f"{NAME}.json", settings)
    runs: dict[str, list[dict[str, Any]]] = {}
    for seed in range(args.seeds):
        for mode in MODES:
            key = f"{mode}-seed{seed}"
            print(f"[{NAME}] {key}: {args.trials} candidates on {args.hardware}", file=sys.stderr)
            runs[key] = run_one(args, mode, seed)
            result.payload.setdefault("runs", {})[key] = [{k: v for k, v in r.items() if k != "onnx"}
                                                          for r in runs[key]]
            result.payload["complete"] = False
            result.save()
    per_arch, layers = deployed_costs(args, [r for rows in runs.values() for r in rows])
    result.payload["deployed"] = per_arch
    result.payload.update(summarize(args, runs, per_arch, layers))
    result.payload["spearman_vs_published_eyeriss"] = _published_spearman()
    result.payload["nb201"] = nb201_part(args)
    result.payload["complete"] = True
    result.save()
    s = result.payload
    rows = [[m, s["modes"][m]["hypervolume_mean"], s["modes"][m]["hypervolume_searched_edp_mean"],
             s["modes"][m]["pick_deployed_edp_mean"]] for m in MODES]
    print(result.table(["mode", "HV (accuracy, deployed EDP)", "HV (accuracy, searched EDP)",
                        "pick's deployed EDP (mJ x ms)"], rows, digits=4))
    print(f"hypervolume ratio two-stage / baseline {s['hypervolume_ratio_two_stage_over_baseline']}, "
          f"one-stage / baseline {s['hypervolume_ratio_one_stage_over_baseline']}; fixed rule over searched "
          f"mapping per layer: EDP geomean {s['mapping_speedup']['edp_geomean']}")
    if s["nb201"]:
        print(f"NAS-Bench-201 ({s['nb201']['cells']} cells): hypervolume ratio two-stage / baseline "
              f"{s['nb201']['hypervolume_ratio_two_stage_over_baseline']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
