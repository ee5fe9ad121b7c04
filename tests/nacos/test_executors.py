"""Candidate evaluation over a Dask cluster (`nacos.executors`), on a real `distributed.LocalCluster` of two
worker processes: the same candidates and front as a local run of the same seed and window; a worker
killed (SIGKILL) mid-evaluation, its candidate retried elsewhere and committed once; a candidate that
keeps killing workers recorded as failed (KilledWorker) while the search goes on; the driver killed and
resumed with candidates in flight; the evaluator's heavy parts shipped once per worker; bad executor
URLs refused with exit 2; and a real (baseline, onnxruntime) search through ``nacos search --executor``.

The objectives are the deterministic formulas of `nb201_objectives`, so no TVM work is needed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from archspace.nb201 import NB201Space
from nacos.config import config_from_dict
from nacos.errors import ConfigError, NacosError
from nacos.executors import DaskExecutor, ExecutorError, LocalExecutor, make_executor, parse_executor_url
from nacos.results.store import ResultsStore
from nacos.search.loop import run_search
from nacos.search.run import run_search as run_cosearch
from nacos.strategies import make_strategy
from tests.nacos.nb201_objectives import closed_form

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 24
PARALLEL = 3
BUDGET = 9.0


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes; a task survives one worker death, not two."""
    with DaskExecutor("dask://local:2", allowed_failures=1) as ex:
        yield ex


def _strategy(name: str, seed: int = 5):
    if name == "nsga2":
        return make_strategy("nsga2", NB201Space(), seed, objectives=[("accuracy", "max"), ("latency_ms", "min")],
                             population=6)
    return make_strategy("aging", NB201Space(), seed, population=6, sample_size=2)


def _objective(arch):
    return closed_form(arch, BUDGET)


def _search(path: Path, strategy: str, evaluate=_objective, executor=None, trials: int = TRIALS):
    with ResultsStore(path) as store:
        summary = run_search(_strategy(strategy), evaluate, store, trials, progress=False, executor=executor,
                             parallel=PARALLEL)
    return summary, _rows(path)


def _rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT seq, id, status, reason, metrics, attempts FROM candidates ORDER BY seq").fetchall()
    return [(seq, gid, status, reason, json.loads(metrics), attempts) for seq, gid, status, reason, metrics, attempts
            in rows]


def _without(rows: list[tuple], key: str) -> list[tuple]:
    return [(*r[:4], {k: v for k, v in r[4].items() if k != key}, r[5]) for r in rows]


@dataclass(frozen=True)
class KillingObjective:
    """`closed_form`, except that evaluating `victim` SIGKILLs the worker process evaluating it: the first
    time only (a marker file remembers), or every time. Each death appends the dead pid to the marker."""

    victim: str
    marker: str
    always: bool = False

    def __call__(self, arch):
        if arch.id == self.victim and (self.always or not os.path.exists(self.marker)):
            with open(self.marker, "a") as f:
                f.write(f"{os.getpid()}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        result = closed_form(arch, BUDGET)
        result.metrics["worker_pid"] = os.getpid()
        return result


@pytest.mark.parametrize("strategy", ["aging", "nsga2"])
def test_dask_proposes_the_same_candidates_and_front_as_local(tmp_path: Path, cluster, strategy: str) -> None:
    local, local_rows = _search(tmp_path / "local.sqlite", strategy, executor="local")
    dask, dask_rows = _search(tmp_path / "dask.sqlite", strategy, executor=cluster)
    assert local.completed == dask.completed == TRIALS and dask.evaluated_now == TRIALS
    assert local.rejected > 0 and local.ok > 0                    # the budget bites: feasibility is exercised
    assert dask_rows == local_rows                                # same ids, order, results; each once
    assert dask.front == local.front and dask.front
    assert dask.parallel == PARALLEL and dask.executor.startswith("dask://local:2 (2 workers at tcp://127.0.0.1:")
    # The window changes what is proposed (so `parallel` is part of a run's identity), the executor does not.
    with ResultsStore(tmp_path / "p1.sqlite") as store:
        run_search(_strategy(strategy), _objective, store, TRIALS, progress=False, parallel=1)
    assert [r[1] for r in _rows(tmp_path / "p1.sqlite")] != [r[1] for r in local_rows]


def test_worker_killed_mid_evaluation_is_retried_and_committed_once(tmp_path: Path, cluster) -> None:
    _, reference = _search(tmp_path / "ref.sqlite", "aging")
    victim = reference[7][1]                      # proposed with others in flight
    marker = tmp_path / "killed.txt"
    summary, rows = _search(tmp_path / "dask.sqlite", "aging", KillingObjective(victim, str(marker)), cluster)
    killed = [int(p) for p in marker.read_text().split()]
    assert len(killed) == 1                       # the worker evaluating it really died, once
    assert summary.completed == TRIALS and summary.failed == 0
    # Retried on another worker process, committed once; nothing lost, nothing repeated, same search.
    assert rows[7][1] == victim and rows[7][2] == "ok" and rows[7][4]["worker_pid"] != killed[0]
    assert all(r[5] == 1 for r in rows)           # one attempt per row in the store: the driver never re-ran one
    assert _without(rows, "worker_pid") == reference
    cluster.client.wait_for_workers(2, timeout=120)   # the nanny restarted the dead worker


def test_candidate_that_keeps_killing_workers_is_recorded_failed(tmp_path: Path, cluster) -> None:
    _, reference = _search(tmp_path / "ref.sqlite", "aging", trials=12)
    victim = reference[4][1]
    marker = tmp_path / "killed.txt"
    summary, rows = _search(tmp_path / "dask.sqlite", "aging", KillingObjective(victim, str(marker), always=True),
                            cluster, trials=12)
    assert len(marker.read_text().split()) == cluster.allowed_failures + 1 == 2
    assert summary.completed == 12 and summary.failed == 1
    assert rows[4][1] == victim and rows[4][2] == "failed" and rows[4][3].startswith("KilledWorker:")
    assert _without(rows[:4], "worker_pid") == reference[:4]      # the search went on around it
    assert all(r[2] != "failed" for i, r in enumerate(rows) if i != 4)
    cluster.client.wait_for_workers(2, timeout=120)


_DRIVER = textwrap.dedent("""
    import os, signal, sys
    from archspace.nb201 import NB201Space
    from nacos.search.loop import run_search
    from nacos.results.store import ResultsStore
    from nacos.strategies import make_strategy
    from tests.nacos.nb201_objectives import closed_form

    class Objective:
        def __init__(self, kill_at, driver):
            self.kill_at, self.driver = kill_at, driver
        def __call__(self, arch):
            if self.kill_at >= 0 and os.environ.get("NACOS_TEST_STORE"):
                import sqlite3
                with sqlite3.connect(os.environ["NACOS_TEST_STORE"]) as c:
                    n = c.execute("SELECT COUNT(*) FROM candidates WHERE status IN ('ok', 'rejected', 'failed')"
                                  ).fetchone()[0]
                if n >= self.kill_at:
                    os.kill(self.driver, signal.SIGKILL)      # the driver dies with candidates in flight
            return closed_form(arch, 9.0)

    if __name__ == "__main__":
        store_path, executor, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
        os.environ["NACOS_TEST_STORE"] = store_path
        strategy = make_strategy("aging", NB201Space(), 5, population=6, sample_size=2)
        with ResultsStore(store_path) as store:
            s = run_search(strategy, Objective(kill_at, os.getpid()), store, 24, progress=False,
                           executor=executor, parallel=3)
        print(s.requeued, s.replayed, s.evaluated_now)
""")


@pytest.mark.parametrize("executor", ["local", "dask://local:2"])
def test_driver_killed_with_candidates_in_flight_resumes_exactly(tmp_path: Path, executor: str) -> None:
    _, reference = _search(tmp_path / "ref.sqlite", "aging")
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    store = tmp_path / "killed.sqlite"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def drive(kill_at: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), str(store), executor, str(kill_at)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    res = drive(10)
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    before = _rows(store)
    committed = [r for r in before if r[2] in ("ok", "rejected", "failed")]
    assert len(committed) >= 10 and [r[:5] for r in committed] == [r[:5] for r in reference[:len(committed)]]
    in_flight = [r for r in before if r[2] == "running"]
    assert 1 <= len(in_flight) <= 3
    res = drive(-1)
    assert res.returncode == 0, res.stderr[-3000:]
    requeued, replayed, evaluated = map(int, res.stdout.split())
    assert (requeued, replayed) == (len(in_flight), len(committed)) and evaluated == TRIALS - len(committed)
    after = _rows(store)
    assert [r[:5] for r in after] == [r[:5] for r in reference]         # same candidates, order, results
    # Committed before the kill: not evaluated again. In flight at the kill: evaluated once more.
    assert all(r[5] == 1 for r in after[:len(committed)])
    assert [r[5] for r in after if r[0] in {f[0] for f in in_flight}] == [2] * len(in_flight)


@dataclass(frozen=True)
class WithBigArray:
    """An evaluator holding a 2 MiB array (a stand-in for the supernet and data set)."""

    table: np.ndarray

    def __call__(self, arch):
        metrics = dict(closed_form(arch).metrics)
        metrics.update(pid=os.getpid(), table_id=id(self.table), table_sum=float(self.table.sum()))
        return metrics


def test_heavy_parts_of_the_evaluator_are_shipped_once_per_worker(tmp_path: Path, cluster) -> None:
    evaluator = WithBigArray(np.arange(1 << 18, dtype=np.float64))     # 2 MiB
    genomes = [NB201Space().sample(i) for i in range(8)]
    rows = [cluster.submit(evaluator, g).result() for g in genomes]
    assert cluster.n_shared == 1 and all(r.status == "ok" for r in rows)
    by_pid: dict[int, set[int]] = {}
    for metrics in (r.metrics for r in rows):
        assert metrics["table_sum"] == float(evaluator.table.sum())
        by_pid.setdefault(metrics["pid"], set()).add(metrics["table_id"])
    assert all(len(ids) == 1 for ids in by_pid.values())              # the same object in each worker's memory


def test_executor_urls() -> None:
    assert parse_executor_url("local").kind == "local"
    assert parse_executor_url("dask://local:3").local_workers == 3
    assert parse_executor_url("dask://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    assert isinstance(make_executor(None), LocalExecutor)
    for bad, why in (("ray://head:10001", "Ray is not supported"), ("dask://local:0", "N in 1..1024"),
                     ("dask://sched", "not dask://HOST:PORT"), ("dask://h:99999", "not dask://HOST:PORT"),
                     ("", "must be local")):
        with pytest.raises(ConfigError, match=why):
            parse_executor_url(bad)
    with pytest.raises(ConfigError, match="parallel: must be in 1..4096"):
        config_from_dict({"parallel": 0})
    assert config_from_dict({"mode": "one-stage", "executor": "dask://local:2", "parallel": 2}).parallel == 2
    # two-stage on a cluster: the tuning database's file lock makes the workers' tunings take turns
    assert config_from_dict({"mode": "two-stage", "executor": "dask://local:2", "parallel": 2}).executor == "dask://local:2"
    with pytest.raises(ExecutorError, match="cannot reach the Dask scheduler"):
        DaskExecutor("dask://127.0.0.1:9", connect_timeout=1).start()   # nothing listens on port 9


def _nacos(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nacos", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_cli_bad_executor_exits_2(tmp_path: Path) -> None:
    res = _nacos("search", "--mode", "baseline", "--executor", "ray://head:10001", "--run-dir", str(tmp_path / "r"))
    assert res.returncode == 2 and "executor: unknown executor 'ray://head:10001'" in res.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mode: baseline\nexecutor: dask://local:two\n")
    res = _nacos("search", "--config", str(cfg), "--run-dir", str(tmp_path / "r"))
    assert res.returncode == 2 and "dask://local:N needs N in 1..1024" in res.stderr and str(cfg) in res.stderr
    assert not (tmp_path / "r").exists()


BASELINE = {"mode": "baseline", "baseline_latency": "onnxruntime", "trials": 3, "seed": 3,
            "strategy": {"population": 2, "sample_size": 2}, "budgets": {"memory_budgets_mb": [1.0]},
            "tuning": {"repeats": 3, "warmup": 1, "threads": 1}}


def test_real_search_on_a_local_dask_cluster_then_resumed_locally(tmp_path: Path) -> None:
    """The real evaluator (supernet, data, ONNX export, onnxruntime) ships to two worker processes."""
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(BASELINE))
    run_dir = tmp_path / "run"
    res = _nacos("search", "--config", str(cfg), "--run-dir", str(run_dir), "--executor", "dask://local:2",
                 "--parallel", "2", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    assert summary["evaluated"] == 3 and summary["failed"] == 0 and summary["evaluated_now"] == 3
    assert summary["executor"].startswith("dask://local:2 (2 workers") and summary["parallel"] == 2
    rows = _rows(run_dir / "results.sqlite")
    assert len(rows) == 3 and all(r[5] == 1 and r[4]["accuracy"] > 0 and r[4]["latency_ms"] > 0 for r in rows)
    # the workers share this machine's file system: their exported models are where the report looks
    assert all((run_dir / "artifacts" / r[4]["arch_id"] / "model.onnx").exists() for r in rows)
    # The executor may change between reruns, the window may not.
    res = _nacos("search", "--config", str(cfg), "--run-dir", str(run_dir), "--parallel", "1", "--json")
    assert res.returncode == 2 and "another configuration" in res.stderr and "parallel" in res.stderr
    again = run_cosearch(config_from_dict({**BASELINE, "trials": 4, "parallel": 2}), run_dir, progress=False)
    assert again["replayed"] == 3 and again["evaluated_now"] == 1 and again["executor"] == "local"


def test_a_store_keeps_its_window(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _search(path, "aging", trials=5)
    with ResultsStore(path) as store:
        with pytest.raises(NacosError, match=r"started with parallel=3 .* now 2"):
            run_search(_strategy("aging"), _objective, store, 10, progress=False, parallel=2)
        assert store.n_completed() == 5
