"""Analytical `LayerWorkload` builders: MACs, bytes and parameters of conv2d / dense / pooling /
elementwise layers computed from their shapes.

These are the hand-checkable figures the memory, energy and roofline models build on, and the way a
user (or a test) describes a network without TVM. Shapes are NCHW; bytes count every input, the
weights and the output once, at the dtype's element size.
"""

from __future__ import annotations

import math
from typing import Sequence

from costmodels.errors import CostModelError
from schedules.records import OP_KINDS, LayerWorkload

__all__ = [
    "DTYPE_BYTES",
    "conv2d_workload",
    "dense_workload",
    "pool2d_workload",
    "elementwise_workload",
    "conv_output_hw",
    "layer_params",
    "output_elements",
    "check_op_kind",
]

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1, "int32": 4, "float64": 8}


def check_op_kind(op_kind: str) -> str:
    if op_kind not in OP_KINDS:
        raise CostModelError(f"unknown op kind {op_kind!r}; expected one of {OP_KINDS}")
    return op_kind


def _dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise CostModelError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPE_BYTES)}") from None


def _prod(xs: Sequence[int]) -> int:
    return int(math.prod(int(x) for x in xs))


def output_elements(w: LayerWorkload) -> int:
    return _prod(w.output_shape)


def conv_output_hw(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int],
                   padding: tuple[int, int]) -> tuple[int, int]:
    oh = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
    ow = (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    if oh < 1 or ow < 1:
        raise CostModelError(f"conv of {h}x{w} with kernel {kernel}, stride {stride}, padding {padding} is empty")
    return oh, ow


def _pair(x: int | tuple[int, int]) -> tuple[int, int]:
    return (int(x), int(x)) if isinstance(x, int) else (int(x[0]), int(x[1]))


def conv2d_workload(name: str, input_shape: Sequence[int], out_channels: int, kernel: int | tuple[int, int],
                    stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0, groups: int = 1,
                    *, bias: bool = True, dtype: str = "float32", count: int = 1) -> LayerWorkload:
    """A conv2d over an NCHW input. MACs = output elements x (C_in / groups) x kh x kw."""
    n, c, h, w = (int(x) for x in input_shape)
    k, s, p = _pair(kernel), _pair(stride), _pair(padding)
    if groups < 1 or c % groups or out_channels % groups:
        raise CostModelError(f"groups={groups} must divide in_channels={c} and out_channels={out_channels}")
    oh, ow = conv_output_hw(h, w, k, s, p)
    out_shape = (n, int(out_channels), oh, ow)
    weight_shape = (int(out_channels), c // groups, k[0], k[1])
    macs = _prod(out_shape) * (c // groups) * k[0] * k[1]
    eb = _dtype_bytes(dtype)
    nbytes = eb * (_prod(input_shape) + _prod(weight_shape) + (out_channels if bias else 0) + _prod(out_shape))
    if groups == c and groups == out_channels and groups > 1:
        kind = "depthwise_conv2d"
    elif k == (1, 1) and groups == 1:
        kind = "pointwise_conv2d"
    else:
        kind = "conv2d"
    return LayerWorkload(name=name, op_kind=kind, input_shapes=(tuple(int(x) for x in input_shape), weight_shape),
                         output_shape=out_shape, dtype=dtype,
                         structural_hash=f"{kind}:{input_shape}:{weight_shape}:{s}:{p}:{groups}",
                         count=count, macs=macs, bytes=nbytes, kernel=k, strides=s, groups=groups)


def dense_workload(name: str, batch: int, in_features: int, out_features: int, *, bias: bool = True,
                   dtype: str = "float32", count: int = 1) -> LayerWorkload:
    """A fully connected layer. MACs = batch x in x out."""
    eb = _dtype_bytes(dtype)
    weight_shape = (int(out_features), int(in_features))
    macs = int(batch) * int(in_features) * int(out_features)
    nbytes = eb * (batch * in_features + in_features * out_features + (out_features if bias else 0)
                   + batch * out_features)
    return LayerWorkload(name=name, op_kind="dense", input_shapes=((int(batch), int(in_features)), weight_shape),
                         output_shape=(int(batch), int(out_features)), dtype=dtype,
                         structural_hash=f"dense:{batch}:{in_features}:{out_features}", count=count,
                         macs=macs, bytes=nbytes)


def pool2d_workload(name: str, input_shape: Sequence[int], kernel: int | tuple[int, int],
                    stride: int | tuple[int, int] | None = None, padding: int | tuple[int, int] = 0,
                    *, dtype: str = "float32", count: int = 1) -> LayerWorkload:
    """Max / average pooling ("other"); its "MACs" are the kh x kw reads-and-combines per output."""
    n, c, h, w = (int(x) for x in input_shape)
    k = _pair(kernel)
    s = _pair(stride if stride is not None else kernel)
    oh, ow = conv_output_hw(h, w, k, s, _pair(padding))
    out_shape = (n, c, oh, ow)
    eb = _dtype_bytes(dtype)
    return LayerWorkload(name=name, op_kind="other", input_shapes=(tuple(int(x) for x in input_shape),),
                         output_shape=out_shape, dtype=dtype, structural_hash=f"pool:{input_shape}:{k}:{s}",
                         count=count, macs=_prod(out_shape) * k[0] * k[1],
                         bytes=eb * (_prod(input_shape) + _prod(out_shape)), kernel=k, strides=s)


def elementwise_workload(name: str, shape: Sequence[int], n_inputs: int = 1, *, dtype: str = "float32",
                         count: int = 1) -> LayerWorkload:
    """An injective op (add, relu, ...) over `n_inputs` tensors of `shape`; one MAC-equivalent per output."""
    shape = tuple(int(x) for x in shape)
    eb = _dtype_bytes(dtype)
    return LayerWorkload(name=name, op_kind="elementwise", input_shapes=(shape,) * n_inputs, output_shape=shape,
                         dtype=dtype, structural_hash=f"ew:{shape}:{n_inputs}", count=count,
                         macs=_prod(shape) * max(0, n_inputs - 1), bytes=eb * _prod(shape) * (n_inputs + 1))


def layer_params(w: LayerWorkload, *, bias: bool = True) -> int:
    """Trainable parameters of a conv / dense workload (weights from its second input, plus bias);
    0 for pooling and elementwise ops."""
    if w.op_kind in ("conv2d", "depthwise_conv2d", "pointwise_conv2d", "dense"):
        if len(w.input_shapes) < 2:
            raise CostModelError(f"{w.name}: a {w.op_kind} workload needs its weight shape as second input")
        weight = w.input_shapes[1]
        out_channels = int(w.output_shape[1]) if len(w.output_shape) >= 2 else int(weight[0])
        return _prod(weight) + (out_channels if bias else 0)
    return 0
