"""Whole networks under explicit schedules: one `ScheduleConfig` per conv / dense function.

- `schedule_module(mod, choose)`: the Relax module with each conv / dense PrimFunc scheduled by the
  config `choose(name, key)` returns (None leaves it to the default lowering); used by the baseline
  (one fixed policy for every layer) and the one-stage search (the genome's config per layer). The
  fused elementwise / pooling functions get `schedule_elementwise` (dlight's CPU rules would leave
  them serial and scalar) unless ``elementwise=False``.
- `schedule_elementwise(func)`: a parallel, vectorised schedule of an injective or reduction
  function: producers inlined, the spatial loops of what is left fused, parallel when the output is
  large enough to pay for waking the thread pool, the contiguous lanes vectorised.
- `layer_key(func)`: what a config is chosen by: kind, output channels, rows, columns, reduction and
  kernel, the same key `archspace.layers.ConvLayer` gives without TVM.
- `explicit_search(func, space, target, n)`: the explicit space's own search for one function: the
  default rule for the layer (`GlobalPolicy(ScheduleConfig())`) first, then sampled configs read for
  the layer by `GlobalPolicy` (``adapt``), build and time each, keep the fastest whose output matches
  the unscheduled function; its trace can be committed to the shared tuning database like a
  MetaSchedule record.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from schedules.explicit.apply import apply_config, layer_shape_of, main_block_kind
from schedules.explicit.space import ConfigDoesNotFit, GlobalPolicy, ScheduleSpace
from schedules.records import ScheduleConfig

__all__ = ["FROM_DATABASE", "LayerKey", "layer_key", "schedule_module", "schedule_elementwise", "explicit_search",
           "ExplicitResult", "time_prim_func", "PARALLEL_ELEMENTS"]

#: output elements from which an elementwise function is run in parallel: below, waking TVM's thread
#: pool (about a microsecond) costs more than the loop (a few thousand floats a microsecond)
PARALLEL_ELEMENTS = 16384

#: (kind, out_channels, out_h, out_w, reduction, kernel)
LayerKey = tuple[str, int, int, int, int, int]

#: what `choose` returns for a function to be built with the tuning database's best record of its
#: workload instead of an explicit config (the one-stage genome's database gene)
FROM_DATABASE = "database"


def layer_key(func) -> LayerKey:
    import tvm

    name, _ = main_block_kind(func)
    shape = layer_shape_of(func)
    sch = tvm.s_tir.Schedule(func)
    extents = [int(sch.get(loop).extent) for loop in sch.get_loops(sch.get_sblock(name))]
    kernel = extents[5] if len(extents) == 7 else 1
    return (shape.kind, shape.out_channels, shape.out_h, shape.out_w, shape.reduction, kernel)


def _from_database(func, database, target) -> Any:
    """`func` scheduled by `database`'s record of its workload (a MetaSchedule database; the function
    normalized as `relax.transform.MetaScheduleApplyDatabase` normalizes it), or None without one."""
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    sch = database.query_schedule(_normalize_mod(func), target, "main")
    if sch is None:
        return None
    out = sch.mod["main"]
    symbol = func.attrs.get("global_symbol") if func.attrs else None
    return out.with_attr("global_symbol", symbol) if symbol is not None else out.without_attr("global_symbol")


def schedule_module(mod, choose: Callable[[str, LayerKey], Optional[ScheduleConfig | str]], *,
                    elementwise: bool = True, database: Any = None, target: Any = None
                    ) -> tuple[Any, dict[str, str]]:
    """(scheduled module, {function: "ok" | "database" | "elementwise" | reason it was left to the default
    lowering}). `choose` may return `FROM_DATABASE` for a function: it is then built with `database`'s
    record of its workload (a MetaSchedule database, for `target`), or, lacking one, by the default rule
    ``GlobalPolicy(ScheduleConfig())`` (noted "no database record: default rule")."""
    import tvm

    functions = dict(mod.functions)
    notes: dict[str, str] = {}
    for gv, func in mod.functions.items():
        if not isinstance(func, tvm.tirx.PrimFunc):
            continue
        if main_block_kind(func) is None:
            if elementwise and not func.attrs.get("tir.is_scheduled", False):
                sch = schedule_elementwise(func)
                if sch is not None:
                    functions[gv] = sch.mod["main"].with_attr("tir.is_scheduled", True)
                    notes[gv.name_hint] = "elementwise"
            continue
        config = choose(gv.name_hint, layer_key(func))
        if config is None:
            notes[gv.name_hint] = "no config"
            continue
        if isinstance(config, str) and config == FROM_DATABASE:
            scheduled = _from_database(func, database, target) if database is not None else None
            if scheduled is not None:
                functions[gv] = scheduled.with_attr("tir.is_scheduled", True)
                notes[gv.name_hint] = "database"
                continue
            config = GlobalPolicy(ScheduleConfig()).for_layer(layer_shape_of(func))
            notes[gv.name_hint] = "no database record: default rule"
        try:
            sch = apply_config(func, config)
        except ConfigDoesNotFit as exc:
            notes[gv.name_hint] = f"does not fit: {exc}"
            continue
        functions[gv] = sch.mod["main"].with_attr("tir.is_scheduled", True)
        notes.setdefault(gv.name_hint, "ok")
    return tvm.IRModule(functions, attrs=mod.attrs), notes


def _spatial_prefix(sch, block) -> list:
    """The block's leading loops that bind only its spatial (data-parallel) iterators."""
    import tvm

    iters = sch.get(block).iter_vars
    loops = sch.get_loops(block)
    if len(loops) != len(iters):
        return []
    prefix = []
    for loop, iv in zip(loops, iters):
        if iv.iter_type != tvm.tirx.IterVar.DataPar:
            break
        prefix.append(loop)
    return prefix


def schedule_elementwise(func, parallel_elements: int = PARALLEL_ELEMENTS, lanes: int = 16) -> Any:
    """A parallel, vectorised `tvm.s_tir.Schedule` of an elementwise / pooling function, or None when
    it has nothing worth scheduling (a few outputs) or a shape this rule does not handle.

    Every block but the last is inlined where TVM allows it (a reduction such as a pooling sum is not
    and keeps its own loop nest); each remaining block's spatial loops are fused, split into a
    parallel outer loop (when the block writes at least `parallel_elements` values) and, for a block
    without reduction whose innermost axis is split evenly, a vector of `lanes`."""
    import tvm

    try:
        sch = tvm.s_tir.Schedule(func)
        blocks = list(sch.get_child_blocks(sch.get_sblock("root")))
        for block in blocks[:-1]:
            try:
                sch.compute_inline(block)
            except Exception:  # a reduction or a block with several consumers stays a stage
                pass
        kept = list(sch.get_child_blocks(sch.get_sblock("root")))
        scheduled = False
        for block in kept:
            spatial = _spatial_prefix(sch, block)
            if not spatial:
                continue
            extents = [int(sch.get(loop).extent) for loop in spatial]
            total = 1
            for e in extents:
                total *= e
            if total < 2 * lanes:
                continue
            is_reduction = len(spatial) < len(sch.get_loops(block))
            fused = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
            inner = None
            if not is_reduction and extents[-1] % lanes == 0:
                fused, inner = sch.split(fused, [None, lanes])
            if total >= parallel_elements:
                sch.parallel(fused)
            if inner is not None:
                sch.vectorize(inner)
            scheduled = scheduled or inner is not None or total >= parallel_elements
        return sch if scheduled else None
    except Exception:  # anything unexpected: leave the function to the default lowering
        return None


def _random_args(func, seed: int = 0) -> list[Any]:
    import tvm
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    rng = np.random.default_rng(seed)
    return [tvm.runtime.tensor(rng.standard_normal([int(s) for s in info.shape]).astype(info.dtype))
            for info in ArgInfo.from_prim_func(func)]


def time_prim_func(func, target, args: list[Any], number: int = 10, repeat: int = 3) -> tuple[float, np.ndarray]:
    """(median ms, output) of one PrimFunc built for `target` and run on `args` (last one is written)."""
    import tvm

    lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target)
    lib = lib.jit() if hasattr(lib, "jit") else lib   # tvm.compile returns an Executable in TVM 0.27
    lib["main"](*args)
    out = args[-1].numpy().copy()
    timer = lib.time_evaluator("main", tvm.cpu(), number=number, repeat=repeat)
    return float(np.median(timer(*args).results) * 1e3), out


@dataclass(frozen=True)
class ExplicitResult:
    config: ScheduleConfig | None
    ms: float
    trace: Any
    tried: int
    failures: tuple[str, ...]


def explicit_search(func, space: ScheduleSpace, target, n: int, seed: int = 0, *, adapt: bool = True) -> ExplicitResult:
    """Try `n` configs of `space` for `func`; build, check and time each; keep the fastest.

    With ``adapt`` (default) the first is the default rule for this layer and every sample is read
    for the layer by `GlobalPolicy` (vector axis and width; see `schedules.explicit.space`), so the
    search never does worse than the default and spends its samples on tiles, order, unroll and
    parallel choices; without, the samples are the space's fitting configs taken literally.
    A config whose build fails or whose output differs from the unscheduled function's (> 1e-4 of
    the output scale) is recorded as a failure with its reason and never chosen."""
    rng = random.Random(seed)
    shape = layer_shape_of(func)
    args = _random_args(func)
    _, expected = time_prim_func(func, target, args, number=1, repeat=1)
    tol = 1e-4 * max(1.0, float(np.abs(expected).max()))
    best: tuple[float, ScheduleConfig, Any] | None = None
    failures: list[str] = []
    seen: set[ScheduleConfig] = set()
    for i in range(n):
        config = space.sample(rng, shape)
        if adapt:
            config = GlobalPolicy(ScheduleConfig() if i == 0 else config).for_layer(shape)
        if config in seen:
            continue
        seen.add(config)
        try:
            sch = apply_config(func, config)
            ms, out = time_prim_func(sch.mod["main"], target, args)
        except Exception as exc:  # a build or run error of one candidate is data
            failures.append(f"{config.to_json()}: {type(exc).__name__}: {str(exc).splitlines()[-1][:200]}")
            continue
        diff = float(np.abs(out - expected).max())
        if diff > tol:
            failures.append(f"{config.to_json()}: wrong result (max abs diff {diff:.3g})")
            continue
        if best is None or ms < best[0]:
            best = (ms, config, sch.trace)
    if best is None:
        return ExplicitResult(None, float("nan"), None, len(seen), tuple(failures))
    return ExplicitResult(best[1], best[0], best[2], len(seen), tuple(failures))
