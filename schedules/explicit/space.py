"""The project's explicit schedule space for conv2d (regular, depthwise, pointwise) and dense (NAAS-style).

A `ScheduleConfig` (see `schedules.records`) chooses tile sizes of the output-channel, output-row,
output-column and reduction axes, the loop order of the tiled outer loops, whether the padding is
inlined and the bias / activation epilogue fused into the conv's tile, which loop is vectorised and
which outer loops are parallelised, and an unroll factor. `ScheduleSpace` enumerates, samples,
mutates and crosses such configs; `check_fits` says why a config does not fit a layer's shape;
`GlobalPolicy` is one rule applied to every layer of a network (the survey's "schedule 1 / 2").

This module needs no TVM; applying a config to a TensorIR function is `schedules.explicit.apply`.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass
from typing import Iterator

from nacos_base.errors import UserError
from schedules.records import LOOP_ORDERS, PARALLEL_CHOICES, VECTORIZE_CHOICES, ScheduleConfig

__all__ = ["ScheduleSpace", "LayerShape", "check_fits", "fits", "GlobalPolicy", "ConfigDoesNotFit", "contiguous_axis",
           "largest_divisor_at_most", "VECTOR_LANES", "MIN_LANES"]


class ConfigDoesNotFit(UserError):
    """A `ScheduleConfig` that cannot schedule a layer; the message says which choice and why."""


@dataclass(frozen=True)
class LayerShape:
    """The loop extents a schedule tiles: output channels, rows, columns and the reduction (input
    channels per group; 1 for a depthwise conv). A dense layer has rows = columns = 1."""

    kind: str            # conv2d | depthwise_conv2d | pointwise_conv2d | dense
    out_channels: int
    out_h: int = 1
    out_w: int = 1
    reduction: int = 1

    @property
    def is_matvec(self) -> bool:
        """One output position per channel (a 1x1 map, or dense at batch 1): a matrix-vector product."""
        return self.out_h * self.out_w == 1

    @classmethod
    def of_workload(cls, w) -> "LayerShape":
        """From a `LayerWorkload` (NCHW output; input channels from the first input shape)."""
        n, c, h, wd = (tuple(w.output_shape) + (1, 1, 1, 1))[:4] if len(w.output_shape) == 4 else (
            w.output_shape[0], w.output_shape[-1], 1, 1)
        cin = w.input_shapes[0][1] if w.input_shapes and len(w.input_shapes[0]) > 1 else 1
        if w.op_kind == "dense":
            cin = w.input_shapes[0][-1] if w.input_shapes else 1
        reduction = 1 if w.op_kind == "depthwise_conv2d" else max(1, cin // max(1, w.groups))
        return cls(w.op_kind, int(c), int(h), int(wd), int(reduction))


def check_fits(config: ScheduleConfig, shape: LayerShape) -> None:
    """Raise `ConfigDoesNotFit` naming the choice that does not fit `shape`.

    Tiles must divide their axis (a ragged tile would put a predicate in the vectorised loop)."""
    axes = (("tile_oc", shape.out_channels), ("tile_oh", shape.out_h), ("tile_ow", shape.out_w),
            ("tile_ic", shape.reduction))
    for name, extent in axes:
        tile = getattr(config, name)
        if tile > extent:
            raise ConfigDoesNotFit(f"{name}={tile} exceeds the {shape.kind} axis extent {extent}")
        if extent % tile:
            raise ConfigDoesNotFit(f"{name}={tile} does not divide the {shape.kind} axis extent {extent}")
    if shape.kind == "dense" and config.vectorize == "ow":
        raise ConfigDoesNotFit("vectorize='ow': a dense layer has no output columns to vectorise")


def largest_divisor_at_most(extent: int, limit: int) -> int:
    """The largest tile <= `limit` that divides `extent` (any divisor: 96 channels take 8, 16 or 32,
    a 14-wide map takes 14 and a 7-wide one 7, where powers of two alone would leave 2 and 1)."""
    for t in range(max(1, min(extent, limit)), 0, -1):
        if extent % t == 0:
            return t
    return 1


#: fp32 lanes a vector loop is widened to (one AVX-512 register; two AVX2 ones)
VECTOR_LANES = 16
#: fewest lanes worth a vector loop: narrower vectorised tiles are widened by `GlobalPolicy`
MIN_LANES = 8


def contiguous_axis(shape: LayerShape) -> str:
    """The `vectorize` choice whose lanes read contiguous memory on this layer.

    NCHW data and OIHW weights: on a conv with an output map the columns (``"ow"``) are contiguous,
    while output channels are a whole map (data) or ``C_in * k * k`` (weights) apart. On a pointwise
    conv over a 1x1 map ``"ow"`` is the rfactor template over input channels (contiguous weight rows,
    see `schedules.explicit.apply`). A dense layer's weights are (K, N): output channels (``"oc"``)
    are contiguous. A depthwise conv on a map of fewer than `MIN_LANES` positions has too few columns
    for a vector, so it vectorises over channels."""
    if shape.kind == "dense":
        return "oc"
    if shape.is_matvec:
        return "ow" if shape.kind == "pointwise_conv2d" else "oc"
    if shape.kind == "depthwise_conv2d" and shape.out_h * shape.out_w < MIN_LANES:
        return "oc"
    return "ow"


@dataclass(frozen=True)
class GlobalPolicy:
    """One rule for every layer of a network: the config's choices, each tile clamped to the largest
    divisor of the layer's axis (so the rule fits every layer).

    With ``adapt`` (the default), the rule is also read per shape kind where the literal choice is
    known to be pathological: the vectorised axis becomes the layer's contiguous one
    (`contiguous_axis`; a strided vector on OIHW weights or NCHW maps ran 5 to 40 times slower here)
    and a vector loop narrower than `MIN_LANES` lanes is widened to up to `VECTOR_LANES` where the
    axis allows it (whole rows of a small map fused into one vector). ``vectorize="none"``, the loop
    order, the non-vector tiles, padding, epilogue, parallel and unroll choices stay the config's."""

    config: ScheduleConfig
    adapt: bool = True

    def for_layer(self, shape: LayerShape) -> ScheduleConfig:
        c = self.config
        out = dataclasses.replace(
            c,
            tile_oc=largest_divisor_at_most(shape.out_channels, c.tile_oc),
            tile_oh=largest_divisor_at_most(shape.out_h, c.tile_oh),
            tile_ow=largest_divisor_at_most(shape.out_w, c.tile_ow),
            tile_ic=largest_divisor_at_most(shape.reduction, c.tile_ic),
            vectorize="oc" if shape.kind == "dense" and c.vectorize == "ow" else c.vectorize,
        )
        if self.adapt and out.vectorize != "none":
            out = _widen_vector(dataclasses.replace(out, vectorize=contiguous_axis(shape)), shape)
        check_fits(out, shape)
        return out

    def to_json(self) -> str:
        return self.config.to_json()


def _widen_vector(c: ScheduleConfig, shape: LayerShape) -> ScheduleConfig:
    """`c` with its vectorised tile at least `MIN_LANES` wide where the layer's axis allows."""
    def wide(extent: int, tile: int, lanes: int = VECTOR_LANES) -> int:
        return tile if tile >= MIN_LANES else max(tile, largest_divisor_at_most(extent, lanes))

    if c.vectorize == "oc":
        return dataclasses.replace(c, tile_oc=wide(shape.out_channels, c.tile_oc))
    if shape.is_matvec:   # rfactor over input channels: the lanes are tile_ic
        return dataclasses.replace(c, tile_ic=wide(shape.reduction, c.tile_ic, MIN_LANES))
    tile_ow = wide(shape.out_w, c.tile_ow)
    tile_oh = c.tile_oh
    if tile_ow == shape.out_w and tile_oh * tile_ow < MIN_LANES:   # whole rows: fuse more of them
        tile_oh = largest_divisor_at_most(shape.out_h, max(tile_oh, VECTOR_LANES // tile_ow))
    return dataclasses.replace(c, tile_ow=tile_ow, tile_oh=tile_oh)


@dataclass(frozen=True)
class ScheduleSpace:
    """Choice lists of the explicit space (defaults sized for small CPU layers)."""

    # Divisors of the channel counts (multiples of 8: 24, 40, 96, 120, 144, 240, 960) and map sizes
    # (32, 28, 16, 14, 8, 7, 4, 2, 1) of the networks here; a tile must divide its axis, so without
    # 7 and 14 a 7x7 or 14x14 map could only be tiled by 1 (or 2) when sampled for its shape.
    tile_oc: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32)
    tile_oh: tuple[int, ...] = (1, 2, 4, 7, 8, 14, 16)
    tile_ow: tuple[int, ...] = (1, 2, 4, 7, 8, 14, 16)
    tile_ic: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32)
    loop_order: tuple[str, ...] = LOOP_ORDERS
    inline_pad: tuple[bool, ...] = (True, False)
    fuse_epilogue: tuple[bool, ...] = (True, False)
    vectorize: tuple[str, ...] = VECTORIZE_CHOICES
    parallel: tuple[str, ...] = PARALLEL_CHOICES
    unroll: tuple[int, ...] = (0, 16, 64)

    def _fields(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]

    def size(self) -> int:
        n = 1
        for name in self._fields():
            n *= len(getattr(self, name))
        return n

    def enumerate(self, shape: LayerShape | None = None) -> Iterator[ScheduleConfig]:
        """Every config of the space (only those that fit `shape` when given), in a fixed order."""
        names = self._fields()
        for values in itertools.product(*(getattr(self, n) for n in names)):
            config = ScheduleConfig(**dict(zip(names, values)))
            if shape is None or fits(config, shape):
                yield config

    def sample(self, rng: random.Random | int | None = None, shape: LayerShape | None = None) -> ScheduleConfig:
        """A uniform sample (rejection-sampled to fit `shape` when given)."""
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        for _ in range(1000):
            config = ScheduleConfig(**{n: rng.choice(getattr(self, n)) for n in self._fields()})
            if shape is None or fits(config, shape):
                return config
        return GlobalPolicy(ScheduleConfig(**{n: rng.choice(getattr(self, n)) for n in self._fields()})
                            ).for_layer(shape)

    def mutate(self, config: ScheduleConfig, rng: random.Random | int | None = None,
               prob: float = 0.2) -> ScheduleConfig:
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        return ScheduleConfig(**{n: rng.choice(getattr(self, n)) if rng.random() < prob else getattr(config, n)
                                 for n in self._fields()})

    def crossover(self, a: ScheduleConfig, b: ScheduleConfig, rng: random.Random | int | None = None) -> ScheduleConfig:
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        return ScheduleConfig(**{n: getattr(a if rng.random() < 0.5 else b, n) for n in self._fields()})


def fits(config: ScheduleConfig, shape: LayerShape) -> bool:
    try:
        check_fits(config, shape)
    except ConfigDoesNotFit:
        return False
    return True
