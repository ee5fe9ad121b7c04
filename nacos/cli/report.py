"""Make the report of a run directory from its results store: CSV and JSON tables (all candidates,
the Pareto front, per-precision trade-offs, the layer-wise breakdown of the chosen candidates) and PNG
plots (accuracy vs latency with a baseline's front beside it, layer-wise MACs and activation memory,
search progress). Safe to run while the search is still going (the store is opened read-only)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="run directory made by `nacos search`")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a baseline run directory whose front is drawn beside this run's")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nacos.search.run import report_run

    summary = report_run(args.run_dir, args.baseline)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(f"{summary['evaluated']} candidates: {summary['ok']} ok, {summary['rejected']} rejected, "
          f"{summary['failed']} failed; hypervolume {summary['hypervolume']:.4g} (reference "
          f"{summary['reference_point']})")
    names = [o["name"] for o in summary["objectives"]]
    print("front: " + ("none yet" if not summary["front"] else ""))
    for row in summary["front"]:
        print("  " + row["id"] + "  " + "  ".join(f"{n}={row.get(n):.4g}" for n in names))
    print(f"tables and plots in {summary['report_dir']}")
    return 0
