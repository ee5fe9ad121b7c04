"""Score one architecture as the search scores a candidate: validation accuracy with weights inherited
from the supernet (BN recalibrated), MACs, parameters, peak activation memory and latency by the
chosen backend (onnxruntime; TVM with the baseline's one default schedule; or TVM tuned: the unseen
workloads tuned into the shared database first). ARCH.json must lie in the checkpoint's space.
Exit codes: 0 done, 1 the latency could not be measured, 2 bad input."""

from __future__ import annotations

import argparse
from pathlib import Path

from nacos.config import SEARCHERS, TuningConfig
from nacos.tools.model import LATENCY_BACKENDS
from nacos_base.records import Status


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", type=Path, metavar="ARCH.json", help="the architecture's JSON")
    parser.add_argument("--checkpoint", default="default",
                        help="supernet checkpoint ('default': the packaged mnist5k supernet)")
    parser.add_argument("--data", default="mnist5k", help="dataset for accuracy (see train-supernet)")
    parser.add_argument("--latency", choices=tuple(LATENCY_BACKENDS), default="onnxruntime",
                        help="latency backend: " + ", ".join(f"{k} ({v})" for k, v in LATENCY_BACKENDS.items()))
    parser.add_argument("--database", default=TuningConfig.database, help="tuning database (tvm-tuned)")
    parser.add_argument("--searcher", choices=SEARCHERS, default=TuningConfig.searcher,
                        help="schedule search for unseen workloads (tvm-tuned)")
    parser.add_argument("--trials-per-workload", type=int, default=TuningConfig.trials_per_workload,
                        help="schedule-search trials for each unseen workload (tvm-tuned)")
    parser.add_argument("--target", default="llvm",
                        help="TVM target: llvm (this CPU) or rpc://HOST:PORT/KEY[?mtriple=...&mcpu=...] (a device; "
                        "of another instruction set with its triple: docs/scale-out.md)")
    parser.add_argument("--threads", type=int, default=0, help="runtime threads (0: every core)")
    parser.add_argument("--repeats", type=int, default=TuningConfig.repeats, help="timed runs")
    parser.add_argument("--warmup", type=int, default=TuningConfig.warmup, help="untimed runs before timing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (no progress bar)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from nacos.errors import NacosError
    from nacos.tools.model import dumps, evaluate_architecture

    if args.trials_per_workload < 1 or args.threads < 0 or args.repeats < 1 or args.warmup < 0:
        raise NacosError("--trials-per-workload and --repeats must be >= 1, --threads and --warmup >= 0")
    r = evaluate_architecture(args.arch, checkpoint=args.checkpoint, data=args.data, latency=args.latency,
                              database=args.database, target=args.target, trials_per_workload=args.trials_per_workload,
                              searcher=args.searcher, threads=args.threads, warmup=args.warmup, repeats=args.repeats,
                              progress=not (args.quiet or args.json))
    if args.json:
        print(dumps(r))
    else:
        acc = f"{r['accuracy']:.4f}" if r.get("accuracy") is not None else "-"
        lat = f"{r['latency_ms']:.4f} ms" if r.get("latency_ms") is not None else "-"
        print(f"{r['arch_id']}  {r['short']}")
        print(f"  accuracy     {acc}  ({args.data}, validation split, inherited weights)")
        print(f"  MACs         {r.get('macs', 0) / 1e6:.2f} M")
        print(f"  params       {r.get('params', 0)}  ({r.get('param_mb', 0):.3f} MB fp32)")
        print(f"  peak memory  {r.get('peak_memory_mb', 0) * 1024:.1f} KB (activations, fp32)")
        print(f"  latency      {lat}  ({r.get('latency_backend', args.latency)})")
    if r["status"] != Status.OK:
        print(f"nacos eval: {r['status']}: {r['reason']}", file=sys.stderr)
        return 1
    return 0
