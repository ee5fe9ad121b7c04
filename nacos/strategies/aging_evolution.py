"""Regularized (aging) evolution, Real et al., AAAI 2019: one objective under hard constraints.

The population is the `population` most recently told candidates (the oldest dies, whatever its
score: that is the regularisation). Until the population is full, proposals are random samples; then
each proposal mutates the best of `sample_size` members drawn at random (a tournament). Constraints
enter through feasibility: a feasible member beats an infeasible one, which beats a failed one, and
only then does the first objective decide. With several objectives the first one is optimised and the
others are only reported (use NSGA-II to trade them off).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from nacos.strategies.base import (
    G,
    Strategy,
    StrategySettings,
    check_fraction,
    check_int,
)

__all__ = ["AgingEvolution", "AgingSettings"]


@dataclass(frozen=True)
class AgingSettings(StrategySettings):
    population: int = 20
    sample_size: int = 5
    mutation_prob: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("population", self.population, 2)
        check_int("sample_size", self.sample_size, 1)
        if self.sample_size > self.population:
            from nacos.errors import ConfigError

            raise ConfigError(f"strategy.sample_size: must be <= population ({self.population}), "
                              f"got {self.sample_size}")
        check_fraction("mutation_prob", self.mutation_prob, low_open=True)


class AgingEvolution(Strategy[G]):
    name = "aging"
    Settings = AgingSettings

    settings: AgingSettings

    def _propose(self, rng: random.Random, attempt: int) -> Any:
        s = self.settings
        population = self._history[-s.population:]
        if self.n_asked < s.population or len(population) < s.population:
            return self.space.sample(rng)
        # Step 1. Tournament: the best of `sample_size` members drawn without replacement.
        contenders = rng.sample(population, s.sample_size)
        parent = max(contenders, key=self.fitness_key)
        # Step 2. The child is a mutation of the winner.
        return self.space.mutate(parent.genome, rng, s.mutation_prob)
