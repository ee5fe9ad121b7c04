"""A tuning worker that crashes, is killed (as the kernel's OOM killer does) or hangs costs one candidate,
not the search: real two-stage searches (tiny space, tiny supernet, real explicit tuning in
`nacos.backends.tuning_worker` processes, real TVM builds and measurements). The first candidate's tuning worker
takes a real signal at the worker's named fault point (`nacos.backends.tuning_worker.FAULT_ENV`: holding the
database's exclusive lock), so no test races a timer; a watcher thread records the workers started.

Each test checks: that candidate's row is ``failed`` with the exact reason; the other candidates are
committed ``ok``; the tuning database still loads; afterwards no tuning worker of this test is left
(anywhere on the machine) and this process has no zombie child.

The proposals are fixed: the random strategy's proposals depend only on the seed, never on results.
With SEED the first candidate has workloads the other two lack, so with `warm_db` (the other two's
workloads tuned beforehand) it is the only candidate that starts a worker.

    nice -n 19 pytest tests/nacos/test_tuning_worker_faults.py -v
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.nacos.test_search_tvm import SPACE, checkpoint  # noqa: F401  (the tiny supernet fixture)

SEED = 3
TRIALS = 3
WORKER = "nacos.backends.tuning_worker"


def _proposals():
    """The search's TRIALS proposals (random strategy: a function of the seed alone)."""
    from archspace import ArchSpace, SpaceConfig
    from nacos.strategies import make_strategy

    space = ArchSpace(SpaceConfig.from_dict(SPACE))
    strategy = make_strategy("random", space, SEED)
    return space, [strategy.ask() for _ in range(TRIALS)]


def _explicit_workloads(space, arch, tmp: Path) -> set[str]:
    from archspace.export import export_onnx
    from schedules.frontend import import_onnx
    from schedules.targets import host_target
    from schedules.tuner import plan_tuning

    class Nothing:  # an empty database: every workload is "to tune", on any machine
        def on(self, target):
            return self

        def is_tuned(self, w):
            return False

    path = export_onnx(arch, tmp / f"{arch.id}.onnx", space=space, check=False)
    todo, _ = plan_tuning(import_onnx(path), Nothing(), host_target(1), explicit=True)
    return {w.structural_hash for w in todo}


@pytest.fixture(scope="module")
def warm_db(tmp_path_factory) -> Path:
    """A tuning database holding every workload of candidates 2 and 3, and none that only candidate 1 has."""
    from schedules.database import TuningDatabase
    from schedules.frontend import import_onnx
    from schedules.targets import host_target
    from schedules.tuner import explicit_tune

    tmp = tmp_path_factory.mktemp("warm")
    space, archs = _proposals()
    workloads = [_explicit_workloads(space, a, tmp) for a in archs]
    assert workloads[0] - workloads[1] - workloads[2], "SEED's first candidate must have workloads of its own"
    db = TuningDatabase(tmp / "db")
    for arch in archs[1:]:
        explicit_tune(import_onnx(tmp / f"{arch.id}.onnx"), db, host_target(1), configs_per_task=1, seed=SEED)
    assert set(db.covered()) >= workloads[1] | workloads[2]
    return tmp / "db"


class Watcher(threading.Thread):
    """Records the pid of every tuning worker this process starts, in order, and whether the first one (the
    victim: the fault token makes the first worker take the fault) was seen holding the database's lock."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: list[int] = []
        self.held_lock = False
        self.done = threading.Event()

    @property
    def victim(self) -> int | None:
        return self.seen[0] if self.seen else None

    def _holds_lock(self, proc: psutil.Process) -> bool:
        try:
            return any(f.path.endswith("/.lock") for f in proc.open_files())
        except psutil.Error:
            return False

    def run(self) -> None:
        me = psutil.Process()
        while not self.done.is_set():
            for child in me.children(recursive=False):
                try:
                    if WORKER not in " ".join(child.cmdline()):
                        continue
                except psutil.Error:
                    continue
                if child.pid not in self.seen:
                    self.seen.append(child.pid)
                if child.pid == self.victim and not self.held_lock:
                    self.held_lock = self._holds_lock(child)
            time.sleep(0.01)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)


def _cfg(checkpoint: str, db: Path, timeout_s: float):  # noqa: F811
    from nacos.config import config_from_dict

    return config_from_dict({
        "mode": "two-stage", "trials": TRIALS, "seed": SEED, "data": "digits", "checkpoint": checkpoint,
        "space": SPACE, "strategy": {"name": "random"},
        "tuning": {"repeats": 3, "warmup": 1, "trials_per_workload": 2, "searcher": "explicit", "threads": 1,
                   "database": str(db), "timeout_s": timeout_s}})


def _search_with_fault(checkpoint: str, tmp_path: Path, db: Path, sig: int, timeout_s: float,  # noqa: F811
                       monkeypatch: pytest.MonkeyPatch):
    """A search whose first tuning worker takes the fault `sig` at the worker's named fault point (holding
    the database's exclusive lock): deterministic, no timer raced."""
    from nacos.backends.tuning_worker import FAULT_ENV
    from nacos.search.run import run_search

    token = tmp_path / "fault-token"
    token.write_text("")
    monkeypatch.setenv(FAULT_ENV, f"{signal.Signals(sig).name}:{token}")
    watcher = Watcher()
    watcher.start()
    t0 = time.monotonic()
    try:
        summary = run_search(_cfg(checkpoint, db, timeout_s), tmp_path / "run", progress=False)
    finally:
        watcher.stop()
        monkeypatch.delenv(FAULT_ENV)
    seconds = time.monotonic() - t0
    assert not token.exists(), "no tuning worker took the fault"
    rows = json.loads((tmp_path / "run" / "report" / "candidates.json").read_text())
    return summary, rows, watcher, seconds


def _check(summary, rows, watcher: Watcher, db: Path, tmp_path: Path, reason: str) -> None:
    from schedules.database import TuningDatabase

    _, archs = _proposals()
    assert watcher.victim is not None, "no tuning worker was seen"
    # the first candidate failed with the reason; the search went on and committed the two others
    assert [r["id"] for r in rows] == [a.id for a in archs], rows
    assert [r["status"] for r in rows] == ["failed", "ok", "ok"], [(r["status"], r.get("reason")) for r in rows]
    assert rows[0]["reason"] == f"latency: {reason}"
    assert (summary["completed"], summary["ok"], summary["failed"], summary["rejected"]) == (3, 2, 1, 0)
    for row in rows[1:]:
        assert row["latency_ms"] > 0 and row["latency_backend"] == "tvm-tuned"
    # one worker per candidate that had something to tune, the victim first
    assert watcher.seen[0] == watcher.victim
    assert len(watcher.seen) == 1 + sum(r["latency_tuning_worker_seconds"] > 0 for r in rows[1:])
    # the database loads, and holds the workloads of the candidates that were measured
    loaded = TuningDatabase(db)
    assert len(loaded.covered()) > 0 and all(r["latency_hit_rate"] <= 1 for r in rows[1:])
    # nothing left behind: no tuning worker of this test anywhere, no zombie child of this process
    mine = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if WORKER in cmd and str(tmp_path) in cmd:
            mine.append((p.pid, cmd[:200]))
    assert mine == []
    zombies = [c.pid for c in psutil.Process().children(recursive=True) if c.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []


def test_kill_tuning_worker_segfault_crash_fails_one_candidate_search_goes_on(checkpoint, tmp_path,  # noqa: F811
                                                                              monkeypatch):
    """SIGSEGV while tuning (holding the database lock) into a fresh database; the next candidates tune
    in workers of their own."""
    db = tmp_path / "db"
    summary, rows, watcher, seconds = _search_with_fault(checkpoint, tmp_path, db, signal.SIGSEGV, 600, monkeypatch)
    _check(summary, rows, watcher, db, tmp_path, "tuning worker died: SIGSEGV")
    assert len(watcher.seen) == 3  # candidates 2 and 3 tuned in workers of their own
    print(f"segfault: {seconds:.1f} s")


def test_kill_tuning_worker_sigkill_oom_fails_one_candidate_search_goes_on(checkpoint, warm_db, tmp_path,  # noqa: F811
                                                                            monkeypatch):
    """SIGKILL (what the kernel's OOM killer sends) while tuning."""
    db = tmp_path / "db"
    shutil.copytree(warm_db, db)
    summary, rows, watcher, seconds = _search_with_fault(checkpoint, tmp_path, db, signal.SIGKILL, 600, monkeypatch)
    _check(summary, rows, watcher, db, tmp_path, "tuning worker died: SIGKILL (killed: out of memory?)")
    assert len(watcher.seen) == 1
    print(f"sigkill: {seconds:.1f} s")

    # resume: a config.json from before tuning.timeout_s / worker_memory_mb existed still resumes (today's
    # defaults fill in), with another timeout too (it may change between reruns); the failed row is final
    from nacos.search.run import run_search

    saved = tmp_path / "run" / "config.json"
    old = json.loads(saved.read_text())
    del old["tuning"]["timeout_s"], old["tuning"]["worker_memory_mb"]
    saved.write_text(json.dumps(old))
    again = run_search(_cfg(checkpoint, db, 300), tmp_path / "run", progress=False)
    assert (again["evaluated_now"], again["replayed"], again["ok"], again["failed"]) == (0, 3, 2, 1)
    assert json.loads(saved.read_text())["tuning"]["timeout_s"] == 300
    assert json.loads((tmp_path / "run" / "report" / "candidates.json").read_text()) == rows


def test_kill_tuning_worker_hang_sigstop_times_out_search_goes_on(checkpoint, warm_db, tmp_path,  # noqa: F811
                                                                  monkeypatch):
    """SIGSTOP (a genuine hang, holding the database's exclusive lock) until tuning.timeout_s: the worker's
    process group is killed and reaped, the lock is free again, the next candidates are measured."""
    timeout = 30
    db = tmp_path / "db"
    shutil.copytree(warm_db, db)
    summary, rows, watcher, seconds = _search_with_fault(checkpoint, tmp_path, db, signal.SIGSTOP, timeout,
                                                         monkeypatch)
    _check(summary, rows, watcher, db, tmp_path, f"tuning worker timed out after {timeout} s (killed)")
    assert len(watcher.seen) == 1
    assert watcher.held_lock                          # seen stopped while holding the database's lock
    assert rows[0]["latency_tuning_worker_seconds"] >= timeout
    print(f"sigstop: {seconds:.1f} s")


def _tiny_job(tmp_path: Path, **kw):
    from nacos.backends.tuning_worker import HOST_CPUS, TuningJob

    return TuningJob(onnx=str(tmp_path / "model.onnx"), database=str(tmp_path / "db"),
                     target='{"kind": "llvm", "num-cores": 1}', cpus=HOST_CPUS, **kw)


def _left_behind(tmp_path: Path) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if WORKER in " ".join(p.info["cmdline"] or []) and str(tmp_path) in " ".join(p.info["cmdline"] or [])]


def test_kill_tuning_worker_over_memory_limit_crash_fails_with_reason(tmp_path):
    """tuning.worker_memory_mb is the worker's RLIMIT_AS: 200 MiB is less than importing TVM takes."""
    from nacos.backends.tuning_worker import run_tuning_worker

    outcome = run_tuning_worker(_tiny_job(tmp_path, memory_mb=200), 120)
    assert not outcome.ok and outcome.returncode == 1
    # where the allocation fails first varies (seen: a MemoryError importing TVM, an OSError ENOMEM, OpenBLAS
    # giving up and exiting): the reason says which, and names the limit
    assert outcome.reason.startswith("tuning worker failed (exit 1): ") and "memory" in outcome.reason.lower()
    assert outcome.reason.endswith("(out of memory under tuning.worker_memory_mb = 200 MiB)")
    assert _left_behind(tmp_path) == []


@pytest.mark.parametrize("detail", [
    "MemoryError: ", "OSError: [Errno 12] Cannot allocate memory",
    "OSError: /venv/lib/python3.11/site-packages/tvm/lib/libtvm_runtime.so: failed to map segment from shared object",
    "OpenBLAS : Program will terminate because you tried to allocate too many memory regions."])
def test_every_way_an_allocation_fails_under_the_limit_names_the_limit(detail):
    """Where an allocation first fails under RLIMIT_AS varies from run to run (the last one above was seen
    in CI); each reads as out of memory under the limit, and nothing else does."""
    from nacos.backends.tuning_worker import with_memory_hint

    reason = f"tuning worker failed (exit 1): {detail}"
    assert with_memory_hint(reason, 200).endswith("(out of memory under tuning.worker_memory_mb = 200 MiB)")
    assert with_memory_hint(reason, 0) == reason                    # no limit set: no hint
    assert with_memory_hint("tuning worker failed (exit 1): ValueError: bad shape", 200).endswith("bad shape")


def test_kill_tuning_worker_when_the_parent_is_interrupted(tmp_path):
    """A KeyboardInterrupt (Ctrl-C) in the search while it waits: the worker's group is killed and reaped."""
    import _thread

    from nacos.backends.tuning_worker import run_tuning_worker

    stopped: list[int] = []

    def stop_worker_then_interrupt() -> None:
        # SIGSTOP the worker as soon as it exists (it cannot then end on its own before the interrupt: its
        # model does not exist, which it would find out after importing TVM), then Ctrl-C the waiting parent
        deadline = time.monotonic() + 60
        while not stopped and time.monotonic() < deadline:
            for child in psutil.Process().children(recursive=True):
                try:
                    if WORKER in " ".join(child.cmdline()) and str(tmp_path) in " ".join(child.cmdline()):
                        child.send_signal(signal.SIGSTOP)
                        stopped.append(child.pid)
                except psutil.Error:
                    pass
            time.sleep(0.005)
        time.sleep(0.2)
        _thread.interrupt_main()

    # Python's own SIGINT handler for the test (an earlier test in the same process, e.g. Dask's, may have
    # installed another one, and interrupt_main only raises KeyboardInterrupt through the default handler)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=stop_worker_then_interrupt, daemon=True)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_tuning_worker(_tiny_job(tmp_path), 120)
    finally:
        signal.signal(signal.SIGINT, previous)
    watcher.join(5)
    assert len(stopped) == 1
    assert not psutil.pid_exists(stopped[0]) or psutil.Process(stopped[0]).status() == psutil.STATUS_ZOMBIE
    assert _left_behind(tmp_path) == []
    assert [c.pid for c in psutil.Process().children(recursive=True) if c.status() == psutil.STATUS_ZOMBIE] == []


def test_pickle_tuned_latency_with_its_worker_settings(tmp_path):
    """The Dask executor pickles the evaluator (and so the two-stage backend) for its workers."""
    import pickle

    import cloudpickle

    from nacos.backends.tvm_tuned import TunedLatency
    from nacos.config import config_from_dict

    backend = TunedLatency(config_from_dict({"tuning": {"database": str(tmp_path / "db"), "timeout_s": 7,
                                                        "worker_memory_mb": 4096}}))
    for dumps in (pickle.dumps, cloudpickle.dumps):
        copy = pickle.loads(dumps(backend))
        assert copy._job(tmp_path / "m.onnx") == backend._job(tmp_path / "m.onnx")
        assert (copy.cfg.tuning.timeout_s, copy.cfg.tuning.worker_memory_mb) == (7.0, 4096)


def test_kill_9_of_the_search_takes_its_tuning_worker_along(tmp_path):
    """The worker runs in a session of its own (so that its group can be killed), which also means a
    `kill -9` of the search would leave it running; its parent watch ends it instead."""
    import subprocess
    import sys

    code = ("import subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time, nacos.backends.tuning_worker as w; "
            "w._die_with_parent(0.1); time.sleep(120)'], start_new_session=True)\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(120)\n")
    search = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        worker = psutil.Process(int(search.stdout.readline()))
        time.sleep(1.0)  # the worker's watch has started
        assert worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE
        search.kill()
        search.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.1)
        assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    finally:
        search.kill()
        search.wait()
