"""The tuning worker: one candidate's schedule search in a child process, so that a crash or a hang of
TVM there costs one candidate, not the search.

Two-stage mode tunes each candidate's unseen workloads with TVM (`schedules.tuner.explicit_tune` or
MetaSchedule's `tune`), native code that can segfault, run out of memory or hang (apache/tvm#12330).
`TunedLatency` therefore runs the tuning as ``python -m nacos.backends.tuning_worker JOB_JSON``:

- the worker opens the shared `schedules.database.TuningDatabase` itself (tuning holds its file lock,
  `TuningDatabase.writing()`), tunes, and prints its report as one line ``NACOS_TUNING_REPORT {json}``
  (tuned / reused / hit_rate / trials / seconds / faults) on stdout; an exception in it is one line
  ``NACOS_TUNING_ERROR {json}`` and exit status 1;
- `run_tuning_worker` starts it in a session (process group) of its own, so MetaSchedule's builder and
  runner processes (its grandchildren) are in that group too, and waits at most ``tuning.timeout_s``.
  On a timeout, on any exception or KeyboardInterrupt in the parent, and after every exit, the whole
  group gets SIGKILL and the worker is reaped: no stray process and no zombie is left. The worker's
  death is a `WorkerOutcome` with ``ok=False`` and a reason: ``tuning worker timed out after N s
  (killed)``, ``tuning worker died: SIGSEGV``, ``tuning worker died: SIGKILL (killed: out of
  memory?)`` (the kernel's OOM killer sends SIGKILL), or ``tuning worker failed (exit N): ...`` with
  the error or the last lines of its stderr.

The parent re-reads the database (`TuningDatabase.refresh`) after the worker is gone, so it compiles
with what the worker committed. A worker killed mid-append leaves at most a torn last line, which the
database moves aside on that re-read; the kernel releases the worker's file lock when it dies.

In the worker: core dumps are off (a segfaulting TVM process would write GBs), the CPU affinity is the
parent's at import of this module (TVM's thread pool pins the parent's main thread to one core, and a
child inherits that), and ``tuning.worker_memory_mb`` (0: no limit) is applied as RLIMIT_AS before
TVM is imported, so an allocation over it fails inside the worker (a MemoryError or a native abort)
instead of the machine's OOM killer choosing a victim.

Fault tests inject a fault at a named point instead of racing a timer: with ``NACOS_TUNING_FAULT`` set to
``SIGNAL:TOKEN`` (``SIGSEGV:/tmp/x/fault``), the first worker that removes the file TOKEN takes the
database's exclusive lock (where a worker that is tuning stands) and sends itself SIGNAL with the
signal's default action; the other workers tune as usual. Nothing else reads the variable.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FAULT_ENV", "HOST_CPUS", "TuningJob", "WorkerOutcome", "run_tuning_worker", "main", "REPORT_TAG",
           "ERROR_TAG"]

REPORT_TAG = "NACOS_TUNING_REPORT "
ERROR_TAG = "NACOS_TUNING_ERROR "
_MODULE = "nacos.backends.tuning_worker"
#: the search's pid, handed to the worker: the worker ends itself once its parent is not that process
PARENT_ENV = "NACOS_TUNING_PARENT_PID"
#: ``SIGNAL:TOKEN``: the fault-injection point for tests (see the module's docstring)
FAULT_ENV = "NACOS_TUNING_FAULT"
#: what a report holds at least
REPORT_KEYS = frozenset({"tuned", "reused", "hit_rate", "trials", "seconds", "faults"})

# Read once, at import (before TVM's thread pool can pin this process's main thread to one core): the
# CPUs the worker may use. The worker sets its own affinity to this set.
try:
    HOST_CPUS: tuple[int, ...] = tuple(sorted(os.sched_getaffinity(0)))
except AttributeError:  # pragma: no cover - not Linux
    HOST_CPUS = ()

#: the packages' root, put on the worker's PYTHONPATH (the worker imports nacos and schedules)
_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class TuningJob:
    """What one worker tunes, where, and how (a JSON object on the worker's command line)."""

    onnx: str                          # the candidate's checked ONNX file
    database: str                      # TuningDatabase directory (shared, file-locked)
    target: str                        # the parent's `tvm.target.Target`, as `str(target)` gives it (JSON)
    searcher: str = "explicit"         # auto | explicit | metaschedule
    metaschedule_trials: int = 32      # auto: MetaSchedule trials of each heavy task
    trials_per_workload: int = 8
    seed: int = 0
    rpc: str = ""                      # the config's rpc://HOST:PORT/KEY target (metaschedule's runner), or ""
    threads: int = 0
    memory_mb: int = 0                 # RLIMIT_AS of the worker in MiB; 0: no limit
    cpus: tuple[int, ...] = ()         # CPU affinity of the worker; (): inherit

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TuningJob":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a tuning job is a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown tuning job keys {unknown}")
        if "cpus" in data:
            data["cpus"] = tuple(int(c) for c in data["cpus"])
        return cls(**data)


@dataclass(frozen=True)
class WorkerOutcome:
    """How the worker ended: `ok` with its `report`, or not ok with the `reason`."""

    ok: bool
    reason: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    returncode: int | None = None
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------
# Parent side
# ------------------------------------------------------------------------------------------------
def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _wait_unreaped(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait until the worker has exited, at most `timeout_s`, WITHOUT reaping it: while it is a zombie
    its pid (the process group's id) cannot be reused, so killing the group afterwards is safe."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.2)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the worker's whole process group (it leads it: start_new_session), then reap the worker."""
    if proc.returncode is None:  # not reaped: the group id is still the worker's
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone already
    proc.wait()


def _tail(raw: bytes, lines: int = 6, chars: int = 1500) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return " | ".join(text.splitlines()[-lines:])[-chars:]


def _tagged(out: str, tag: str) -> dict[str, Any] | None:
    for line in reversed(out.splitlines()):
        if line.startswith(tag):
            try:
                value = json.loads(line[len(tag):])
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


#: how a failed allocation reads where it first fails under an address-space limit (seen: Python's
#: MemoryError, an OSError ENOMEM, OpenBLAS giving up, the loader unable to map TVM's shared library)
_ALLOCATION_FAILURES = ("memory", "failed to map segment", "cannot allocate", "errno 12", "enomem")


def with_memory_hint(reason: str, memory_mb: int) -> str:
    """`reason`, plus which limit it ran under when it reads as a failed allocation and a limit was set."""
    low = reason.lower()
    if memory_mb and "tuning.worker_memory_mb" not in reason and any(w in low for w in _ALLOCATION_FAILURES):
        return f"{reason} (out of memory under tuning.worker_memory_mb = {memory_mb} MiB)"
    return reason


def run_tuning_worker(job: TuningJob, timeout_s: float, *, python: str | None = None) -> WorkerOutcome:
    """Run `job` in a fresh worker process (its own process group); wait at most `timeout_s` seconds.

    Never raises for what the worker does (crash, hang, error, garbage output): that is the outcome's
    reason. Whatever happens, the worker's process group is killed and the worker reaped before this
    returns or raises (KeyboardInterrupt included)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH", "")) if p)
    env[PARENT_ENV] = str(os.getpid())
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([python or sys.executable, "-m", _MODULE, job.to_json()],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                start_new_session=True, close_fds=True)
        try:
            exited = _wait_unreaped(proc, timeout_s)
        finally:
            # every way out, a normal exit too (a grandchild may outlive the worker in its group), and an
            # exception or KeyboardInterrupt here: kill the group, then reap the worker
            _kill_group(proc)
        if not exited:
            return WorkerOutcome(False, f"tuning worker timed out after {timeout_s:g} s (killed)",
                                 returncode=proc.returncode, seconds=time.monotonic() - start)
        rc = proc.returncode
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read()
    if rc < 0:
        name = _signal_name(-rc)
        hint = " (killed: out of memory?)" if -rc == signal.SIGKILL else ""
        if job.memory_mb and -rc in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS):
            hint = f" (under tuning.worker_memory_mb = {job.memory_mb} MiB: out of memory?)"
        return WorkerOutcome(False, f"tuning worker died: {name}{hint}", returncode=rc, seconds=seconds)
    if rc != 0:
        error = _tagged(stdout, ERROR_TAG)
        detail = error.get("error") if error else None
        reason = with_memory_hint(f"tuning worker failed (exit {rc}): {detail or _tail(stderr) or 'no output'}",
                                  job.memory_mb)
        return WorkerOutcome(False, reason, returncode=rc, seconds=seconds)
    report = _tagged(stdout, REPORT_TAG)
    if report is None or not REPORT_KEYS <= set(report):
        return WorkerOutcome(False, f"tuning worker exited 0 without a report: {_tail(stderr) or 'no output'}",
                             returncode=rc, seconds=seconds)
    return WorkerOutcome(True, report=report, returncode=rc, seconds=seconds)


# ------------------------------------------------------------------------------------------------
# Worker side
# ------------------------------------------------------------------------------------------------
def _limit_process(job: TuningJob) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if job.memory_mb > 0:
        limit = int(job.memory_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if job.cpus:
        try:
            os.sched_setaffinity(0, job.cpus)
        except (OSError, AttributeError):
            pass  # CPUs the worker may not use (another cpuset): keep the inherited affinity


def _die_with_parent(poll_s: float = 0.5) -> None:
    """End this worker's whole process group when the search that started it is gone (``kill -9`` of the
    search, a crash of its process): otherwise the worker, in a session of its own, would go on tuning and
    holding the database's lock while the rerun waits. A thread polls the parent's pid (portable, and
    unlike PR_SET_PDEATHSIG it does not depend on which of the parent's threads started the worker)."""
    import threading

    # the pid the search gave (it may already be gone, and the worker re-parented, before this runs)
    parent = int(os.environ.get(PARENT_ENV) or os.getppid())

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.killpg(os.getpgid(0), signal.SIGKILL)  # the worker leads its group: MetaSchedule's children too

    threading.Thread(target=watch, name="nacos-parent-watch", daemon=True).start()


def _injected_fault(db: Any) -> None:
    """The named fault point (``FAULT_ENV``): holding the database's exclusive lock, die by the signal, once
    per token. A signal's default action is restored first (LLVM installs crash handlers in-process)."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    name, _, token = spec.partition(":")
    sig = signal.Signals[name]
    try:
        os.remove(token)  # claims the fault: exactly one worker per token takes it
    except FileNotFoundError:
        return
    with db.writing():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(3600)  # SIGSTOP: a hung worker, holding the lock, until the parent's timeout kills it


def _tune(job: TuningJob) -> dict[str, Any]:
    import tvm

    from schedules.database import TuningDatabase
    from schedules.frontend import import_onnx
    from schedules.tuner import explicit_tune, tune

    target = tvm.target.Target(job.target)
    db = TuningDatabase(Path(job.database), target=target)  # tuned means tuned on this target's machine
    _injected_fault(db)
    if job.searcher == "explicit":
        report = explicit_tune(import_onnx(job.onnx), db, target, configs_per_task=job.trials_per_workload,
                               seed=job.seed)
    elif job.searcher in ("metaschedule", "auto"):
        runner = None
        if job.rpc:
            from schedules.targets import RpcTarget

            runner = RpcTarget.from_url(job.rpc).ms_runner()
        if job.searcher == "auto":
            from schedules.tuner import auto_tune

            report = auto_tune(import_onnx(job.onnx), db, target, trials_per_task=job.trials_per_workload,
                               metaschedule_trials=job.metaschedule_trials, seed=job.seed, runner=runner)
        else:
            report = tune(import_onnx(job.onnx), db, target, trials_per_task=job.trials_per_workload,
                          runner=runner, seed=job.seed)
    else:
        raise ValueError(f"unknown searcher {job.searcher!r}")
    return {"tuned": len(report.tuned), "reused": len(report.reused), "hit_rate": report.hit_rate,
            "trials": report.trials, "seconds": report.seconds, "faults": len(report.faults),
            "tuned_workloads": [w.name for w in report.tuned], "pid": os.getpid(),
            "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []}


def main(argv: list[str] | None = None) -> int:
    """``python -m nacos.backends.tuning_worker JOB_JSON``: tune, print the report line, exit 0 (1 on an error)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {_MODULE} JOB_JSON", file=sys.stderr)
        return 2
    try:
        job = TuningJob.from_json(argv[0])
        _die_with_parent()
        _limit_process(job)
        report = _tune(job)
    except BaseException as exc:  # noqa: BLE001 - the parent gets the error as data
        import traceback

        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        message = f"{type(exc).__name__}: {exc}".strip()[:1500]
        out_of_memory = isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM)
        if out_of_memory and "job" in locals() and job.memory_mb:
            message += f" (out of memory under tuning.worker_memory_mb = {job.memory_mb} MiB)"
        print(ERROR_TAG + json.dumps({"error": message}), flush=True)
        return 1
    print(REPORT_TAG + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
