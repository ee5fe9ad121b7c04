"""Fixed mapping rules for ZigZag: one temporal loop order and tiling per layer instead of LOMA's search.

NAAS's point is that the mapping (loop order and tiling over the memory levels) moves an accelerator's
energy and latency by large factors, so a search that holds it fixed overlooks good architectures. A
`MappingRule` is such a fixed mapping, in the explicit schedule space's own terms (`ScheduleConfig`'s
``loop_order`` and inner tiles of the output-channel, row, column and input-channel axes), so the
one-stage genome's per-layer `ScheduleConfig` is also a per-layer accelerator mapping:

- innermost, the kernel window (FX, FY) whole;
- then the inner tiles: input channels (C, `tile_c`), then the output axes in reverse of `loop_order`
  (``"ohw"``: columns OX innermost, then rows OY, then output channels K, or the group loop G of a
  depthwise convolution);
- then what is left of C and of the output axes, in the same order; the batch and any other loop
  outermost.

A tile that does not divide its loop is the largest divisor at most that size. Every segment is split
into its prime factors (ascending), so that ZigZag's memory allocator can place the tile boundaries on
the memory levels (which level holds which loops is still ZigZag's, as are the spatial unrolling over
the PE array and the cost). `rule_temporal_stage(rule)` is the ZigZag stage that yields that one
temporal mapping where `TemporalMappingGeneratorStage` yields LOMA's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from costmodels.errors import CostModelError
from schedules.records import LOOP_ORDERS

__all__ = ["MappingRule", "rule_temporal_stage"]

#: `ScheduleConfig.loop_order` letters -> ZigZag loop dimensions (output channels: K, or G when grouped)
_AXES = {"o": ("K", "G"), "h": ("OY",), "w": ("OX",)}


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while n > 1 and p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def _divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, max(limit, 1)) + 1) if n % d == 0)


@dataclass(frozen=True)
class MappingRule:
    """One fixed temporal mapping rule (see the module docstring); part of every cache key it maps."""

    loop_order: str = "ohw"
    tile_k: int = 8
    tile_oy: int = 1
    tile_ox: int = 4
    tile_c: int = 4

    def __post_init__(self) -> None:
        if self.loop_order not in LOOP_ORDERS:
            raise CostModelError(f"loop_order: must be one of {', '.join(LOOP_ORDERS)}, got {self.loop_order!r}")
        for name in ("tile_k", "tile_oy", "tile_ox", "tile_c"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CostModelError(f"{name}: must be an int >= 1, got {value!r}")

    @classmethod
    def from_schedule_config(cls, config: Any) -> MappingRule:
        """The rule a `schedules.records.ScheduleConfig` stands for on an accelerator."""
        return cls(config.loop_order, config.tile_oc, config.tile_oh, config.tile_ow, config.tile_ic)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def ordering(self, loops: dict[str, int]) -> list[tuple[str, int]]:
        """The complete temporal ordering, innermost first, of the temporal loop sizes `loops`
        (dimension name -> size after the spatial unrolling; sizes of 1 may be left out)."""
        tiles = {"C": self.tile_c, "OX": self.tile_ox, "OY": self.tile_oy, "K": self.tile_k, "G": self.tile_k}
        output_axes = [d for letter in reversed(self.loop_order) for d in _AXES[letter]]
        inner: list[tuple[str, int]] = []
        outer: list[tuple[str, int]] = []
        for dim in ("C", *output_axes):
            size = loops.get(dim, 1)
            tile = _divisor_at_most(size, tiles[dim])
            inner.extend((dim, f) for f in _prime_factors(tile))
            outer.extend((dim, f) for f in _prime_factors(size // tile))
        window = [(dim, f) for dim in ("FX", "FY") for f in _prime_factors(loops.get(dim, 1))]
        placed = {"C", "FX", "FY", *output_axes}
        rest = [(dim, f) for dim, size in sorted(loops.items()) if dim not in placed for f in _prime_factors(size)]
        return window + inner + outer + rest


def rule_temporal_stage(rule: MappingRule) -> type:
    """A ZigZag stage class that yields the one temporal mapping `rule` makes for each spatial mapping
    (ZigZag's `MemoryAllocator` places its loops on the memory levels)."""
    from zigzag.datatypes import LayerDim
    from zigzag.opt.loma.engine import LomaEngine
    from zigzag.opt.loma.memory_allocator import MemoryAllocator
    from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage

    class RuleTemporalMappingStage(TemporalMappingGeneratorStage):
        def generate_temporal_mappings(self):  # noqa: ANN202 - ZigZag's generator
            engine = LomaEngine(accelerator=self.accelerator, layer=self.layer, spatial_mapping=self.spatial_mapping,
                                mapping_type=self.mapping_type, **self.kwargs)
            loops = {str(dim): int(size) for dim, size in engine.get_temporal_loops().items()}
            ordering = [(LayerDim(dim), factor) for dim, factor in rule.ordering(loops)]
            yield MemoryAllocator(self.accelerator, self.layer, self.spatial_mapping, ordering,
                                  self.mapping_type).run()

    return RuleTemporalMappingStage
