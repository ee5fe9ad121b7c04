"""Search strategies behind one ask / tell interface (see `base.py` for the contract).

`make_strategy("aging" | "nsga2" | "random", space, seed, **settings)` builds one by name; a strategy
instance passes through unchanged. A new strategy is one sibling module and one line in `STRATEGIES`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nacos.errors import ConfigError
from nacos.results.pareto import Objective
from nacos.strategies.aging_evolution import AgingEvolution, AgingSettings
from nacos.strategies.base import (
    Genome,
    SearchExhausted,
    SearchSpace,
    Strategy,
    StrategySettings,
    Told,
)
from nacos.strategies.nsga2 import NSGA2, NSGA2Settings
from nacos.strategies.random_search import RandomSearch

__all__ = [
    "NSGA2",
    "STRATEGIES",
    "AgingEvolution",
    "AgingSettings",
    "Genome",
    "NSGA2Settings",
    "Objective",
    "RandomSearch",
    "SearchExhausted",
    "SearchSpace",
    "Strategy",
    "StrategySettings",
    "Told",
    "make_strategy",
]

#: name -> class; one line per strategy
STRATEGIES: dict[str, type[Strategy]] = {
    AgingEvolution.name: AgingEvolution,
    NSGA2.name: NSGA2,
    RandomSearch.name: RandomSearch,
}


def make_strategy(name: str | Strategy, space: Any = None, seed: int = 0, **settings: Any) -> Strategy:
    """The strategy `name` over `space`. `objectives=` (pairs, `Objective`s or ``"name:sense"``) sets what
    it optimises (default: accuracy, max); every other keyword is a field of the strategy's settings."""
    if isinstance(name, Strategy):
        if settings:
            raise ConfigError(f"make_strategy: settings {sorted(settings)} given with a strategy instance")
        return name
    if name not in STRATEGIES:
        raise ConfigError(f"Unknown strategy: {name!r}; known strategies are {sorted(STRATEGIES)}")
    cls = STRATEGIES[name]
    objectives = settings.pop("objectives", (Objective("accuracy", "max"),))
    known = [f.name for f in dataclasses.fields(cls.Settings)]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ConfigError(f"strategy.{unknown[0]}: unknown setting of strategy {name!r}; known settings are {known}")
    return cls(space, seed=seed, objectives=objectives, settings=cls.Settings(**settings))
