"""The compute layers of an architecture, named by their place in the network (a "slot").

A slot name is stable across architectures (``s2b1.dw`` is always the depthwise conv of block 1 of
stage 2), which lets a one-stage genome keep a schedule per layer through mutations of the
architecture, and lets a layer be matched with the compiler's workload by its shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from archspace.architecture import Architecture
from archspace.space import ArchSpace, make_divisible

__all__ = ["ConvLayer", "conv_layers"]


@dataclass(frozen=True)
class ConvLayer:
    slot: str
    kind: str           # conv2d | depthwise_conv2d | pointwise_conv2d | dense
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    in_size: int        # input height = width (1 for dense)

    @property
    def out_size(self) -> int:
        return (self.in_size + 2 * (self.kernel // 2) - self.kernel) // self.stride + 1

    @property
    def macs(self) -> int:
        """MACs at batch 1."""
        return self.out_channels * self.out_size ** 2 * (self.in_channels // self.groups) * self.kernel ** 2


def conv_layers(arch: Architecture, space: ArchSpace | None = None, in_channels: int = 1,
                num_classes: int = 10) -> list[ConvLayer]:
    """Every conv / dense layer of `arch`, in execution order, with its slot name and shape."""
    space = space or ArchSpace()
    c = space.config
    layers: list[ConvLayer] = []
    size = arch.resolution
    stem = space.stem_channels(arch.width_mult)
    layers.append(ConvLayer("stem", "conv2d", in_channels, stem, 3, c.stem_stride, 1, size))
    size = layers[-1].out_size
    prev = stem
    for s, (out, stride) in enumerate(zip(space.stage_channels(arch.width_mult), c.stage_strides)):
        for b in range(arch.depths[s]):
            mid = make_divisible(prev * arch.expand_ratios[s][b])
            k, st = arch.kernel_sizes[s][b], stride if b == 0 else 1
            layers.append(ConvLayer(f"s{s}b{b}.expand", "pointwise_conv2d", prev, mid, 1, 1, 1, size))
            layers.append(ConvLayer(f"s{s}b{b}.dw", "depthwise_conv2d", mid, mid, k, st, mid, size))
            size = layers[-1].out_size
            layers.append(ConvLayer(f"s{s}b{b}.project", "pointwise_conv2d", mid, out, 1, 1, 1, size))
            prev = out
    layers.append(ConvLayer("head", "pointwise_conv2d", prev, c.head_channels, 1, 1, 1, size))
    layers.append(ConvLayer("classifier", "dense", c.head_channels, num_classes, 1, 1, 1, 1))
    return layers
