"""Tiny torch nets exported to ONNX for the inner-loop tests (legacy exporter, opset 17, input "input").

- `ConvBnNet`: conv 3x3 3->8 + BN + ReLU, depthwise 3x3, pointwise 1x1 8->16 + ReLU, mean, dense 16->10.
  Hand figures at 16x16: conv 8*16*16*27 = 55296 MACs, depthwise 8*16*16*9 = 18432, pointwise
  16*16*16*8 = 32768, dense 16*10 = 160.
- `NetA`: conv 3->8 + ReLU, mean. `NetB`: the same first conv, then conv 8->16 + ReLU, mean; tuning B
  after A must tune only B's second conv.
- `Twice`: one conv block applied twice (a workload the module calls twice).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class ConvBnNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):  # (1, 3, 16, 16)
        x = torch.relu(self.bn(self.c1(x)))
        x = torch.relu(self.pw(self.dw(x)))
        return self.fc(x.mean((2, 3)))


class NetA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.c1(x)).mean((2, 3))


class NetB(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.c2(torch.relu(self.c1(x)))).mean((2, 3))


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):  # (1, 8, 8, 8)
        return self.b(torch.relu(self.a(x)))


def export(module: nn.Module, path: Path, shape: tuple[int, ...], seed: int = 0) -> Path:
    torch.manual_seed(seed)
    for p in module.parameters():  # seeded weights, so two exports of one class can differ on purpose
        with torch.no_grad():
            p.copy_(torch.randn_like(p) * 0.3)
    module.eval()
    torch.onnx.export(module, torch.randn(*shape), str(path), input_names=["input"], output_names=["output"],
                      dynamo=False, opset_version=17)
    return path
