"""Compile an ONNX model with the database's best records, check it against onnxruntime, and time it.

The measurement protocol (`Protocol`) is one for every backend, so a tuned TVM figure stands beside
onnxruntime and torch eager figures taken the same way: `warmup` untimed runs, then `repeats` timed
samples of `number` back-to-back runs each (wall clock, `time.perf_counter`), same thread count.
On an RPC device the samples come from TVM's remote time evaluator (the wall clock there would time
the network).

The correctness gate: before a latency counts, the compiled module's output on random input is
compared with onnxruntime's; a max abs difference above ``rtol * max(1, max |reference|)`` makes the
measurement a failure ("wrong result") that is never used. Build errors, runtime errors and runs
slower than `Protocol.timeout_s` are failures with their reason too (`Measurement.failed`).
A run is timed in this process: a run that never returns cannot be interrupted here.

Never time onnxruntime or torch in a process where TVM's thread pool is set up (it pins the thread
that configures it, and so every thread started afterwards, to one core): `schedules.isolated` times
each runtime in a fresh process of its own, and `reference_onnxruntime` goes there by itself wherever
TVM or torch is loaded.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schedules.errors import DatabaseCorrupted, ScheduleError
from schedules.records import Measurement
from schedules.targets import RpcTarget, foreign_isa, host_target, target_threads, versions

__all__ = [
    "Compiled",
    "Protocol",
    "check_against_onnxruntime",
    "compile",
    "compile_scheduled",
    "measure",
    "measure_onnx",
    "ONNXRUNTIME_SETTINGS",
    "onnxruntime_session",
    "reference_onnxruntime",
    "reference_torch",
    "runtimes_loaded_here",
    "set_tvm_threads",
]


@dataclass(frozen=True)
class Protocol:
    warmup: int = 5
    repeats: int = 30
    number: int = 1
    timeout_s: float = 10.0          # one run slower than this is a "timeout" failure
    rtol: float = 1e-4               # correctness gate, relative to the output scale
    seed: int = 0

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.repeats < 1 or self.number < 1:
            raise ScheduleError(f"Protocol: need warmup >= 0, repeats >= 1, number >= 1, got {self}")


#: `runtime.config_threadpool`'s affinity mode that lets each worker run on every listed core
#: (`kSpecifyThreadShareAllCore` of TVM's threading_backend.h).
_SHARE_ALL_CORES = -3


def set_tvm_threads(threads: int) -> None:
    """Size TVM's runtime thread pool (the same count onnxruntime and torch get), its threads free to run
    on every core this process may use (`schedules.targets.host_cpus`).

    Why not the default mode (0): it pins the calling thread to core 0, every thread started later
    inherits that, and each parallel kernel then paid 7 to 9 us to launch its workers. Measured
    2026-12-03 on this 2-core machine, a parallel reduction over 512 floats: 6.7 us (2 threads) and
    8.7 us (1 thread) in mode 0, 9.0 us with no configuration at all (a fresh process, e.g.
    MetaSchedule's runner), 1.1 us in this mode on cores {0, 1}, 0.05 us as a serial loop. A sampled
    architecture's 28 kernels ran 0.27 ms in mode 0 and 0.15 ms in this mode, same records."""
    import tvm

    from schedules.targets import host_cpus

    f = tvm.get_global_func("runtime.config_threadpool", allow_missing=True)
    if f is not None:
        f(_SHARE_ALL_CORES, int(threads), [str(c) for c in host_cpus()])


@dataclass
class Compiled:
    """A Relax VM executable of one ONNX model for one target."""

    onnx_path: Path
    executable: Any
    target: Any
    input_shapes: dict[str, tuple[int, ...]]
    params: Any = None
    seconds: float = 0.0

    @property
    def batch(self) -> int:
        first = next(iter(self.input_shapes.values()))
        return int(first[0]) if first else 1

    def random_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {k: rng.standard_normal(v).astype("float32") for k, v in self.input_shapes.items()}

    def vm(self, device: Any = None) -> Any:
        import tvm
        from tvm import relax

        return relax.VirtualMachine(self.executable, device if device is not None else tvm.cpu())

    def run(self, inputs: Mapping[str, np.ndarray], vm: Any = None) -> list[np.ndarray]:
        import tvm

        vm = vm or self.vm()
        out = vm["main"](*[tvm.runtime.tensor(inputs[k]) for k in self.input_shapes])
        return _flatten(out)


def _flatten(out: Any) -> list[np.ndarray]:
    if hasattr(out, "numpy"):
        return [out.numpy()]
    return [o for x in out for o in _flatten(x)]


def compile(onnx_path: str | Path, db: Any = None, target: Any = None, *,
            input_shapes: Mapping[str, Sequence[int]] | None = None, mod: Any = None) -> Compiled:
    """Build `onnx_path` for `target` (default: this CPU) with the best records of `db` (a
    `TuningDatabase`; None compiles untuned: dlight's default rules, convolutions unscheduled) measured on
    `target`'s machine, or, for a workload with none measured there, another machine's best
    (`TuningDatabase.on`). `mod`: the model as `schedules.frontend.import_onnx` already imported it with
    these shapes (its import is seconds of a candidate's cost; passes do not change it, so it may be reused)."""
    import tvm

    from schedules.frontend import import_onnx, onnx_input_shapes

    start = time.perf_counter()
    target = target or host_target()
    shapes = {k: tuple(int(d) for d in v) for k, v in (input_shapes or onnx_input_shapes(onnx_path)).items()}
    mod = import_onnx(onnx_path, shapes) if mod is None else mod
    if db is None:
        with tvm.target.Target(target):
            executable = tvm.compile(mod, target=target)
    else:
        # The records are applied under the target and database contexts, then built by tvm.compile's
        # default pipeline. (`ms.relax_integration.compile_relax(db.ms, mod, target, None)` built
        # VGG-16 at 32 px to run in 1147 ms against 1115 ms untuned; the same records this way ran it
        # in 175 ms: benchmarks/schedule_transfer.py found it.)
        from tvm import relax

        db = db.on(target)
        with tvm.target.Target(target), db.apply_database():
            mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
        with tvm.target.Target(target):
            executable = tvm.compile(mod, target=target)
    return Compiled(Path(onnx_path), executable, target, shapes, seconds=time.perf_counter() - start)


def compile_scheduled(onnx_path: str | Path, choose: Callable[[str, Any], Any], target: Any = None,
                      db: Any = None) -> tuple[Compiled, dict[str, str]]:
    """Build `onnx_path` for `target` (default: this CPU) with each conv / dense function scheduled by
    the explicit space: `choose(function name, layer key)` gives its `ScheduleConfig` (None leaves it to
    the default lowering), elementwise functions get their own parallel / vector schedule
    (`schedules.explicit.compile.schedule_module`). Returns the `Compiled` and the per-function notes
    ("ok" | "elementwise" | why it was left to the default lowering). A function `choose` gives
    `schedules.explicit.compile.FROM_DATABASE` is built with `db`'s best record of its workload on
    `target`'s machine (a `TuningDatabase`; `TuningDatabase.apply_database`)."""
    import tvm

    from schedules.explicit.compile import schedule_module
    from schedules.frontend import import_onnx, onnx_input_shapes

    start = time.perf_counter()
    target = target or host_target()
    database = db.on(target).apply_database() if db is not None else None
    mod, notes = schedule_module(import_onnx(onnx_path), choose, database=database, target=target)
    with tvm.target.Target(target):
        executable = tvm.compile(mod, target=target)
    return Compiled(Path(onnx_path), executable, target, onnx_input_shapes(onnx_path),
                    seconds=time.perf_counter() - start), notes


def _onnxruntime_outputs(onnx_path: Path, inputs: Mapping[str, np.ndarray], threads: int) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, dict(inputs))


def check_against_onnxruntime(compiled: Compiled, outputs: Sequence[np.ndarray] | None = None, *,
                              rtol: float = 1e-4, seed: int = 0, inputs: Mapping[str, np.ndarray] | None = None
                              ) -> tuple[bool, str]:
    """(ok, reason): `compiled`'s outputs on random input (or the `outputs` given) against onnxruntime's."""
    inputs = inputs if inputs is not None else compiled.random_inputs(seed)
    outputs = list(outputs) if outputs is not None else compiled.run(inputs)
    try:
        expected = _onnxruntime_outputs(compiled.onnx_path, inputs, 1)
    except Exception as exc:  # e.g. a static batch in the file that differs from the compiled one
        return False, _reason("cannot check against onnxruntime", exc)
    if len(outputs) != len(expected):
        return False, f"wrong result: {len(outputs)} outputs, onnxruntime gives {len(expected)}"
    for i, (got, ref) in enumerate(zip(outputs, expected)):
        if got.shape != ref.shape:
            return False, f"wrong result: output {i} has shape {got.shape}, onnxruntime {ref.shape}"
        scale = max(1.0, float(np.abs(ref).max()) if ref.size else 1.0)
        diff = float(np.abs(got.astype(np.float64) - ref).max()) if ref.size else 0.0
        if not np.isfinite(diff) or diff > rtol * scale:
            return False, (f"wrong result: output {i} max abs diff {diff:.3g} > {rtol:g} x output scale {scale:.3g}")
    return True, ""


def _summary(samples_ms: Sequence[float], protocol: Protocol, *, backend: str, target: str, batch: int,
             threads: int) -> Measurement:
    t = np.asarray(samples_ms, dtype=float)
    return Measurement(median_ms=float(np.median(t)), mean_ms=float(t.mean()), std_ms=float(t.std()),
                       p95_ms=float(np.percentile(t, 95)), min_ms=float(t.min()), runs=int(t.size) * protocol.number,
                       warmup=protocol.warmup, repeats=protocol.repeats, number=protocol.number, batch=batch,
                       target=target, backend=backend, threads=threads, versions=versions())


def time_callable(fn: Callable[[], Any], protocol: Protocol) -> list[float]:
    """Samples (ms per run) of `fn` by `protocol`; raises TimeoutError when one run exceeds the limit."""
    for _ in range(protocol.warmup):
        t0 = time.perf_counter()
        fn()
        if time.perf_counter() - t0 > protocol.timeout_s:
            raise TimeoutError(f"one run took more than {protocol.timeout_s} s")
    samples = []
    for _ in range(protocol.repeats):
        t0 = time.perf_counter()
        for _ in range(protocol.number):
            fn()
        dt = time.perf_counter() - t0
        if dt / protocol.number > protocol.timeout_s:
            raise TimeoutError(f"one run took more than {protocol.timeout_s} s")
        samples.append(dt * 1e3 / protocol.number)
    return samples


def _reason(stage: str, exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{stage}: {type(exc).__name__}: {(text[-1] if text else '')[:300]}"


def measure(compiled: Compiled, protocol: Protocol = Protocol(), *, threads: int | None = None, check: bool = True,
            rpc: RpcTarget | None = None) -> Measurement:
    """Time `compiled` by `protocol` on this CPU (or on the RPC device); a failure is a `Measurement`
    with status "failed" and its reason (runtime error, timeout, wrong result)."""
    import tvm

    target = str(compiled.target)
    threads = threads or target_threads(compiled.target)

    def fail(reason: str) -> Measurement:
        return Measurement.failed(reason, backend="tvm", target=target, batch=compiled.batch)

    inputs = compiled.random_inputs(protocol.seed)
    if rpc is None and foreign_isa(compiled.target):
        return fail(f"code for {compiled.target.attrs.get('mtriple')} cannot run on this CPU: measure it on its "
                    f"device (rpc://HOST:PORT/KEY?mtriple=...)")
    if rpc is not None:
        try:
            return _measure_rpc(compiled, protocol, rpc, inputs, check, threads)
        except Exception as exc:  # tracker unreachable, unknown key, no free server in time, session lost
            return Measurement.failed(_reason("rpc error", exc), backend="tvm-rpc", target=target, batch=compiled.batch)
    try:
        set_tvm_threads(threads)
        vm = compiled.vm()
        t0 = time.perf_counter()
        outputs = compiled.run(inputs, vm)
        if time.perf_counter() - t0 > protocol.timeout_s:
            return fail(f"timeout: the first run took more than {protocol.timeout_s} s")
    except Exception as exc:
        return fail(_reason("runtime error", exc))
    if check:
        ok, reason = check_against_onnxruntime(compiled, outputs, rtol=protocol.rtol, inputs=inputs)
        if not ok:
            return fail(reason)
    args = [tvm.runtime.tensor(inputs[k]) for k in compiled.input_shapes]
    main = vm["main"]
    try:
        samples = time_callable(lambda: main(*args), protocol)
    except TimeoutError as exc:
        return fail(f"timeout: {exc}")
    except Exception as exc:
        return fail(_reason("runtime error", exc))
    return _summary(samples, protocol, backend="tvm", target=target, batch=compiled.batch, threads=threads)


#: `export_library` of one executable from two threads at once corrupts memory (double free, seen
#: with TVM 0.27): exports are taken one at a time in this process.
_EXPORT_LOCK = threading.Lock()


def export_for_device(compiled: Compiled, directory: Path, rpc: RpcTarget) -> Path:
    """The file that carries `compiled` to `rpc`'s device: a shared library linked here (``model.so``; by
    the cross compiler ``rpc.cc`` when one is named) or, for ``rpc.link == "device"``, the object files
    (``model.tar``) that the device's RPC server links itself. Code for another instruction set without a
    cross compiler can only travel as a ``.tar``."""
    if rpc.link == "device":
        path = Path(directory) / "model.tar"
        with _EXPORT_LOCK:
            compiled.executable.export_library(str(path))
        return path
    if foreign_isa(compiled.target) and not rpc.cc:
        raise ScheduleError(f"code for {compiled.target.attrs.get('mtriple')} cannot be linked by this machine's "
                            f"compiler: name a cross compiler (cc=...) or link on the device (link=device)")
    path = Path(directory) / "model.so"
    with _EXPORT_LOCK:
        if rpc.cc:
            from tvm.support import cc as _cc

            compiled.executable.export_library(str(path), fcompile=_cc.cross_compiler(rpc.cc))
        else:
            compiled.executable.export_library(str(path))
    return path


def _measure_rpc(compiled: Compiled, protocol: Protocol, rpc: RpcTarget, inputs, check: bool,
                 threads: int) -> Measurement:
    """Export the module, upload it to a free server of `rpc`'s key, check it there against onnxruntime
    and time it with the remote time evaluator. Errors of the RPC machinery propagate (`measure` makes
    them failures with reason "rpc error: ...")."""
    import tempfile

    import tvm
    from tvm import relax

    target = str(compiled.target)
    with tempfile.TemporaryDirectory() as tmp:
        lib_path = export_for_device(compiled, Path(tmp), rpc)
        session = rpc.session()
        session.upload(str(lib_path))
        rlib = session.load_module(lib_path.name)  # a .tar is linked there by the server's compiler
    try:  # the same thread count on the device as here (a device without the function keeps its default)
        # (the device's first `threads` cores, every thread free on all of them: see set_tvm_threads)
        session.get_function("runtime.config_threadpool")(_SHARE_ALL_CORES, int(threads),
                                                           [str(c) for c in range(int(threads))])
    except Exception:
        pass
    dev = session.cpu()
    vm = relax.VirtualMachine(rlib, dev)
    args = [tvm.runtime.tensor(inputs[k], dev) for k in compiled.input_shapes]
    outputs = _flatten(vm["main"](*args))
    if check:
        ok, reason = check_against_onnxruntime(compiled, outputs, rtol=protocol.rtol, inputs=inputs)
        if not ok:
            return Measurement.failed(reason, backend="tvm-rpc", target=target, batch=compiled.batch)
    for _ in range(protocol.warmup):
        vm["main"](*args)
    timer = vm.time_evaluator("main", dev, number=protocol.number, repeat=protocol.repeats)
    samples = [s * 1e3 for s in timer(*args).results]
    if max(samples) > protocol.timeout_s * 1e3:
        return Measurement.failed(f"timeout: one run took more than {protocol.timeout_s} s", backend="tvm-rpc",
                                  target=target, batch=compiled.batch)
    return _summary(samples, protocol, backend="tvm-rpc", target=target, batch=compiled.batch, threads=threads)


def compile_default_schedule(onnx_path: str | Path, target: Any = None) -> Compiled:
    """Build `onnx_path` with every conv / dense layer under one fixed default `ScheduleConfig` (each
    tile clamped to fit the layer, `schedules.explicit.space.GlobalPolicy`): what a compiler-agnostic
    search that runs TVM with "one fixed schedule" deploys; no database, no per-layer search."""
    from schedules.explicit.space import GlobalPolicy, LayerShape
    from schedules.records import ScheduleConfig

    policy = GlobalPolicy(ScheduleConfig())
    compiled, _ = compile_scheduled(onnx_path, lambda name, key: policy.for_layer(LayerShape(*key[:5])), target)
    return compiled


def measure_onnx(onnx_path: str | Path, db: Any = None, target: Any = None, protocol: Protocol = Protocol(), *,
                 input_shapes: Mapping[str, Sequence[int]] | None = None, threads: int | None = None,
                 rpc: RpcTarget | None = None) -> Measurement:
    """compile + measure; a build error is a failed `Measurement` too."""
    target = target or host_target(threads)
    try:
        compiled = compile(onnx_path, db, target, input_shapes=input_shapes)
    except DatabaseCorrupted:
        raise
    except Exception as exc:  # an import the frontend refuses is a build error of this candidate too
        shapes = input_shapes or {}
        batch = int(next(iter(shapes.values()))[0]) if shapes else 1
        return Measurement.failed(_reason("build error", exc), target=str(target), batch=batch)
    return measure(compiled, protocol, threads=threads, rpc=rpc)


#: The onnxruntime settings every timing uses (the same each time, in this process or in a child):
#: `threads` intra-op threads, one inter-op thread (sequential execution), all graph optimisations,
#: the CPU provider, and intra-op spinning left at onnxruntime's default ("1", what a user runs). The
#: session is released right after its timed loop, so its spinning threads are gone before anything
#: else runs.
ONNXRUNTIME_SETTINGS = {"inter_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL",
                        "execution_mode": "ORT_SEQUENTIAL", "session.intra_op.allow_spinning": "1",
                        "provider": "CPUExecutionProvider"}


def onnxruntime_session(onnx_path: str | Path, threads: int, *, profile_prefix: str | None = None) -> Any:
    """An onnxruntime session with `ONNXRUNTIME_SETTINGS` and `threads` intra-op threads (with
    onnxruntime's own profiler on when `profile_prefix` is given)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = ONNXRUNTIME_SETTINGS["inter_op_num_threads"]
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning",
                                  ONNXRUNTIME_SETTINGS["session.intra_op.allow_spinning"])
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(onnx_path), opts, providers=[ONNXRUNTIME_SETTINGS["provider"]])


def runtimes_loaded_here() -> list[str]:
    """The runtimes loaded in this process whose thread pools distort an onnxruntime or torch timing
    here: TVM's pool pins the thread that configures it to one core (every thread started afterwards
    inherits that), torch's and TVM's workers spin after a run."""
    import sys

    return [name for name in ("tvm", "torch") if name in sys.modules]


def reference_onnxruntime(onnx_path: str | Path, protocol: Protocol = Protocol(), *, threads: int | None = None,
                          input_shapes: Mapping[str, Sequence[int]] | None = None,
                          isolate: bool | None = None) -> Measurement:
    """onnxruntime (`ONNXRUNTIME_SETTINGS`, `threads` intra-op threads) by `protocol`: THE onnxruntime
    timer of the project, the same protocol as TVM's `measure`.

    `isolate`: True times it in a fresh process of its own (`schedules.isolated`); False here;
    None (default) in a fresh process when TVM or torch is loaded in this process
    (`runtimes_loaded_here`), here otherwise. A search that times onnxruntime per candidate keeps
    one `schedules.isolated.TimingWorker` instead, to pay the process start once."""
    from schedules.frontend import onnx_input_shapes
    from schedules.targets import host_threads

    threads = threads or host_threads()
    if isolate or (isolate is None and runtimes_loaded_here()):
        from schedules.isolated import time_onnxruntime_isolated

        return time_onnxruntime_isolated(onnx_path, protocol, threads, input_shapes=input_shapes)
    shapes = dict(input_shapes or onnx_input_shapes(onnx_path))
    batch = int(next(iter(shapes.values()))[0])
    try:
        sess = onnxruntime_session(onnx_path, threads)
    except Exception as exc:
        return Measurement.failed(_reason("onnxruntime error", exc), backend="onnxruntime", target="cpu",
                                  batch=batch)
    rng = np.random.default_rng(protocol.seed)
    feed = {k: rng.standard_normal(v).astype("float32") for k, v in shapes.items()}
    try:
        # a temporary partial, not a closure over `sess`: nothing but `sess` holds the session at the `del`
        samples = time_callable(functools.partial(sess.run, None, feed), protocol)
    except TimeoutError as exc:
        return Measurement.failed(f"timeout: {exc}", backend="onnxruntime", target="cpu", batch=batch)
    except Exception as exc:
        return Measurement.failed(_reason("onnxruntime error", exc), backend="onnxruntime", target="cpu",
                                  batch=batch)
    finally:
        del sess  # its intra-op threads stop here, not when the garbage collector gets to them
    return _summary(samples, protocol, backend="onnxruntime", target="cpu", batch=batch, threads=threads)


def reference_torch(module: Any, input_shape: Sequence[int], protocol: Protocol = Protocol(), *,
                    threads: int | None = None) -> Measurement:
    """torch eager (inference mode, `threads` intra-op threads) by `protocol`, in this process: time
    it in a process of its own (`schedules.isolated.time_torch_isolated`) where TVM has run."""
    import torch

    from schedules.targets import host_threads

    threads = threads or host_threads()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        module = module.eval()
        x = torch.from_numpy(np.random.default_rng(protocol.seed).standard_normal(tuple(input_shape)).astype("float32"))
        with torch.inference_mode():
            samples = time_callable(lambda: module(x), protocol)
    except TimeoutError as exc:
        return Measurement.failed(f"timeout: {exc}", backend="torch", target="cpu", batch=int(input_shape[0]))
    finally:
        torch.set_num_threads(previous)
    return _summary(samples, protocol, backend="torch", target="cpu", batch=int(input_shape[0]), threads=threads)
