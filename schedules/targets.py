"""Compilation targets: the host CPU through LLVM, CUDA when present, and remote devices through TVM's
RPC tracker, of this CPU's instruction set or of another (cross-compiled).

A remote device is ``rpc://HOST:PORT/KEY``; a device of another instruction set names the TVM target its
code is compiled for in the URL's query, beside the address (`parse_rpc_spec`):

    rpc://10.0.0.7:9190/rasp4?mtriple=aarch64-linux-gnu&mcpu=cortex-a72&num-cores=4

Cross-compiled code is exported as object files (a ``.tar``) that the device's RPC server links with its
own compiler (what MetaSchedule's `RPCRunner` does with every candidate), or, with ``cc=`` a cross
compiler on this machine (``cc=aarch64-linux-gnu-g++``), linked here into the shared library uploaded.

Targets are built from dicts (the string form ``"llvm -mcpu=native"`` is rejected by TVM 0.27). The
host's mcpu comes from LLVM's own detection and the core count from the process's CPU affinity, so
that tuning, measurement and the reference runtimes all use the same thread count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from schedules.errors import ScheduleError

__all__ = ["RpcTarget", "cuda_available", "cuda_missing", "cuda_target", "host_target", "host_cpus", "host_threads",
           "machine_key", "target_threads", "parse_rpc_url", "parse_rpc_spec", "RpcSpec", "rpc_device_target",
           "foreign_isa", "target_str", "versions"]


def _affinity() -> tuple[int, ...]:
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return tuple(range(os.cpu_count() or 1))


# Read once, at import: TVM's thread pool in its default affinity mode pins the main thread to one
# core, after which the affinity of this thread no longer says which cores the process may use.
_HOST_CPUS = _affinity()
_HOST_THREADS = len(_HOST_CPUS)


def host_threads() -> int:
    """Cores this process may run on (CPU affinity at import, not the machine's total)."""
    return _HOST_THREADS


def target_threads(target: Any) -> int:
    """Threads a kernel compiled for `target` runs with: its ``num-cores`` attribute, or every core this
    process may use when the target does not say (one reading for tuning, measurement and the runners)."""
    attrs = getattr(target, "attrs", None) or {}
    return int(attrs.get("num-cores", 0) or 0) or host_threads()


def machine_key(target: Any) -> str:
    """What of a target decides whether a schedule's measured run time holds there: the kind and the CPU
    (``llvm/znver4``, ``llvm/cortex-a72``) or GPU architecture (``cuda/sm_90``), not the thread count nor
    the triple TVM fills in by default (as `costmodels.ms_cost_model` tells machines apart). A target given
    as a string or dict is read as TVM would read it; no target (None) has the key ``""``."""
    if target is None:
        return ""
    if isinstance(target, (str, dict)):
        if isinstance(target, str) and target.startswith("{"):
            import json

            target = json.loads(target)
        if isinstance(target, dict):
            kind, attrs = str(target.get("kind", "")), target
        else:
            import tvm

            target = tvm.target.Target(target)
            kind, attrs = str(target.kind.name), target.attrs
    else:
        kind = str(getattr(getattr(target, "kind", None), "name", "") or target)
        attrs = getattr(target, "attrs", None) or {}
    if kind == "cuda":
        return f"cuda/{attrs.get('arch', '') or ''}"
    # a cross-compiled device named by its triple alone (no mcpu) is told apart by the triple
    return f"{kind}/{attrs.get('mcpu', '') or attrs.get('mtriple', '') or ''}"


def host_cpus() -> tuple[int, ...]:
    """The cores themselves (CPU affinity at import)."""
    return _HOST_CPUS


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
    """True when TVM was built with CUDA and a GPU answers (`cuda_missing` says what is missing otherwise)."""
    return cuda_missing() is None


def cuda_missing() -> str | None:
    """None when CUDA can be used; otherwise what is missing, in words a user can act on."""
    try:
        import tvm

        if not tvm.runtime.enabled("cuda"):
            return (f"this TVM ({tvm.__version__}) was built without the CUDA runtime (the PyPI wheel has none): "
                    "install a CUDA build of TVM, or use target llvm or rpc://HOST:PORT/KEY")
        if not tvm.cuda(0).exist:
            return "TVM has the CUDA runtime but no GPU answers (tvm.cuda(0).exist is False): check the driver"
    except Exception as exc:  # noqa: BLE001 - any failure to reach the device is "missing"
        return f"the CUDA device cannot be opened ({type(exc).__name__}: {exc})"
    return None


def cuda_target() -> Any:
    import tvm

    missing = cuda_missing()
    if missing is not None:
        raise ScheduleError(f"no CUDA device: {missing}")
    return tvm.target.Target({"kind": "cuda", "arch": "sm_" + tvm.cuda(0).compute_version.replace(".", "")},
                             host={"kind": "llvm"})


#: the query keys of ``rpc://HOST:PORT/KEY?...`` (`parse_rpc_spec`): the device's LLVM target attributes,
#: a cross compiler for linking here, and where the uploaded module is linked
RPC_TARGET_KEYS = ("mtriple", "mcpu", "mattr", "num-cores")
RPC_OPTION_KEYS = ("cc", "link")


@dataclass(frozen=True)
class RpcSpec:
    """A parsed ``rpc://HOST:PORT/KEY[?options]``: the tracker, the key, the device's target attributes
    (empty: the device runs this CPU's code) and how its modules are linked."""

    host: str
    port: int
    key: str
    device: tuple[tuple[str, str], ...] = ()   # (attribute, value) of the device's LLVM target
    cc: str = ""                               # a cross compiler here ("" : none)
    link: str = "host"                         # host (a shared library linked here) | device (.tar)


def parse_rpc_url(spec: str) -> tuple[str, int, str]:
    """(tracker host, tracker port, device key) of ``rpc://HOST:PORT/KEY`` (its query, if any, checked by
    `parse_rpc_spec`); a `ScheduleError` otherwise."""
    s = parse_rpc_spec(spec)
    return s.host, s.port, s.key


def parse_rpc_spec(spec: str) -> RpcSpec:
    """`RpcSpec` of ``rpc://HOST:PORT/KEY[?mtriple=T&mcpu=C&mattr=A&num-cores=N&cc=CXX&link=host|device]``.

    A device of another instruction set names its ``mtriple`` (and best its ``mcpu``); without ``cc`` its
    modules are linked on the device (``link=device``), which needs a C++ compiler there. An unknown key,
    a repeated one or a malformed value is a `ScheduleError` naming what is accepted."""
    from urllib.parse import parse_qsl

    body, _, query = spec[len("rpc://"):].partition("?") if spec.startswith("rpc://") else ("", "", "")
    hostport, _, key = body.partition("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not key or "/" in key:
        raise ScheduleError(f"target: {spec!r} is not rpc://HOST:PORT/KEY")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ScheduleError(f"target: {spec!r}: the query after '?' is not KEY=VALUE&...: {exc}") from exc
    names = [k for k, _ in pairs]
    unknown = sorted(set(names) - set(RPC_TARGET_KEYS) - set(RPC_OPTION_KEYS))
    if unknown:
        raise ScheduleError(f"target: {spec!r}: unknown option(s) {unknown}; choose from "
                            f"{', '.join(RPC_TARGET_KEYS + RPC_OPTION_KEYS)}")
    if len(set(names)) != len(names):
        raise ScheduleError(f"target: {spec!r}: an option is given twice")
    opts = dict(pairs)
    for name, value in opts.items():
        if not value:
            raise ScheduleError(f"target: {spec!r}: option {name} has no value")
    if "num-cores" in opts and not (opts["num-cores"].isdigit() and int(opts["num-cores"]) >= 1):
        raise ScheduleError(f"target: {spec!r}: num-cores must be a whole number >= 1")
    device = tuple((k, opts[k]) for k in RPC_TARGET_KEYS if k in opts)
    if device and "mtriple" not in opts and any(k != "num-cores" for k, _ in device):
        raise ScheduleError(f"target: {spec!r}: mcpu / mattr name a device of another instruction set: give its "
                            f"mtriple too (e.g. mtriple=aarch64-linux-gnu)")
    cc = opts.get("cc", "")
    link = opts.get("link", "device" if "mtriple" in opts and not cc else "host")
    if link not in ("host", "device"):
        raise ScheduleError(f"target: {spec!r}: link must be host or device, got {link!r}")
    if link == "host" and "mtriple" in opts and not cc:
        raise ScheduleError(f"target: {spec!r}: code for {opts['mtriple']} cannot be linked by this machine's "
                            f"compiler: give cc=<cross compiler> or link=device")
    return RpcSpec(host, int(port), key, device, cc, link)


def rpc_device_target(spec: str, threads: int | None = None) -> Any:
    """The `tvm.target.Target` code for the device of ``rpc://...`` is compiled for: this CPU's
    (`host_target`) when the URL names no device target, else LLVM with the URL's attributes
    (``num-cores`` from the URL, else `threads`, else this process's cores). The target is checked by TVM
    (an LLVM without that backend, or an unknown mcpu, is a `ScheduleError` here, before any build)."""
    s = parse_rpc_spec(spec)
    attrs = dict(s.device)
    if not attrs.get("mtriple"):
        cores = int(attrs.get("num-cores", 0)) or threads
        return host_target(cores)
    import tvm

    target: dict[str, Any] = {"kind": "llvm", "mtriple": attrs["mtriple"],
                              "num-cores": int(attrs.get("num-cores", 0)) or int(threads or host_threads())}
    if attrs.get("mcpu"):
        target["mcpu"] = attrs["mcpu"]
    if attrs.get("mattr"):
        target["mattr"] = [a for a in attrs["mattr"].split(",") if a]
    arch = attrs["mtriple"].split("-")[0]
    if not any(arch.startswith(str(t)) for t in tvm.target.codegen.llvm_get_targets()):  # armv7l: LLVM's arm
        raise ScheduleError(f"target: {spec!r}: this TVM's LLVM has no {arch} backend "
                            f"(it has: {', '.join(sorted(tvm.target.codegen.llvm_get_targets()))})")
    if attrs.get("mcpu") and not tvm.target.codegen.llvm_is_valid_cpu(attrs["mcpu"], attrs["mtriple"]):
        raise ScheduleError(f"target: {spec!r}: LLVM knows no CPU {attrs['mcpu']!r} for {attrs['mtriple']} "
                            f"(`llc -mtriple={attrs['mtriple']} -mcpu=help` lists them)")
    try:
        built = tvm.target.Target(target)
    except Exception as exc:  # TVM's own check of the attributes
        raise ScheduleError(f"target: {spec!r}: TVM refuses the device target {target}: {exc}") from exc
    return built


def foreign_isa(target: Any) -> bool:
    """True when `target` is LLVM code for another instruction set than this CPU's (its triple's
    architecture differs from the host's): such code can be built here but not run here."""
    attrs = getattr(target, "attrs", None) or {}
    triple = str(attrs.get("mtriple", "") or "")
    if not triple or str(getattr(getattr(target, "kind", None), "name", "")) != "llvm":
        return False
    import tvm

    return triple.split("-")[0] != tvm.target.codegen.llvm_get_system_triple().split("-")[0]


@dataclass(frozen=True)
class RpcTarget:
    """A remote device reached through TVM's RPC tracker: the tracker's host and port and the device
    key the server registered with. The target is what code is compiled for (the device's CPU).

    Every wait is bounded: reaching the tracker (`connect_timeout_s`), waiting for a free server of
    the key (`request_timeout_s`: all of them may be busy with other measurements), and the session
    itself (`session_timeout_s`: the server ends a session that runs longer). A key no server has
    registered under fails at once, naming the keys the tracker does have.

    TVM RPC runs any code sent to it, in plaintext, without authentication: keep tracker and servers on
    loopback or a private network."""

    tracker_host: str
    tracker_port: int
    key: str
    session_timeout_s: int = 60
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 300.0
    #: how a module reaches the device: linked here into a shared library ("host"; with `cc`, a cross
    #: compiler, for a device of another instruction set) or uploaded as object files that the device
    #: links with its own compiler ("device")
    link: str = "host"
    cc: str = ""

    def __post_init__(self) -> None:
        if not self.tracker_host or not 0 < int(self.tracker_port) < 65536:
            raise ScheduleError(f"RPC tracker address {self.tracker_host}:{self.tracker_port} is not HOST:PORT")
        if not self.key:
            raise ScheduleError("RPC target: a device key is required (the --key the servers registered with)")
        if self.session_timeout_s <= 0 or self.connect_timeout_s <= 0 or self.request_timeout_s <= 0:
            raise ScheduleError("RPC target: timeouts must be positive")
        if self.link not in ("host", "device"):
            raise ScheduleError(f"RPC target: link must be host or device, got {self.link!r}")

    @classmethod
    def from_url(cls, spec: str, **kw: Any) -> "RpcTarget":
        """The device of ``rpc://HOST:PORT/KEY[?...]`` (`parse_rpc_spec`), its link options included."""
        s = parse_rpc_spec(spec)
        return cls(s.host, s.port, s.key, link=s.link, cc=s.cc, **kw)

    @property
    def url(self) -> str:
        return f"rpc://{self.tracker_host}:{self.tracker_port}/{self.key}"

    def _tracker(self) -> Any:
        """A `tvm.rpc` tracker session whose every wait is bounded.

        TVM's `connect_tracker` retries a refused connection for 60 s, waits on an unroutable address as
        long as the OS does and on a peer that never answers its handshake for ever; and a request for a
        key whose servers are all busy waits for ever too. So the connection and handshake are made here
        with `connect_timeout_s`, and the socket then waits at most `request_timeout_s` for any reply."""
        import socket
        import struct

        from tvm.rpc import base
        from tvm.rpc.client import TrackerSession

        addr = f"{self.tracker_host}:{self.tracker_port}"
        try:
            sock = socket.create_connection((self.tracker_host, self.tracker_port), timeout=self.connect_timeout_s)
        except OSError as exc:
            raise ScheduleError(f"RPC tracker {addr} cannot be reached ({type(exc).__name__}: {exc}); "
                                f"is `python -m tvm.exec.rpc_tracker` running there?") from exc
        try:
            sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
            magic = struct.unpack("<i", base.recvall(sock, 4))[0]
        except OSError as exc:
            sock.close()
            raise ScheduleError(f"{addr} did not answer as a TVM RPC tracker within {self.connect_timeout_s:g} s "
                                f"({type(exc).__name__}: {exc})") from exc
        if magic != base.RPC_TRACKER_MAGIC:
            sock.close()
            raise ScheduleError(f"{addr} is not a TVM RPC tracker (wrong handshake)")
        sock.settimeout(self.request_timeout_s)
        tracker = TrackerSession.__new__(TrackerSession)  # its __init__ would connect again, unbounded
        tracker._addr = (self.tracker_host, self.tracker_port)
        tracker._sock = sock
        return tracker

    def summary(self) -> dict[str, Any]:
        """The tracker's summary: ``queue_info`` (key -> free and pending counts) and ``server_info``."""
        tracker = self._tracker()
        try:
            return tracker.summary()
        except OSError as exc:
            raise ScheduleError(f"RPC tracker {self.tracker_host}:{self.tracker_port} did not answer: {exc}") from exc
        finally:
            tracker.close()

    def servers(self, summary: dict[str, Any] | None = None) -> list[tuple[str, int]]:
        """(host, port) of the servers registered under this key (busy ones included)."""
        summary = self.summary() if summary is None else summary
        return sorted((str(s["addr"][0]), int(s["addr"][1])) for s in summary.get("server_info", [])
                      if s.get("key") == f"server:{self.key}")

    def check(self) -> dict[str, Any]:
        """The tracker's summary, or a `ScheduleError` when it cannot be reached or no server has this key."""
        summary = self.summary()
        self._require_key(summary)
        return summary

    def _require_key(self, summary: dict[str, Any]) -> None:
        if not self.servers(summary):
            keys = sorted({str(s.get("key", "")).partition(":")[2] for s in summary.get("server_info", [])} - {""})
            raise ScheduleError(f"no RPC server is registered under key {self.key!r} at tracker "
                                f"{self.tracker_host}:{self.tracker_port} (keys there: {keys or 'none'})")

    def session(self) -> Any:
        """An RPC session on a free server of this key; a `ScheduleError` when the tracker cannot be
        reached, no server has the key, or none is free within `request_timeout_s`."""
        tracker = self._tracker()
        try:
            try:
                summary = tracker.summary()
            except OSError as exc:
                raise ScheduleError(f"RPC tracker {self.tracker_host}:{self.tracker_port} did not answer: {exc}") \
                    from exc
            self._require_key(summary)
            try:
                return tracker.request(self.key, priority=1, session_timeout=self.session_timeout_s, max_retry=1)
            except Exception as exc:  # RuntimeError after its retries, OSError, or the server's connect error
                queue = summary.get("queue_info", {}).get(self.key, {})
                raise ScheduleError(
                    f"no session on an RPC server of key {self.key!r} at tracker {self.tracker_host}:"
                    f"{self.tracker_port} within {self.request_timeout_s:g} s ({len(self.servers(summary))} "
                    f"registered, {queue.get('free', 0)} free and {queue.get('pending', 0)} requests waiting "
                    f"when asked): {exc}") from exc
        finally:
            tracker.close()

    def ms_runner(self, timeout_s: float = 10.0) -> Any:
        """A MetaSchedule `RPCRunner` measuring on this device (the tracker and the key checked first)."""
        from tvm.s_tir import meta_schedule as ms

        self.check()
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
