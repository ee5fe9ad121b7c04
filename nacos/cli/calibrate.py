"""Measure this machine's peak FLOP/s (float32 matrix products) and memory bandwidth (large array
copies), once, and cache the figures per machine for the roofline model. The cache is a JSON file in
--cache-dir, else $NACOS_CACHE_DIR, else $XDG_CACHE_HOME/nacos (~/.cache/nacos); a second call reads
it unless --force. With --freq-ratio, also print the roofline of a slower CPU at that clock ratio.

With --nb201-shots K: a latency table for this machine from K measurements instead. K NAS-Bench-201
cells are built as real networks and timed here (onnxruntime, or TVM with --runtime tvm); a few-shot
model learns this machine from the table's other devices (Spearman 0.96 with 10 shots, leave-one-device-
out: benchmarks/results/device_transfer.json) and predicts every cell. The table with one more column,
lat_ms_DEVICE, is written to --out; any search strategy runs on it in seconds
(archspace.nb201.NB201Table(OUT).objective(device=DEVICE)). Resumable: measured cells are kept."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None, help="where the per-machine calibration JSON lives")
    parser.add_argument("--force", action="store_true", help="measure again even if a cached figure exists")
    parser.add_argument("--matmul-n", type=int, default=1024, help="matrix size of the FLOP/s measurement")
    parser.add_argument("--copy-mib", type=int, default=256, help="array size (MiB) of the bandwidth measurement")
    parser.add_argument("--freq-ratio", type=float, default=None,
                        help="also show the roofline scaled to this clock ratio (e.g. 0.4 for a 1.5 GHz edge CPU)")
    parser.add_argument("--json", action="store_true", help="print the calibration record as JSON")
    few = parser.add_argument_group("a latency table for this machine from a few measurements")
    few.add_argument("--nb201-shots", type=int, default=None, metavar="K",
                     help="measure K NAS-Bench-201 cells here and predict the rest (10 is a good start)")
    few.add_argument("--table", default=None, help="NAS-Bench-201 table with lat_ms_* columns of other devices "
                     "(default: the shared table, $NACOS_NB201_CSV)")
    few.add_argument("--device", default="here", help="name of this machine's column: lat_ms_DEVICE")
    few.add_argument("--out", default=None, help="the calibrated table (default: calibration/nb201_DEVICE.csv); "
                     "a .json beside it says what was measured")
    few.add_argument("--runtime", choices=("onnxruntime", "tvm"), default="onnxruntime",
                     help="what the cells are timed with")
    few.add_argument("--database", default=None, help="--runtime tvm: the tuning database whose best records "
                     "the cells are built with (default: untuned)")
    few.add_argument("--threads", type=int, default=0, help="threads of the runtime (0: every core)")
    few.add_argument("--seed", type=int, default=0, help="which cells are measured")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.nb201_shots is not None:
        return _few_shot(args)
    from costmodels.roofline import load_or_calibrate

    roof, record, cached = load_or_calibrate(cache=args.cache_dir, force=args.force, matmul_n=args.matmul_n,
                                             copy_mib=args.copy_mib)
    scaled = roof.scaled(args.freq_ratio) if args.freq_ratio is not None else None
    if args.json:
        out = dict(record, from_cache=cached)
        if scaled is not None:
            out["scaled"] = scaled.to_dict()
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'cached' if cached else 'measured'}: {record['cpu']} ({record['cores']} cores)")
    print(f"  peak      {roof.peak_gflops:10.1f} GFLOP/s   ({record['method']['matmul']})")
    print(f"  bandwidth {roof.bandwidth_gbs:10.1f} GB/s      ({record['method']['bandwidth']})")
    print(f"  ridge     {roof.ridge_intensity:10.2f} FLOP/byte")
    print(f"  cache     {record['cache_file']}")
    if scaled is not None:
        print(f"  at clock x{args.freq_ratio:g}: peak {scaled.peak_gflops:.1f} GFLOP/s, "
              f"bandwidth {scaled.bandwidth_gbs:.1f} GB/s, ridge {scaled.ridge_intensity:.2f} FLOP/byte")
    return 0


def _few_shot(args: argparse.Namespace) -> int:
    from nacos.errors import NacosError
    from nacos.tools.device_calibration import calibrate_nb201

    if args.threads < 0:
        raise NacosError(f"--threads must be >= 0, got {args.threads}")
    out = args.out or f"calibration/nb201_{args.device}.csv"
    bar = None
    if not args.json:
        from tqdm.auto import tqdm

        bar = tqdm(total=args.nb201_shots, desc="measuring cells", unit="cell", file=sys.stderr)

    def progress(done: int, total: int, line: str) -> None:
        if bar is not None:
            bar.n = done
            bar.set_postfix_str(line[-40:])
            bar.refresh()

    try:
        result = calibrate_nb201(args.nb201_shots, out, table=args.table, device=args.device, runtime=args.runtime,
                                 database=args.database, seed=args.seed, threads=args.threads, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    loo = result["leave_one_out_spearman"]
    print(f"{len(result['shots'])} cells timed with {result['runtime']} on {result['machine']} "
          f"({result['measured_now']} now, the rest from an earlier run)")
    print(f"  model     {result['method']} {json.dumps(result['chosen'])}")
    print(f"  leave-one-shot-out Spearman {'n/a (under 4 shots)' if loo is None else f'{loo:.3f}'}")
    print(f"  table     {result['out']} (column {result['column']}; {Path(result['out']).with_suffix('.json')} "
          f"says how)")
    print(f"  search    {result['use']}")
    return 0
