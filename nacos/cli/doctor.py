"""Check a run directory: its config, results store (integrity, row checksums, the ONNX artifacts its
rows name), the tuning database it uses, its cost models and checkpoints; one line per file: ok,
damaged (with the file and the line or row), missing, unsafe (a pickle) or repaired. With --repair,
damaged tails are moved aside (``<file>.damaged-<UTC time>``, never deleted) so that the records
before the damage load. Exit 0 when healthy, 1 when damage remains, 2 when RUN_DIR is not a run
directory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="run directory made by `nacos search`")
    parser.add_argument("--repair", action="store_true",
                        help="move damaged parts aside so the records before the damage load")
    parser.add_argument("--database", default=None,
                        help="tuning database directory to check (default: tuning.database of the run's config, "
                             "relative to the current directory, as `nacos search` resolves it)")
    parser.add_argument("--json", action="store_true", help="print the per-file report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nacos.tools.doctor import diagnose, format_report

    report = diagnose(args.run_dir, repair=args.repair, database=args.database)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
    return 0 if report.healthy else 1
