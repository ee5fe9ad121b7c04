"""Time a runtime in a fresh process of its own, so that no other runtime's threads distort it.

Why: TVM's `runtime.config_threadpool` in its default affinity mode (what
`schedules.measure.set_tvm_threads` called until 2026-12-03; it now asks for threads that share every
core) pins the calling thread to one core, and every thread started afterwards inherits that, so
onnxruntime's or torch's pool created later in the same process ran on one core (measured 1.6 to 2.3x
slower); the other way round, onnxruntime's spinning threads slowed TVM up to 2x. Separate processes
stay the protocol: they need no such care from any caller. Each timing here runs in a child
started with ``python -m schedules.isolated`` (a new interpreter: nothing but the pinned affinity of
the starting thread is inherited, and the child resets that to every CPU before it imports anything).

The child speaks JSON lines: one request on its stdin, one answer on its stdout (its own prints and
TVM's logs go to stderr, kept in a temporary file for error messages). No pickles cross the pipe.
An error inside the child (onnxruntime refuses the model, a build error, a run over the protocol's
timeout) comes back as data: a failed `Measurement` with its reason. A child that dies (segfault,
killed) or answers nothing within `timeout_s` raises `IsolatedTimingError` (the child is killed).

    time_onnxruntime_isolated(onnx_path, protocol, threads)                  # one child, one timing
    time_tvm_isolated(onnx_path, database_dir, target_spec, protocol, threads)
    time_torch_isolated("archspace.zoo:build", ["resnet18"], (1, 3, 32, 32), protocol, threads)
    with TimingWorker() as worker:                                           # one child, many timings
        worker.onnxruntime(path, protocol, threads)

A fresh child costs a Python start plus its runtime's imports: 1.2 to 2.3 s for an onnxruntime timing
of a sampled architecture (50 runs) on this 2-core machine under load, against 0.04 to 0.08 s for the
same request to a running worker; TVM adds about 3 s of import. A loop that times one runtime per
candidate keeps one `TimingWorker` (the child resets its affinity, so it may be started at any time).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from schedules.errors import ScheduleError
from schedules.records import Measurement

__all__ = [
    "IsolatedTimingError",
    "TimingWorker",
    "all_cpus",
    "target_spec",
    "time_onnxruntime_isolated",
    "time_torch_isolated",
    "time_tvm_isolated",
]

#: seconds a child may take for one request (start, imports, compile and timing included)
DEFAULT_TIMEOUT_S = 600.0


class IsolatedTimingError(ScheduleError):
    """The timing child died or did not answer in time (its stderr tail is in the message)."""


def all_cpus() -> set[int]:
    """The CPUs a thread of this machine may be given (the kernel intersects the request with the
    cgroup's cpuset), found by resetting the affinity of a throwaway thread."""
    import threading

    found: dict[str, set[int]] = {}

    def probe() -> None:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
        found["cpus"] = set(os.sched_getaffinity(0))

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return found["cpus"]


def target_spec(target: Any) -> dict[str, Any]:
    """A TVM target as the JSON dict `time_tvm_isolated` takes (``tvm.target.Target(spec)`` rebuilds it)."""
    return json.loads(str(target))


def _protocol_dict(protocol: Any) -> dict[str, Any]:
    return dataclasses.asdict(protocol)


class TimingWorker:
    """One child process that answers timing requests one at a time, until `close` (or the parent's
    end: the child exits when its stdin closes). Not thread safe: one request at a time."""

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = float(timeout_s)
        self.last_info: dict[str, Any] = {}
        self._stderr = tempfile.TemporaryFile(prefix="nacos-timing-")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)  # the child finds this checkout's packages
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen([sys.executable, "-m", "schedules.isolated"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, env=env, text=True,
                                      bufsize=1)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def __enter__(self) -> "TimingWorker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # a worker nobody closed must not outlive its owner
        try:
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        self._proc = None
        if proc.poll() is None:
            try:
                proc.stdin.close()  # the child's loop ends at EOF
                proc.wait(timeout=5)
            except Exception:
                proc.kill()
                proc.wait()
        self._stderr.close()

    def _stderr_tail(self, chars: int = 1500) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - chars))
            return self._stderr.read().decode(errors="replace").strip()
        except Exception:
            return ""

    def request(self, kind: str, **fields: Any) -> tuple[Measurement, dict[str, Any]]:
        """Send one request; (the child's `Measurement`, its info: pid, the CPU affinity the request
        started from)."""
        proc = self._proc
        if proc is None:
            raise IsolatedTimingError("the timing process was closed")
        try:
            proc.stdin.write(json.dumps({"kind": kind, **fields}) + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child is gone: said below
        deadline = time.monotonic() + self.timeout_s
        line = ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._proc = None
                proc.kill()
                proc.wait()
                raise IsolatedTimingError(f"the timing process (pid {proc.pid}) gave no answer to a {kind} request "
                                          f"within {self.timeout_s:g} s and was killed; its stderr: "
                                          f"{self._stderr_tail() or '(empty)'}")
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
            if ready:
                line = proc.stdout.readline()
                break
        if not line:  # EOF: the child died
            self._proc = None
            rc = proc.wait()
            how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
            raise IsolatedTimingError(f"the timing process (pid {proc.pid}) died during a {kind} request ({how}); "
                                      f"its stderr: {self._stderr_tail() or '(empty)'}")
        answer = json.loads(line)
        self.last_info = answer["info"]
        return Measurement.from_dict(answer["measurement"]), answer["info"]

    # -- the runtimes ---------------------------------------------------------------------------
    def onnxruntime(self, onnx_path: str | Path, protocol: Any, threads: int, *,
                    input_shapes: Mapping[str, Sequence[int]] | None = None) -> Measurement:
        shapes = {k: list(v) for k, v in input_shapes.items()} if input_shapes else None
        return self.request("onnxruntime", onnx_path=str(onnx_path), protocol=_protocol_dict(protocol),
                            threads=int(threads), input_shapes=shapes)[0]

    def tvm(self, onnx_path: str | Path, database_dir: str | Path | None, target: dict[str, Any] | None,
            protocol: Any, threads: int, *, check: bool = True, schedule: str = "database") -> Measurement:
        """TVM compiled and timed in the child: ``schedule="database"`` with the best records of the
        database in `database_dir` (None: untuned, dlight's default rules), ``"default"`` with one fixed
        default `ScheduleConfig` for every conv / dense layer (`measure.compile_default_schedule`)."""
        if schedule not in ("database", "default"):
            raise ScheduleError(f"TimingWorker.tvm: schedule must be 'database' or 'default', got {schedule!r}")
        return self.request("tvm", onnx_path=str(onnx_path),
                            database_dir=str(database_dir) if database_dir is not None else None,
                            target=target, protocol=_protocol_dict(protocol), threads=int(threads), check=check,
                            schedule=schedule)[0]

    def torch(self, builder: str, builder_args: Sequence[Any], input_shape: Sequence[int], protocol: Any,
              threads: int) -> Measurement:
        return self.request("torch", builder=builder, builder_args=list(builder_args),
                            input_shape=[int(d) for d in input_shape], protocol=_protocol_dict(protocol),
                            threads=int(threads))[0]

    def per_layer(self, runtime: str, onnx_path: str | Path, protocol: Any, threads: int, *,
                  database_dir: str | Path | None = None, target: dict[str, Any] | None = None
                  ) -> list[dict[str, Any]]:
        """Per-layer times of one runtime (`schedules.per_layer`), in this child."""
        _, info = self.request("per_layer", runtime=runtime, onnx_path=str(onnx_path),
                               protocol=_protocol_dict(protocol), threads=int(threads),
                               database_dir=str(database_dir) if database_dir is not None else None, target=target)
        if "error" in info:
            raise ScheduleError(f"per-layer {runtime} profile failed: {info['error']}")
        return info["layers"]


def time_onnxruntime_isolated(onnx_path: str | Path, protocol: Any, threads: int, *,
                              input_shapes: Mapping[str, Sequence[int]] | None = None,
                              timeout_s: float = DEFAULT_TIMEOUT_S) -> Measurement:
    """onnxruntime (`schedules.measure.reference_onnxruntime`) timed in a fresh process."""
    with TimingWorker(timeout_s=timeout_s) as worker:
        return worker.onnxruntime(onnx_path, protocol, threads, input_shapes=input_shapes)


def time_tvm_isolated(onnx_path: str | Path, database_dir: str | Path | None, target_spec: dict[str, Any] | None,
                      protocol: Any, threads: int, *, check: bool = True,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> Measurement:
    """Compile `onnx_path` with the best records of the tuning database in `database_dir` (None:
    untuned) for `target_spec` (a target's JSON dict, see `target_spec`; None: this CPU with
    `threads` cores) and time it (`schedules.measure.measure`), all in a fresh process. The database
    is only read."""
    with TimingWorker(timeout_s=timeout_s) as worker:
        return worker.tvm(onnx_path, database_dir, target_spec, protocol, threads, check=check)


def time_torch_isolated(builder: str, builder_args: Sequence[Any], input_shape: Sequence[int], protocol: Any,
                        threads: int, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Measurement:
    """torch eager (`schedules.measure.reference_torch`) of the module that ``builder(*builder_args)``
    returns, timed in a fresh process; `builder` is an import path ``"package.module:function"`` and
    its arguments are JSON values (the module is rebuilt in the child, with the builder's weights)."""
    with TimingWorker(timeout_s=timeout_s) as worker:
        return worker.torch(builder, builder_args, input_shape, protocol, threads)


# -- the child ------------------------------------------------------------------------------------
def _protocol(d: dict[str, Any]) -> Any:
    from schedules.measure import Protocol

    return Protocol(**d)


def _tvm_target(spec: dict[str, Any] | None, threads: int) -> Any:
    import tvm

    from schedules.targets import host_target

    return host_target(threads) if spec is None else tvm.target.Target(spec)


def _serve_onnxruntime(req: dict[str, Any]) -> tuple[Measurement, dict[str, Any]]:
    from schedules.measure import reference_onnxruntime

    return reference_onnxruntime(req["onnx_path"], _protocol(req["protocol"]), threads=req["threads"],
                                 input_shapes=req.get("input_shapes"), isolate=False), {}


def _serve_tvm(req: dict[str, Any]) -> tuple[Measurement, dict[str, Any]]:
    from schedules.measure import measure_onnx

    if req.get("schedule", "database") == "default":
        return _serve_tvm_default(req), {}
    db = None
    if req.get("database_dir"):
        from schedules.database import TuningDatabase

        db = TuningDatabase(req["database_dir"])
    target = _tvm_target(req.get("target"), req["threads"])
    m = measure_onnx(req["onnx_path"], db, target, _protocol(req["protocol"]), threads=req["threads"])
    return m, {}


def _serve_tvm_default(req: dict[str, Any]) -> Measurement:
    from schedules.measure import _reason, compile_default_schedule, measure

    target = _tvm_target(req.get("target"), req["threads"])
    try:
        compiled = compile_default_schedule(req["onnx_path"], target)
    except Exception as exc:  # a build error is this model's result, not the worker's failure
        return Measurement.failed(_reason("build error", exc), target=str(target))
    return measure(compiled, _protocol(req["protocol"]), threads=req["threads"], check=req.get("check", True))


def _serve_torch(req: dict[str, Any]) -> tuple[Measurement, dict[str, Any]]:
    import importlib

    from schedules.measure import reference_torch

    module_name, _, func = req["builder"].partition(":")
    builder = getattr(importlib.import_module(module_name), func)
    module = builder(*req["builder_args"])
    return reference_torch(module, req["input_shape"], _protocol(req["protocol"]), threads=req["threads"]), {}


def _serve_per_layer(req: dict[str, Any]) -> tuple[Measurement, dict[str, Any]]:
    from schedules import per_layer

    protocol = _protocol(req["protocol"])
    if req["runtime"] == "onnxruntime":
        layers = per_layer.onnxruntime_node_times(req["onnx_path"], protocol, req["threads"])
    else:
        layers = per_layer.tvm_kernel_times(req["onnx_path"], req.get("database_dir"),
                                            _tvm_target(req.get("target"), req["threads"]), protocol, req["threads"])
    return Measurement.failed("per-layer profile (no whole-model timing)", backend=req["runtime"]), \
        {"layers": layers}


_HANDLERS = {"onnxruntime": _serve_onnxruntime, "tvm": _serve_tvm, "torch": _serve_torch,
             "per_layer": _serve_per_layer}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {(text[-1] if text else '')[:300]}"


def _child_main() -> None:
    """Serve requests from stdin until EOF, one JSON answer line each on the original stdout."""
    # Step 1. Every CPU, before any runtime is imported (the starting thread may have been pinned).
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    # Step 2. Our answers alone on stdout; whatever else is printed goes to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        kind = req.get("kind")
        info: dict[str, Any] = {}
        # the affinity the runtime starts from (TVM then pins its own pool's threads, as it does anywhere)
        affinity = sorted(os.sched_getaffinity(0))
        try:
            handler = _HANDLERS[kind]
            measurement, info = handler(req)
        except Exception as exc:  # errors are data; only a dead child is an error of the parent
            measurement = Measurement.failed(f"{kind} error in the timing process: {_reason(exc)}",
                                             backend=str(kind))
            info = {"error": _reason(exc)}
        info.update(pid=os.getpid(), affinity=affinity)
        answers.write(json.dumps({"measurement": measurement.to_dict(), "info": info}) + "\n")
        answers.flush()


if __name__ == "__main__":
    _child_main()
