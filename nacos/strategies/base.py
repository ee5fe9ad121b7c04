"""The contract every search strategy keeps, and the space it searches.

A strategy speaks ask / tell (as Optuna's study and NNI's strategies do)::

    genome = strategy.ask()                              # propose one candidate
    strategy.tell(genome, objectives, feasible)          # report what it scored

Contract of `Strategy`:

- **Objectives.** A strategy is built with its objectives (`nacos.results.pareto.Objective`: a metric name and
  a sense, ``max`` or ``min``). `tell` takes the values in that order, or ``None`` for a candidate that
  failed (it scored nothing). `feasible=False` marks a candidate that a hard budget rejected (it may still
  carry values); every strategy ranks feasible candidates above infeasible ones, and failed ones last.
- **Determinism.** For a given seed, the genome proposed by the n-th `ask` is a pure function of the seed,
  n, and the (genome, objectives, feasible) records told so far. The random stream of each proposal is
  derived from ``(seed, n)`` alone, never from a generator carried across calls.
- **Resume.** Hence a strategy's whole state is rebuilt by replaying the told history (`replay`) into a
  fresh instance: a resumed run proposes exactly the candidates an uninterrupted run proposes. A strategy
  keeps no state that the history does not determine, and needs no checkpoint file.
- **No repeats.** `ask` never proposes a genome already told or outstanding (asked, not yet told); it
  retries its own operator, then samples afresh, and raises `SearchExhausted` when it still finds
  nothing new (a space smaller than the budget).
- **Outstanding asks.** Several asks may precede their tells (parallel evaluation); each counts towards n.
  Determinism across runs is then guaranteed for the sequential order (ask, tell, ask, tell, ...), which
  is what `nacos.search.loop.run_search` does.
- **Thread safety.** None: one strategy is driven by one thread (the search driver).
- **Layering.** Strategies know genomes only through the space protocol below; they never import torch
  or tvm, so the same class drives the tabular NAS-Bench-201 benchmark, the baseline, the two-stage and
  the one-stage co-search.

A new strategy is one sibling module: subclass `Strategy`, give it a frozen `Settings` dataclass and a
`name`, implement `_propose(rng)` (and `_on_tell(record)` when it keeps derived state), and add one line
to the registry in `nacos/strategies/__init__.py`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import (
    Any,
    ClassVar,
    Generic,
    Protocol,
    TypeVar,
    runtime_checkable,
)

from nacos.errors import ConfigError, NacosError
from nacos.results.pareto import Objective, as_objectives

__all__ = ["Genome", "SearchExhausted", "SearchSpace", "Strategy", "StrategySettings", "Told", "step_rng"]


@runtime_checkable
class Genome(Protocol):
    """What a strategy needs of a candidate: hashable, a canonical JSON form and a stable short id."""

    def __hash__(self) -> int: ...

    def to_json(self) -> str: ...

    @property
    def id(self) -> str: ...


G = TypeVar("G", bound=Hashable)


@runtime_checkable
class SearchSpace(Protocol[G]):
    """The operators a strategy uses. `archspace.ArchSpace` and `archspace.nb201.NB201Space` fit it.

    Every random choice is drawn from the `random.Random` handed in, so a space keeps no random state.
    `parse` turns a genome's `to_json()` back into the genome (used to replay a results store).
    """

    def sample(self, rng: random.Random) -> G: ...

    def mutate(self, genome: G, rng: random.Random, prob: float) -> G: ...

    def crossover(self, a: G, b: G, rng: random.Random) -> G: ...

    def parse(self, text: str) -> G: ...


class SearchExhausted(NacosError):
    """The strategy found no genome it has not proposed before (the space is smaller than the budget)."""


@dataclass(frozen=True)
class Told:
    """One told record, as the strategy saw it: its order, genome, values (None: failed) and feasibility."""

    index: int
    genome: Any
    objectives: tuple[float, ...] | None
    feasible: bool

    @property
    def failed(self) -> bool:
        return self.objectives is None


@dataclass(frozen=True)
class StrategySettings:
    """Settings common to every strategy; subclasses add their own fields (all with defaults)."""

    #: tries of the strategy's own operator for a genome not seen before, then as many random samples
    max_retries: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 1:
            raise ConfigError(f"strategy.max_retries: must be an int >= 1, got {self.max_retries!r}")


def step_rng(name: str, seed: int, step: int) -> random.Random:
    """The random stream of proposal `step`: a function of (strategy name, seed, step) only."""
    digest = hashlib.sha256(f"nacos-strategy:{name}:{seed}:{step}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def check_fraction(name: str, value: float, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or not (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0):
        raise ConfigError(f"strategy.{name}: must be a number in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}")


def check_int(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"strategy.{name}: must be an int >= {low}, got {value!r}")


class Strategy(ABC, Generic[G]):
    """Base class: owns the history, the determinism and the no-repeat rule; subclasses only propose.

    Public: `ask`, `tell`, `replay`, `history`, `best`, `fingerprint`. Subclasses write `_propose`
    (and `_on_tell`), in the manner of NNI's `run()` / `_run()` split.
    """

    name: ClassVar[str] = "base"
    Settings: ClassVar[type[StrategySettings]] = StrategySettings
    #: how many objectives the strategy optimises: 1 (aging: the first, others ignored) or None (any)
    n_objectives: ClassVar[int | None] = None

    def __init__(self, space: SearchSpace[G], seed: int = 0,
                 objectives: Iterable[Any] = (Objective("accuracy", "max"),),
                 settings: StrategySettings | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed: must be an integer, got {seed!r}")
        missing = [op for op in ("sample", "mutate", "crossover", "parse") if not callable(getattr(space, op, None))]
        if missing:
            raise ConfigError(f"space {type(space).__name__}: lacks {missing} (see nacos.strategies.base.SearchSpace)")
        self.space = space
        self.seed = seed
        self.objectives: tuple[Objective, ...] = as_objectives(objectives)
        self.settings = settings if settings is not None else self.Settings()
        if not isinstance(self.settings, self.Settings):
            raise ConfigError(f"strategy {self.name}: settings must be {self.Settings.__name__}, "
                              f"got {type(self.settings).__name__}")
        self._history: list[Told] = []
        self._seen: set[str] = set()
        self._outstanding: dict[str, Any] = {}

    # -- public ---------------------------------------------------------------------------------------
    @property
    def history(self) -> tuple[Told, ...]:
        return tuple(self._history)

    @property
    def n_asked(self) -> int:
        return len(self._history) + len(self._outstanding)

    def ask(self) -> G:
        """Propose the next genome (never one told or outstanding before)."""
        step = self.n_asked
        rng = step_rng(self.name, self.seed, step)
        for attempt in range(self.settings.max_retries):
            genome = self._propose(rng, attempt)
            if genome.id not in self._seen:
                return self._mark_asked(genome)
        for _ in range(self.settings.max_retries):
            genome = self.space.sample(rng)
            if genome.id not in self._seen:
                return self._mark_asked(genome)
        raise SearchExhausted(
            f"strategy {self.name}: no new candidate after {2 * self.settings.max_retries} tries at proposal "
            f"{step} ({len(self._seen)} seen); the space may be smaller than the trial budget")

    def tell(self, genome: G, objectives: Sequence[float] | None, feasible: bool = True) -> Told:
        """Report one evaluated candidate: its objective values in `self.objectives` order (None: failed)."""
        values: tuple[float, ...] | None = None
        if objectives is not None:
            values = tuple(float(v) for v in objectives)
            if len(values) != len(self.objectives):
                raise NacosError(f"strategy {self.name}: told {len(values)} value(s) for objectives "
                                 f"{[o.name for o in self.objectives]}")
            if any(math.isnan(v) for v in values):
                raise NacosError(f"strategy {self.name}: NaN objective for {genome.id}; tell None for a failure")
        feasible = bool(feasible) and values is not None
        gid = genome.id
        if gid in self._seen and gid not in self._outstanding:
            raise NacosError(f"strategy {self.name}: candidate {gid} told twice")
        self._outstanding.pop(gid, None)
        self._seen.add(gid)
        record = Told(len(self._history), genome, values, feasible)
        self._history.append(record)
        self._on_tell(record)
        return record

    def replay(self, records: Iterable[tuple[G, Sequence[float] | None, bool]]) -> None:
        """Rebuild the state from a told history (genome, objectives, feasible), in its order."""
        for genome, values, feasible in records:
            self.tell(genome, values, feasible)

    def best(self) -> Told | None:
        """The best feasible record on the first objective (the earliest among equals)."""
        ok = [t for t in self._history if t.feasible]
        if not ok:
            return None
        sign = 1.0 if self.objectives[0].sense == "max" else -1.0
        return max(ok, key=lambda t: (sign * t.objectives[0], -t.index))  # type: ignore[index]

    def fingerprint(self) -> dict[str, Any]:
        """What must be equal for a resumed run to continue the same search (stored by the loop)."""
        # Through JSON, so that it compares equal to the copy the store keeps (tuples become lists).
        return json.loads(json.dumps({"strategy": self.name, "seed": self.seed,
                                      "objectives": [o.to_json() for o in self.objectives],
                                      "settings": dataclasses.asdict(self.settings)}, sort_keys=True))

    # -- for subclasses -------------------------------------------------------------------------------
    @abstractmethod
    def _propose(self, rng: random.Random, attempt: int) -> G:
        """One proposal drawn from `rng` (retried with the same stream while it repeats a seen genome)."""

    def _on_tell(self, record: Told) -> None:
        """Update derived state after `record` joined the history (default: none)."""

    def fitness_key(self, record: Told) -> tuple[int, float]:
        """Sort key, larger is better: feasible before infeasible before failed, then the first objective."""
        if record.objectives is None:
            return (0, -math.inf)
        sign = 1.0 if self.objectives[0].sense == "max" else -1.0
        return (2 if record.feasible else 1, sign * record.objectives[0])

    def _mark_asked(self, genome: G) -> G:
        self._seen.add(genome.id)
        self._outstanding[genome.id] = genome
        return genome
