"""`TrainConfig`, kept apart from the training code so that reading its defaults (for `--help`)
does not import torch."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from archspace.errors import CheckpointError

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (the same for the supernet and for stand-alone networks)."""

    epochs: int = 6
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    n_random: int = 2          # random subnets per step besides the largest and the smallest
    distill: bool = True       # in-place distillation from the largest subnet
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.n_random < 0 or not self.lr > 0:
            raise CheckpointError(f"train config: epochs, batch_size >= 1, n_random >= 0, lr > 0; got {self}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)
