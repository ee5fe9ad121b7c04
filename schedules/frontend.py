"""ONNX -> Relax, and the tunable workloads of a Relax module.

`import_onnx` checks the model with `onnx.checker` (TVM's frontend only warns), imports it with static
input shapes, decomposes BatchNorm for inference, legalizes every op to TensorIR and fuses
(elementwise epilogues into their conv / matmul). The result is what MetaSchedule extracts tasks from
and what `compile` builds, so a workload's structural hash is the key its tuning records are stored
under.

`extract_workloads` lists those tasks as `LayerWorkload` records: op kind, shapes, dtype, structural
hash, how many times the module calls it, MACs and bytes moved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from schedules.errors import ScheduleError
from schedules.records import LayerWorkload

__all__ = ["MAX_INPUT_ELEMENTS", "extract_tasks", "extract_workloads", "import_onnx", "onnx_input_shapes",
           "workload_of_task"]

#: the largest input tensor `import_onnx` takes (elements): TVM's int32 buffer indexing, 8 GiB at fp32
MAX_INPUT_ELEMENTS = 2**31 - 1


def onnx_input_shapes(path: str | Path, batch: int = 1) -> dict[str, tuple[int, ...]]:
    """Static input shapes of an ONNX model (graph inputs that are not initializers); a symbolic
    leading (batch) dimension is taken as `batch`, any other symbolic dimension is refused."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    shapes = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = list(inp.type.tensor_type.shape.dim)
        if dims and not dims[0].HasField("dim_value"):
            dims[0] = onnx.TensorShapeProto.Dimension(dim_value=batch)
        if any(not d.HasField("dim_value") for d in dims):
            raise ScheduleError(f"{path}: input {inp.name!r} has a dynamic dimension; pass input_shapes")
        shapes[inp.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def import_onnx(path: str | Path, input_shapes: Mapping[str, Sequence[int]] | None = None, *,
                numpy_folding: bool = True) -> Any:
    """A fused, legalized Relax `IRModule` of the ONNX model at `path`.

    `input_shapes` maps input names to static shapes (default: the model's own; give another batch
    size here: a workload at another batch is another workload). `numpy_folding`: see `_lower`. Raises
    `ScheduleError` when the file does not pass `onnx.checker` or an input name is unknown."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    path = Path(path)
    if not path.is_file():
        raise ScheduleError(f"{path}: no such ONNX file")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx raises several types (ValidationError, DecodeError, InferenceError)
        raise ScheduleError(f"{path}: not a valid ONNX model: {str(exc).splitlines()[0][:300]}") from exc
    own = onnx_input_shapes(path) if input_shapes is None or len(input_shapes) == 0 else {}
    shapes = {k: tuple(int(d) for d in v) for k, v in (input_shapes or own).items()}
    for name, shape in shapes.items():
        n = math.prod(shape)
        if n > MAX_INPUT_ELEMENTS or any(d < 0 for d in shape):
            raise ScheduleError(f"{path}: input {name!r} of shape {shape} ({n} elements) is refused: at most "
                                f"{MAX_INPUT_ELEMENTS} elements per input (TVM indexes buffers with int32, and "
                                f"measuring allocates the input)")
    if input_shapes:
        known = set(onnx_input_shapes_names(path))
        unknown = sorted(set(shapes) - known)
        if unknown:
            raise ScheduleError(f"{path}: unknown input(s) {unknown}; the model's inputs are {sorted(known)}")
    model = onnx.load(str(path))
    try:
        mod = from_onnx(model, shape_dict={k: list(v) for k, v in shapes.items()}, keep_params_in_input=False)
    except Exception as exc:  # OpNotImplemented, TVMError, ValueError, ...: the model is what TVM cannot take
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        why = lines[-1][:300] if lines else ""   # TVM errors end with the message, after a traceback
        raise ScheduleError(f"{path}: TVM's ONNX frontend cannot import it ({type(exc).__name__}: {why})") from exc
    return _lower(mod, numpy_folding=numpy_folding)


def _lower(mod: Any, *, numpy_folding: bool = True) -> Any:
    """The fused, legalized module of an imported Relax `mod`. `numpy_folding`: fold the frontend's
    computations on constants in numpy first (`schedules.constant_folding`: same tasks, seconds faster);
    False is TVM's own `FoldConstant` alone (what the tests compare with)."""
    import tvm
    from tvm import relax

    from schedules.constant_folding import fold_constants

    mod = relax.transform.DecomposeOpsForInference()(mod)
    if numpy_folding:
        mod = fold_constants(mod)
    seq = tvm.transform.Sequential([
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ])
    return seq(mod)


def onnx_input_shapes_names(path: str | Path) -> list[str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def extract_tasks(mod: Any, target: Any) -> list[Any]:
    """MetaSchedule's `ExtractedTask`s of `mod` (one per structurally distinct PrimFunc)."""
    from tvm.s_tir import meta_schedule as ms

    return list(ms.relax_integration.extract_tasks(mod, target))


def _shape(info) -> tuple[int, ...]:
    return tuple(int(s) for s in info.shape)


def _nbytes(info) -> int:
    import numpy as np

    n = 1
    for s in info.shape:
        n *= int(s)
    return n * np.dtype(str(info.dtype)).itemsize


def workload_of_task(task: Any) -> LayerWorkload:
    """The `LayerWorkload` record of one extracted task."""
    import tvm_ffi

    from schedules.explicit.apply import layer_shape_of, main_block_kind

    mod = task.dispatched[0]
    func = mod["main"]
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    bufs = list(ArgInfo.from_prim_func(func))
    if not bufs:
        raise ScheduleError(f"task {task.task_name}: a PrimFunc without buffer parameters")
    inputs, output = bufs[:-1], bufs[-1]
    found = main_block_kind(func)
    kernel, strides, groups, macs = (0, 0), (1, 1), 1, 0
    if found is None:
        op_kind = "elementwise"
    else:
        shape = layer_shape_of(func)
        op_kind = shape.kind
        import tvm

        sch = tvm.s_tir.Schedule(func)
        extents = [int(sch.get(loop).extent) for loop in sch.get_loops(sch.get_sblock(found[0]))]
        macs = 1
        for e in extents:
            macs *= e
        if op_kind != "dense" and len(inputs) >= 2 and len(_shape(inputs[1])) == 4:
            data, weight = _shape(inputs[0]), _shape(inputs[1])
            kernel = (weight[2], weight[3])
            groups = max(1, data[1] // max(1, weight[1]))
            out = _shape(output)
            strides = (max(1, round(data[2] / out[2])), max(1, round(data[3] / out[3])))
    return LayerWorkload(
        name=str(task.task_name), op_kind=op_kind, input_shapes=tuple(_shape(b) for b in inputs),
        output_shape=_shape(output), dtype=str(output.dtype), structural_hash=str(tvm_ffi.structural_hash(mod)),
        count=max(1, int(task.weight)), macs=int(macs), bytes=sum(_nbytes(b) for b in bufs),
        kernel=kernel, strides=strides, groups=groups)


def extract_workloads(mod_or_workloads: Any, target: Any) -> list[LayerWorkload]:
    """The tunable workloads of a Relax module from `import_onnx`, in MetaSchedule's task order; given a
    list of workloads already extracted (a caller that extracts once and passes them on), that list."""
    if isinstance(mod_or_workloads, (list, tuple)):
        return list(mod_or_workloads)
    return [workload_of_task(t) for t in extract_tasks(mod_or_workloads, target)]
