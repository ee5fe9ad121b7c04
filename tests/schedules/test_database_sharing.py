"""Two processes tuning into one database at once: the file lock makes their tunings take turns, so
no record is lost, none points at another workload, and a workload both need is tuned once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from schedules.database import RECORD_FILE, WORKLOAD_FILE, TuningDatabase

WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from schedules.database import TuningDatabase
    from schedules.frontend import import_onnx
    from schedules.targets import host_target
    from schedules.tuner import explicit_tune

    model, db_dir, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    mod, target = import_onnx(model), host_target(1)
    while not go.exists():          # both start tuning at the same moment
        time.sleep(0.01)
    report = explicit_tune(mod, TuningDatabase(db_dir), target, configs_per_task=2)
    print(json.dumps({"tuned": [w.structural_hash for w in report.tuned],
                      "reused": [w.structural_hash for w in report.reused]}))
""")


def test_two_processes_share_one_database(models, tmp_path: Path) -> None:
    db_dir, go = tmp_path / "db", tmp_path / "go"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), str(models[name]), str(db_dir), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    go.touch()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    a, b = reports
    # net_a and net_b share their first conv: exactly one of the two processes tuned it
    assert not set(a["tuned"]) & set(b["tuned"]), "a workload was tuned by both processes"
    assert set(a["tuned"]) & set(b["reused"]) or set(b["tuned"]) & set(a["reused"])
    db = TuningDatabase(db_dir)           # loads cleanly: no torn or damaged line
    assert db.repairs == []
    hashes = [json.loads(line)[0] for line in (db_dir / WORKLOAD_FILE).read_text().splitlines()]
    assert len(hashes) == len(set(hashes)), "a workload was committed twice"
    records = [json.loads(line) for line in (db_dir / RECORD_FILE).read_text().splitlines()]
    # every record points at a workload of the file, and each tuned workload has its record
    assert all(0 <= r[0] < len(hashes) for r in records)
    assert len(records) == len(a["tuned"]) + len(b["tuned"])
    assert set(db.covered()) == set(a["tuned"]) | set(b["tuned"])
