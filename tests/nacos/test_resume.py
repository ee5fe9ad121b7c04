"""Resume after `kill -9`: the search of `resume_worker.py` on the NAS-Bench-201 table, killed (SIGKILL,
no cleanup) at chosen moments (after a commit, during an evaluation, inside the commit transaction,
inside the insert transaction) and at random moments from outside, then rerun to completion, must
propose exactly the candidates of an uninterrupted run of the same seed, in the same order, and end
with the same rows and the same Pareto front: no row lost, none duplicated.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archspace.nb201 import NB201Space
from nacos.results.store import ResultsStore
from nacos.search.loop import front_records, run_search
from nacos.strategies import make_strategy
from tests.nacos.nb201_objectives import TABLE_MISSING, closed_form

WORKER = Path(__file__).with_name("resume_worker.py")
ROOT = Path(__file__).resolve().parents[2]
TRIALS = 40
needs_table = pytest.mark.skipif(bool(TABLE_MISSING), reason=TABLE_MISSING or "table present")


def _worker(store: Path, strategy: str, *extra: str, objective: str = "table") -> subprocess.Popen:
    cmd = [sys.executable, str(WORKER), str(store), "--strategy", strategy, "--seed", "7", "--trials",
           str(TRIALS), "--objective", objective, "--budget", "12", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 120) -> int:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"worker failed (rc {proc.returncode}):\n{out}\n{err}")
    return proc.returncode


def _rows(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT seq, id, genome, status, reason, metrics FROM candidates ORDER BY seq").fetchall()


def _committed(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM candidates WHERE status IN ('ok', 'failed', 'rejected')"
                                ).fetchone()[0]
    except sqlite3.OperationalError:   # schema not created yet
        return 0


def _kill_when(proc: subprocess.Popen, store: Path, k: int, extra_wait: float) -> None:
    """SIGKILL the worker from outside once `k` rows are committed (plus a random short wait)."""
    deadline = time.monotonic() + 60
    while _committed(store) < k and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(extra_wait)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)


def _front(store: Path, strategy_name: str) -> list[str]:
    objectives = [("accuracy", "max"), ("latency_ms", "min")] if strategy_name == "nsga2" else [("accuracy", "max")]
    strategy = make_strategy(strategy_name, NB201Space(), 7, objectives=objectives)
    with ResultsStore(store, readonly=True) as s:
        return [r.id for r in front_records(s.completed(), strategy)]


def _kill_chain(tmp_path: Path, strategy: str, objective: str) -> None:
    # Step 1. The uninterrupted run.
    reference = tmp_path / "reference.sqlite"
    assert _finish(_worker(reference, strategy, objective=objective)) == 0
    ref_rows = _rows(reference)
    assert len(ref_rows) == TRIALS and len({r[1] for r in ref_rows}) == TRIALS

    # Step 2. The same search killed again and again, each rerun resuming the last.
    store = tmp_path / "killed.sqlite"
    for phase, k in (("after_commit", 4), ("in_commit", 9), ("in_evaluate", 13), ("in_add", 17),
                     ("in_commit", 17), ("after_commit", 22)):
        rc = _finish(_worker(store, strategy, "--kill-phase", phase, "--kill-at", str(k), objective=objective))
        assert rc == -signal.SIGKILL, f"{phase} at {k}: the worker was not killed"
        rows = _rows(store)
        # A kill before COMMIT loses nothing committed and commits nothing half-done.
        assert sum(r[3] in ("ok", "failed", "rejected") for r in rows) == k, (phase, k)
        assert [r[:4] for r in rows if r[3] in ("ok", "rejected", "failed")] == [r[:4] for r in ref_rows[:k]]
        unfinished = [r for r in rows if r[3] not in ("ok", "failed", "rejected")]
        assert len(unfinished) == (0 if phase in ("after_commit", "in_add") else 1), (phase, unfinished)
    rng = random.Random(20261123)
    for k in sorted(rng.sample(range(24, TRIALS - 2), 3)):     # from outside, at random moments
        _kill_when(_worker(store, strategy, "--delay", "0.01", objective=objective), store, k, rng.uniform(0, 0.03))
    assert _finish(_worker(store, strategy, objective=objective)) == 0

    # Step 3. Same candidates in the same order, same results, same front; nothing lost or repeated.
    rows = _rows(store)
    assert [r[1] for r in rows] == [r[1] for r in ref_rows]
    assert [(r[0], r[2], r[3], r[4], json.loads(r[5])) for r in rows] == \
        [(r[0], r[2], r[3], r[4], json.loads(r[5])) for r in ref_rows]
    assert _front(store, strategy) == _front(reference, strategy)
    with sqlite3.connect(store) as conn:
        attempts = dict(conn.execute("SELECT seq, attempts FROM candidates").fetchall())
    # rows 10 and 14 were in flight at the in_commit and in_evaluate kills: evaluated again, kept once
    assert attempts[10] == 2 and attempts[14] == 2


@needs_table
@pytest.mark.parametrize("strategy", ["aging", "nsga2"])
def test_kill_resume_nb201_same_candidates_and_front(tmp_path: Path, strategy: str) -> None:
    _kill_chain(tmp_path, strategy, "table")


def test_kill_resume_closed_form_objective(tmp_path: Path) -> None:
    """The same chain on a fixed formula, so the kill tests also run where the table is absent."""
    _kill_chain(tmp_path, "aging", "closed")


def test_resume_after_time_limit_continues_the_same_search(tmp_path: Path) -> None:
    def run(store_path: Path, n: int, time_limit: float | None = None, delay: float = 0.0):
        strategy = make_strategy("nsga2", NB201Space(), 3, objectives=[("accuracy", "max"), ("latency_ms", "min")],
                                 population=6)

        def evaluate(arch):
            time.sleep(delay)
            return closed_form(arch, 9.0)

        with ResultsStore(store_path) as store:
            return run_search(strategy, evaluate, store, n, time_limit=time_limit, progress=False)

    ref = run(tmp_path / "ref.sqlite", 30)
    first = run(tmp_path / "cut.sqlite", 30, time_limit=0.2, delay=0.02)
    assert first.stopped_by == "time_limit" and first.completed < 30
    again = run(tmp_path / "cut.sqlite", 30)
    assert again.replayed == first.completed and again.completed == 30
    assert [r[:5] for r in _rows(tmp_path / "cut.sqlite")] == [r[:5] for r in _rows(tmp_path / "ref.sqlite")]
    assert again.front == ref.front
    # A rerun of a finished search evaluates nothing.
    done = run(tmp_path / "cut.sqlite", 30)
    assert done.evaluated_now == 0 and done.replayed == 30
