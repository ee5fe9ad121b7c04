"""The accelerator's sizing as a search axis (NAAS's third axis): the PE array's dimensions and the
on-chip buffers' capacities, from a small grid around a chosen ZigZag array.

A `Sizing` scales each dimension of the array's ``operational_array.sizes`` and, by one factor, every
on-chip memory (all levels but the outermost, the DRAM, which stays as it is). `sized_hardware` derives
the ZigZag hardware description of a sizing from the base array's:

- PE array: ``sizes[i] = max(1, round(sizes[i] x pe_scale[i]))``; MAC energy and each PE's area unchanged;
- on-chip memory of capacity S scaled by f: capacity ``f x S`` (bits, rounded to a whole byte), energy per
  read and write access ``x sqrt(f)`` (the CACTI trend: a bank's access energy grows about with the square
  root of its capacity, its wordlines and bitlines getting longer), area ``x f``; ports, bandwidths and
  which dimensions a memory serves unchanged.

`hardware_area` sums ZigZag's area figures (``unit_area`` per PE plus each memory's ``area``, in the
file's own units), so a search can weigh a bigger array against its silicon: an area objective or budget,
as NAAS searches under fixed resources. The scaling rules are a first-order model chosen here, not
ZigZag's; they are stated so a user can replace the grid with hardware files of their own.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costmodels.errors import CostModelError

__all__ = ["Sizing", "SizingGrid", "hardware_area", "sized_hardware", "write_sized_hardware"]


@dataclass(frozen=True)
class Sizing:
    """Scale factors of one sizing: one per PE-array dimension, one for the on-chip buffers."""

    pe_scale: tuple[float, ...]
    buffer_scale: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {"pe_scale": list(self.pe_scale), "buffer_scale": self.buffer_scale}

    @classmethod
    def from_json(cls, data: Any) -> Sizing:
        try:
            pe = tuple(float(x) for x in data["pe_scale"])
            buf = float(data["buffer_scale"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CostModelError(f"sizing: expected {{pe_scale: [...], buffer_scale: x}}, got {data!r}") from exc
        if not pe or any(not (x > 0 and math.isfinite(x)) for x in (*pe, buf)):
            raise CostModelError(f"sizing: scale factors must be finite and > 0, got {data!r}")
        return cls(pe, buf)

    @property
    def label(self) -> str:
        return f"pe{'x'.join(f'{x:g}' for x in self.pe_scale)}-buf{self.buffer_scale:g}"


@dataclass(frozen=True)
class SizingGrid:
    """The grid a search moves on: each PE dimension's factor from `pe_scales`, the buffers' from
    `buffer_scales` (both must hold 1.0, the base array)."""

    pe_scales: tuple[float, ...] = (0.5, 1.0, 2.0)
    buffer_scales: tuple[float, ...] = (0.5, 1.0, 2.0)

    def __post_init__(self) -> None:
        for name in ("pe_scales", "buffer_scales"):
            values = getattr(self, name)
            if 1.0 not in values or any(not v > 0 for v in values) or sorted(set(values)) != list(values):
                raise CostModelError(f"sizing grid: {name} must be increasing factors > 0 holding 1.0, got {values}")

    def sample(self, rng: random.Random, dims: int) -> Sizing:
        return Sizing(tuple(rng.choice(self.pe_scales) for _ in range(dims)), rng.choice(self.buffer_scales))

    def _step(self, values: tuple[float, ...], current: float, rng: random.Random) -> float:
        i = values.index(current) if current in values else values.index(1.0)
        moves = [j for j in (i - 1, i + 1) if 0 <= j < len(values)]
        return values[rng.choice(moves)] if moves else current

    def mutate(self, sizing: Sizing, rng: random.Random, prob: float) -> Sizing:
        """Each factor moves one step on its axis of the grid with probability `prob`."""
        pe = tuple(self._step(self.pe_scales, x, rng) if rng.random() < prob else x for x in sizing.pe_scale)
        buf = self._step(self.buffer_scales, sizing.buffer_scale, rng) if rng.random() < prob else sizing.buffer_scale
        return Sizing(pe, buf)

    def crossover(self, a: Sizing, b: Sizing, rng: random.Random) -> Sizing:
        pe = tuple(x if rng.random() < 0.5 else y for x, y in zip(a.pe_scale, b.pe_scale))
        return Sizing(pe, a.buffer_scale if rng.random() < 0.5 else b.buffer_scale)

    def size(self, dims: int) -> int:
        return len(self.pe_scales) ** dims * len(self.buffer_scales)


def _outermost(memories: dict[str, Any]) -> str:
    """The memory level the sizing leaves alone: the largest (the DRAM of ZigZag's shipped arrays)."""
    return max(memories, key=lambda name: float(memories[name].get("size", 0)))


def sized_hardware(data: dict[str, Any], sizing: Sizing) -> dict[str, Any]:
    """The ZigZag hardware description `data` (a parsed hardware YAML) under `sizing` (module docstring)."""
    try:
        sizes = list(data["operational_array"]["sizes"])
        memories = data["memories"]
    except (KeyError, TypeError) as exc:
        raise CostModelError(f"hardware {data.get('name', '?') if isinstance(data, dict) else '?'}: no "
                             f"operational_array.sizes or memories to size ({exc})") from exc
    if len(sizing.pe_scale) != len(sizes):
        raise CostModelError(f"sizing: {len(sizing.pe_scale)} PE factors for an array of {len(sizes)} dimensions")
    out = copy.deepcopy(data)
    out["name"] = f"{data.get('name', 'hardware')}-{sizing.label}"
    out["operational_array"]["sizes"] = [max(1, round(s * f)) for s, f in zip(sizes, sizing.pe_scale)]
    f = sizing.buffer_scale
    keep = _outermost(memories)
    for name, mem in out["memories"].items():
        if name == keep or f == 1.0:
            continue
        mem["size"] = max(8, int(round(float(mem["size"]) * f / 8)) * 8)
        for key in ("r_cost", "w_cost"):
            if key in mem:
                mem[key] = float(mem[key]) * math.sqrt(f)
        if "area" in mem:
            mem["area"] = float(mem["area"]) * f
    return out


def hardware_area(data: dict[str, Any]) -> float:
    """ZigZag's area of a hardware description: ``unit_area`` x PEs + every memory's ``area`` but the
    outermost (the off-chip DRAM), in the file's units."""
    array = data["operational_array"]
    pes = math.prod(int(s) for s in array["sizes"])
    memories = data["memories"]
    keep = _outermost(memories)
    return float(array.get("unit_area", 0.0)) * pes + sum(float(m.get("area", 0.0)) for n, m in memories.items()
                                                           if n != keep)


def write_sized_hardware(data: dict[str, Any], sizing: Sizing, out_dir: str | Path) -> Path:
    """The sized description written as YAML under `out_dir`, named by its digest (written once, atomically)."""
    import os

    import yaml

    sized = sized_hardware(data, sizing)
    text = yaml.safe_dump(sized, sort_keys=False)
    digest = hashlib.sha256(json.dumps(sized, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = Path(out_dir) / f"{sized['name']}-{digest}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path
