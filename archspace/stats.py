"""Per-layer MACs, parameters and activation bytes, and peak activation memory, read off an ONNX graph.

Counting on the exported graph (after BatchNorm folding and constant folding) rather than on the
PyTorch module means the figures describe what a compiler is actually handed, and the same code
serves any ONNX model, not only the networks of the space.

Peak memory is a liveness walk over the execution order: a tensor is alive from the step of its
producer (graph inputs: from the start) to the step of its last consumer (graph outputs: to the
end); the peak is the largest sum of live tensor bytes over the steps. Weights are not activations
and are reported separately as parameter bytes.
"""

from __future__ import annotations

import functools
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from archspace.architecture import Architecture
from archspace.errors import ArchSpaceError
from archspace.precision import PRECISION_BYTES

__all__ = ["LayerStat", "PeakMemory", "PRECISION_BYTES", "onnx_layer_stats", "peak_memory", "layer_stats",
           "arch_summary"]

ModelLike = Union[str, Path, Any]  # a path or an onnx.ModelProto


def _bytes_per(precision: str) -> int:
    try:
        return PRECISION_BYTES[precision]
    except KeyError:
        raise ArchSpaceError(f"precision: {precision!r} not one of {sorted(PRECISION_BYTES)}") from None


@dataclass(frozen=True)
class LayerStat:
    """One ONNX node: its output shape, MACs, parameter count and (by precision) bytes."""

    name: str
    op_type: str
    output_shape: tuple[int, ...]
    macs: int
    params: int
    input_elements: int = 0   # elements of the activation inputs (weights excluded)

    @property
    def output_elements(self) -> int:
        return int(math.prod(self.output_shape)) if self.output_shape else 0

    def param_bytes(self, precision: str = "fp32") -> int:
        return self.params * _bytes_per(precision)

    def activation_bytes(self, precision: str = "fp32") -> int:
        return self.output_elements * _bytes_per(precision)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "op_type": self.op_type, "output_shape": list(self.output_shape),
                               "macs": self.macs, "params": self.params, "input_elements": self.input_elements}
        for p in PRECISION_BYTES:
            out[f"param_bytes_{p}"] = self.param_bytes(p)
            out[f"activation_bytes_{p}"] = self.activation_bytes(p)
        return out


@dataclass(frozen=True)
class PeakMemory:
    bytes: int
    step: int
    node: str
    live_tensors: tuple[str, ...]


def _load(model: ModelLike):
    import onnx

    where = model if isinstance(model, (str, Path)) else "ONNX model"
    try:
        if isinstance(model, (str, Path)):
            model = onnx.load(str(model))
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # DecodeError, OSError, ValidationError, InferenceError
        why = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise ArchSpaceError(f"{where}: not a readable ONNX model ({why})") from exc


def _refuse_malformed(fn):
    """A graph that loads but is malformed (names that are not text, a node without outputs, an unknown
    element type) is refused with `ArchSpaceError` rather than failing inside the walk."""
    @functools.wraps(fn)
    def wrapper(model: ModelLike, *args: Any, **kwargs: Any):
        try:
            return fn(model, *args, **kwargs)
        except ArchSpaceError:
            raise
        except (TypeError, KeyError, IndexError, ValueError, AttributeError) as exc:
            where = model if isinstance(model, (str, Path)) else "ONNX model"
            raise ArchSpaceError(f"{where}: malformed ONNX graph ({type(exc).__name__}: {str(exc)[:200]})") from exc
    return wrapper


class _Graph:
    """Shapes, element sizes and initializers of an inferred ONNX graph."""

    def __init__(self, model) -> None:
        from onnx import helper

        g = model.graph
        self.nodes = list(g.node)
        self.initializers = {t.name: tuple(t.dims) for t in g.initializer}
        self.init_types = {t.name: t.data_type for t in g.initializer}
        # The legacy exporter emits Identity nodes that alias a shared initializer: their outputs are
        # weights too, neither activations nor extra parameters.
        for node in self.nodes:
            if node.op_type == "Identity" and node.input[0] in self.initializers:
                self.initializers[node.output[0]] = self.initializers[node.input[0]]
                self.init_types[node.output[0]] = self.init_types[node.input[0]]
        # Outputs of Constant nodes (clip bounds, shapes) are compile-time data, not activations.
        self.constants = {out for node in self.nodes if node.op_type == "Constant" for out in node.output}
        self.constants |= set(self.initializers)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.itemsize: dict[str, int] = {}
        self.is_float: dict[str, bool] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            tt = vi.type.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
            if any(d < 0 for d in dims):
                raise ArchSpaceError(f"tensor {vi.name!r}: shape {dims} is not static; export with a fixed shape")
            self.shapes[vi.name] = dims
            dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type) if tt.elem_type else np.dtype(np.float32)
            self.itemsize[vi.name] = np.dtype(dtype).itemsize
            self.is_float[vi.name] = np.issubdtype(dtype, np.floating)
        self.graph_inputs = [i.name for i in g.input if i.name not in self.initializers]
        self.graph_outputs = [o.name for o in g.output]

    def tensor_bytes(self, name: str, precision: str) -> int:
        n = int(math.prod(self.shapes.get(name, ())))
        return n * (_bytes_per(precision) if self.is_float.get(name, True) else self.itemsize.get(name, 4))


def _macs(node, graph: _Graph) -> int:
    out = graph.shapes.get(node.output[0], ())
    out_elems = int(math.prod(out)) if out else 0
    if node.op_type in ("Conv", "ConvTranspose"):
        w = graph.initializers.get(node.input[1]) or graph.shapes.get(node.input[1])
        return out_elems * int(math.prod(w[1:])) if w else 0
    if node.op_type in ("Gemm", "MatMul"):
        a = graph.shapes.get(node.input[0]) or graph.initializers.get(node.input[0])
        if not a:
            return 0
        trans_a = any(att.name == "transA" and att.i for att in node.attribute)
        k = a[-2] if trans_a and node.op_type == "Gemm" else a[-1]
        return out_elems * int(k)
    return 0


@_refuse_malformed
def onnx_layer_stats(model: ModelLike) -> list[LayerStat]:
    """One `LayerStat` per node, in execution order. Parameters are the node's float initializers."""
    from onnx import TensorProto

    graph = _Graph(_load(model))
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
    stats = []
    for i, node in enumerate(graph.nodes):
        params = 0 if node.op_type == "Identity" else sum(
            int(math.prod(graph.initializers[t])) for t in node.input
            if t in graph.initializers and graph.init_types[t] in floats)
        inputs = sum(int(math.prod(graph.shapes[t])) for t in node.input
                     if t and t not in graph.constants and t in graph.shapes)
        stats.append(LayerStat(node.name or f"{node.op_type}_{i}", node.op_type,
                               graph.shapes.get(node.output[0], ()), _macs(node, graph), params, inputs))
    return stats


def _execution_order(graph: _Graph) -> list[int]:
    """The graph's node order when it is topological (ONNX requires it); otherwise a topological
    order that keeps the stored order where it can."""
    import networkx as nx

    dag = nx.DiGraph()
    producer: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        dag.add_node(i)
        for out in node.output:
            producer[out] = i
    for i, node in enumerate(graph.nodes):
        for t in node.input:
            if t in producer:
                dag.add_edge(producer[t], i)
    if not nx.is_directed_acyclic_graph(dag):
        raise ArchSpaceError("ONNX graph has a cycle")
    return list(nx.lexicographical_topological_sort(dag, key=lambda i: i))


@_refuse_malformed
def peak_memory(model: ModelLike, precision: str = "fp32") -> PeakMemory:
    """Peak live activation bytes over the execution order (weights excluded)."""
    graph = _Graph(_load(model))
    order = _execution_order(graph)
    end = len(order)
    start: dict[str, int] = {name: 0 for name in graph.graph_inputs}
    last_use: dict[str, int] = {}
    for step, idx in enumerate(order):
        node = graph.nodes[idx]
        for t in node.input:
            if t and t not in graph.constants:
                last_use[t] = step
        for t in node.output:
            if t and t not in graph.constants:
                start.setdefault(t, step)
    for t in graph.graph_outputs:
        last_use[t] = end
    best = PeakMemory(0, 0, "", ())
    for step, idx in enumerate(order):
        live = [t for t, s in start.items() if s <= step <= last_use.get(t, s)]
        total = sum(graph.tensor_bytes(t, precision) for t in live)
        if total > best.bytes:
            best = PeakMemory(total, step, graph.nodes[idx].name or graph.nodes[idx].op_type, tuple(sorted(live)))
    return best


def layer_stats(arch: Architecture, batch: int = 1, **export_kwargs: Any) -> list[LayerStat]:
    """`onnx_layer_stats` of `arch` exported at `batch` (a temporary file)."""
    return arch_summary(arch, batch, **export_kwargs)["layers"]


def arch_summary(arch: Architecture, batch: int = 1, onnx_path: Path | None = None,
                 **export_kwargs: Any) -> dict[str, Any]:
    """Totals and per-layer statistics of `arch`: MACs, parameters, parameter bytes, peak memory.

    Exports to `onnx_path` (kept) or to a temporary file (removed)."""
    from archspace.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="nacos-") as tmp:
        path = Path(onnx_path) if onnx_path else Path(tmp) / f"{arch.id}.onnx"
        export_onnx(arch, path, batch=batch, **export_kwargs)
        layers = onnx_layer_stats(path)
        peak = {p: peak_memory(path, p).bytes for p in PRECISION_BYTES}
    params = sum(s.params for s in layers)
    return {"id": arch.id, "macs": sum(s.macs for s in layers), "params": params,
            "param_bytes": {p: params * b for p, b in PRECISION_BYTES.items()},
            "peak_memory_bytes": peak["fp32"], "peak_memory_bytes_by_precision": peak, "layers": layers}
