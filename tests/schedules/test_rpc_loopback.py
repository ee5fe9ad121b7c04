"""Measurement on several devices through TVM's RPC tracker, all on loopback.

A real tracker and two real servers are started the way a user starts them on boards
(``python -m tvm.exec.rpc_tracker`` / ``python -m tvm.exec.rpc_server``, bound to 127.0.0.1, one device
key), each in its own process group, and are killed and reaped at the end of the module (the teardown
fails if any process of theirs is left). Each server's log says which sessions it served.

- a small ONNX model measured through `schedules.measure` on the RPC device, checked against
  onnxruntime there (a module computing something else is refused there too);
- two sessions held at once occupy both servers (the tracker says 0 free); a third request waits,
  bounded, and fails with a clear error; concurrent measurements from threads are served by both;
- a real `nacos search` (baseline, 2 candidates) with ``--target rpc://127.0.0.1:PORT/KEY``: every
  candidate measured on a server;
- a key no server has, a port nothing listens on and a peer that is no tracker: a failed measurement
  with its reason within seconds, not a hang; a search with such a key records a failed row with it.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from schedules.errors import ScheduleError
from schedules.measure import Protocol, compile, measure
from schedules.targets import RpcTarget

KEY = "nacos-test"
SERVERS = 2
P = Protocol(warmup=1, repeats=3)
ROOT = Path(__file__).resolve().parents[2]
SPACE = {"resolutions": [16], "width_mults": [1.0], "kernel_sizes": [3, 5], "expand_ratios": [3], "depths": [1, 2],
         "stem_channels": 8, "stage_channels": [8, 16], "stage_strides": [2, 2], "head_channels": 16}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_members(pgids: set[int]) -> list[tuple[int, str]]:
    """(pid, state) of the live (not zombie) processes of these process groups."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) in pgids and fields[0] != "Z":
            out.append((int(entry.name), fields[0]))
    return out


@dataclass
class LoopbackRpc:
    port: int
    logs: list[Path]            # one per server
    procs: list[subprocess.Popen]

    @property
    def url(self) -> str:
        return f"rpc://127.0.0.1:{self.port}/{KEY}"

    def target(self, **kw) -> RpcTarget:
        return RpcTarget("127.0.0.1", self.port, KEY, **kw)

    def sessions(self) -> list[int]:
        """Sessions each server has served so far (from its log)."""
        return [log.read_text(errors="replace").count("connected from") for log in self.logs]

    def wait_all_free(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.target().summary()["queue_info"].get(KEY, {}).get("free", 0) < SERVERS:
            assert time.monotonic() < deadline, self.target().summary()
            time.sleep(0.2)


def _spawn(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", *argv], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=log.parent)


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every process group (the servers' forked session processes and TVM's popen workers are
    in it), SIGKILL what is left after 10 s, reap the children, and check nothing of theirs lives on."""
    groups = {p.pid for p in procs}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in groups:
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (any(p.poll() is None for p in procs) or _group_members(groups)):
            time.sleep(0.1)
        if not any(p.poll() is None for p in procs) and not _group_members(groups):
            break
    for p in procs:
        p.wait(timeout=10)
    left = _group_members(groups)
    assert not left, f"RPC processes left behind: {left}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("rpc")
    procs: list[subprocess.Popen] = []
    try:
        port = _free_port()
        procs.append(_spawn(["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port),
                             "--port-end", str(port + 1)], d / "tracker.log"))
        deadline = time.monotonic() + 120
        while True:  # the tracker listens once it has imported tvm (about 3 s, more under load)
            assert procs[0].poll() is None, (d / "tracker.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the RPC tracker did not start"
                time.sleep(0.2)
        logs = []
        for i in range(SERVERS):
            sport = _free_port()
            logs.append(d / f"server{i}.log")
            procs.append(_spawn(["tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(sport),
                                 "--port-end", str(sport + 1), "--tracker", f"127.0.0.1:{port}", "--key", KEY],
                                logs[-1]))
        c = LoopbackRpc(port, logs, procs)
        while len(c.target().servers()) < SERVERS:  # each server imports tvm twice (itself and its worker)
            for p, log in zip(procs[1:], logs):
                assert p.poll() is None, log.read_text()
            assert time.monotonic() < deadline, c.target().summary()
            time.sleep(0.5)
        yield c
    finally:
        _stop(procs)


def test_tracker_lists_both_servers_on_loopback(cluster):
    summary = cluster.target().check()
    assert summary["queue_info"][KEY] == {"free": SERVERS, "pending": 0}
    servers = cluster.target().servers(summary)
    assert len(servers) == SERVERS and all(host == "127.0.0.1" for host, _ in servers)


def test_measure_on_the_rpc_device_checked_against_onnxruntime(cluster, models, target):
    compiled = compile(models["a"], None, target)
    before = sum(cluster.sessions())
    m = measure(compiled, P, rpc=cluster.target())
    assert m.ok, m.error
    assert m.backend == "tvm-rpc" and m.runs == 3 and m.batch == 1 and 0 < m.min_ms <= m.median_ms
    # a module that computes something else is refused by the same gate on the device
    wrong = compile(models["a_other_weights"], None, target)
    wrong.onnx_path = models["a"]
    bad = measure(wrong, P, rpc=cluster.target())
    assert not bad.ok and bad.error.startswith("wrong result: output 0 max abs diff") and bad.backend == "tvm-rpc"
    assert sum(cluster.sessions()) == before + 2   # both ran on a server, one session each


def test_object_files_linked_on_the_device_measure_there(cluster, models, target):
    """The route of a cross-compiled device (``link=device``: a .tar the server links with its own
    compiler), taken here by a server of this CPU: the same check and timing as a shared library."""
    compiled = compile(models["a"], None, target)
    rpc = RpcTarget.from_url(cluster.url + "?link=device")
    assert rpc.link == "device"
    before = sum(cluster.sessions())
    m = measure(compiled, P, rpc=rpc)
    assert m.ok, m.error
    assert m.backend == "tvm-rpc" and m.runs == 3 and 0 < m.min_ms <= m.median_ms
    assert sum(cluster.sessions()) == before + 1


def test_busy_servers_are_shared_and_a_waiting_request_is_bounded(cluster):
    cluster.wait_all_free()
    before = cluster.sessions()
    first, second = cluster.target().session(), cluster.target().session()
    try:
        # both servers are taken: the tracker has none free, each server has served one more session
        assert cluster.target().summary()["queue_info"][KEY]["free"] == 0
        assert [b - a for a, b in zip(before, cluster.sessions())] == [1] * SERVERS
        t0 = time.monotonic()
        with pytest.raises(ScheduleError, match=r"no session on an RPC server of key 'nacos-test' .* within 2 s "
                                                r"\(2 registered, 0 free"):
            cluster.target(request_timeout_s=2).session()
        assert time.monotonic() - t0 < 15
    finally:
        del first, second
        gc.collect()
    cluster.wait_all_free()  # the sessions ended; the servers registered again


def test_concurrent_measurements_are_served_by_every_server(cluster, models, target):
    cluster.wait_all_free()
    compiled = [compile(models[name], None, target) for name in ("a", "b", "small", "a")]
    before = cluster.sessions()
    results = [None] * len(compiled)

    def run(i: int) -> None:
        results[i] = measure(compiled[i], P, rpc=cluster.target())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(compiled))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(r is not None and r.ok for r in results), [r and r.error for r in results]
    served = [b - a for a, b in zip(before, cluster.sessions())]
    # the tracker hands a request the server that has been free longest (FIFO), so 4 requests reach both
    assert sum(served) == len(compiled) and all(n >= 1 for n in served), served


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from archspace import ArchSpace, SpaceConfig
    from archspace.data import load_dataset
    from archspace.supernet import Supernet
    from archspace.training import TrainConfig, finalize_checkpoint, train_supernet

    tmp = tmp_path_factory.mktemp("supernet")
    torch.manual_seed(0)
    train_supernet(Supernet(ArchSpace(SpaceConfig.from_dict(SPACE)), 1, 10), load_dataset("digits"),
                   TrainConfig(epochs=1, batch_size=64, n_random=0), tmp, progress=False)
    return str(finalize_checkpoint(tmp, tmp / "tiny.pt"))


def test_nacos_search_measures_every_candidate_on_the_rpc_devices(cluster, checkpoint, tmp_path):
    cluster.wait_all_free()
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"data": "digits", "checkpoint": checkpoint, "space": SPACE,
                                  "strategy": {"population": 2, "sample_size": 2},
                                  "tuning": {"repeats": 3, "warmup": 1, "database": str(tmp_path / "db")}}))
    run_dir = tmp_path / "run"
    before = sum(cluster.sessions())
    proc = subprocess.run([sys.executable, "-m", "nacos", "search", "--config", str(config), "--run-dir", str(run_dir),
                           "--mode", "baseline", "--trials", "2", "--target", cluster.url, "--json", "--quiet"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    rows = json.loads((run_dir / "report" / "candidates.json").read_text())
    assert summary["ok"] == 2 and len(rows) == 2, rows
    for row in rows:
        assert row["status"] == "ok" and row["latency_backend"] == "tvm-default-schedule" and row["latency_ms"] > 0
        assert row["latency_measured_by"] == "tvm-rpc" and row["latency_device"] == cluster.url
    assert json.loads((run_dir / "config.json").read_text())["target"] == cluster.url
    assert sum(cluster.sessions()) == before + 2   # each candidate was measured in one session on a server


def test_unknown_key_unreachable_tracker_and_a_peer_that_is_no_tracker_fail_fast(cluster, models, target):
    compiled = compile(models["small"], None, target)
    silent = socket.socket()  # accepts connections, never answers: a hang for TVM's own connect_tracker
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        cases = [
            (RpcTarget("127.0.0.1", cluster.port, "no-such-board"),
             "rpc error: ScheduleError: no RPC server is registered under key 'no-such-board' at tracker "
             f"127.0.0.1:{cluster.port} (keys there: ['nacos-test'])"),
            (RpcTarget("127.0.0.1", _free_port(), KEY), "cannot be reached (ConnectionRefusedError"),
            (RpcTarget("127.0.0.1", silent.getsockname()[1], KEY, connect_timeout_s=2),
             "did not answer as a TVM RPC tracker within 2 s"),
        ]
        for rpc, reason in cases:
            t0 = time.monotonic()
            m = measure(compiled, P, rpc=rpc)
            assert not m.ok and m.backend == "tvm-rpc" and reason in m.error, m.error
            assert time.monotonic() - t0 < 20, rpc
    finally:
        silent.close()
    with pytest.raises(ScheduleError, match="a device key is required"):
        RpcTarget("127.0.0.1", cluster.port, "")
    with pytest.raises(ScheduleError, match="no RPC server is registered under key 'other'"):
        RpcTarget("127.0.0.1", cluster.port, "other").ms_runner()


def test_search_with_a_key_no_server_has_records_failed_rows_with_the_reason(cluster, checkpoint, tmp_path):
    from nacos.config import config_from_dict
    from nacos.search.run import run_search

    cfg = config_from_dict({"mode": "baseline", "trials": 1, "data": "digits", "checkpoint": checkpoint,
                            "space": SPACE, "target": f"rpc://127.0.0.1:{cluster.port}/no-such-board",
                            "strategy": {"population": 2, "sample_size": 2},
                            "tuning": {"repeats": 3, "warmup": 1, "database": str(tmp_path / "db")}})
    t0 = time.monotonic()
    summary = run_search(cfg, tmp_path / "run", progress=False)
    assert time.monotonic() - t0 < 120
    rows = json.loads((tmp_path / "run" / "report" / "candidates.json").read_text())
    assert summary["failed"] == 1 and rows[0]["status"] == "failed", rows
    assert rows[0]["reason"].startswith("latency: rpc error: ScheduleError: no RPC server is registered under key "
                                        f"'no-such-board' at tracker 127.0.0.1:{cluster.port} (keys there: "
                                        "['nacos-test'])"), rows[0]["reason"]
