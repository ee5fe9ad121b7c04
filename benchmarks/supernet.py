"""The weight-sharing gap: inherited vs stand-alone accuracy of the same subnets.

For the largest, the smallest and N random subnets of the default space, the validation accuracy with
weights inherited from the supernet (BN recalibrated) is set beside the accuracy of the same network
trained from scratch for the same number of epochs with the same settings. The rank agreement of the
two (Kendall tau, Spearman) says whether the supernet can stand in for training each candidate.

    python -m benchmarks.supernet            # full size: packaged checkpoint, 20 random subnets
    python -m benchmarks.supernet --quick    # minutes: a tiny supernet on a slice of the data

Rows are written as they finish (JSON, and a markdown table beside it); a rerun with the same settings
resumes where the last one stopped.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, ResultFile, Size, add_sizes, resolve_sizes

SIZES = {"n_random": Size(quick=3, full=20, help="random subnets")}


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sizes(p, SIZES, "tiny supernet trained here for 1 epoch on a slice of the data, 3 random subnets")
    p.add_argument("--checkpoint", default="default", help="supernet checkpoint (full size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subnet sample and of stand-alone training")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "supernet.json", help="result JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return resolve_sizes(p.parse_args(argv), SIZES)


def main(argv=None) -> int:
    import numpy as np
    import torch
    from scipy import stats

    from archspace import ArchSpace
    from archspace.accuracy import evaluate, evaluate_network
    from archspace.data import load_dataset
    from archspace.supernet import Supernet, build_network
    from archspace.training import TrainConfig, load_supernet, train_network, train_supernet

    args = _parse(argv)
    n_random = args.n_random
    space = ArchSpace()
    if args.quick:
        data = load_dataset("mnist5k", seed=0).subset(600, 300)
        cfg = TrainConfig(epochs=1, batch_size=64, n_random=1, seed=args.seed)
        torch.manual_seed(args.seed)
        supernet = Supernet(space, data.in_channels, data.num_classes)
        t0 = time.time()
        train_supernet(supernet, data, cfg, None, progress=not args.quiet)
        train_seconds, provenance = time.time() - t0, "trained here (quick size)"
    else:
        supernet = load_supernet(None if args.checkpoint == "default" else args.checkpoint, space)
        meta = supernet.meta
        cfg = TrainConfig(**json.loads(meta["train_config"]))
        data = load_dataset("mnist5k", seed=cfg.seed)
        train_seconds = sum(h["seconds"] for h in meta.get("history", []))
        provenance = f"checkpoint {args.checkpoint} (made by `nacos train-supernet`, seed {cfg.seed})"
    rng = random.Random(args.seed)
    archs = [("largest", space.largest()), ("smallest", space.smallest())]
    archs += [(f"random{i}", space.sample(rng)) for i in range(n_random)]
    settings = {"quick": args.quick, "n_random": n_random, "seed": args.seed, "train_config": json.loads(cfg.to_json())}
    result = ResultFile("supernet", args.out, settings)
    rows = result.payload.setdefault("rows", [])
    done = {r["id"] for r in rows}
    standalone_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                                 weight_decay=cfg.weight_decay, n_random=0, distill=False, seed=args.seed)
    for role, arch in archs:
        if arch.id in done:
            continue
        inherited = evaluate(supernet, arch, data)
        torch.manual_seed(args.seed)
        net = build_network(arch, space, data.in_channels, data.num_classes)
        t0 = time.time()
        train_network(net, arch, data, standalone_cfg, None, progress=not args.quiet)
        rows.append({"role": role, "id": arch.id, "arch": arch.to_dict(), "inherited_accuracy": inherited,
                     "standalone_accuracy": evaluate_network(net, arch.resolution, data),
                     "standalone_train_seconds": time.time() - t0})
        _write(result, data, train_seconds, provenance, stats, np)
        print(f"{role:9} {arch.id}  inherited {inherited:.4f}  stand-alone {rows[-1]['standalone_accuracy']:.4f}",
              flush=True)
    summary = _write(result, data, train_seconds, provenance, stats, np)
    print(f"kendall tau {summary['kendall_tau']:.3f}, spearman {summary['spearman']:.3f}, largest gap "
          f"{summary['largest_gap_points']:.2f} points -> {args.out}")
    return 0


def _write(result: ResultFile, data, train_seconds, provenance, stats, np) -> dict:
    """The summary over the rows so far into `result`, saved with its markdown table."""
    rows, settings = result.payload["rows"], result.payload["settings"]
    inh = np.array([r["inherited_accuracy"] for r in rows])
    sa = np.array([r["standalone_accuracy"] for r in rows])
    tau = float(stats.kendalltau(inh, sa).statistic) if len(rows) > 2 else None
    rho = float(stats.spearmanr(inh, sa).statistic) if len(rows) > 2 else None
    largest = next((r for r in rows if r["role"] == "largest"), None)
    gap = 100 * (largest["standalone_accuracy"] - largest["inherited_accuracy"]) if largest else None
    result.payload.update({
        "data": data.describe(), "supernet": provenance, "supernet_train_seconds": train_seconds,
        "n_subnets": len(rows), "complete": len(rows) == settings["n_random"] + 2,
        "kendall_tau": tau, "spearman": rho, "largest_gap_points": gap,
        "mean_gap_points": float(100 * np.mean(sa - inh)) if rows else None,
        "aims": {"kendall_tau": ">= 0.6", "largest_gap_points": "<= 2"},
    })
    result.save()
    result.table(["subnet", "id", "inherited", "stand-alone", "gap (points)"],
                 [[r["role"], r["id"], r["inherited_accuracy"], r["standalone_accuracy"],
                   100 * (r["standalone_accuracy"] - r["inherited_accuracy"])] for r in rows], digits=4)
    return result.payload


if __name__ == "__main__":
    raise SystemExit(main())
