"""`ArchSpace`: the choice lists of the elastic MBConv space, and sampling / mutation / crossover.

Everything random takes a `random.Random` (or an int seed), so a search is reproducible from its seed.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from archspace.architecture import Architecture
from archspace.errors import ArchSpaceError

__all__ = ["SpaceConfig", "ArchSpace", "make_divisible", "as_rng"]


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: nearest multiple of `divisor`, never below 90 % of `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def as_rng(rng: random.Random | int | None) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    return random.Random(rng)


@dataclass(frozen=True)
class SpaceConfig:
    """The choice lists and the fixed skeleton of the space.

    The default is sized for a 2-core CPU and 28x28 inputs (MNIST): a stride-2 stem and four stages
    of which three downsample, so the total stride is 16 and the smallest useful input is 16 pixels.
    """

    resolutions: tuple[int, ...] = (24, 28, 32)
    width_mults: tuple[float, ...] = (0.75, 1.0)
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    expand_ratios: tuple[int, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (1, 2, 3)
    stem_channels: int = 16
    stage_channels: tuple[int, ...] = (16, 24, 40, 64)
    stage_strides: tuple[int, ...] = (1, 2, 2, 2)
    head_channels: int = 128
    stem_stride: int = 2

    def __post_init__(self) -> None:
        for name in ("resolutions", "width_mults", "kernel_sizes", "expand_ratios", "depths",
                     "stage_channels", "stage_strides"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if not value:
                raise ArchSpaceError(f"space.{name}: must not be empty")
            if name not in ("stage_channels", "stage_strides") and len(set(value)) != len(value):
                raise ArchSpaceError(f"space.{name}: has duplicates {value}")
        object.__setattr__(self, "resolutions", tuple(sorted(self.resolutions)))
        object.__setattr__(self, "width_mults", tuple(sorted(float(w) for w in self.width_mults)))
        object.__setattr__(self, "kernel_sizes", tuple(sorted(self.kernel_sizes)))
        object.__setattr__(self, "expand_ratios", tuple(sorted(self.expand_ratios)))
        object.__setattr__(self, "depths", tuple(sorted(self.depths)))
        if any(k % 2 == 0 or k < 1 for k in self.kernel_sizes):
            raise ArchSpaceError(f"space.kernel_sizes: must be odd and positive, got {self.kernel_sizes}")
        if any(e < 1 for e in self.expand_ratios):
            raise ArchSpaceError(f"space.expand_ratios: must be >= 1, got {self.expand_ratios}")
        if any(d < 1 for d in self.depths):
            raise ArchSpaceError(f"space.depths: must be >= 1, got {self.depths}")
        if any(w <= 0 for w in self.width_mults):
            raise ArchSpaceError(f"space.width_mults: must be > 0, got {self.width_mults}")
        if len(self.stage_strides) != len(self.stage_channels):
            raise ArchSpaceError("space.stage_strides: needs one stride per entry of stage_channels")
        if any(s not in (1, 2) for s in self.stage_strides) or self.stem_stride not in (1, 2):
            raise ArchSpaceError("space.stage_strides / stem_stride: each stride must be 1 or 2")
        too_small = [r for r in self.resolutions if r < self.total_stride]
        if too_small:
            raise ArchSpaceError(
                f"space.resolutions: {too_small} below the network's total stride {self.total_stride}")

    @property
    def total_stride(self) -> int:
        return self.stem_stride * math.prod(self.stage_strides)

    @property
    def num_stages(self) -> int:
        return len(self.stage_channels)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SpaceConfig":
        if not isinstance(data, Mapping):
            raise ArchSpaceError(f"space: expected a JSON object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ArchSpaceError(f"space: unknown key(s) {unknown}; known keys are {sorted(known)}")
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        except TypeError as exc:
            raise ArchSpaceError(f"space: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> "SpaceConfig":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ArchSpaceError(f"space: malformed JSON ({exc})") from exc


@dataclass(frozen=True)
class ArchSpace:
    """The set of architectures of one `SpaceConfig`, with the operators a search needs."""

    config: SpaceConfig = field(default_factory=SpaceConfig)

    # -- membership -------------------------------------------------------------------------------
    def check(self, arch: Architecture) -> None:
        """Raise `ArchSpaceError` naming the first field of `arch` that lies outside this space."""
        c = self.config
        if arch.resolution not in c.resolutions:
            raise ArchSpaceError(f"resolution: {arch.resolution} not in the space's choices {c.resolutions}"
                                 + (f" (the network needs at least {c.total_stride} pixels)"
                                    if arch.resolution < c.total_stride else ""))
        if arch.width_mult not in c.width_mults:
            raise ArchSpaceError(f"width_mult: {arch.width_mult} not in the space's choices {c.width_mults}")
        if arch.num_stages != c.num_stages:
            raise ArchSpaceError(f"depths: {arch.num_stages} stages, the space has {c.num_stages}")
        for s, d in enumerate(arch.depths):
            if d not in c.depths:
                raise ArchSpaceError(f"depths[{s}]: {d} not in the space's choices {c.depths}")
            for b in range(d):
                if arch.kernel_sizes[s][b] not in c.kernel_sizes:
                    raise ArchSpaceError(f"kernel_sizes[{s}][{b}]: {arch.kernel_sizes[s][b]} not in "
                                         f"the space's choices {c.kernel_sizes}")
                if arch.expand_ratios[s][b] not in c.expand_ratios:
                    raise ArchSpaceError(f"expand_ratios[{s}][{b}]: {arch.expand_ratios[s][b]} not in "
                                         f"the space's choices {c.expand_ratios}")

    def contains(self, arch: Architecture) -> bool:
        try:
            self.check(arch)
        except ArchSpaceError:
            return False
        return True

    def parse(self, text: str | bytes) -> Architecture:
        """Architecture JSON -> a checked member of this space (errors name the field)."""
        arch = Architecture.from_json(text)
        self.check(arch)
        return arch

    def size(self) -> int:
        """Number of distinct architectures (genotypes hold only active blocks, so no double count)."""
        c = self.config
        per_block = len(c.kernel_sizes) * len(c.expand_ratios)
        per_stage = sum(per_block ** d for d in c.depths)
        return len(c.resolutions) * len(c.width_mults) * per_stage ** c.num_stages

    # -- canonical members ------------------------------------------------------------------------
    def _uniform(self, resolution: int, width: float, depth: int, kernel: int, expand: int) -> Architecture:
        n = self.config.num_stages
        return Architecture(resolution, width, (depth,) * n, ((kernel,) * depth,) * n, ((expand,) * depth,) * n)

    def largest(self) -> Architecture:
        c = self.config
        return self._uniform(c.resolutions[-1], c.width_mults[-1], c.depths[-1], c.kernel_sizes[-1],
                             c.expand_ratios[-1])

    def smallest(self) -> Architecture:
        c = self.config
        return self._uniform(c.resolutions[0], c.width_mults[0], c.depths[0], c.kernel_sizes[0],
                             c.expand_ratios[0])

    # -- search operators -------------------------------------------------------------------------
    def sample(self, rng: random.Random | int | None = None) -> Architecture:
        rng = as_rng(rng)
        c = self.config
        resolution = rng.choice(c.resolutions)
        width = rng.choice(c.width_mults)
        depths = tuple(rng.choice(c.depths) for _ in range(c.num_stages))
        kernels = tuple(tuple(rng.choice(c.kernel_sizes) for _ in range(d)) for d in depths)
        expands = tuple(tuple(rng.choice(c.expand_ratios) for _ in range(d)) for d in depths)
        return Architecture(resolution, width, depths, kernels, expands)

    def mutate(self, arch: Architecture, rng: random.Random | int | None = None, prob: float = 0.1) -> Architecture:
        """Resample each gene (resolution, width, each depth, each block's kernel and expand ratio)
        with probability `prob`. Blocks a deeper stage gains are sampled fresh."""
        if not 0.0 <= prob <= 1.0:
            raise ArchSpaceError(f"mutate: prob must be in [0, 1], got {prob}")
        self.check(arch)
        rng = as_rng(rng)
        c = self.config
        resolution = rng.choice(c.resolutions) if rng.random() < prob else arch.resolution
        width = rng.choice(c.width_mults) if rng.random() < prob else arch.width_mult
        depths, kernels, expands = [], [], []
        for s in range(c.num_stages):
            depth = rng.choice(c.depths) if rng.random() < prob else arch.depths[s]
            ks, es = [], []
            for b in range(depth):
                if b < arch.depths[s]:
                    k, e = arch.kernel_sizes[s][b], arch.expand_ratios[s][b]
                    k = rng.choice(c.kernel_sizes) if rng.random() < prob else k
                    e = rng.choice(c.expand_ratios) if rng.random() < prob else e
                else:
                    k, e = rng.choice(c.kernel_sizes), rng.choice(c.expand_ratios)
                ks.append(k)
                es.append(e)
            depths.append(depth)
            kernels.append(tuple(ks))
            expands.append(tuple(es))
        return Architecture(resolution, width, tuple(depths), tuple(kernels), tuple(expands))

    def crossover(self, a: Architecture, b: Architecture, rng: random.Random | int | None = None) -> Architecture:
        """Uniform crossover gene by gene; a block present in only one parent comes from that parent."""
        self.check(a)
        self.check(b)
        rng = as_rng(rng)
        pick = lambda x, y: x if rng.random() < 0.5 else y  # noqa: E731
        depths, kernels, expands = [], [], []
        for s in range(self.config.num_stages):
            depth = pick(a.depths[s], b.depths[s])
            ks, es = [], []
            for i in range(depth):
                donors = [p for p in (a, b) if i < p.depths[s]]
                donor = donors[0] if len(donors) == 1 else pick(a, b)
                ks.append(donor.kernel_sizes[s][i])
                es.append(donor.expand_ratios[s][i])
            depths.append(depth)
            kernels.append(tuple(ks))
            expands.append(tuple(es))
        return Architecture(pick(a.resolution, b.resolution), pick(a.width_mult, b.width_mult),
                            tuple(depths), tuple(kernels), tuple(expands))

    # -- channel plan (used by the supernet and the layer statistics) ------------------------------
    def stem_channels(self, width: float) -> int:
        return make_divisible(self.config.stem_channels * width)

    def stage_channels(self, width: float) -> tuple[int, ...]:
        return tuple(make_divisible(ch * width) for ch in self.config.stage_channels)
