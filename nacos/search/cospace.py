"""The dual space of the one-stage search (NAAS-style): one genome holds an architecture and a
`ScheduleConfig` for each of its compute layers, and one evolutionary algorithm mutates and crosses both.

Layers are named by slot (`archspace.layers`), so a block that survives a mutation of the architecture
keeps its schedule, and a block the architecture gains gets a freshly sampled one.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any, Protocol

from archspace.architecture import Architecture
from archspace.layers import conv_layers
from archspace.space import ArchSpace, as_rng
from schedules.records import ScheduleConfig

__all__ = ["CoGenome", "CoSpace", "ScheduleSpaceLike"]


class ScheduleSpaceLike(Protocol):
    def sample(self, rng: random.Random) -> ScheduleConfig: ...

    def mutate(self, config: ScheduleConfig, rng: random.Random, prob: float) -> ScheduleConfig: ...

    def crossover(self, a: ScheduleConfig, b: ScheduleConfig, rng: random.Random) -> ScheduleConfig: ...


@dataclass(frozen=True)
class CoGenome:
    arch: Architecture
    schedules: tuple[tuple[str, ScheduleConfig], ...]   # (slot, config), in layer order

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "schedules": [[s, c.to_dict()] for s, c in self.schedules]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def id(self) -> str:
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]

    def schedule_of(self) -> dict[str, ScheduleConfig]:
        return dict(self.schedules)


class CoSpace:
    """Architecture x per-layer schedule, behind the same operators as `ArchSpace`."""

    def __init__(self, arch_space: ArchSpace, schedule_space: ScheduleSpaceLike) -> None:
        self.arch_space = arch_space
        self.schedule_space = schedule_space

    def _slots(self, arch: Architecture) -> list[str]:
        return [layer.slot for layer in conv_layers(arch, self.arch_space)]

    def sample(self, rng: random.Random | int | None = None) -> CoGenome:
        rng = as_rng(rng)
        arch = self.arch_space.sample(rng)
        return CoGenome(arch, tuple((s, self.schedule_space.sample(rng)) for s in self._slots(arch)))

    def mutate(self, genome: CoGenome, rng: random.Random | int | None = None, prob: float = 0.1) -> CoGenome:
        rng = as_rng(rng)
        arch = self.arch_space.mutate(genome.arch, rng, prob)
        old = genome.schedule_of()
        configs = []
        for slot in self._slots(arch):
            if slot in old:
                configs.append((slot, self.schedule_space.mutate(old[slot], rng, prob)))
            else:
                configs.append((slot, self.schedule_space.sample(rng)))
        return CoGenome(arch, tuple(configs))

    def crossover(self, a: CoGenome, b: CoGenome, rng: random.Random | int | None = None) -> CoGenome:
        rng = as_rng(rng)
        arch = self.arch_space.crossover(a.arch, b.arch, rng)
        sa, sb = a.schedule_of(), b.schedule_of()
        configs = []
        for slot in self._slots(arch):
            if slot in sa and slot in sb:
                configs.append((slot, self.schedule_space.crossover(sa[slot], sb[slot], rng)))
            else:
                configs.append((slot, sa.get(slot) or sb.get(slot) or self.schedule_space.sample(rng)))
        return CoGenome(arch, tuple(configs))

    def parse(self, text: str) -> CoGenome:
        data = json.loads(text)
        arch = Architecture.from_dict(data["arch"])
        self.arch_space.check(arch)
        return CoGenome(arch, tuple((s, ScheduleConfig.from_dict(c)) for s, c in data["schedules"]))

    def size(self) -> float:
        return float("inf")  # per-layer schedules make it astronomically large; strategies only need "big"
