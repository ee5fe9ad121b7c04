"""Compilation targets: the host CPU through LLVM, CUDA when present, and remote devices through TVM's
RPC tracker.

Targets are built from dicts (the string form ``"llvm -mcpu=native"`` is rejected by TVM 0.27). The
host's mcpu comes from LLVM's own detection and the core count from the process's CPU affinity, so
that tuning, measurement and the reference runtimes all use the same thread count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from schedules.errors import ScheduleError

__all__ = ["RpcTarget", "cuda_available", "cuda_target", "host_target", "host_threads", "target_str", "versions"]


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# Read once, at import: TVM's thread pool pins the main thread to one core, after which the
# affinity of this thread no longer says how many cores the process may use.
_HOST_THREADS = _affinity()


def host_threads() -> int:
    """Cores this process may run on (CPU affinity at import, not the machine's total)."""
    return _HOST_THREADS


def host_target(threads: int | None = None) -> Any:
    """`tvm.target.Target` of this CPU: LLVM with the detected mcpu and `threads` cores (default: all
    cores this process may use)."""
    import tvm

    threads = host_threads() if threads is None else int(threads)
    if threads < 1:
        raise ScheduleError(f"threads must be >= 1, got {threads}")
    return tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(),
                              "num-cores": threads})


def cuda_available() -> bool:
    """True when TVM was built with CUDA and a GPU answers."""
    try:
        import tvm

        return bool(tvm.cuda(0).exist)
    except Exception:  # a TVM without CUDA raises on device creation
        return False


def cuda_target() -> Any:
    import tvm

    if not cuda_available():
        raise ScheduleError("no CUDA device: TVM has no CUDA runtime here or no GPU is present")
    return tvm.target.Target({"kind": "cuda", "arch": "sm_" + tvm.cuda(0).compute_version.replace(".", "")},
                             host={"kind": "llvm"})


@dataclass(frozen=True)
class RpcTarget:
    """A remote device reached through TVM's RPC tracker: the tracker's host and port and the device
    key the server registered with. The target is what code is compiled for (the device's CPU).

    TVM RPC runs any code sent to it, in plaintext, without authentication: keep tracker and servers on
    loopback or a private network."""

    tracker_host: str
    tracker_port: int
    key: str
    session_timeout_s: int = 60

    def session(self) -> Any:
        from tvm import rpc

        tracker = rpc.connect_tracker(self.tracker_host, self.tracker_port)
        return tracker.request(self.key, priority=1, session_timeout=self.session_timeout_s)

    def ms_runner(self, timeout_s: float = 10.0) -> Any:
        """A MetaSchedule `RPCRunner` measuring on this device."""
        from tvm.s_tir import meta_schedule as ms

        config = ms.runner.RPCConfig(tracker_host=self.tracker_host, tracker_port=self.tracker_port,
                                     tracker_key=self.key, session_timeout_sec=int(self.session_timeout_s))
        return ms.runner.RPCRunner(rpc_config=config, evaluator_config=ms.runner.EvaluatorConfig(
            number=3, repeat=1, min_repeat_ms=0, enable_cpu_cache_flush=False), max_workers=1)


def target_str(target: Any) -> str:
    return str(target)


def versions() -> tuple[tuple[str, str], ...]:
    """Versions of the tools a figure depends on, for `Measurement.versions`."""
    from importlib import metadata

    out = []
    for name in ("apache-tvm", "apache-tvm-ffi", "onnx", "onnxruntime", "torch", "numpy", "xgboost-cpu"):
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(out)
