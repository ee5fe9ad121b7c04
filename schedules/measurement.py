"""Compile an ONNX model with a database's best records, gate it against onnxruntime, and time it.

One protocol for every backend, so a tuned TVM figure stands beside onnxruntime and torch eager figures
taken the same way: `warmup` untimed runs, then `repeats` timed samples of `number` back-to-back runs
each (wall clock, `time.perf_counter`), with the same thread count. On an RPC device the samples come
from TVM's remote time evaluator (a wall clock here would time the network).

The correctness gate: before a latency counts, the compiled module's outputs on random input are
compared with onnxruntime's outputs of the reference model (by default the same file); a max abs
difference above ``1e-4 x max(1, max |reference|)`` makes the result a failed `Measurement` with
the reason "wrong result: ..." and no latency. Build errors, runtime errors and runs slower than
`timeout_s` are failed measurements with their reason too. A run is timed in this process: a run
that never returns cannot be interrupted here (MetaSchedule's runner isolates tuning candidates).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from schedules.exceptions import ScheduleError
from schedules.records import Measurement

__all__ = ["Compiled", "compile", "measure", "reference_latency", "check_outputs", "tool_versions", "GATE_RTOL"]

#: The correctness gate's tolerance, relative to max(1, the reference output's largest magnitude).
GATE_RTOL = 1e-4


def tool_versions() -> tuple[tuple[str, str], ...]:
    """Versions of the tools a figure depends on, for `Measurement.versions`."""
    from importlib import metadata

    out = []
    for name in ("apache-tvm", "apache-tvm-ffi", "onnx", "onnxruntime", "torch", "numpy", "xgboost-cpu"):
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(out)


@dataclass
class Compiled:
    """A Relax VM executable of one ONNX model for one target."""

    onnx_path: Path
    executable: Any
    target: Any                      # a TargetSpec
    input_shapes: dict[str, tuple[int, ...]]
    tuned: bool
    seconds: float = 0.0             # import + build wall time

    @property
    def batch(self) -> int:
        first = next(iter(self.input_shapes.values()), ())
        return int(first[0]) if first else 1

    def random_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {k: rng.standard_normal(v).astype("float32") for k, v in self.input_shapes.items()}


def _flatten(out: Any) -> list[np.ndarray]:
    if hasattr(out, "numpy"):
        return [out.numpy()]
    return [o for x in out for o in _flatten(x)]


def _reason(stage: str, exc: BaseException) -> str:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{stage}: {type(exc).__name__}: {(lines[-1] if lines else '')[:300]}"


def compile(onnx_path: str | Path, db: Any = None, target: Any = "llvm", input_shapes: Mapping[str, Sequence[int]]
            | None = None) -> Compiled:  # noqa: A001 - the wing's public verb
    """Build `onnx_path` for `target` with the best records of `db` (a `TuningDatabase`). With
    ``db=None`` the untuned path: TVM's default pipeline (dlight rules; on a CPU convolutions stay
    unscheduled). Raises `ScheduleError` for a file that fails `onnx.checker`."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from schedules.importer import import_onnx, onnx_input_shapes
    from schedules.target import make_target

    start = time.perf_counter()
    spec = make_target(target)
    shapes = {**onnx_input_shapes(onnx_path), **{k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}}
    mod = import_onnx(onnx_path, shapes)
    if db is None:
        with spec.target:
            executable = tvm.compile(mod, target=spec.target)
    else:
        executable = ms.relax_integration.compile_relax(db.reader(), mod, spec.target, None)
    return Compiled(Path(onnx_path), executable, spec, shapes, db is not None, time.perf_counter() - start)


def _onnxruntime_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def check_outputs(outputs: Sequence[np.ndarray], expected: Sequence[np.ndarray], rtol: float = GATE_RTOL) -> str:
    """"" when `outputs` match `expected` within the gate, else the reason."""
    if len(outputs) != len(expected):
        return f"wrong result: {len(outputs)} outputs, the reference gives {len(expected)}"
    for i, (got, ref) in enumerate(zip(outputs, expected)):
        if tuple(got.shape) != tuple(ref.shape):
            return f"wrong result: output {i} has shape {tuple(got.shape)}, the reference {tuple(ref.shape)}"
        if not ref.size:
            continue
        scale = max(1.0, float(np.abs(ref).max()))
        diff = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())
        if not np.isfinite(diff) or diff > rtol * scale:
            return f"wrong result: output {i} max abs diff {diff:.3g} > {rtol:g} x output scale {scale:.3g}"
    return ""


def _time(fn: Callable[[], Any], warmup: int, repeats: int, number: int, timeout_s: float) -> list[float]:
    """ms per run of `fn`, one sample per repeat; TimeoutError when one run exceeds `timeout_s`."""
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError(f"a warm-up run took more than {timeout_s} s")
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        dt = (time.perf_counter() - t0) / number
        if dt > timeout_s:
            raise TimeoutError(f"a run took more than {timeout_s} s")
        samples.append(dt * 1e3)
    return samples


def _summary(samples_ms: Sequence[float], *, warmup: int, repeats: int, number: int, batch: int, target: str,
             backend: str, threads: int) -> Measurement:
    t = np.asarray(samples_ms, dtype=float)
    return Measurement(median_ms=float(np.median(t)), mean_ms=float(t.mean()), std_ms=float(t.std()),
                       p95_ms=float(np.percentile(t, 95)), min_ms=float(t.min()), runs=int(t.size) * number,
                       warmup=warmup, repeats=repeats, number=number, batch=batch, target=target, backend=backend,
                       threads=threads, versions=tool_versions())


def _set_tvm_threads(threads: int) -> None:
    import tvm

    f = tvm.get_global_func("runtime.config_threadpool", allow_missing=True)
    if f is not None:
        f(0, int(threads))


def measure(module_or_path: Compiled | str | Path, db: Any = None, target: Any = "llvm", *, warmup: int = 5,
            repeats: int = 30, number: int = 1, timeout_s: float = 10.0, check: bool = True,
            reference: str | Path | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None,
            seed: int = 0) -> Measurement:
    """Latency of a `Compiled` module, or of an ONNX file compiled here with `db` (None: untuned).

    The outputs are first checked against onnxruntime on random input (`reference`: another ONNX
    file to check against, default the model itself). A build error, runtime error, timeout or wrong
    result gives ``Measurement.failed`` with the reason. On an RPC target the run happens on the
    device the tracker hands out."""
    import tvm
    from tvm import relax

    from schedules.target import make_target

    if warmup < 0 or repeats < 1 or number < 1:
        raise ScheduleError(f"measure: need warmup >= 0, repeats >= 1, number >= 1; got {warmup}, {repeats}, {number}")
    if isinstance(module_or_path, Compiled):
        compiled = module_or_path
    else:
        spec = make_target(target)
        try:
            compiled = compile(module_or_path, db, spec, input_shapes)
        except ScheduleError:
            raise
        except Exception as exc:
            batch = int(next(iter((input_shapes or {}).values()), (1,))[0])
            return Measurement.failed(_reason("build error", exc), target=str(spec), batch=batch)
    spec = compiled.target
    tname = str(spec)
    fail = lambda reason: Measurement.failed(reason, backend="tvm", target=tname, batch=compiled.batch)  # noqa: E731
    inputs = compiled.random_inputs(seed)
    try:
        if spec.rpc is not None:
            session, vm, dev = _remote_vm(compiled)
        else:
            dev = tvm.cpu() if not spec.is_gpu else tvm.cuda(0)
            _set_tvm_threads(spec.threads)
            vm = relax.VirtualMachine(compiled.executable, dev)
        args = [tvm.runtime.tensor(inputs[k], dev) for k in compiled.input_shapes]
        t0 = time.perf_counter()
        outputs = _flatten(vm["main"](*args))
        if time.perf_counter() - t0 > timeout_s:
            return fail(f"timeout: the first run took more than {timeout_s} s")
    except Exception as exc:
        return fail(_reason("runtime error", exc))
    if check:
        try:
            expected = _onnxruntime_session(Path(reference or compiled.onnx_path), 1).run(None, inputs)
        except Exception as exc:
            return fail(_reason("wrong result: cannot run the onnxruntime reference", exc))
        reason = check_outputs(outputs, expected)
        if reason:
            return fail(reason)
    kw = dict(warmup=warmup, repeats=repeats, number=number, batch=compiled.batch, target=tname)
    try:
        if spec.rpc is not None:
            for _ in range(warmup):
                vm["main"](*args)
            timer = vm.time_evaluator("main", dev, number=number, repeat=repeats)
            samples = [s * 1e3 for s in timer(*args).results]
            return _summary(samples, backend="tvm-rpc", threads=spec.threads, **kw)
        main = vm["main"]
        samples = _time(lambda: main(*args), warmup, repeats, number, timeout_s)
    except TimeoutError as exc:
        return fail(f"timeout: {exc}")
    except Exception as exc:
        return fail(_reason("runtime error", exc))
    return _summary(samples, backend="tvm", threads=spec.threads, **kw)


def _remote_vm(compiled: Compiled) -> tuple[Any, Any, Any]:
    """(session, VM, device) of `compiled` uploaded to the RPC device of its target."""
    from tvm import relax

    session = compiled.target.rpc.session()
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "model.so"
        compiled.executable.export_library(str(lib))
        session.upload(str(lib))
    rlib = session.load_module("model.so")
    dev = session.cpu()
    return session, relax.VirtualMachine(rlib, dev), dev


def reference_latency(onnx_path: str | Path, backend: str = "onnxruntime", threads: int | None = None, *,
                      module: Any = None, warmup: int = 5, repeats: int = 30, number: int = 1,
                      timeout_s: float = 10.0, input_shapes: Mapping[str, Sequence[int]] | None = None,
                      seed: int = 0) -> Measurement:
    """Latency of what a user would run instead, by the same protocol and thread count:
    ``"onnxruntime"`` (CPU provider, full graph optimisation) on the file, or ``"torch"`` eager
    (inference mode) on `module`, the `torch.nn.Module` the file was exported from."""
    from schedules.importer import check_onnx, onnx_input_shapes
    from schedules.target import host_cores

    threads = int(threads or host_cores())
    path = check_onnx(onnx_path)
    shapes = {**onnx_input_shapes(path), **{k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}}
    rng = np.random.default_rng(seed)
    feed = {k: rng.standard_normal(v).astype("float32") for k, v in shapes.items()}
    batch = int(next(iter(shapes.values()), (1,))[0])
    kw = dict(warmup=warmup, repeats=repeats, number=number, batch=batch, target="cpu", threads=threads)
    if backend == "onnxruntime":
        sess = _onnxruntime_session(path, threads)
        fn: Callable[[], Any] = lambda: sess.run(None, feed)  # noqa: E731
        ctx = None
    elif backend == "torch":
        import torch

        if module is None:
            raise ScheduleError("reference_latency(backend='torch') needs module=, the torch.nn.Module the ONNX "
                                "file was exported from")
        module = module.eval()
        xs = [torch.from_numpy(v) for v in feed.values()]
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        ctx = previous

        def fn() -> Any:
            with torch.inference_mode():
                return module(*xs)
    else:
        raise ScheduleError(f"Unknown reference backend: {backend!r}; expected 'onnxruntime' or 'torch'")
    try:
        samples = _time(fn, warmup, repeats, number, timeout_s)
    except TimeoutError as exc:
        return Measurement.failed(f"timeout: {exc}", backend=backend, target="cpu", batch=batch)
    finally:
        if ctx is not None:
            import torch

            torch.set_num_threads(ctx)
    return _summary(samples, backend=backend, **kw)
