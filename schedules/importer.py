"""ONNX -> a Relax `IRModule` ready to tune and to build.

TVM's ONNX frontend only *warns* when a model fails `onnx.checker`, so the file is checked here first
(``full_check=True``: shapes inferred, dangling inputs and ``../`` external-data paths refused) and a
failure raises `ScheduleError` naming the file. The module is then imported with static input shapes,
BatchNorm is decomposed for inference, every op legalized to TensorIR, constants folded and elementwise
epilogues fused into their conv / matmul: the form MetaSchedule extracts tasks from, so a workload's
structural hash is the key its tuning records are stored under.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from schedules.exceptions import ScheduleError

__all__ = ["import_onnx", "check_onnx", "onnx_input_shapes", "prepare"]


def check_onnx(path: str | Path) -> Path:
    """`path` as a Path once `onnx.checker.check_model(path, full_check=True)` accepts it."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ScheduleError(f"{path}: no such ONNX file")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # ValidationError, DecodeError, InferenceError, OSError ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ScheduleError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {first})") from exc
    return path


def onnx_input_shapes(path: str | Path, batch: int = 1) -> dict[str, tuple[int, ...]]:
    """Static shapes of the model's inputs (graph inputs that are not initializers). A symbolic leading
    dimension is taken as `batch`; any other symbolic dimension raises `ScheduleError`."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    shapes: dict[str, tuple[int, ...]] = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = []
        for i, d in enumerate(inp.type.tensor_type.shape.dim):
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif i == 0:
                dims.append(int(batch))
            else:
                raise ScheduleError(f"{path}: input {inp.name!r} dimension {i} is symbolic ({d.dim_param!r}); "
                                    f"give input_shapes")
        shapes[inp.name] = tuple(dims)
    return shapes


def prepare(mod: Any) -> Any:
    """The pass list every imported module goes through (BN decomposed, legalized, fused)."""
    import tvm
    from tvm import relax

    return tvm.transform.Sequential([
        relax.transform.DecomposeOpsForInference(),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ])(mod)


def import_onnx(path: str | Path, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Any:
    """A fused, legalized Relax `IRModule` of the ONNX model at `path`.

    `input_shapes` maps input names to static shapes (default: the file's own, a symbolic batch taken
    as 1). Another batch size is another set of workloads. Raises `ScheduleError` naming the file when
    it fails `onnx.checker` or an input name is unknown."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    path = check_onnx(path)
    own = onnx_input_shapes(path)
    if input_shapes:
        unknown = sorted(set(input_shapes) - set(own))
        if unknown:
            raise ScheduleError(f"{path}: unknown input(s) {unknown}; the model's inputs are {sorted(own)}")
        shapes = {**own, **{k: tuple(int(d) for d in v) for k, v in input_shapes.items()}}
    else:
        shapes = own
    try:
        mod = from_onnx(onnx.load(str(path)), shape_dict={k: list(v) for k, v in shapes.items()},
                        keep_params_in_input=False)
    except Exception as exc:  # an op TVM's frontend does not support, e.g. QLinearConv
        raise ScheduleError(f"{path}: TVM's ONNX frontend cannot import it: {type(exc).__name__}: "
                            f"{(str(exc).strip().splitlines() or [''])[-1][:300]}") from exc
    return prepare(mod)
