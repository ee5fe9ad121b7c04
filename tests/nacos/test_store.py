"""The SQLite results store and the run-directory layout: the life of a row, durability rules, and a
clear error naming the file for every store that cannot be used (damaged, foreign, other version)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nacos.results.store import (
    KEY_COLUMNS,
    SCHEMA_VERSION,
    ResultsStore,
    RunDir,
    RunDirError,
    StoreError,
    StoreLockedError,
    verify_store,
)


def _fill(path: Path, n: int = 60) -> None:
    with ResultsStore(path) as s:
        for i in range(n):
            seq = s.add(f"cand{i:03d}", json.dumps({"g": i}))
            status = ("ok", "rejected", "failed")[i % 3]
            s.finish(seq, status, {"accuracy": 90 + i / 100, "latency_ms": 1.0 + i, "note": "x" * 150},
                     "" if status == "ok" else f"reason {i}", seconds=0.5)


def test_life_of_a_row(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.sqlite") as s:
        a = s.add("a1", '{"g":1}')                        # running at once
        b = s.add("b2", '{"g":2}', status="pending")
        assert (a, b) == (1, 2)
        assert s.counts() == {"pending": 1, "running": 1, "ok": 0, "failed": 0, "rejected": 0}
        rec = s.finish(a, "ok", {"accuracy": np.float32(0.75), "latency_ms": np.float64(3.5), "params": np.int64(7),
                                 "energy_mj": float("nan"), "layers": np.arange(3)}, seconds=1.25)
        assert rec.final and rec.metrics["accuracy"] == 0.75 and rec.metrics["layers"] == [0, 1, 2]
        s.start(b)
        s.finish(b, "failed", {}, "RuntimeError: build failed")
        with pytest.raises(StoreError, match="row 2 is not unfinished; a candidate is committed once"):
            s.finish(b, "ok", {})
        with pytest.raises(StoreError, match="already in the store"):
            s.add("a1", '{"g":1}')
        with pytest.raises(StoreError, match="status must be one of"):
            s.finish(s.add("c3", "{}"), "done", {})
        assert [r.status for r in s.records()] == ["ok", "failed", "running"]
        assert [r.id for r in s.completed()] == ["a1", "b2"] and s.n_completed() == 2
        assert s.find("b2").reason == "RuntimeError: build failed" and s.get(99) is None
        s.set_meta("strategy", {"seed": 3})
        assert s.get_meta("strategy") == {"seed": 3} and s.get_meta("absent") is None
    # Key columns for SQL; a non-finite metric is kept in the JSON and left NULL in its column.
    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        row = conn.execute(f"SELECT {', '.join(KEY_COLUMNS)}, seconds FROM candidates WHERE seq = 1").fetchone()
    assert row == (0.75, 3.5, None, 7.0, None, 1.25)


def test_resume_requeues_running_rows_once(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as s:
        s.finish(s.add("a", "{}"), "ok", {"accuracy": 1.0})
        s.add("b", "{}")                                    # the crash leaves it running
    with ResultsStore(path) as s:
        assert s.requeue() == 1 and s.requeue() == 0
        (row,) = s.unfinished()
        assert row.status == "pending" and row.attempts == 1
        s.start(row.seq)
        assert s.get(row.seq).attempts == 2
        s.finish(row.seq, "ok", {"accuracy": 2.0})
        assert [r.id for r in s.completed()] == ["a", "b"]


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.sqlite") as s:
        seq = s.add("a", "{}")
        with pytest.raises(ValueError, match="(?i)circular"):
            loop: dict = {}
            loop["self"] = loop
            s.finish(seq, "ok", loop)                      # json.dumps fails before the transaction
        with pytest.raises(ZeroDivisionError), s._transaction():
            s._conn.execute("UPDATE candidates SET reason = 'half done' WHERE seq = ?", (seq,))
            _ = 1 / 0
        assert s.get(seq).status == "running" and s.get(seq).reason == ""


def test_wal_and_full_sync(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.sqlite") as s:
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2       # FULL


def test_one_writer_at_a_time_and_lock_released_on_kill(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as s:
        with pytest.raises(StoreLockedError, match="another process is writing"):
            ResultsStore(path)
        with ResultsStore(path, readonly=True) as reader:          # readers are welcome
            assert reader.records() == []
            with pytest.raises(StoreError, match="read-only"):
                reader.add("x", "{}")
        s.add("a", "{}")
    # A writer killed with SIGKILL leaves no stale lock behind.
    code = ("import sys, time; from nacos.results.store import ResultsStore; "
            f"s = ResultsStore({str(path)!r}); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(StoreLockedError):
        ResultsStore(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    with ResultsStore(path) as s:
        assert [r.id for r in s.records()] == ["a"]


def test_store_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _fill(path, 3)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=rf"{path}: results store of schema version 999, this nacos reads "
                                         rf"version {SCHEMA_VERSION}"):
        ResultsStore(path)


def test_foreign_sqlite_and_non_sqlite_files_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE trials (x)")
    with pytest.raises(StoreError, match=rf"{foreign}: an SQLite database but not a nacos results store"):
        ResultsStore(foreign)
    text = tmp_path / "notes.sqlite"
    text.write_text("hello, not a database\n" * 50)
    with pytest.raises(StoreError, match=rf"{text}: not an SQLite database"):
        ResultsStore(text)
    with pytest.raises(StoreError, match="not found"):
        ResultsStore(tmp_path / "absent.sqlite", readonly=True)


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8, 0.97])
def test_corrupt_truncated_store_names_the_file(tmp_path: Path, fraction: float) -> None:
    path = tmp_path / "r.sqlite"
    _fill(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(StoreError, match=rf"{path}: .*damaged"):
        ResultsStore(path)


def test_corrupt_bytes_in_rows_are_found(tmp_path: Path) -> None:
    """Random damage to the bytes of a row: found by SQLite's integrity check, a decode failure, or the
    row checksum; every case is an error naming the file. Damage confined to unused space in a page
    changes no row and is allowed to pass, but then every row must read back exactly."""
    clean = tmp_path / "clean.sqlite"
    _fill(clean)
    with ResultsStore(clean, readonly=True) as s:
        expected = [(r.seq, r.id, r.genome, r.status, r.reason, dict(r.metrics)) for r in s.records()]
    data = clean.read_bytes()
    rng = random.Random(7)
    refused = 0
    for trial in range(40):
        damaged = bytearray(data)
        offset = rng.randrange(100, len(data) - 16)       # past the 100-byte file header
        for k in range(rng.randint(1, 8)):
            damaged[offset + k] ^= rng.randint(1, 255)
        path = tmp_path / f"damaged{trial}.sqlite"
        path.write_bytes(bytes(damaged))
        try:
            with ResultsStore(path) as s:
                got = [(r.seq, r.id, r.genome, r.status, r.reason, dict(r.metrics)) for r in s.records()]
        except StoreError as exc:
            assert str(path) in str(exc) and "damaged" in str(exc), exc
            refused += 1
        else:
            assert got == expected, f"damage at byte {offset} changed a row without being detected"
    assert refused >= 1
    # Damage inside the bytes of a row's content is always refused.
    starts = [i for i in range(len(data)) if data.startswith(b"x" * 150, i)]
    assert len(starts) >= 50
    for trial, start in enumerate(rng.sample(starts, 10)):
        damaged = bytearray(data)
        damaged[start + rng.randrange(150)] = rng.choice(b"y\xff0")
        path = tmp_path / f"row{trial}.sqlite"
        path.write_bytes(bytes(damaged))
        with pytest.raises(StoreError, match=rf"{path}: .*damaged"), ResultsStore(path) as s:
            s.records()


def test_corrupt_row_checksum_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _fill(path, 10)
    with sqlite3.connect(path) as conn:      # well-formed SQLite, wrong content: only the checksum sees it
        conn.execute("UPDATE candidates SET metrics = '{\"accuracy\": 99.9}' WHERE seq = 7")
    with pytest.raises(StoreError, match=rf"{path}: row 7 of the results store is damaged \(checksum"):
        ResultsStore(path)


# -- run directories -----------------------------------------------------------------------------------
def test_run_dir_layout_and_resume(tmp_path: Path) -> None:
    run = RunDir.prepare(tmp_path / "runs" / "a")
    assert run.marker_path.is_file() and run.costmodel_dir.is_dir() and run.report_dir.is_dir()
    assert run.artifacts_dir.is_dir() and run.is_new
    assert run.config_path.name == "config.json" and run.store_path.name == "results.sqlite"
    with run.open_store() as s:
        s.add("a", "{}")
    again = RunDir.prepare(run.root)                 # rerun: same directory, resumed
    assert not again.is_new and RunDir.existing(run.root) == again
    assert json.loads(run.marker_path.read_text())["nacos_run"] is True


def test_run_dir_refuses_foreign_directories_and_files(tmp_path: Path) -> None:
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(RunDirError, match=rf"{foreign}: a non-empty directory that is not a nacos run directory"):
        RunDir.prepare(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["cat.jpg"]      # nothing written
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(RunDirError, match="not a directory"):
        RunDir.check(a_file)
    with pytest.raises(RunDirError, match="no such run directory"):
        RunDir.existing(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunDirError, match="not a nacos run directory"):
        RunDir.existing(empty)
    RunDir.check(tmp_path / "new")                 # check alone writes nothing
    assert not (tmp_path / "new").exists()
    assert RunDir.prepare(empty).marker_path.is_file()


def test_run_dir_of_another_layout_or_damaged_marker(tmp_path: Path) -> None:
    run = RunDir.prepare(tmp_path / "r")
    run.marker_path.write_text(json.dumps({"nacos_run": True, "layout": 99}))
    with pytest.raises(RunDirError, match="layout version 99"):
        RunDir.prepare(run.root)
    run.marker_path.write_text("{not json")
    with pytest.raises(RunDirError, match=rf"{run.marker_path}: unreadable run-directory marker"):
        RunDir.existing(run.root)


# -- verify_store (what nacos doctor reports through) ---------------------------------------------------
def test_verify_store_good_store_is_clean_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _fill(path, 9)
    before = path.read_bytes()
    found = verify_store(path)
    assert found.ok and found.rows == 9 and found.detail == "9 final rows" and found.row is None, found
    assert not found.repaired and not found.missing and verify_store(path, repair=True).ok
    assert path.read_bytes() == before and not list(tmp_path.glob("r.sqlite.damaged-*"))
    missing = verify_store(tmp_path / "absent.sqlite", repair=True)
    assert missing.missing and not missing.ok and not (tmp_path / "absent.sqlite").exists()


def test_verify_store_flipped_byte_names_the_row_and_repair_keeps_the_rows_before(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _fill(path, 30)
    data = bytearray(path.read_bytes())
    pos = data.index(b"reason 14")                   # row 15's reason, one byte changed in place
    data[pos] ^= 0x20
    path.write_bytes(bytes(data))
    found = verify_store(path)
    assert not found.ok and found.row == 15 and "checksum mismatch" in found.problem, found
    assert path.read_bytes() == bytes(data)           # nothing written without repair
    fixed = verify_store(path, repair=True)
    assert fixed.repaired and fixed.row == 15 and fixed.rows == 14 and "14 rows before the damage" in fixed.detail
    assert Path(fixed.moved_to).read_bytes() == bytes(data)   # the damaged file kept whole
    with ResultsStore(path) as s:                    # opens for writing again, with the meta kept
        assert [r.seq for r in s.records()] == list(range(1, 15)) and s.get_meta("schema_version") == SCHEMA_VERSION
    assert verify_store(path).ok


def test_verify_store_bad_genome_json_is_a_finding(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as s:
        s.add("a", '{"g": 1}')
        s.add("b", "not json")
    found = verify_store(path)
    assert not found.ok and found.row == 2 and "genome is not valid JSON" in found.problem, found


def test_verify_store_wrong_schema_is_found_and_not_repairable(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _fill(path, 3)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    before = path.read_bytes()
    found = verify_store(path, repair=True)
    assert not found.ok and not found.repaired and "schema version 999" in found.problem, found
    assert "not repairable" in found.detail and path.read_bytes() == before


def test_verify_store_repair_refused_while_a_writer_holds_the_store(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _fill(path, 5)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE candidates SET reason = 'changed' WHERE seq = 2")
    import fcntl

    before = path.read_bytes()
    with open(f"{path}.lock", "a+") as lock:           # the lock a running search holds
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        found = verify_store(path, repair=True)
    assert not found.repaired and found.row == 2 and "a search is writing this store" in found.detail
    assert path.read_bytes() == before and not list(tmp_path.glob("r.sqlite.damaged-*"))


def test_run_dir_verify_store_and_read_marker(tmp_path: Path) -> None:
    run = RunDir.prepare(tmp_path / "run")
    assert run.read_marker()["layout"] == RunDir.LAYOUT_VERSION
    assert run.verify_store().missing
    _fill(run.store_path, 4)
    assert run.verify_store().ok and run.verify_store().rows == 4
