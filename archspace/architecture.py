"""`Architecture`: the genotype of an elastic MobileNetV2-style network.

A genotype holds only what is active: per stage its depth, and per active block a kernel size and
an expand ratio. Two genotypes that describe the same network are therefore equal, hash equal and
share one id, which is what lets results, tuning records and accuracy caches be keyed by it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from archspace.errors import ArchSpaceError

__all__ = ["Architecture"]

_FIELDS = ("resolution", "width_mult", "depths", "kernel_sizes", "expand_ratios")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Architecture:
    """One network of the space.

    resolution:    input side in pixels (square input).
    width_mult:    channel multiplier applied to every stage's base channel count.
    depths:        active blocks per stage.
    kernel_sizes:  per stage, per active block, the depthwise kernel size.
    expand_ratios: per stage, per active block, the inverted-bottleneck expand ratio.

    Structural validity (types, lengths, positive odd kernels) is checked here; membership in a
    particular space (is 9 an allowed kernel?) is `ArchSpace.check`.
    """

    resolution: int
    width_mult: float
    depths: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    expand_ratios: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if not _is_int(self.resolution) or self.resolution <= 0:
            raise ArchSpaceError(f"resolution: must be a positive int, got {self.resolution!r}")
        if (isinstance(self.width_mult, bool) or not isinstance(self.width_mult, (int, float))
                or not 0 < self.width_mult < math.inf):
            raise ArchSpaceError(f"width_mult: must be a positive finite number, got {self.width_mult!r}")
        object.__setattr__(self, "width_mult", float(self.width_mult))
        for name in ("depths", "kernel_sizes", "expand_ratios"):
            if not isinstance(getattr(self, name), (tuple, list)):
                raise ArchSpaceError(f"{name}: must be a list, got {type(getattr(self, name)).__name__}")
        object.__setattr__(self, "depths", tuple(self.depths))
        if not self.depths:
            raise ArchSpaceError("depths: at least one stage is needed")
        for s, d in enumerate(self.depths):
            if not _is_int(d) or d < 1:
                raise ArchSpaceError(f"depths[{s}]: must be an int >= 1, got {d!r}")
        for name in ("kernel_sizes", "expand_ratios"):
            per_stage = getattr(self, name)
            if len(per_stage) != len(self.depths):
                raise ArchSpaceError(
                    f"{name}: has {len(per_stage)} stages but depths has {len(self.depths)}")
            frozen = []
            for s, blocks in enumerate(per_stage):
                if not isinstance(blocks, (tuple, list)):
                    raise ArchSpaceError(f"{name}[{s}]: must be a list, got {type(blocks).__name__}")
                if len(blocks) != self.depths[s]:
                    raise ArchSpaceError(
                        f"{name}[{s}]: has {len(blocks)} blocks but depths[{s}] is {self.depths[s]}")
                for b, value in enumerate(blocks):
                    if not _is_int(value) or value < 1:
                        raise ArchSpaceError(f"{name}[{s}][{b}]: must be a positive int, got {value!r}")
                    if name == "kernel_sizes" and value % 2 == 0:
                        raise ArchSpaceError(f"{name}[{s}][{b}]: kernel size must be odd, got {value}")
                frozen.append(tuple(blocks))
            object.__setattr__(self, name, tuple(frozen))

    # -- identity ---------------------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.depths)

    def blocks(self) -> list[tuple[int, int, int, int]]:
        """(stage, block index in stage, kernel size, expand ratio) of every active block, in order."""
        return [(s, b, self.kernel_sizes[s][b], self.expand_ratios[s][b])
                for s in range(self.num_stages) for b in range(self.depths[s])]

    @property
    def id(self) -> str:
        """Short stable id: the first 12 hex digits of the SHA-1 of the canonical JSON."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]

    def short(self) -> str:
        """A compact human-readable form, e.g. ``r28-w1.0-[k3e4,k5e6|k7e3]``."""
        stages = "|".join(",".join(f"k{k}e{e}" for k, e in zip(ks, es))
                          for ks, es in zip(self.kernel_sizes, self.expand_ratios))
        return f"r{self.resolution}-w{self.width_mult:g}-[{stages}]"

    # -- JSON -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "width_mult": self.width_mult,
            "depths": list(self.depths),
            "kernel_sizes": [list(k) for k in self.kernel_sizes],
            "expand_ratios": [list(e) for e in self.expand_ratios],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Architecture":
        if not isinstance(data, Mapping):
            raise ArchSpaceError(f"architecture: expected a JSON object, got {type(data).__name__}")
        missing = [f for f in _FIELDS if f not in data]
        if missing:
            raise ArchSpaceError(f"architecture: missing field(s) {missing}")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ArchSpaceError(f"architecture: unknown field(s) {unknown}")
        return cls(**{f: data[f] for f in _FIELDS})

    @classmethod
    def from_json(cls, text: str | bytes) -> "Architecture":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits, too deep
            raise ArchSpaceError(f"architecture: malformed JSON ({str(exc)[:200]})") from exc
        return cls.from_dict(data)
