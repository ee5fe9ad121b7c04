"""How close the ZigZag backend comes to a published accelerator model: Spearman between its Eyeriss-like
latency and NAS-Bench-201's Eyeriss column (HW-NAS-Bench's figures, in ../shared/data/), issue 15 point 4.

A seeded random sample of NAS-Bench-201 cells whose output depends on their input
(`archspace.nb201.sample_cells`) is built as real networks (`archspace.nb201_net.build_nb201_network`:
3 stages of 5 cells at 16 / 32 / 64 channels on 3 x 32 x 32, batch 1), exported
(`archspace.export.export_module`, checked against PyTorch) and costed by
`costmodels.accelerator.AcceleratorModel("eyeriss-like")` with one layer cache for the whole sample
(NAS-Bench-201 has few distinct layer shapes: after the first cells every layer is a cache hit). Then
Spearman and Kendall (scipy.stats) between the cells' total cycles and the published Eyeriss latency,
and the same for the networks' MACs as the analytical baseline any model should beat.

What the comparison can and cannot say: HW-NAS-Bench's Eyeriss figures come from its own accelerator
model (a row-stationary Eyeriss, 168 PEs), ours from ZigZag's Eyeriss-like array with its default mapping
file; only ranks are compared. ZigZag costs the convolutions and the classifier, not the ReLUs, the
residual Adds (reported per cell as not costed); average pools are costed as the depthwise convolutions
they equal, and the summary also gives the correlation of the cycles without them.

    python -m benchmarks.accelerator_eyeriss                  # 200 cells
    python -m benchmarks.accelerator_eyeriss --quick          # 20 cells

Results go to benchmarks/results/accelerator_eyeriss.json (rewritten atomically every 10 cells; a rerun
with the same settings keeps the cells it holds and costs only the rest) and a markdown table of the rank
correlations beside it; the layer cache and the ONNX files stay in --work-dir, so a run with other
settings maps only the layer shapes no earlier run met.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from archspace.nb201 import sample_cells
from benchmarks.common import (
    RESULTS_DIR,
    ResultFile,
    Size,
    add_nb201_csv_argument,
    add_sizes,
    nb201_table_or_skip,
    resolve_sizes,
)

NAME = "accelerator_eyeriss"
DEVICE = "eyeriss"
#: the ops costed as depthwise convolutions (ZigZagSettings.pool_as_depthwise); the summary also gives the
#: correlation without them, i.e. what costing only ZigZag's own ops (convs, dense) would give
POOLS = ("AveragePool", "GlobalAveragePool")
SIZES = {"cells": Size(quick=20, full=200, help="cells in the sample (3 to 15625)")}


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME}", description=__doc__.splitlines()[0])
    add_sizes(p, SIZES, "20 cells instead of 200")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hardware", default="eyeriss-like")
    p.add_argument("--lpf-limit", type=int, default=5, help="ZigZag LOMA's loop prime factor limit")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / f"{NAME}.json")
    p.add_argument("--work-dir", type=Path, default=Path(".nacos-cache") / NAME)
    add_nb201_csv_argument(p)
    ns = resolve_sizes(p.parse_args(argv), SIZES)
    if not 3 <= ns.cells <= 15625:
        p.error(f"--cells: must be in 3..15625, got {ns.cells}")
    return ns


def rank(x: list[float], y: list[float]) -> dict[str, Any]:
    from scipy import stats

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"spearman": None, "kendall": None, "n": len(x)}

    def f(v: float) -> float | None:
        return float(v) if math.isfinite(float(v)) else None

    return {"spearman": f(stats.spearmanr(x, y).statistic), "kendall": f(stats.kendalltau(x, y).statistic),
            "n": len(x)}


def main(argv: list[str] | None = None) -> int:
    ns = _parse(argv)
    csv = nb201_table_or_skip(NAME, ns.csv)
    if csv is None:
        return 0
    import torch

    from archspace.export import export_module
    from archspace.nb201 import NB201Table
    from archspace.nb201_net import build_nb201_network
    from archspace.stats import onnx_layer_stats
    from costmodels.accelerator import AcceleratorModel, ZigZagSettings

    table = NB201Table(csv)
    if DEVICE not in table.devices:
        print(f"{NAME}: the table has no lat_ms_{DEVICE} column", file=sys.stderr)
        return 2
    model = AcceleratorModel(ns.hardware, settings=ZigZagSettings(lpf_limit=ns.lpf_limit),
                             cache=ns.work_dir / "layers.jsonl")
    rows_idx = sample_cells(table, ns.cells, ns.seed)
    result = ResultFile(NAME, ns.out, {"cells": ns.cells, "seed": ns.seed, "hardware": ns.hardware,
                                       "lpf_limit": ns.lpf_limit, "zigzag": model.version, "input": [1, 3, 32, 32]})
    rows = result.payload.setdefault("rows", [])
    done = {r["row"] for r in rows}
    # a run with new settings finds the layers of earlier runs in --work-dir's cache (fewer zigzag_calls)
    result.payload.update({"cache_records_at_start": len(model.cache) if model.cache is not None else 0,
                           "rows_at_start": len(rows), "complete": False})
    start = time.perf_counter()
    for k, i in enumerate(rows_idx):
        if i in done:
            continue
        arch = table.archs[i]
        path = ns.work_dir / "onnx" / f"nb201_{i:05d}.onnx"
        if not path.is_file():
            torch.manual_seed(ns.seed)
            export_module(build_nb201_network(arch.to_string()), torch.zeros(1, 3, 32, 32), path, seed=ns.seed)
        cost = model.cost(path)
        rows.append({
            "row": i, "arch": arch.to_string(), "published_eyeriss_ms": float(table.latency_columns[DEVICE][i]),
            "latency_cycles": cost.latency_cycles, "energy_pj": cost.energy_pj, "edp": cost.edp,
            "latency_cycles_without_pools": sum(lc.latency_cycles for lc in cost.layers if lc.op_type not in POOLS),
            "macs": int(sum(st.macs for st in onnx_layer_stats(path))), "layers_costed": len(cost.layers),
            "layers_not_costed": len(cost.not_costed), "cache_hits": cost.cache_hits,
            "zigzag_calls": cost.zigzag_calls, "seconds": round(cost.seconds, 3)})
        if len(rows) % 10 == 0:
            _summarise(result, time.perf_counter() - start, done=False)
    _summarise(result, time.perf_counter() - start, done=len(rows) == len(rows_idx))
    s = result.payload["summary"]
    print(f"{NAME}: {s['n']} cells, Spearman vs published Eyeriss {s['spearman_vs_published_eyeriss']:.3f} "
          f"(MACs: {s['macs_vs_published_eyeriss']['spearman']:.3f}); {s['zigzag_calls']} ZigZag calls, "
          f"{s['seconds']:.0f} s -> {ns.out}")
    return 0


def _summarise(result: ResultFile, seconds: float, done: bool) -> None:
    """The rank correlations over the cells so far into `result`, saved with their markdown table."""
    payload = result.payload
    rows = payload["rows"]
    published = [r["published_eyeriss_ms"] for r in rows]
    cycles = rank([r["latency_cycles"] for r in rows], published)
    payload["summary"] = {
        "n": len(rows), "spearman_vs_published_eyeriss": cycles["spearman"],
        "kendall_vs_published_eyeriss": cycles["kendall"],
        "without_pools_vs_published_eyeriss": rank([r["latency_cycles_without_pools"] for r in rows], published),
        "macs_vs_published_eyeriss": rank([float(r["macs"]) for r in rows], published),
        "energy_vs_published_eyeriss": rank([r["energy_pj"] for r in rows], published),
        "zigzag_calls": sum(r["zigzag_calls"] for r in rows), "cache_hits": sum(r["cache_hits"] for r in rows),
        "seconds": round(seconds, 1)}
    payload["spearman_vs_published_eyeriss"] = cycles["spearman"]
    payload["complete"] = done
    result.save()
    s = payload["summary"]
    result.table(["against the published Eyeriss latency", "Spearman", "Kendall", "cells"],
                 [[name, r["spearman"], r["kendall"], r["n"]] for name, r in (
                     ("ZigZag cycles", cycles),
                     ("ZigZag cycles without pools", s["without_pools_vs_published_eyeriss"]),
                     ("ZigZag energy", s["energy_vs_published_eyeriss"]),
                     ("MACs", s["macs_vs_published_eyeriss"]))])


if __name__ == "__main__":
    raise SystemExit(main())
