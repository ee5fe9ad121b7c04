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
                        help="final checkpoint (default: the package's default checkpoint)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from archspace import ArchSpace
    from archspace.accuracy import evaluate
    from archspace.data import load_dataset
    from archspace.supernet import Supernet
    from archspace.training import TrainConfig, default_checkpoint_path, finalize_checkpoint, train_supernet
    from nacos.machine import machine_info

    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, n_random=args.n_random,
                      distill=not args.no_distill, seed=args.seed)
    data = load_dataset(args.data, seed=args.seed)
    if args.limit_train:
        data = data.subset(args.limit_train)
    torch.manual_seed(args.seed)
    space = ArchSpace()
    net = Supernet(space, data.in_channels, data.num_classes)
    summary = train_supernet(net, data, cfg, args.checkpoint_dir, progress=not args.quiet)
    out = finalize_checkpoint(args.checkpoint_dir, args.out or default_checkpoint_path())
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
