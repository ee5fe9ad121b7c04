"""The tunable workloads of a Relax module: one `LayerWorkload` per MetaSchedule task.

A task is one structurally distinct fused TensorIR function; its `count` is how many times the module
calls it (the task weight) and its `structural_hash` is `tvm.ir.structural_hash` of the task's
module, the key MetaSchedule's JSON database stores its records under (``module_equality=
"structural"``). So a workload tuned for one architecture is found again in any other that contains it.

The op kind comes from the function's main block, the reduction block with the most loop iterations:
a conv2d (regular, depthwise: one input channel per group, pointwise: 1x1 kernel, one group) when it
reads a 4-D weight, dense when it reads 2-D operands, "other" for any other reduction (pooling, mean)
and "elementwise" when there is no reduction. MACs are the main block's iteration count (output
elements x reduction length); bytes are the sizes of the function's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schedules.exceptions import ScheduleError
from schedules.records import LayerWorkload

__all__ = ["WorkloadTask", "extract_tasks", "extract_workloads", "workload_of_task"]


@dataclass(frozen=True)
class WorkloadTask:
    """A MetaSchedule `ExtractedTask` and its `LayerWorkload` record."""

    workload: LayerWorkload
    task: Any


def _shape(buf: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in buf.shape)


def _nbytes(buf: Any) -> int:
    import numpy as np

    n = 1
    for s in buf.shape:
        n *= int(s)
    return n * np.dtype(str(buf.dtype)).itemsize


def _shash(mod: Any) -> str:
    """The structural hash as MetaSchedule's JSON database writes it (an unsigned 64-bit decimal)."""
    import tvm_ffi

    return str(int(tvm_ffi.structural_hash(mod)) % (1 << 64))


def _main_block(func: Any) -> tuple[int, list[tuple[int, ...]]] | None:
    """(iterations, shapes of the buffers read, in order) of the reduction block with the most
    iterations, None when the function has no reduction."""
    import tvm

    sch = tvm.s_tir.Schedule(func)
    best = None
    for ref in sch.get_child_blocks(sch.get_sblock("root")):
        block = sch.get(ref)
        ivs = list(block.iter_vars)
        if not any(int(iv.iter_type) == 2 for iv in ivs):  # 2: CommReduce
            continue
        iters = 1
        for iv in ivs:
            iters *= int(iv.dom.extent)
        if best is None or iters > best[0]:
            best = (iters, [_shape(r.source) for r in block.reads])
    return best


def workload_of_task(task: Any) -> LayerWorkload:
    """The `LayerWorkload` record of one MetaSchedule `ExtractedTask`."""
    import tvm
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    mod = task.dispatched[0]
    func = mod["main"]
    params = list(ArgInfo.from_prim_func(func))  # TensorInfo(dtype, shape), parameters in order
    if not params:
        raise ScheduleError(f"task {task.task_name}: a PrimFunc without buffer parameters")
    inputs, output = [_shape(p) for p in params[:-1]], _shape(params[-1])
    kernel, strides, groups, macs = (0, 0), (1, 1), 1, 0
    main = _main_block(func)
    if main is None:
        op_kind = "elementwise"
    else:
        macs, reads = main
        data = [s for s in inputs if len(s) == 4]
        # TOPI's conv2d / group / depthwise computes read (padded data, weight), in that order
        if len(reads) >= 2 and len(reads[1]) == 4 and reads[1] in inputs and data and len(output) == 4:
            w, x = reads[1], data[0]
            kernel = (w[2], w[3])
            groups = max(1, x[1] // max(1, w[1]))
            strides = (max(1, round(x[2] / output[2])), max(1, round(x[3] / output[3])))
            if groups > 1 and w[1] == 1:
                op_kind = "depthwise_conv2d"
            elif kernel == (1, 1) and groups == 1:
                op_kind = "pointwise_conv2d"
            else:
                op_kind = "conv2d"
        elif len(reads) >= 2 and len(reads[0]) == 2 and len(reads[1]) == 2:
            op_kind = "dense"
        else:
            op_kind = "other"
    return LayerWorkload(
        name=str(task.task_name), op_kind=op_kind, input_shapes=tuple(inputs), output_shape=output,
        dtype=str(params[-1].dtype), structural_hash=_shash(mod),
        count=max(1, int(task.weight)), macs=int(macs), bytes=sum(_nbytes(p) for p in params),
        kernel=kernel, strides=strides, groups=groups)


def extract_tasks(mod: Any, target: Any) -> list[WorkloadTask]:
    """MetaSchedule's tasks of `mod` (from `import_onnx`) for `target` (a `TargetSpec`, a
    `tvm.target.Target` or a string for `make_target`), each with its `LayerWorkload`."""
    from tvm.s_tir import meta_schedule as ms

    from schedules.target import make_target

    spec = make_target(target)
    return [WorkloadTask(workload_of_task(t), t) for t in ms.relax_integration.extract_tasks(mod, spec.target)]


def extract_workloads(mod: Any, target: Any) -> list[LayerWorkload]:
    """The tunable workloads of `mod`, in MetaSchedule's task order."""
    return [t.workload for t in extract_tasks(mod, target)]
