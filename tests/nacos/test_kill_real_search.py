"""`kill -9` of a real two-stage search at 20 named points: before and after export, tuning, measurement
and the results commit, and during tuning (while the tuning worker holds the database's lock) (real ONNX
export, explicit schedule tuning into the shared database, TVM builds and measurements): each rerun
resumes; no committed candidate is lost or repeated, the tuning database stays loadable, and with a
deterministic latency objective the killed-and-resumed run proposes the candidates of an uninterrupted
run, in order, and ends with the same front. The search kills itself at the point it is told
(`kill_search_worker.py`, ``NACOS_KILL_AT``), so no kill depends on a timer."""

from __future__ import annotations

import json
import os
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
TRIALS = 10
KILLS = 20
PHASES = ("export", "tune", "measure", "commit")
#: the named kill points: the tuning ones first (tuning happens only while the candidates bring workloads the
#: database lacks, so later in the search a tune point may never come), then the others, cycled
TUNE_POINTS = (("tune", "before"), ("tune", "during"), ("tune", "after"))
OTHER_POINTS = tuple((phase, when) for when in ("before", "after") for phase in PHASES if phase != "tune")


def _point(kill: int) -> tuple[str, str]:
    if kill < len(TUNE_POINTS):
        return TUNE_POINTS[kill]
    return OTHER_POINTS[(kill - len(TUNE_POINTS)) % len(OTHER_POINTS)]


def _config(checkpoint_path: str, db: Path) -> dict:
    return {"mode": "two-stage", "trials": TRIALS, "seed": 5, "data": "digits", "checkpoint": checkpoint_path,
            "space": SPACE, "strategy": {"name": "nsga2", "population": 4},
            "tuning": {"repeats": 3, "warmup": 1, "trials_per_workload": 1, "searcher": "explicit",
                       "threads": 1, "database": str(db)}}


def _launch(cfg: Path, run_dir: Path, trace: Path, kill_at: str = "") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(cfg), str(run_dir), str(trace)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "NACOS_KILL_AT": kill_at})


def _rows(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "results.sqlite") as conn:
        return conn.execute("SELECT seq, id, status, metrics FROM candidates ORDER BY seq").fetchall()


def _final(rows):
    return [r for r in rows if r[2] in ("ok", "failed", "rejected")]


def _front(rows) -> list[str]:
    from nacos.results.pareto import pareto_front

    ok = [(r[1], json.loads(r[3])) for r in rows if r[2] == "ok"]
    return sorted(ok[i][0] for i in pareto_front([[m["accuracy"], m["latency_ms"]] for _, m in ok], ["max", "min"]))


@pytest.mark.slow  # 20 restarts of a real search: about 5 minutes on a quiet 2-core machine
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

    # Step 2. The same search, killed at the named points in turn (each at its first call in the process),
    # rerun each time.
    cfg = tmp_path / "killed.json"
    cfg.write_text(json.dumps(_config(checkpoint, tmp_path / "db")))
    run_dir, trace = tmp_path / "killed", tmp_path / "killed.trace"
    hit: dict[str, int] = {}
    kills = 0
    while kills < KILLS:
        phase, when = _point(kills)
        proc = _launch(cfg, run_dir, trace, f"{phase}:{when}:1")
        out, err = proc.communicate(timeout=900)
        if proc.returncode == 0:          # the phase never came: the search is complete
            break
        assert proc.returncode == -signal.SIGKILL, err[-3000:]
        last = trace.read_text().splitlines()[-1].split()
        assert last[0] == "kill" and last[1].startswith(f"{phase}:"), trace.read_text().splitlines()[-5:]
        kills += 1
        hit[last[1]] = hit.get(last[1], 0) + 1
        rows = _final(_rows(run_dir)) if (run_dir / "results.sqlite").exists() else []
        # nothing committed is lost, nothing is committed twice, and the order is the reference's
        assert [r[:3] for r in rows] == [r[:3] for r in reference[:len(rows)]]
    assert kills == KILLS, f"only {kills} kills before the search completed"
    assert {p.split(":")[0] for p in hit} >= set(PHASES) and "tune:during" in hit, hit
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
    left = [pid for pid, c in commands.items() if "nacos.backends.tuning_worker" in c and str(tmp_path) in c]
    assert left == [], left
    assert len(db.covered()) > 0
    print(f"kills by phase: {hit}")
