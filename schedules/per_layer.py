"""Per-layer times: TVM's kernels beside onnxruntime's nodes, for one model, so a report shows which
layers lose and by how much.

- onnxruntime: its own profiler (`SessionOptions.enable_profiling`); the JSON trace it writes has one
  event per node and run (``cat == "Node"``, ``dur`` in microseconds, ``args.op_name``); the median
  over the protocol's timed runs (the warm-up runs dropped) is a node's time.
- TVM: the installed Relax VM (0.27) has no ``profile=True``; its instrument hook
  (`VirtualMachine.set_instrument`, called around every call instruction) records the kernels that
  one run calls, in order, with their arguments, and each kernel is then timed alone on copies of
  those arguments by TVM's C++ time evaluator (median of `repeats`; a Python stopwatch around the
  hook would add about 1 us to every kernel). The VM's own builtins (allocation, shape checks,
  reshapes) are not kernels.

Each runtime is profiled in a process of its own (`schedules.isolated`). Rows are matched by order:
the i-th convolution / matrix product of onnxruntime (its Conv nodes fuse Conv + bias + ReLU / Clip,
and on x86 run in a blocked NCHWc layout) beside the i-th convolution / matrix product kernel of TVM
(fused functions such as ``fused_conv2d_add_clip``); whatever else each runs (onnxruntime's layout
reorders, pooling, TVM's fused elementwise kernels) is summed in one "other" row, and a "total" row
sums everything. `shape_match` says whether the pair's outputs agree in batch and spatial size
(onnxruntime's blocked layout pads channels), so a misaligned pairing shows.

Read the rows against each other, not against whole-model latency: onnxruntime's profiler reports
whole microseconds and slows the run it watches (a sampled architecture's node times summed to
0.236 ms against 0.109 ms unprofiled), and TVM's kernels timed alone skip the VM's dispatch; the
whole-model figures are `reference_onnxruntime`'s and `measure`'s.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "layer_table",
    "onnxruntime_node_times",
    "format_table",
    "per_layer_table",
    "tvm_kernel_times",
]

#: onnxruntime node ops and TVM kernel name parts that are a layer's main computation
_ORT_HEAVY = {"Conv", "FusedConv", "NchwcConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul", "FusedMatMul",
              "QLinearConv", "ConvInteger", "MatMulInteger"}
_TVM_HEAVY = ("conv2d", "matmul", "dense", "conv1d", "conv3d")


def onnxruntime_node_times(onnx_path: str | Path, protocol: Any, threads: int) -> list[dict[str, Any]]:
    """onnxruntime's nodes in execution order: name, op, output shape and median time (us) over the
    protocol's timed runs, from its own profiler (same session settings as `reference_onnxruntime`)."""
    from schedules.frontend import onnx_input_shapes
    from schedules.measure import onnxruntime_session

    shapes = onnx_input_shapes(onnx_path)
    rng = np.random.default_rng(protocol.seed)
    feed = {k: rng.standard_normal(v).astype("float32") for k, v in shapes.items()}
    with tempfile.TemporaryDirectory(prefix="nacos-ort-profile-") as tmp:
        sess = onnxruntime_session(onnx_path, threads, profile_prefix=os.path.join(tmp, "ort"))
        for _ in range(protocol.warmup + protocol.repeats):
            sess.run(None, feed)
        trace = Path(sess.end_profiling())
        events = json.loads(trace.read_text())
        del sess
    order: list[str] = []
    times: dict[str, list[float]] = {}
    info: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        name = e["name"][: -len("_kernel_time")]
        if name not in times:
            order.append(name)
            times[name] = []
            out = (e.get("args", {}).get("output_type_shape") or [{}])[0]
            info[name] = {"op": e.get("args", {}).get("op_name", ""),
                          "output_shape": list(next(iter(out.values()), []))}
        times[name].append(float(e["dur"]))
    return [{"name": n, **info[n], "us": float(np.median(times[n][protocol.warmup:] or times[n]))} for n in order]


def tvm_kernel_times(onnx_path: str | Path, database_dir: str | Path | None, target: Any, protocol: Any,
                     threads: int) -> list[dict[str, Any]]:
    """TVM's kernels in call order (one run of ``main``): name, output shape (a kernel's last argument
    is its output) and median time (us) of the kernel alone on its own arguments, compiled with the
    best records of the database in `database_dir` (None: untuned)."""
    import tvm

    from schedules.measure import compile, set_tvm_threads

    db = None
    if database_dir:
        from schedules.database import TuningDatabase

        db = TuningDatabase(database_dir)
    compiled = compile(onnx_path, db, target)
    set_tvm_threads(threads)
    lib = compiled.executable.jit()
    dev = tvm.cpu()
    vm = tvm.relax.VirtualMachine(lib, dev)
    calls: list[tuple[str, list[Any]]] = []

    def record(func: Any, symbol: str, before: bool, ret: Any, *args: Any) -> int:
        if before and not str(symbol).startswith("vm.builtin."):
            # copies: the VM reuses its storage, and these arguments are timed after the run
            calls.append((str(symbol), [tvm.runtime.tensor(a.numpy(), dev) if hasattr(a, "numpy") else a
                                        for a in args]))
        return 0

    vm.set_instrument(record)
    compiled.run(compiled.random_inputs(protocol.seed), vm)
    del vm
    rows = []
    for symbol, args in calls:
        # the kernels live in an imported (LLVM) module of the VM's; the evaluator looks only at its own
        owner = next((m for m in lib.imports if m.implements_function(symbol)), lib)
        timer = owner.time_evaluator(symbol, dev, number=protocol.number, repeat=protocol.warmup + protocol.repeats)
        samples = list(timer(*args).results)[protocol.warmup:]
        out = args[-1]
        rows.append({"name": symbol, "op": symbol, "output_shape": [int(d) for d in getattr(out, "shape", ())],
                     "us": float(np.median(samples)) * 1e6})
    return rows


def _is_heavy_ort(node: dict[str, Any]) -> bool:
    return node["op"] in _ORT_HEAVY


def _is_heavy_tvm(kernel: dict[str, Any]) -> bool:
    return any(part in kernel["name"] for part in _TVM_HEAVY)


def _same_extent(a: Sequence[int], b: Sequence[int]) -> bool:
    """Batch and spatial size agree (4-D or 5-D blocked outputs), else the element counts agree."""
    if len(a) >= 4 and len(b) >= 4:
        return a[0] == b[0] and list(a[2:4]) == list(b[2:4])
    return int(np.prod(a or [0])) == int(np.prod(b or [0]))


def _ratio(tvm_us: float | None, ort_us: float | None) -> float | None:
    return tvm_us / ort_us if tvm_us is not None and ort_us else None


def layer_table(ort_nodes: list[dict[str, Any]], tvm_kernels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows {layer, onnxruntime_node, tvm_kernel, output_shape, onnxruntime_us, tvm_us, ratio, shape_match}:
    the heavy ops paired by order, then "other" and "total". `ratio` is TVM over onnxruntime (> 1: TVM
    is slower on that layer)."""
    heavy_ort = [n for n in ort_nodes if _is_heavy_ort(n)]
    heavy_tvm = [k for k in tvm_kernels if _is_heavy_tvm(k)]
    rows = []
    for i in range(max(len(heavy_ort), len(heavy_tvm))):
        o = heavy_ort[i] if i < len(heavy_ort) else None
        k = heavy_tvm[i] if i < len(heavy_tvm) else None
        shape = (k or o)["output_shape"]
        if k is not None:  # named after TVM's kernel when there is one
            kind = "dense" if any(p in k["name"] for p in ("matmul", "dense")) else "conv"
        else:
            kind = "dense" if o["op"] in ("Gemm", "FusedGemm", "MatMul", "FusedMatMul") else "conv"
        rows.append({"layer": f"{i} {kind} {'x'.join(map(str, shape))}",
                     "onnxruntime_node": o["name"] if o else None, "tvm_kernel": k["name"] if k else None,
                     "output_shape": shape, "onnxruntime_us": o["us"] if o else None, "tvm_us": k["us"] if k else None,
                     "ratio": _ratio(k["us"] if k else None, o["us"] if o else None),
                     "shape_match": bool(o and k and _same_extent(o["output_shape"], k["output_shape"]))})
    ort_other = [n for n in ort_nodes if not _is_heavy_ort(n)]
    tvm_other = [k for k in tvm_kernels if not _is_heavy_tvm(k)]
    o_us, t_us = sum(n["us"] for n in ort_other), sum(k["us"] for k in tvm_other)
    rows.append({"layer": f"other ({len(ort_other)} onnxruntime nodes, {len(tvm_other)} TVM kernels)",
                 "onnxruntime_node": None, "tvm_kernel": None, "output_shape": None, "onnxruntime_us": o_us,
                 "tvm_us": t_us, "ratio": _ratio(t_us, o_us), "shape_match": None})
    o_all, t_all = sum(n["us"] for n in ort_nodes), sum(k["us"] for k in tvm_kernels)
    rows.append({"layer": "total (sum of layers)", "onnxruntime_node": None, "tvm_kernel": None,
                 "output_shape": None, "onnxruntime_us": o_all, "tvm_us": t_all, "ratio": _ratio(t_all, o_all),
                 "shape_match": None})
    return rows


def per_layer_table(onnx_path: str | Path, database_dir: str | Path | None, target_spec: dict[str, Any] | None,
                    protocol: Any, threads: int, *, timeout_s: float = 600.0) -> list[dict[str, Any]]:
    """`layer_table` of one model: onnxruntime's profile and TVM's kernels (compiled with the database
    in `database_dir`, for `target_spec`: see `schedules.isolated.target_spec`; None: this CPU), each
    taken in a fresh process of its own, onnxruntime first."""
    from schedules.isolated import TimingWorker

    with TimingWorker(timeout_s=timeout_s) as worker:
        ort_nodes = worker.per_layer("onnxruntime", onnx_path, protocol, threads)
    with TimingWorker(timeout_s=timeout_s) as worker:
        tvm_kernels = worker.per_layer("tvm", onnx_path, protocol, threads, database_dir=database_dir,
                                       target=target_spec)
    return layer_table(ort_nodes, tvm_kernels)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a fixed-width text table."""
    def fmt(x: float | None, spec: str) -> str:
        return format(x, spec) if x is not None else "-"

    width = max([len("layer")] + [len(r["layer"]) for r in rows])
    lines = [f"{'layer':{width}}  {'onnxruntime us':>14}  {'TVM us':>9}  {'TVM/ort':>7}",
             "-" * (width + 36)]
    for r in rows:
        mark = "" if r["shape_match"] in (True, None) else "  (shapes differ: pairing off)"
        lines.append(f"{r['layer']:{width}}  {fmt(r['onnxruntime_us'], '14.1f')}  {fmt(r['tvm_us'], '9.1f')}  "
                     f"{fmt(r['ratio'], '7.2f')}{mark}")
    return "\n".join(lines)
