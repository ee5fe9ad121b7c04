"""The dual space of the one-stage search (NAAS-style): one genome holds an architecture and a schedule
gene for each of its distinct workloads, and one evolutionary algorithm mutates and crosses both.

Why one gene per distinct workload, not per layer: TVM compiles one function per distinct workload
(layers of one shape share it), so per-layer genes of layers that share a shape were dead but the
first. Here the genome lists, in layer order, the distinct layer keys (`nacos.backends.tvm.slot_keys`:
kind, output channels, rows, columns, reduction, kernel), each named by its first layer's slot, with one
gene: an explicit `ScheduleConfig`, or `FROM_DATABASE` ("database"), the tuning database's best record
of that workload, so the one-stage search can reach the schedules MetaSchedule found (``database_share``
of sampled genes). A workload that survives a mutation of the architecture keeps (and mutates) its gene;
a new one gets a sampled gene.

On an accelerator (``per_layer=True``, `nacos.search.modes`) every layer is mapped on its own, so the
genome holds a mapping rule per layer (slot), and no database genes.

The partition into distinct workloads does not depend on the data's input channels or classes (they
change only the stem's reduction and the classifier's outputs, each of one layer), so the genome is
computed with the defaults and read against the real model by the backends.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any, Protocol, Union

from archspace.architecture import Architecture
from archspace.space import ArchSpace, as_rng
from schedules.explicit.compile import FROM_DATABASE
from schedules.records import ScheduleConfig

__all__ = ["CoGenome", "CoSpace", "FROM_DATABASE", "ScheduleSpaceLike", "Gene"]

#: a gene: an explicit config, or `FROM_DATABASE` (the tuning database's best record of the workload)
Gene = Union[ScheduleConfig, str]


class ScheduleSpaceLike(Protocol):
    def sample(self, rng: random.Random) -> ScheduleConfig: ...

    def mutate(self, config: ScheduleConfig, rng: random.Random, prob: float) -> ScheduleConfig: ...

    def crossover(self, a: ScheduleConfig, b: ScheduleConfig, rng: random.Random) -> ScheduleConfig: ...


def _gene_json(gene: Gene) -> Any:
    return gene if isinstance(gene, str) else gene.to_dict()


def _gene_of(data: Any) -> Gene:
    if data == FROM_DATABASE:
        return FROM_DATABASE
    if isinstance(data, str):
        raise ValueError(f"unknown schedule gene {data!r}; a gene is a ScheduleConfig or {FROM_DATABASE!r}")
    return ScheduleConfig.from_dict(data)


@dataclass(frozen=True)
class CoGenome:
    arch: Architecture
    schedules: tuple[tuple[str, Gene], ...]   # (slot naming the workload, gene), in layer order

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "schedules": [[s, _gene_json(c)] for s, c in self.schedules]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def id(self) -> str:
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]

    def schedule_of(self) -> dict[str, Gene]:
        return dict(self.schedules)


class CoSpace:
    """Architecture x a schedule gene per distinct workload (per layer with ``per_layer``), behind the
    same operators as `ArchSpace`."""

    def __init__(self, arch_space: ArchSpace, schedule_space: ScheduleSpaceLike, *, per_layer: bool = False,
                 database_share: float = 0.25) -> None:
        if not 0 <= database_share <= 1:
            raise ValueError(f"database_share must be in [0, 1], got {database_share!r}")
        self.arch_space = arch_space
        self.schedule_space = schedule_space
        self.per_layer = per_layer
        self.database_share = 0.0 if per_layer else database_share

    def workloads(self, arch: Architecture) -> list[tuple[str, Any]]:
        """(slot naming it, its key) of each gene `arch` has: its distinct workloads in layer order (each
        named by its first layer's slot), or with ``per_layer`` every layer (keyed by its slot)."""
        from nacos.backends.tvm import slot_keys

        keys = slot_keys(arch, self.arch_space)
        if self.per_layer:
            return [(slot, slot) for slot in keys]
        seen: dict[Any, str] = {}
        for slot, key in keys.items():
            seen.setdefault(key, slot)
        return [(slot, key) for key, slot in seen.items()]

    def _sample_gene(self, rng: random.Random) -> Gene:
        if self.database_share and rng.random() < self.database_share:
            return FROM_DATABASE
        return self.schedule_space.sample(rng)

    def _mutate_gene(self, gene: Gene, rng: random.Random, prob: float) -> Gene:
        if isinstance(gene, str):
            return self.schedule_space.sample(rng) if rng.random() < prob else gene
        if self.database_share and rng.random() < prob * self.database_share:
            return FROM_DATABASE
        return self.schedule_space.mutate(gene, rng, prob)

    def _cross_genes(self, a: Gene, b: Gene, rng: random.Random) -> Gene:
        if isinstance(a, str) or isinstance(b, str):
            return a if rng.random() < 0.5 else b
        return self.schedule_space.crossover(a, b, rng)

    def _by_key(self, genome: CoGenome) -> dict[Any, Gene]:
        genes = genome.schedule_of()
        return {key: genes[slot] for slot, key in self.workloads(genome.arch) if slot in genes}

    def sample(self, rng: random.Random | int | None = None) -> CoGenome:
        rng = as_rng(rng)
        arch = self.arch_space.sample(rng)
        return CoGenome(arch, tuple((s, self._sample_gene(rng)) for s, _ in self.workloads(arch)))

    def mutate(self, genome: CoGenome, rng: random.Random | int | None = None, prob: float = 0.1) -> CoGenome:
        rng = as_rng(rng)
        arch = self.arch_space.mutate(genome.arch, rng, prob)
        old = self._by_key(genome)
        genes = []
        for slot, key in self.workloads(arch):
            genes.append((slot, self._mutate_gene(old[key], rng, prob) if key in old else self._sample_gene(rng)))
        return CoGenome(arch, tuple(genes))

    def crossover(self, a: CoGenome, b: CoGenome, rng: random.Random | int | None = None) -> CoGenome:
        rng = as_rng(rng)
        arch = self.arch_space.crossover(a.arch, b.arch, rng)
        ga, gb = self._by_key(a), self._by_key(b)
        genes = []
        for slot, key in self.workloads(arch):
            if key in ga and key in gb:
                genes.append((slot, self._cross_genes(ga[key], gb[key], rng)))
            else:
                genes.append((slot, ga.get(key) or gb.get(key) or self._sample_gene(rng)))
        return CoGenome(arch, tuple(genes))

    def parse(self, text: str) -> CoGenome:
        data = json.loads(text)
        arch = Architecture.from_dict(data["arch"])
        self.arch_space.check(arch)
        return CoGenome(arch, tuple((s, _gene_of(c)) for s, c in data["schedules"]))

    def size(self) -> float:
        return float("inf")  # per-workload schedules make it astronomically large; strategies only need "big"
