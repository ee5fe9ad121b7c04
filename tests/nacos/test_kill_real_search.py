"""`kill -9` of a real two-stage search at 20 moments aimed at export, tuning, measurement and the
results commit (real ONNX export, explicit schedule tuning into the shared database, TVM builds and
measurements): each rerun resumes; no committed candidate is lost or repeated, the tuning database
stays loadable, and with a deterministic latency objective the killed-and-resumed run proposes the
candidates of an uninterrupted run, in order, and ends with the same front."""

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

import psutil
import pytest

from schedules.database import TuningDatabase
from tests.nacos.test_search_tvm import SPACE, checkpoint  # noqa: F401  (the tiny supernet fixture)

WORKER = Path(__file__).with_name("kill_search_worker.py")
ROOT = Path(__file__).resolve().parents[2]
TRIALS = 6
KILLS = 20
PHASES = ("export", "tune", "measure", "commit")


def _config(checkpoint_path: str, db: Path) -> dict:
    return {"mode": "two-stage", "trials": TRIALS, "seed": 5, "data": "digits", "checkpoint": checkpoint_path,
            "space": SPACE, "strategy": {"name": "nsga2", "population": 4},
            "tuning": {"repeats": 3, "warmup": 1, "trials_per_workload": 1, "searcher": "explicit",
                       "threads": 1, "database": str(db)}}


def _launch(cfg: Path, run_dir: Path, trace: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(cfg), str(run_dir), str(trace)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _rows(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "results.sqlite") as conn:
        return conn.execute("SELECT seq, id, status, metrics FROM candidates ORDER BY seq").fetchall()


def _lines(trace: Path) -> list[str]:
    return trace.read_text().split() if trace.exists() else []


def _final(rows):
    return [r for r in rows if r[2] in ("ok", "failed", "rejected")]


def _front(rows) -> list[str]:
    from nacos.pareto import pareto_front

    ok = [(r[1], json.loads(r[3])) for r in rows if r[2] == "ok"]
    return sorted(ok[i][0] for i in pareto_front([[m["accuracy"], m["latency_ms"]] for _, m in ok], ["max", "min"]))


@pytest.mark.benchmark  # 20 restarts of a real search: 5 to 15 minutes here; hitting each phase is timing-dependent
@pytest.mark.timeout(3600)
def test_kill_9_during_export_tuning_measurement_and_commit(checkpoint, tmp_path: Path) -> None:  # noqa: F811
    # Step 1. The uninterrupted run.
    ref_cfg = tmp_path / "ref.json"
    ref_cfg.write_text(json.dumps(_config(checkpoint, tmp_path / "ref-db")))
    proc = _launch(ref_cfg, tmp_path / "ref", tmp_path / "ref.trace")
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    reference = _final(_rows(tmp_path / "ref"))
    assert len(reference) == TRIALS

    # Step 2. The same search, killed at 20 moments aimed at each phase in turn, rerun each time.
    cfg = tmp_path / "killed.json"
    cfg.write_text(json.dumps(_config(checkpoint, tmp_path / "db")))
    run_dir, trace = tmp_path / "killed", tmp_path / "killed.trace"
    rng = random.Random(20261123)
    hit: dict[str, int] = {}
    kills = 0
    while kills < KILLS:
        target = PHASES[kills % len(PHASES)]
        seen = len(_lines(trace))
        proc = _launch(cfg, run_dir, trace)
        deadline = time.monotonic() + 300
        while proc.poll() is None and target not in _lines(trace)[seen:] and time.monotonic() < deadline:
            time.sleep(0 if target == "commit" else 0.01)   # a commit lasts milliseconds: poll without pause
        if proc.poll() is not None:          # finished before the phase came: the search is complete
            assert proc.returncode == 0, proc.communicate()[1][-3000:]
            break
        time.sleep(0 if target == "commit" else rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            last = _lines(trace)[-1]
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=60)
            kills += 1
            hit[last] = hit.get(last, 0) + 1
        rows = _final(_rows(run_dir)) if (run_dir / "results.sqlite").exists() else []
        # nothing committed is lost, nothing is committed twice, and the order is the reference's
        assert [r[:3] for r in rows] == [r[:3] for r in reference[:len(rows)]]
    assert kills == KILLS, f"only {kills} kills before the search completed"
    assert set(hit) >= set(PHASES), hit
    proc = _launch(cfg, run_dir, trace)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]

    # Step 3. Same candidates, same order, same deterministic objectives, same front; database loads.
    rows = _final(_rows(run_dir))
    assert [r[:3] for r in rows] == [r[:3] for r in reference]
    key = lambda r: (json.loads(r[3])["accuracy"], json.loads(r[3])["latency_ms"])  # noqa: E731
    assert [key(r) for r in rows if r[2] == "ok"] == [key(r) for r in reference if r[2] == "ok"]
    assert _front(rows) == _front(reference)
    assert len(_rows(run_dir)) == TRIALS                 # no row left running, none duplicated
    db = TuningDatabase(tmp_path / "db")                 # a torn line from a kill is moved aside, not fatal
    # no tuning worker of a killed search lives on (each ends itself once its search is gone)
    time.sleep(2)
    commands = {p.pid: " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])}
    left = [pid for pid, c in commands.items() if "nacos.tuning_worker" in c and str(tmp_path) in c]
    assert left == [], left
    assert len(db.covered()) > 0
    print(f"kills by phase: {hit}")
