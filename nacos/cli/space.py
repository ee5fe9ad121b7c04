"""Sample N architectures of the space, export each to ONNX (checked with onnx.checker and against
onnxruntime), and print a table: id, resolution, width, depths, MACs, parameters, peak activation
memory, onnxruntime latency (median of the runs, batch 1, timed in a process of its own) and, with a
supernet checkpoint, the validation accuracy with inherited weights."""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=5, help="how many architectures to sample")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--batch", type=int, default=1, help="batch size of the exported models")
    parser.add_argument("--checkpoint", default=None,
                        help="supernet checkpoint for accuracy ('default' for the packaged one; "
                             "omitted: no accuracy column)")
    parser.add_argument("--data", default="mnist5k", help="dataset for accuracy (see train-supernet)")
    parser.add_argument("--runs", type=int, default=50, help="timed onnxruntime runs per architecture")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all cores)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="keep the ONNX files here (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.set_defaults(func=run)


def ort_latency_ms(worker, path: Path, runs: int, threads: int, warmup: int = 10) -> float:
    """Median onnxruntime latency of one inference on random input: `schedules.measure`'s one
    onnxruntime timer, in `worker` (a `schedules.isolated.TimingWorker`: a process of its own, away
    from the thread pools this process's torch export and accuracy evaluation start)."""
    from archspace import ArchSpaceError
    from schedules.measure import Protocol
    from schedules.targets import host_threads

    m = worker.onnxruntime(path, Protocol(warmup=warmup, repeats=runs), threads or host_threads())
    if not m.ok:
        raise ArchSpaceError(f"{path.name}: onnxruntime could not time it: {m.error}")
    return m.median_ms


def run(args: argparse.Namespace) -> int:
    from archspace import ArchSpace, ArchSpaceError
    from archspace.stats import arch_summary

    if args.n < 1 or args.batch < 1 or args.runs < 1 or args.threads < 0:
        raise ArchSpaceError("--n, --batch and --runs must be >= 1 and --threads >= 0")
    space = ArchSpace()
    supernet = data = None
    if args.checkpoint:
        from archspace.data import load_dataset
        from archspace.training import load_supernet

        supernet = load_supernet(None if args.checkpoint == "default" else args.checkpoint, space)
        data = load_dataset(args.data)
    from schedules.isolated import TimingWorker

    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="nacos-space-") as tmp, TimingWorker() as worker:
        out_dir = args.out_dir or Path(tmp)
        for _ in range(args.n):
            arch = space.sample(rng)
            path = out_dir / f"{arch.id}.onnx"
            summary = arch_summary(arch, args.batch, onnx_path=path, supernet=supernet)
            row = {"id": arch.id, "arch": arch.to_dict(), "short": arch.short(), "resolution": arch.resolution,
                   "width_mult": arch.width_mult, "depths": list(arch.depths), "macs": summary["macs"],
                   "params": summary["params"], "peak_memory_bytes": summary["peak_memory_bytes"],
                   "ort_latency_ms": ort_latency_ms(worker, path, args.runs, args.threads), "accuracy": None}
            if supernet is not None:
                from archspace.accuracy import evaluate

                row["accuracy"] = evaluate(supernet, arch, data)
            if args.out_dir:
                row["onnx"] = str(path)
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'id':12}  {'res':>3}  {'width':>5}  {'depths':9}  {'MMACs':>7}  {'params':>8}  " \
             f"{'peak KB':>8}  {'ort ms':>7}  {'acc':>6}"
    print(header)
    print("-" * len(header))
    for r in rows:
        acc = f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "-"
        print(f"{r['id']:12}  {r['resolution']:>3}  {r['width_mult']:>5g}  {','.join(map(str, r['depths'])):9}  "
              f"{r['macs'] / 1e6:>7.2f}  {r['params']:>8}  {r['peak_memory_bytes'] / 1024:>8.1f}  "
              f"{r['ort_latency_ms']:>7.3f}  {acc:>6}")
    return 0
