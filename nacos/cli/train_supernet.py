"""Train the weight-sharing supernet with the sandwich rule (largest, smallest and random subnets each
step) and in-place distillation, then write the checkpoint and a JSON card beside it (the command,
seed, data, per-epoch loss, and the inherited accuracy of the largest and smallest subnets).

Training resumes from CHECKPOINT_DIR/last.pt when rerun with the same settings."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    from archspace.train_config import TrainConfig

    d = TrainConfig()
    parser.add_argument("--data", default="mnist5k",
                        help="dataset: mnist5k, digits, a .npz of images/labels, an image folder, "
                             "or a folder of CIFAR-10 binary batches")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step")
    parser.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (cosine schedule)")
    parser.add_argument("--n-random", type=int, default=d.n_random, help="random subnets per step")
    parser.add_argument("--no-distill", action="store_true", help="train every subnet on labels only")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of data order, subnets and init")
    parser.add_argument("--limit-train", type=int, default=0, help="use only the first N training images (0: all)")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path(".nacos-cache/supernet-train"),
                        help="where per-epoch checkpoints go (resume point)")
    parser.add_argument("--out", type=Path, default=None,
                        help="final checkpoint (default: runs/supernet-DATA.pt; its JSON card goes beside it). "
                             "Never the package's own checkpoint, and never an existing file, unless --force")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing --out (and allow writing the packaged checkpoint)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def default_out(data: str) -> Path:
    """Where a run's final checkpoint goes when --out is not given: runs/supernet-<data name>.pt."""
    name = Path(str(data).rstrip("/")).stem or "data"
    return Path("runs") / f"supernet-{name}.pt"


def checked_out(out: Path, force: bool) -> Path:
    """`out`, refused (NacosError, exit 2) before any training when it would overwrite another run's
    checkpoint or card, or write into the installed package, without --force."""
    from archspace.training import default_checkpoint_path
    from nacos.errors import NacosError

    out = Path(out)
    if out.suffix != ".pt":
        raise NacosError(f"--out: {out} must be a .pt file (its JSON card goes beside it)")
    if force:
        return out
    package = default_checkpoint_path().parent.resolve()
    if out.resolve().parent == package or package in out.resolve().parents:
        raise NacosError(f"--out: {out} is inside the package ({package}); choose another path, or pass --force "
                         "to replace the packaged checkpoint on purpose")
    for path in (out, out.with_suffix(".json")):
        if path.exists():
            raise NacosError(f"--out: {path} exists (another run's checkpoint or card); choose another --out, "
                             "or pass --force to overwrite it")
    return out


def run(args: argparse.Namespace) -> int:
    out = checked_out(args.out or default_out(args.data), args.force)
    import torch

    from archspace import ArchSpace
    from archspace.accuracy import evaluate
    from archspace.data import load_dataset
    from archspace.supernet import Supernet
    from archspace.training import TrainConfig, finalize_checkpoint, train_supernet
    from nacos.results.machine import machine_info

    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, n_random=args.n_random,
                      distill=not args.no_distill, seed=args.seed)
    data = load_dataset(args.data, seed=args.seed)
    if args.limit_train:
        data = data.subset(args.limit_train)
    torch.manual_seed(args.seed)
    space = ArchSpace()
    net = Supernet(space, data.in_channels, data.num_classes)
    summary = train_supernet(net, data, cfg, args.checkpoint_dir, progress=not args.quiet)
    out.parent.mkdir(parents=True, exist_ok=True)
    out = finalize_checkpoint(args.checkpoint_dir, out)
    card = {
        "command": "nacos " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("nacos")
        else "nacos train-supernet",
        "seed": args.seed, "train_config": json.loads(cfg.to_json()), "dataset": data.describe(),
        "space": space.config.to_dict(), "summary": summary, "machine": machine_info(),
        "accuracy_largest": evaluate(net, space.largest(), data),
        "accuracy_smallest": evaluate(net, space.smallest(), data),
    }
    card_path = out.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {card_path}: largest "
          f"{card['accuracy_largest']:.4f}, smallest {card['accuracy_smallest']:.4f} validation accuracy")
    return 0
