"""NAS-Bench-201 networks as real PyTorch modules (Dong & Yang, ICLR 2020), for export and compilation.

The macro skeleton of the benchmark: a 3x3 stem conv (16 channels), three stages of N=5 cells at
16 / 32 / 64 channels separated by residual reduction blocks, BN + ReLU, global pooling, a classifier.
A cell is a 4-node DAG; the edge i->j carries one of five operations, given in the order of the
benchmark's string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["NB201_OPS", "NB201Network", "build_nb201_network", "EDGES"]

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (from node, to node) of each of the 6 edges, in the string's order.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(cout))


def _edge_op(name: str, channels: int) -> nn.Module | None:
    if name == "none":
        return None  # contributes zeros: the edge is left out of the sum
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 operation {name!r}; expected one of {NB201_OPS}")


class Cell(nn.Module):
    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict()
        for (i, j), name in zip(EDGES, ops):
            op = _edge_op(name, channels)
            if op is not None:
                self.edges[f"{i}to{j}"] = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            terms = [self.edges[f"{i}to{j}"](nodes[i]) for i in range(j) if f"{i}to{j}" in self.edges]
            nodes.append(sum(terms[1:], terms[0]) if terms else torch.zeros_like(x))
        return nodes[3]


class ResidualReduction(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, 2)
        self.conv_b = ReLUConvBN(cout, cout, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    def __init__(self, ops: Sequence[str], channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10,
                 in_channels: int = 3) -> None:
        super().__init__()
        if len(ops) != 6:
            raise ValueError(f"a NAS-Bench-201 cell has 6 edges, got {len(ops)} operations")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels)]
        c = channels
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(c, c * 2))
                c *= 2
            layers += [Cell(ops, c) for _ in range(cells_per_stage)]
        layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=False)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 32, 32) -> (B, classes)
        return self.classifier(self.features(x).mean([2, 3]))


def build_nb201_network(ops: Sequence[str] | str, num_classes: int = 10) -> NB201Network:
    """The network of one NAS-Bench-201 cell, given as its 6 operations or its benchmark string."""
    if isinstance(ops, str):
        ops = [tok.split("~")[0] for part in ops.strip("|").split("|+|") for tok in part.split("|") if tok]
    return NB201Network(list(ops), num_classes=num_classes).eval()
