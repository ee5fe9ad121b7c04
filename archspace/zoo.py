"""Reference networks built from their published definitions (random weights: latency needs none).

- VGG-16: Simonyan & Zisserman 2015, configuration D (13 convs, 3 FC layers, 7x7 adaptive pooling).
- ResNet-18 / ResNet-34: He et al. 2016, basic blocks [2, 2, 2, 2] / [3, 4, 6, 3].
- MobileNet-V2: Sandler et al. 2018, table 2 (t, c, n, s), width 1.0.
- MNASNet (1.0): Tan et al. 2019, the searched model as released in torchvision (`mnasnet1_0`).
- `SmallCNN`: the edge-optimization seed's network, whose layer figures are known by hand.

The parameter counts at 1000 classes equal the published ones (checked in the tests), which is the
evidence that the definitions are the published ones. No torchvision: its PyPI wheel does not
import beside the pinned CPU torch.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["SmallCNN", "ZOO", "build_zoo_model", "PUBLISHED_PARAMS"]


class SmallCNN(nn.Module):
    """The edge-optimization seed's SmallCNN: conv 1->16 3x3 and conv 16->32 3x3 (pad 1, ReLU) at
    28x28, then 2x2 max-pooling down to 7x7 and a 1568->10 classifier.

    At batch 64 that is 7,225,344 / 231,211,008 / 1,003,520 MACs and 640 / 18,560 / 62,760 fp32
    parameter bytes, the seed's hand-computed figures (conv2 runs at full resolution)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(32 * 7 * 7, num_classes)

    def forward(self, x):  # (B, 1, 28, 28) -> (B, classes)
        return self.classifier(self.features(x).flatten(1))


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: type = nn.ReLU) -> list:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), act(inplace=True)]


# -- VGG-16 -------------------------------------------------------------------------------------
class VGG16(nn.Module):
    CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in self.CFG_D:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(inplace=True), nn.Dropout(),
                                        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(),
                                        nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


# -- ResNet -------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn_relu(cin, cout, 3, stride),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.down(x))


class ResNet(nn.Module):
    def __init__(self, blocks: tuple[int, int, int, int], num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [*_conv_bn_relu(in_channels, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
        c = 64
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
            for b in range(n):
                layers.append(BasicBlock(c, width, 2 if b == 0 and i > 0 else 1))
                c = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.fc(nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


# -- MobileNet-V2 and MNASNet -------------------------------------------------------------------
class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int, kernel: int = 3, act: type = nn.ReLU6) -> None:
        super().__init__()
        mid = cin * expand
        layers = [] if expand == 1 else _conv_bn_relu(cin, mid, 1, act=act)
        layers += _conv_bn_relu(mid, mid, kernel, stride, groups=mid, act=act)
        layers += [nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return self.body(x) + x if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))  # (t, c, n, s)

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = _conv_bn_relu(in_channels, 32, 3, 2, act=nn.ReLU6)
        c = 32
        for t, cout, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c, cout, s if i == 0 else 1, t))
                c = cout
        layers += _conv_bn_relu(c, 1280, 1, act=nn.ReLU6)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class MNASNet(nn.Module):
    #: (in, out, kernel, stride, expand, repeats) of torchvision's mnasnet1_0
    STACKS = ((16, 24, 3, 2, 3, 3), (24, 40, 5, 2, 3, 3), (40, 80, 5, 2, 6, 3), (80, 96, 3, 1, 6, 2),
              (96, 192, 5, 2, 6, 4), (192, 320, 3, 1, 6, 1))

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [*_conv_bn_relu(in_channels, 32, 3, 2), *_conv_bn_relu(32, 32, 3, 1, groups=32),
                                   nn.Conv2d(32, 16, 1, bias=False), nn.BatchNorm2d(16)]
        for cin, cout, k, s, e, n in self.STACKS:
            for i in range(n):
                layers.append(InvertedResidual(cin if i == 0 else cout, cout, s if i == 0 else 1, e, k, nn.ReLU))
        layers += _conv_bn_relu(320, 1280, 1)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean([2, 3]))


ZOO: dict[str, Callable[..., nn.Module]] = {
    "vgg16": VGG16,
    "resnet18": lambda num_classes=1000, in_channels=3: ResNet((2, 2, 2, 2), num_classes, in_channels),
    "resnet34": lambda num_classes=1000, in_channels=3: ResNet((3, 4, 6, 3), num_classes, in_channels),
    "mobilenet_v2": MobileNetV2,
    "mnasnet": MNASNet,
}

#: Parameter counts at 1000 classes and 3 input channels, as published (torchvision's model cards).
PUBLISHED_PARAMS = {"vgg16": 138_357_544, "resnet18": 11_689_512, "resnet34": 21_797_672,
                    "mobilenet_v2": 3_504_872, "mnasnet": 4_383_312}


def build_zoo_model(name: str, num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    """A published network by name (``vgg16``, ``resnet18``, ``resnet34``, ``mobilenet_v2``, ``mnasnet``)."""
    from archspace.errors import ArchSpaceError

    if name not in ZOO:
        raise ArchSpaceError(f"model: unknown network {name!r}; choose one of {sorted(ZOO)}")
    model = ZOO[name](num_classes=num_classes, in_channels=in_channels)
    return model.eval()
