"""Random search: every proposal a fresh uniform sample of the space. The sanity floor of every comparison."""

from __future__ import annotations

import random
from typing import Any

from nacos.strategies.base import G, Strategy

__all__ = ["RandomSearch"]


class RandomSearch(Strategy[G]):
    name = "random"

    def _propose(self, rng: random.Random, attempt: int) -> Any:
        return self.space.sample(rng)
