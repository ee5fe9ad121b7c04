"""Reference networks built from their published definitions (random weights: latency needs none).

`SmallCNN` is the edge-optimization seed's network whose layer figures are known by hand, used to
check the statistics and memory models.
"""

from __future__ import annotations

from torch import nn

__all__ = ["SmallCNN"]


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
