"""Compilation targets: this CPU through LLVM, CUDA when a GPU answers, and remote devices reached
through TVM's RPC tracker.

`make_target("llvm" | "cuda" | "rpc://HOST:PORT/KEY")` returns a `TargetSpec`: the `tvm.target.Target`
code is compiled for, plus the RPC endpoint when measurement happens elsewhere. Targets are built from
dicts (TVM 0.27 rejects ``"llvm -mcpu=native"``); the host's mcpu comes from LLVM's own detection and
the core count from this process's CPU affinity, so tuning, measurement and the reference runtimes use
the same thread count.

TVM RPC runs whatever code reaches it, in plaintext and without authentication; the tracker key only
routes. Keep trackers and servers on loopback (what the tests do) or a private network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from schedules.exceptions import ScheduleError

__all__ = ["TargetSpec", "RpcEndpoint", "make_target", "host_cpu", "host_cores", "has_cuda"]


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# Read at import: TVM's thread pool later pins the main thread to one core, after which the
# affinity of this thread no longer tells how many cores the process may use.
_CORES = _affinity()


def host_cores() -> int:
    """Cores this process may run on (its CPU affinity when this module was imported)."""
    return _CORES


def host_cpu() -> str:
    """LLVM's name of this CPU (e.g. ``znver4``), as passed to ``mcpu``."""
    import tvm

    return str(tvm.target.codegen.llvm_get_system_cpu())


def has_cuda() -> bool:
    """True when this TVM has a CUDA runtime and a GPU answers."""
    try:
        import tvm

        return bool(tvm.cuda(0).exist)
    except Exception:  # a TVM built without CUDA raises on device creation
        return False


@dataclass(frozen=True)
class RpcEndpoint:
    """A device registered with TVM's RPC tracker under `key`."""

    host: str
    port: int
    key: str
    session_timeout_s: int = 60

    def session(self) -> Any:
        """An RPC session on a free device of this key (raises when the tracker does not answer)."""
        from tvm import rpc

        tracker = rpc.connect_tracker(self.host, self.port)
        return tracker.request(self.key, priority=1, session_timeout=self.session_timeout_s)

    def ms_runner(self, timeout_s: float = 10.0) -> Any:
        """A MetaSchedule `RPCRunner` that measures tuning candidates on this device."""
        from tvm.s_tir import meta_schedule as ms

        config = ms.runner.RPCConfig(tracker_host=self.host, tracker_port=self.port, tracker_key=self.key,
                                     session_timeout_sec=int(self.session_timeout_s))
        return ms.runner.RPCRunner(rpc_config=config, evaluator_config=ms.runner.EvaluatorConfig(
            number=3, repeat=1, min_repeat_ms=0, enable_cpu_cache_flush=False), timeout_sec=timeout_s,
            max_workers=1)


@dataclass(frozen=True)
class TargetSpec:
    """What to compile for (`target`) and where to measure (`rpc`, None for this machine)."""

    target: Any
    rpc: RpcEndpoint | None = None
    threads: int = 1

    @property
    def kind(self) -> str:
        return str(self.target.kind.name)

    @property
    def is_gpu(self) -> bool:
        return self.kind in ("cuda", "rocm", "vulkan", "metal", "opencl")

    def __str__(self) -> str:
        base = str(self.target)
        return base if self.rpc is None else f"{base} via rpc://{self.rpc.host}:{self.rpc.port}/{self.rpc.key}"


def _llvm(threads: int, mcpu: str | None) -> Any:
    import tvm

    return tvm.target.Target({"kind": "llvm", "mcpu": mcpu or host_cpu(), "num-cores": int(threads)})


def make_target(spec: str | TargetSpec | Any = "llvm", threads: int | None = None, *, mcpu: str | None = None
                ) -> TargetSpec:
    """A `TargetSpec` from ``"llvm"`` (this CPU, `threads` cores, default all this process may use),
    ``"cuda"`` (raises `ScheduleError` without a GPU) or ``"rpc://HOST:PORT/KEY"`` (code compiled for
    `mcpu`, default this CPU's, and measured on the device the tracker at HOST:PORT hands out for KEY).
    A `TargetSpec` is returned as is; a `tvm.target.Target` is wrapped."""
    if isinstance(spec, TargetSpec):
        return spec
    threads = host_cores() if threads is None else int(threads)
    if threads < 1:
        raise ScheduleError(f"threads must be >= 1, got {threads}")
    if not isinstance(spec, str):  # a tvm.target.Target
        cores = int(spec.attrs.get("num-cores", 0) or 0) if hasattr(spec, "attrs") else 0
        return TargetSpec(spec, None, cores or threads)
    if spec == "llvm":
        return TargetSpec(_llvm(threads, mcpu), None, threads)
    if spec == "cuda":
        import tvm

        if not has_cuda():
            raise ScheduleError("target 'cuda': no CUDA device (this TVM has no CUDA runtime or no GPU answers); "
                                "use 'llvm'")
        arch = "sm_" + tvm.cuda(0).compute_version.replace(".", "")
        return TargetSpec(tvm.target.Target({"kind": "cuda", "arch": arch}, host={"kind": "llvm"}), None, threads)
    if spec.startswith("rpc://"):
        hostport, _, key = spec[len("rpc://"):].partition("/")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit() or not key or "/" in key:
            raise ScheduleError(f"target {spec!r}: expected rpc://HOST:PORT/KEY, e.g. rpc://127.0.0.1:9190/board")
        return TargetSpec(_llvm(threads, mcpu), RpcEndpoint(host, int(port), key), threads)
    raise ScheduleError(f"Unknown target: {spec!r}; expected 'llvm', 'cuda' or 'rpc://HOST:PORT/KEY'")
