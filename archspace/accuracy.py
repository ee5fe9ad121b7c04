"""Accuracy of a subnet with inherited weights, after batch-norm recalibration.

Running BN statistics accumulated while training a supernet mix every subnet it sampled, so they fit
none of them. As in Once-for-All, each subnet's statistics are recomputed on a few hundred training
images (a cumulative average, no gradient) before it is scored on the held-out validation split.
"""

from __future__ import annotations

import torch
from torch import nn

from archspace.architecture import Architecture
from archspace.data import ImageDataset
from archspace.supernet import Supernet
from archspace.training import resize_batch

__all__ = ["evaluate", "evaluate_accuracy", "evaluate_network", "recalibrate_bn"]


@torch.no_grad()
def recalibrate_bn(net: nn.Module, images: torch.Tensor, resolution: int, batch_size: int = 250) -> None:
    """Reset every BatchNorm's running statistics and re-estimate them on `images` (B, C, H, W)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: every batch weighs the same
    net.train()
    for i in range(0, len(images), batch_size):
        net(resize_batch(images[i:i + batch_size], resolution))
    net.eval()


@torch.no_grad()
def evaluate_network(net: nn.Module, resolution: int, dataset: ImageDataset, batch_size: int = 500) -> float:
    """Top-1 accuracy (0..1) of `net` on the validation split."""
    net.eval()
    x = torch.from_numpy(dataset.val_x)
    y = torch.from_numpy(dataset.val_y)
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((net(resize_batch(x[i:i + batch_size], resolution)).argmax(1) == y[i:i + batch_size]).sum())
    return correct / len(y)


def evaluate(supernet: Supernet, arch: Architecture, dataset: ImageDataset, calib_images: int = 500,
             batch_size: int = 500) -> float:
    """Validation accuracy (0..1) of `arch` with weights inherited from `supernet`.

    BN statistics are recalibrated on the first `calib_images` training images (the training split
    is shuffled, so they cover every class); the supernet itself is left untouched."""
    subnet = supernet.subnet(arch)
    recalibrate_bn(subnet, torch.from_numpy(dataset.train_x[:calib_images]), arch.resolution)
    return evaluate_network(subnet, arch.resolution, dataset, batch_size)


evaluate_accuracy = evaluate
