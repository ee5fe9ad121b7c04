"""Export one candidate of a run for deployment: model.onnx, the compiled TVM library (model.so,
built as the run's mode measured it: two-stage with the tuning database's best records, baseline with
its default schedule, one-stage with the genome's schedules), the schedules used (schedules.json and,
for a database, tuning-db/) and card.json (architecture, the store row's metrics, target, tool
versions, date, sha256 of every file). The library is loaded back and checked against onnxruntime
before OUT is written (whole or not at all). Exit codes: 0 done, 1 the library failed its check,
2 bad input (nothing written)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory of `nacos search`")
    parser.add_argument("--pick", default="best", metavar="best|ID|under:LATENCY_MS",
                        help="best: highest accuracy among ok candidates; under:X: highest accuracy with "
                             "latency_ms <= X; ID: a candidate id or architecture id")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: RUN_DIR/export/<arch_id>/; an earlier export there is "
                             "replaced)")
    parser.add_argument("--database", default=None,
                        help="tuning database of a two-stage run (default: the run's tuning.database)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the card as JSON (no progress bar)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from nacos.tools.export import ExportCheckFailed, export_candidate
    from nacos.tools.model import dumps

    try:
        card = export_candidate(args.run_dir, args.pick, args.out, database=args.database,
                                progress=not (args.quiet or args.json))
    except ExportCheckFailed as exc:
        print(f"nacos export: the exported library failed its check, nothing written: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(dumps(card))
        return 0
    m = card["metrics"]
    print(f"exported {card['arch_id']} ({card['picked']}) to {card['out']}")
    print(f"  accuracy {m.get('accuracy', float('nan')):.4f}, latency {m.get('latency_ms', float('nan')):.4f} ms "
          f"({m.get('latency_backend', '?')}), schedules: {card['schedules']}")
    for name, f in card["files"].items():
        print(f"  {name:40} {f['bytes']:>10}  sha256 {f['sha256'][:16]}")
    return 0
