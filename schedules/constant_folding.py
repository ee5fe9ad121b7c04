"""Fold the constant sub-expressions of an imported ONNX model with numpy, before TVM's `FoldConstant`.

Why: TVM's ONNX frontend leaves small computations on constants in the graph: a ``reshape`` of every
convolution's bias to ``(1, C, 1, 1)``, an ``isnan`` / ``where`` pair on each bound of every ``Clip``, a
``permute_dims`` of a ``Gemm`` weight. Relax's `FoldConstant` evaluates each of them by compiling its
legalized PrimFunc with LLVM and running it: about 0.4 s per distinct function, most of a sampled
architecture's 2.9 to 4.0 s import (measured on 2026-12-07, a quiet 2-core Xeon; a ~20 s two-stage
candidate spent most of its "planning" there). Done here in numpy, on the high-level Relax ops before
legalization, the import takes a fraction of a second. Ops not in `FOLDERS` are left to `FoldConstant`, so what this
misses only costs time.

The module that comes out of the pipeline schedules the same tasks: the tuning database's keys (the
structural hashes of the fused PrimFuncs) and their counts are unchanged (checked in
``tests/schedules/test_frontend.py`` against the pipeline without this step); only the names TVM gives the
dead legalized helper functions differ.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["FOLDERS", "fold_constants"]


def _reshape(call: Any, values: list[np.ndarray]) -> np.ndarray:
    return np.reshape(values[0], [int(d) for d in call.args[1].values])


def _permute_dims(call: Any, values: list[np.ndarray]) -> np.ndarray:
    axes = call.attrs.axes
    return np.transpose(values[0], None if axes is None else [int(a) for a in axes])


#: Relax op name -> (number of leading tensor arguments that must be constants, numpy evaluation).
FOLDERS: dict[str, tuple[int, Callable[[Any, list[np.ndarray]], np.ndarray]]] = {
    "relax.reshape": (1, _reshape),
    "relax.isnan": (1, lambda call, v: np.isnan(v[0])),
    "relax.where": (3, lambda call, v: np.where(v[0], v[1], v[2])),
    "relax.permute_dims": (1, _permute_dims),
}


@functools.cache
def _folder_class() -> type:
    """The mutator class, defined once (it needs TVM, imported lazily)."""
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class _NumpyFolder(PyExprMutator):
        def _value(self, expr: Any) -> np.ndarray | None:
            if isinstance(expr, relax.Var):
                expr = self.lookup_binding(expr)
            if isinstance(expr, tvm.ir.Constant):
                value = expr.value
                return value.numpy() if hasattr(value, "numpy") else np.asarray(value)
            return None

        def visit_call_(self, call: Any) -> Any:
            call = self.visit_expr_post_order(call)
            folder = FOLDERS.get(getattr(call.op, "name", None))
            if folder is None:
                return call
            n, evaluate = folder
            values = [self._value(arg) for arg in call.args[:n]]
            if any(v is None for v in values):
                return call
            out = np.array(evaluate(call, values))   # np.array keeps a 0-d result 0-d (a scalar bound)
            return relax.const(out.item() if out.ndim == 0 else out, str(out.dtype))

    return _NumpyFolder


def fold_constants(mod: Any) -> Any:
    """`mod` (a Relax `IRModule` before `LegalizeOps`) with the calls of `FOLDERS` on constants replaced by
    their values; its Relax functions are replaced in place, and `mod` is returned."""
    from tvm import relax

    folder = _folder_class()(mod)
    for gv, func in list(mod.functions_items()):
        if isinstance(func, relax.Function):
            mod[gv] = folder.visit_expr(func)
    return mod
