"""Measure this machine's peak FLOP/s (float32 matrix products) and memory bandwidth (large array
copies), once, and cache the figures per machine for the roofline model. The cache is a JSON file in
--cache-dir, else $NACOS_CACHE_DIR, else $XDG_CACHE_HOME/nacos (~/.cache/nacos); a second call reads
it unless --force. With --freq-ratio, also print the roofline of a slower CPU at that clock ratio."""

from __future__ import annotations

import argparse
import json


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None, help="where the per-machine calibration JSON lives")
    parser.add_argument("--force", action="store_true", help="measure again even if a cached figure exists")
    parser.add_argument("--matmul-n", type=int, default=1024, help="matrix size of the FLOP/s measurement")
    parser.add_argument("--copy-mib", type=int, default=256, help="array size (MiB) of the bandwidth measurement")
    parser.add_argument("--freq-ratio", type=float, default=None,
                        help="also show the roofline scaled to this clock ratio (e.g. 0.4 for a 1.5 GHz edge CPU)")
    parser.add_argument("--json", action="store_true", help="print the calibration record as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
