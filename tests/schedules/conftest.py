"""Tiny ONNX models for the schedules tests (exported here with torch, legacy exporter, opset 17).

- `net_a`: conv 3x3 (3->8) + BN + ReLU, depthwise 3x3 (8), pointwise 1x1 (8->16) + ReLU, global mean,
  dense 16->10. Input (N, 3, 16, 16), dynamic batch.
- `net_b`: shares net_a's first conv and its head shapes, but a regular 3x3 conv 8->16 in the middle:
  the database reuse test tunes it after net_a and must tune only that conv.
- `net_twice`: the same conv block twice (a workload the module calls twice).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn


class NetA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):  # (N, 3, 16, 16)
        x = torch.relu(self.bn(self.c1(x)))
        x = torch.relu(self.pw(self.dw(x)))
        return self.fc(x.mean((2, 3)))


class NetB(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)

    def forward(self, x):  # (N, 3, 16, 16)
        x = torch.relu(self.c1(x))
        return torch.relu(self.c2(x)).mean((2, 3))


class NetSmall(nn.Module):
    """conv + relu, then mean: two tasks (the MetaSchedule tests' budget model)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.c1(x)).mean((2, 3))


class NetTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):  # (N, 8, 8, 8)
        return torch.relu(self.b(torch.relu(self.a(x))))


def export(module: nn.Module, shape: tuple[int, ...], path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    for p in module.parameters():
        nn.init.normal_(p, 0.0, 0.3)
    module.eval()
    if isinstance(getattr(module, "bn", None), nn.BatchNorm2d):
        module.bn.running_mean.uniform_(-0.5, 0.5)
        module.bn.running_var.uniform_(0.5, 1.5)
    torch.onnx.export(module, torch.randn(*shape), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    out = {
        "a": export(NetA(), (1, 3, 16, 16), d / "a.onnx"),
        "a_other_weights": export(NetA(), (1, 3, 16, 16), d / "a2.onnx", seed=1),
        "b": export(NetB(), (1, 3, 16, 16), d / "b.onnx"),
        "small": export(NetSmall(), (1, 3, 16, 16), d / "small.onnx"),
        "twice": export(NetTwice(), (1, 8, 8, 8), d / "twice.onnx"),
    }
    return out


@pytest.fixture(scope="session")
def torch_models() -> dict[str, type]:
    return {"a": NetA, "b": NetB, "small": NetSmall, "twice": NetTwice}


@pytest.fixture(scope="session")
def target():
    from schedules.targets import host_target

    return host_target()
