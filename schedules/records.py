"""Plain records that cross wing boundaries: `LayerWorkload`, `ScheduleConfig`, `Measurement`.

`costmodels/` reads these records but must not import the TVM machinery of `schedules/`
(see DESIGN.md), so this module imports nothing heavier than the standard library. Every record
is a frozen dataclass with `to_json()` / `from_json()` and a round-trip that is exact.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from nacos_base.errors import UserError
from nacos_base.records import Status

__all__ = [
    "OP_KINDS",
    "LOOP_ORDERS",
    "VECTORIZE_CHOICES",
    "PARALLEL_CHOICES",
    "LayerWorkload",
    "ScheduleConfig",
    "Measurement",
    "RecordError",
]

#: Op kinds a tunable workload can have. "elementwise" is a fused injective / reduction task.
OP_KINDS = ("conv2d", "depthwise_conv2d", "pointwise_conv2d", "dense", "elementwise", "other")

#: Loop orders of the explicit schedule space, outer to inner over the tiled output axes
#: (o = output channel, h = output row, w = output column); the reduction loop sits inside.
LOOP_ORDERS = ("ohw", "owh", "hwo", "how", "who", "woh")
VECTORIZE_CHOICES = ("none", "oc", "ow")
PARALLEL_CHOICES = ("none", "outer", "outer2")


class RecordError(UserError):
    """A record could not be built or decoded; the message names the field."""


def _tuplify(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_tuplify(v) for v in value)
    return value


def _from_mapping(cls: type, data: Mapping[str, Any]) -> Any:
    if not isinstance(data, Mapping):
        raise RecordError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise RecordError(f"{cls.__name__}: unknown field(s) {unknown}")
    try:
        return cls(**{k: _tuplify(v) for k, v in data.items()})
    except TypeError as exc:  # missing required fields
        raise RecordError(f"{cls.__name__}: {exc}") from exc


class _JsonRecord:
    """Mixin: `to_dict` / `to_json` / `from_dict` / `from_json` for a frozen dataclass."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):  # noqa: ANN206 - returns cls
        return _from_mapping(cls, data)

    @classmethod
    def from_json(cls, text: str):  # noqa: ANN206
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{cls.__name__}: malformed JSON: {exc}") from exc
        return _from_mapping(cls, data)


@dataclass(frozen=True)
class LayerWorkload(_JsonRecord):
    """One tunable task of a compiled network, keyed by its structural hash.

    Two architectures that contain the same layer shape produce the same `structural_hash`, which is
    what lets a tuning record serve every architecture that contains it. A workload at another batch
    size is another workload (the batch is part of the shapes and therefore of the hash).
    """

    name: str
    op_kind: str
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    dtype: str = "float32"
    structural_hash: str = ""
    count: int = 1
    macs: int = 0
    bytes: int = 0
    #: Convolution attributes (kernel h, w; stride h, w; groups); zeros / ones when not a conv.
    kernel: tuple[int, int] = (0, 0)
    strides: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        if self.op_kind not in OP_KINDS:
            raise RecordError(f"LayerWorkload.op_kind: unknown op kind {self.op_kind!r}; expected one of {OP_KINDS}")
        if self.count < 1:
            raise RecordError(f"LayerWorkload.count: must be >= 1, got {self.count}")
        if self.macs < 0 or self.bytes < 0:
            raise RecordError("LayerWorkload.macs / bytes: must be >= 0")

    @property
    def batch(self) -> int:
        return int(self.output_shape[0]) if self.output_shape else 1

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs (2 per MAC) per byte moved; 0 when no bytes are known."""
        return 2.0 * self.macs / self.bytes if self.bytes else 0.0


@dataclass(frozen=True)
class ScheduleConfig(_JsonRecord):
    """One point of the project's explicit schedule space for conv2d / dense (NAAS-style).

    The record only; the space that enumerates, samples, checks and applies it lives in
    `schedules/` (it needs TVM). Tiles are the inner tile extents of the output channel, output row,
    output column and reduction (input channel) axes; 1 means "not tiled".
    """

    tile_oc: int = 8
    tile_oh: int = 1
    tile_ow: int = 4
    tile_ic: int = 4
    loop_order: str = "ohw"
    inline_pad: bool = True
    fuse_epilogue: bool = True
    vectorize: str = "oc"
    parallel: str = "outer"
    unroll: int = 0

    #: Names of the entries of `to_vector()`, fixed and versioned with the record.
    VECTOR_VERSION = 1

    def __post_init__(self) -> None:
        for name in ("tile_oc", "tile_oh", "tile_ow", "tile_ic"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise RecordError(f"ScheduleConfig.{name}: must be a positive int, got {value!r}")
        if self.loop_order not in LOOP_ORDERS:
            raise RecordError(f"ScheduleConfig.loop_order: {self.loop_order!r} not in {LOOP_ORDERS}")
        if self.vectorize not in VECTORIZE_CHOICES:
            raise RecordError(f"ScheduleConfig.vectorize: {self.vectorize!r} not in {VECTORIZE_CHOICES}")
        if self.parallel not in PARALLEL_CHOICES:
            raise RecordError(f"ScheduleConfig.parallel: {self.parallel!r} not in {PARALLEL_CHOICES}")
        if not isinstance(self.unroll, int) or self.unroll < 0:
            raise RecordError(f"ScheduleConfig.unroll: must be an int >= 0, got {self.unroll!r}")

    @staticmethod
    def vector_names() -> tuple[str, ...]:
        return (
            ("log2_tile_oc", "log2_tile_oh", "log2_tile_ow", "log2_tile_ic")
            + tuple(f"order_{o}" for o in LOOP_ORDERS)
            + ("inline_pad", "fuse_epilogue")
            + tuple(f"vec_{v}" for v in VECTORIZE_CHOICES)
            + tuple(f"par_{p}" for p in PARALLEL_CHOICES)
            + ("log2_unroll_p1",)
        )

    def to_vector(self) -> tuple[float, ...]:
        """Fixed-length numeric encoding (log2 tiles, one-hot choices) for cost models and genomes."""
        return (
            math.log2(self.tile_oc),
            math.log2(self.tile_oh),
            math.log2(self.tile_ow),
            math.log2(self.tile_ic),
            *(float(self.loop_order == o) for o in LOOP_ORDERS),
            float(self.inline_pad),
            float(self.fuse_epilogue),
            *(float(self.vectorize == v) for v in VECTORIZE_CHOICES),
            *(float(self.parallel == p) for p in PARALLEL_CHOICES),
            math.log2(self.unroll + 1),
        )


@dataclass(frozen=True)
class Measurement(_JsonRecord):
    """A latency measured by a stated protocol. Failures are data: `status="failed"` with `error`. The
    status is one of `nacos_base.records.Status`'s values, kept a plain `str` so a record read back from
    JSON is equal to, and hashes like, the one that was written."""

    median_ms: float
    mean_ms: float
    std_ms: float
    p95_ms: float
    min_ms: float
    runs: int
    warmup: int
    repeats: int
    number: int = 1
    batch: int = 1
    target: str = "llvm"
    backend: str = "tvm"
    threads: int = 0
    status: str = Status.OK.value
    error: str = ""
    versions: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def failed(cls, error: str, *, backend: str = "tvm", target: str = "llvm", batch: int = 1) -> "Measurement":
        nan = float("nan")
        return cls(nan, nan, nan, nan, nan, 0, 0, 0, batch=batch, target=target, backend=backend,
                   status=Status.FAILED.value, error=error)

    @property
    def ok(self) -> bool:
        return self.status == Status.OK.value
