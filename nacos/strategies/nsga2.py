"""NSGA-II (Deb et al., 2002) for several objectives, driven one ask at a time.

Generations are counted in asks: proposals 0..N-1 are random samples (the first population); proposals
of generation g >= 1 are children of the parent population P(g-1), chosen by binary tournament on
(rank, crowding distance), crossed over with probability `crossover_prob` and mutated. When the last
child of a generation is told, P(g) is selected from P(g-1) and those N children by non-dominated
sorting with crowding (elitism). Feasibility comes first (Deb's constrained domination, with the
violation amount unknown here): every feasible candidate ranks above every infeasible one, and failed
candidates, which have no values, rank last.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nacos.results.pareto import crowding_distance, non_dominated_sort
from nacos.strategies.base import (
    G,
    Strategy,
    StrategySettings,
    Told,
    check_fraction,
    check_int,
)

__all__ = ["NSGA2", "NSGA2Settings"]


@dataclass(frozen=True)
class NSGA2Settings(StrategySettings):
    population: int = 20
    crossover_prob: float = 0.9
    mutation_prob: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("population", self.population, 2)
        check_fraction("crossover_prob", self.crossover_prob)
        check_fraction("mutation_prob", self.mutation_prob, low_open=True)


class NSGA2(Strategy[G]):
    name = "nsga2"
    Settings = NSGA2Settings

    settings: NSGA2Settings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parents: list[Told] = []
        #: (rank, crowding) of each parent, by history index: the tournament's key
        self._rank: dict[int, tuple[int, float]] = {}

    @property
    def parents(self) -> tuple[Told, ...]:
        return tuple(self._parents)

    # -- selection ------------------------------------------------------------------------------------
    def _rank_members(self, members: Sequence[Told]) -> list[tuple[Told, int, float]]:
        """(member, rank, crowding) sorted best first: feasible fronts, infeasible fronts, failed."""
        senses = [o.sense for o in self.objectives]
        out: list[tuple[Told, int, float]] = []
        rank_base = 0
        for group in ([t for t in members if t.feasible],
                      [t for t in members if not t.feasible and t.objectives is not None]):
            if not group:
                continue
            values = np.array([t.objectives for t in group], dtype=float)
            for front in non_dominated_sort(values, senses):
                crowd = crowding_distance(values[front], senses)
                ranked = sorted(zip(front, crowd), key=lambda fc: (-fc[1], group[fc[0]].index))
                out.extend((group[i], rank_base, float(c)) for i, c in ranked)
                rank_base += 1
        out.extend((t, rank_base, 0.0) for t in members if t.objectives is None)
        return out

    def _on_tell(self, record: Told) -> None:
        n = self.settings.population
        told = len(self._history)
        if told < n or told % n:
            return
        # Step 1. A generation is complete: candidates = previous parents + this generation's children.
        pool = self._parents + self._history[told - n:told] if self._parents else self._history[:n]
        # Step 2. Elitist selection of the next parents: by front, then by crowding within the last front.
        ranked = self._rank_members(pool)[:n]
        self._parents = [t for t, _, _ in ranked]
        # Step 3. Crowding is recomputed on the survivors only, for the tournament.
        self._rank = {t.index: (r, c) for t, r, c in self._rank_members(self._parents)}

    def _tournament(self, rng: random.Random) -> Told:
        a, b = rng.sample(self._parents, 2)
        ra, ca = self._rank[a.index]
        rb, cb = self._rank[b.index]
        if ra != rb:
            return a if ra < rb else b
        if ca != cb:
            return a if ca > cb else b
        return a if rng.random() < 0.5 else b

    def _propose(self, rng: random.Random, attempt: int) -> Any:
        s = self.settings
        if self.n_asked < s.population or not self._parents:
            return self.space.sample(rng)
        p1 = self._tournament(rng)
        p2 = self._tournament(rng)
        child = p1.genome
        if rng.random() < s.crossover_prob and p1.index != p2.index:
            child = self.space.crossover(p1.genome, p2.genome, rng)
        return self.space.mutate(child, rng, s.mutation_prob)
