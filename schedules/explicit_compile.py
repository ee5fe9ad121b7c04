"""Whole networks under explicit schedules: one `ScheduleConfig` per conv / dense function.

- `schedule_module(mod, choose)`: the Relax module with each conv / dense PrimFunc scheduled by the
  config `choose(name, key)` returns (None leaves it to the default lowering); used by the baseline
  (one fixed policy for every layer) and the one-stage search (the genome's config per layer).
- `layer_key(func)`: what a config is chosen by: kind, output channels, rows, columns, reduction and
  kernel, the same key `archspace.layers.ConvLayer` gives without TVM.
- `explicit_search(func, space, target, n)`: the explicit space's own search for one function: sample
  configs that fit, build and time each, keep the fastest whose output matches the unscheduled
  function; its trace can be committed to the shared tuning database like a MetaSchedule record.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from schedules.explicit_apply import apply_config, layer_shape_of, main_block_kind
from schedules.explicit_space import ConfigDoesNotFit, ScheduleSpace
from schedules.records import ScheduleConfig

__all__ = ["LayerKey", "layer_key", "schedule_module", "explicit_search", "ExplicitResult", "time_prim_func"]

#: (kind, out_channels, out_h, out_w, reduction, kernel)
LayerKey = tuple[str, int, int, int, int, int]


def layer_key(func) -> LayerKey:
    import tvm

    name, _ = main_block_kind(func)
    shape = layer_shape_of(func)
    sch = tvm.s_tir.Schedule(func)
    extents = [int(sch.get(loop).extent) for loop in sch.get_loops(sch.get_sblock(name))]
    kernel = extents[5] if len(extents) == 7 else 1
    return (shape.kind, shape.out_channels, shape.out_h, shape.out_w, shape.reduction, kernel)


def schedule_module(mod, choose: Callable[[str, LayerKey], Optional[ScheduleConfig]]) -> tuple[Any, dict[str, str]]:
    """(scheduled module, {function: "ok" | reason it was left to the default lowering})."""
    import tvm

    functions = dict(mod.functions)
    notes: dict[str, str] = {}
    for gv, func in mod.functions.items():
        if not isinstance(func, tvm.tirx.PrimFunc) or main_block_kind(func) is None:
            continue
        config = choose(gv.name_hint, layer_key(func))
        if config is None:
            notes[gv.name_hint] = "no config"
            continue
        try:
            sch = apply_config(func, config)
        except ConfigDoesNotFit as exc:
            notes[gv.name_hint] = f"does not fit: {exc}"
            continue
        functions[gv] = sch.mod["main"].with_attr("tir.is_scheduled", True)
        notes[gv.name_hint] = "ok"
    return tvm.IRModule(functions, attrs=mod.attrs), notes


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


def explicit_search(func, space: ScheduleSpace, target, n: int, seed: int = 0) -> ExplicitResult:
    """Sample `n` fitting configs of `space` for `func`; build, check and time each; keep the fastest.

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
    for _ in range(n):
        config = space.sample(rng, shape)
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
