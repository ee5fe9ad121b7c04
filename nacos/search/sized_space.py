"""The accelerator's sizing as a third axis of the genome (``accelerator_sizing: true`` on an
``accel://`` target, as NAAS searches the accelerator with the network and its mapping).

`SizedSpace` wraps any mode's genome space (an `ArchSpace`, or the one-stage `CoSpace`): its genome is
``(the mode's genome, a costmodels.accelerator_sizing.Sizing)``, sampled, mutated (one grid step per
factor) and crossed together, so every mode searches the PE array and buffer sizes beside what it searched
before. The accelerator backends cost a `SizedGenome` on the hardware its sizing derives from the target's
array (`nacos.backends.accelerator`), and each row records the array, the buffer factor and the area.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any, Callable

from archspace.space import as_rng
from costmodels.accelerator_sizing import Sizing, SizingGrid

__all__ = ["SizedGenome", "SizedSpace", "sized_arch", "sized_space"]


@dataclass(frozen=True)
class SizedGenome:
    inner: Any           # the mode's genome (Architecture or CoGenome)
    sizing: Sizing

    def to_dict(self) -> dict[str, Any]:
        return {"genome": json.loads(self.inner.to_json()), "sizing": self.sizing.to_json()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def id(self) -> str:
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]


class SizedSpace:
    """A genome space x the sizing grid, behind the same operators (sample, mutate, crossover, parse)."""

    def __init__(self, inner: Any, grid: SizingGrid, dims: int) -> None:
        self.inner = inner
        self.grid = grid
        self.dims = dims

    def sample(self, rng: random.Random | int | None = None) -> SizedGenome:
        rng = as_rng(rng)
        return SizedGenome(self.inner.sample(rng), self.grid.sample(rng, self.dims))

    def mutate(self, genome: SizedGenome, rng: random.Random | int | None = None, prob: float = 0.1) -> SizedGenome:
        rng = as_rng(rng)
        return SizedGenome(self.inner.mutate(genome.inner, rng, prob), self.grid.mutate(genome.sizing, rng, prob))

    def crossover(self, a: SizedGenome, b: SizedGenome, rng: random.Random | int | None = None) -> SizedGenome:
        rng = as_rng(rng)
        return SizedGenome(self.inner.crossover(a.inner, b.inner, rng), self.grid.crossover(a.sizing, b.sizing, rng))

    def parse(self, text: str) -> SizedGenome:
        data = json.loads(text)
        sizing = Sizing.from_json(data["sizing"])
        if len(sizing.pe_scale) != self.dims:
            raise ValueError(f"sizing: {len(sizing.pe_scale)} PE factors, the array has {self.dims} dimensions")
        return SizedGenome(self.inner.parse(json.dumps(data["genome"])), sizing)

    def size(self) -> float:
        return float(self.inner.size()) * self.grid.size(self.dims)


def sized_space(space: Any, *, inner: Callable[[Any], Any], dims: int,
                grid: SizingGrid = SizingGrid()) -> SizedSpace:
    """The mode's genome space (`inner(space)`) with the sizing axis (a `SearchMode.genome_space`; bound
    with `functools.partial`, so the mode record still pickles)."""
    return SizedSpace(inner(space), grid, dims)


def sized_arch(genome: SizedGenome, *, inner: Callable[[Any], Any]) -> Any:
    """The architecture of a `SizedGenome` (a `SearchMode.arch_of`, bound with `functools.partial`)."""
    return inner(genome.inner)
