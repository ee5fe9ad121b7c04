"""Supernet training (sandwich rule, in-place distillation), stand-alone training, and checkpoints.

Checkpoints are plain state dicts plus JSON strings, written atomically (temporary file, fsync,
rename) and read with ``torch.load(..., weights_only=True)``: a checkpoint is never unpickled.
Training resumes from the last completed epoch of its checkpoint directory; the data order and the
sampled subnets of an epoch depend only on (seed, epoch), so a resumed run trains what an
uninterrupted one trains.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from archspace.architecture import Architecture
from archspace.data import ImageDataset
from archspace.errors import CheckpointError
from archspace.space import ArchSpace, SpaceConfig
from archspace.supernet import Supernet
from archspace.train_config import TrainConfig

__all__ = ["TrainConfig", "train_supernet", "train_network", "load_supernet", "save_checkpoint",
           "resize_batch", "default_checkpoint_path", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "nacos-supernet"
CHECKPOINT_VERSION = 1
LAST = "last.pt"


def default_checkpoint_path() -> Path:
    """The supernet checkpoint shipped with the package (trained by `nacos train-supernet`)."""
    return Path(__file__).resolve().parent / "checkpoints" / "mnist5k_supernet.pt"


def resize_batch(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, R, R), bilinear; a no-op at the native size."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: nn.Module, meta: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None) -> None:
    """Write {model, optimizer, meta as JSON} atomically: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                               "meta": json.dumps(meta, sort_keys=True), "model": model.state_dict()}
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged / pickled files
        raise CheckpointError(f"{path}: not a readable nacos checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a nacos supernet checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')}, "
                              f"this nacos reads version {CHECKPOINT_VERSION}")
    return payload, json.loads(payload["meta"])


def load_supernet(path: Path | str | None = None, space: ArchSpace | None = None) -> Supernet:
    """Load a supernet checkpoint; with `space`, refuse one trained for a different space."""
    path = Path(path) if path is not None else default_checkpoint_path()
    payload, meta = _read_checkpoint(path)
    saved = SpaceConfig.from_json(meta["space"])
    if space is not None and space.config != saved:
        raise CheckpointError(f"{path}: trained for a different space ({saved}) than the one asked for "
                              f"({space.config})")
    net = Supernet(ArchSpace(saved), meta["in_channels"], meta["num_classes"])
    try:
        net.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the space it names ({str(exc)[:200]})") from exc
    net.meta = meta  # type: ignore[attr-defined]
    net.eval()
    return net


# ---------------------------------------------------------------------------------------------
# The training loop shared by the supernet and stand-alone networks
# ---------------------------------------------------------------------------------------------
StepFn = Callable[[torch.Tensor, torch.Tensor, random.Random], float]


def _train(model: nn.Module, step: StepFn, dataset: ImageDataset, cfg: TrainConfig, meta: dict[str, Any],
           checkpoint_dir: Path | None, progress: bool, desc: str) -> dict[str, Any]:
    """Epochs of SGD (Nesterov, cosine schedule) over `dataset`; `step` does forward and backward.

    Resumes from `checkpoint_dir/last.pt` when present (its meta must equal `meta`)."""
    from tqdm.auto import tqdm

    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, nesterov=True)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    last = Path(checkpoint_dir) / LAST if checkpoint_dir else None
    if last is not None and last.exists():
        payload, saved = _read_checkpoint(last)
        mismatch = {k for k in meta if saved.get(k) != meta[k]}
        if mismatch:
            raise CheckpointError(f"{last}: made by a different run (differs in {sorted(mismatch)}); "
                                  "use another checkpoint directory or remove it")
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        start_epoch = saved["epoch"]
        history = saved["history"]
    x_all = torch.from_numpy(dataset.train_x)
    y_all = torch.from_numpy(dataset.train_y)
    steps_per_epoch = math.ceil(len(y_all) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    bar = tqdm(total=total, initial=start_epoch * steps_per_epoch, desc=desc, disable=not progress,
               unit="step", dynamic_ncols=True)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        rng = random.Random(f"{cfg.seed}:{epoch}")
        order = torch.from_numpy(np.random.default_rng([cfg.seed, epoch]).permutation(len(y_all)))
        model.train()
        losses = []
        for i in range(steps_per_epoch):
            lr = 0.5 * cfg.lr * (1 + math.cos(math.pi * (epoch * steps_per_epoch + i) / total))
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            optimizer.zero_grad(set_to_none=True)
            losses.append(step(x_all[idx], y_all[idx], rng))
            optimizer.step()
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.3f}")
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": time.time() - t0})
        if last is not None:
            save_checkpoint(last, model, {**meta, "epoch": epoch + 1, "history": history}, optimizer)
    bar.close()
    return {"epochs": cfg.epochs, "history": history,
            "train_seconds": float(sum(h["seconds"] for h in history))}


def train_supernet(supernet: Supernet, dataset: ImageDataset, cfg: TrainConfig = TrainConfig(),
                   checkpoint_dir: Path | str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train with the sandwich rule: each step the largest, the smallest and `cfg.n_random` random
    subnets (each at its own resolution) add their gradients; with `cfg.distill`, every subnet but
    the largest learns the largest's soft predictions (in-place distillation, as in BigNAS / OFA).

    Returns a summary (epochs, per-epoch loss and seconds). With `checkpoint_dir`, writes
    `last.pt` after every epoch and resumes from it."""
    if dataset.in_channels != supernet.in_channels or dataset.num_classes != supernet.num_classes:
        raise CheckpointError(f"dataset {dataset.name} has {dataset.in_channels} channels / "
                              f"{dataset.num_classes} classes, the supernet {supernet.in_channels} / "
                              f"{supernet.num_classes}")
    space = supernet.space

    def step(x: torch.Tensor, y: torch.Tensor, rng: random.Random) -> float:
        archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(cfg.n_random)]
        teacher = None
        total = 0.0
        for i, arch in enumerate(archs):
            logits = supernet(resize_batch(x, arch.resolution), arch)
            if i == 0 or not cfg.distill:
                loss = F.cross_entropy(logits, y)
                if i == 0:
                    teacher = F.softmax(logits.detach(), dim=1)
            else:
                loss = F.kl_div(F.log_softmax(logits, dim=1), teacher, reduction="batchmean")
            loss.backward()
            total += loss.item()
        return total / len(archs)

    meta = {"kind": "supernet", "space": space.config.to_json(), "in_channels": supernet.in_channels,
            "num_classes": supernet.num_classes, "dataset": json.dumps(dataset.describe(), sort_keys=True),
            "train_config": cfg.to_json()}
    summary = _train(supernet, step, dataset, cfg, meta, Path(checkpoint_dir) if checkpoint_dir else None,
                     progress, "supernet")
    supernet.eval()
    return summary


def train_network(net: nn.Module, arch: Architecture, dataset: ImageDataset, cfg: TrainConfig = TrainConfig(),
                  checkpoint_dir: Path | str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train one stand-alone network from its own initialisation (the weight-sharing baseline)."""

    def step(x: torch.Tensor, y: torch.Tensor, rng: random.Random) -> float:
        loss = F.cross_entropy(net(resize_batch(x, arch.resolution)), y)
        loss.backward()
        return loss.item()

    meta = {"kind": "standalone", "arch": arch.to_json(), "train_config": cfg.to_json(),
            "dataset": json.dumps(dataset.describe(), sort_keys=True)}
    summary = _train(net, step, dataset, cfg, meta, Path(checkpoint_dir) if checkpoint_dir else None,
                     progress, arch.id)
    net.eval()
    return summary


def finalize_checkpoint(checkpoint_dir: Path | str, out: Path | str) -> Path:
    """Copy the model and meta of `checkpoint_dir/last.pt` (no optimizer state) to `out`."""
    payload, meta = _read_checkpoint(Path(checkpoint_dir) / LAST)
    net = Supernet(ArchSpace(SpaceConfig.from_json(meta["space"])), meta["in_channels"], meta["num_classes"])
    net.load_state_dict(payload["model"])
    save_checkpoint(Path(out), net, meta)
    return Path(out)
