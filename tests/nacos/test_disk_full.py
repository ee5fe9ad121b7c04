"""Disk full while a search writes: the search stops with a clear error (exit 1) that says nothing committed
is lost, the rows committed before are untouched, the candidate in flight is not recorded as failed, and a
rerun once there is space resumes and finishes.

Two real ways to run out of room, both on a real `nacos search` process:
- a small tmpfs (a real ``ENOSPC``), where this process may mount one (root in a container, as here and in CI);
- ``RLIMIT_FSIZE`` (a real ``EFBIG``, "file too large"), which any user can set on a child process.
The runs use the baseline's onnxruntime latency (no TVM): a candidate writes a 0.3-0.7 MB ONNX model, so
running out of room hits the export of the third candidate."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

CFG = {"mode": "baseline", "baseline_latency": "onnxruntime", "seed": 3,
       "strategy": {"population": 4, "sample_size": 2},
       "tuning": {"repeats": 3, "warmup": 1, "threads": 1}}


def _search(config: Path, run_dir: Path, trials: int, preexec=None) -> subprocess.CompletedProcess:
    config.write_text(json.dumps({**CFG, "trials": trials}))
    return subprocess.run([sys.executable, "-m", "nacos", "search", "--config", str(config), "--run-dir", str(run_dir),
                           "--quiet"], capture_output=True, text=True, timeout=900, preexec_fn=preexec)


def _rows(run_dir: Path) -> list[dict]:
    conn = sqlite3.connect(f"file:{run_dir / 'results.sqlite'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM candidates ORDER BY seq")]
    finally:
        conn.close()


def _check_stopped_then_resumed(run_dir: Path, config: Path, full: subprocess.CompletedProcess,
                                before: list[dict], make_room) -> None:
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr, full.stderr
    message = full.stderr.strip().splitlines()[-1]
    assert message.startswith("nacos search: error: disk full while the search was writing"), message
    assert "nothing committed is lost: the 2 candidates committed before are kept" in message, message
    assert "rerun the same command" in message, message
    after_full = _rows(run_dir)
    # the two committed rows are byte for byte what they were; the third is still in flight, not "failed"
    assert after_full[:2] == before
    assert [r["status"] for r in after_full[2:]] == ["running"]
    make_room()
    resumed = _search(config, run_dir, trials=4)
    assert resumed.returncode == 0, resumed.stderr
    rows = _rows(run_dir)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[:2] == before
    assert [r["status"] for r in rows] == ["ok"] * 4, [(r["status"], r["reason"]) for r in rows]
    assert rows[2]["attempts"] == 2 and rows[2]["id"] == after_full[2]["id"]
    assert (run_dir / "report" / "report.json").exists()


def _can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(where)],
                        capture_output=True).returncode == 0
    return ok


def test_disk_full_enospc_on_a_small_tmpfs_loses_nothing_and_resumes(tmp_path):
    mnt = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
    if not _can_mount_tmpfs(mnt):
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN); the RLIMIT_FSIZE test covers EFBIG")
    try:
        run_dir, config = mnt / "run", tmp_path / "cfg.json"
        first = _search(config, run_dir, trials=2)
        assert first.returncode == 0, first.stderr
        before = _rows(run_dir)
        assert [r["status"] for r in before] == ["ok", "ok"]
        # leave 150 kB free: less than one exported model
        used = shutil.disk_usage(mnt).used
        subprocess.run(["mount", "-o", f"remount,size={used + 150_000}", str(mnt)], check=True)
        full = _search(config, run_dir, trials=4)
        _check_stopped_then_resumed(
            run_dir, config, full, before,
            make_room=lambda: subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True))
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_efbig_from_a_file_size_limit_loses_nothing_and_resumes(tmp_path):
    run_dir, config = tmp_path / "run", tmp_path / "cfg.json"
    first = _search(config, run_dir, trials=2)
    assert first.returncode == 0, first.stderr
    before = _rows(run_dir)

    def limit_file_size():  # in the child: files may not grow past 200 kB (an ONNX model is 0.3-0.7 MB)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    full = _search(config, run_dir, trials=4, preexec=limit_file_size)
    assert "File too large" in full.stderr, full.stderr
    _check_stopped_then_resumed(run_dir, config, full, before, make_room=lambda: None)
