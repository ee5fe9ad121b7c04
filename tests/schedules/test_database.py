"""Tuning database: reuse across architectures (counted tasks), coverage, best records, damaged files.

Real MetaSchedule tuning with tiny budgets (16 trials per task) on 1x3x16x16 models."""

import json
import shutil
from pathlib import Path

import pytest

from schedules.database import TuningDatabase
from schedules.errors import DatabaseCorrupted, ScheduleError
from schedules.frontend import extract_workloads, import_onnx
from schedules.measure import Protocol, compile, measure
from schedules.tuner import tune


@pytest.fixture(scope="module")
def tuned(models, target, tmp_path_factory):
    db = TuningDatabase(tmp_path_factory.mktemp("db"))
    small, b = import_onnx(models["small"]), import_onnx(models["b"])
    first = tune(small, db, target, trials_per_task=16, seed=0)
    b_before = db.coverage(b, target)
    second = tune(b, db, target, trials_per_task=16, seed=0)
    third = tune(b, db, target, trials_per_task=16, seed=0)
    return {"db": db, "first": first, "second": second, "third": third, "b_before": b_before,
            "wb": extract_workloads(b, target), "ws": extract_workloads(small, target)}


def test_second_architecture_tunes_only_unseen_workloads(tuned):
    first, second, third = tuned["first"], tuned["second"], tuned["third"]
    assert len(first.tuned) == 2 and not first.reused          # conv+relu, mean
    assert first.trials >= 16 * 2 - 2
    # net_b shares the first conv with net_small: 2 of its 3 tasks are tuned, 1 is reused
    assert {w.op_kind for w in second.tuned} == {"conv2d", "elementwise"}
    assert [w.input_shapes[0] for w in second.reused] == [(1, 3, 16, 16)]
    assert second.hit_rate == pytest.approx(1 / 3)
    assert third.trials == 0 and not third.tuned and third.hit_rate == 1.0


def test_coverage_by_tasks_and_macs(tuned, models, target):
    before, wb = tuned["b_before"], tuned["wb"]
    conv1 = next(w for w in wb if w.op_kind == "conv2d" and w.input_shapes[0][1] == 3)
    assert before.tasks_covered == 1 and before.tasks_total == 3
    assert before.macs == pytest.approx(conv1.macs / sum(w.macs for w in wb))
    assert len(before.uncovered) == 2
    db = tuned["db"]
    after = db.coverage(import_onnx(models["b"]), target)
    assert after.tasks == 1.0 and after.macs == 1.0 and after.uncovered == ()
    a = db.coverage(import_onnx(models["a"]), target)
    assert 0 <= a.tasks < 1 and a.tasks_total == 5
    with pytest.raises(ScheduleError, match="depend on the target"):
        db.coverage(import_onnx(models["b"]))


def test_best_record_per_workload(tuned):
    db = tuned["db"]
    best = db.best_records()
    assert len(best) == len(db.covered()) == 4 == db.n_workloads
    for w in tuned["wb"] + tuned["ws"]:
        rec = db.lookup(w)
        assert rec is not None and rec.records >= 1 and 0 < rec.run_ms < 1e3
    # the best is the minimum over the stored records of that workload
    lines = [json.loads(x) for x in db.record_file.read_text().splitlines()]
    hashes = [json.loads(x)[0] for x in db.workload_file.read_text().splitlines()]
    for h, rec in best.items():
        times = [sum(r[1][1]) / len(r[1][1]) for r in lines if hashes[r[0]] == h and r[1][1][0] < 1e9]
        assert rec.run_ms == pytest.approx(min(times) * 1e3) and rec.records == len(times)
    assert db.lookup("12345") is None
    reopened = TuningDatabase(db.path)
    assert reopened.best_records() == best and len(reopened) == len(db)


def test_tuned_module_compiles_checks_and_measures(tuned, models, target):
    compiled = compile(models["b"], tuned["db"], target)
    m = measure(compiled, Protocol(warmup=2, repeats=5))
    assert m.ok, m.error
    assert m.runs == 5 and m.median_ms > 0 and m.threads == int(target.attrs["num-cores"])
    assert dict(m.versions)["apache-tvm"].startswith("0.27")


def _copy(db, tmp_path):
    dst = tmp_path / "copy"
    dst.mkdir()
    for f in (db.workload_file, db.record_file):
        shutil.copy(f, dst / f.name)
    return dst


def test_corrupt_torn_last_line_is_moved_aside_and_earlier_records_load(tuned, tmp_path, models, target):
    d = _copy(tuned["db"], tmp_path)
    rec = d / "database_tuning_record.json"
    whole = rec.read_bytes()
    n = whole.count(b"\n")
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    rec.write_bytes(whole[: last_start + 25])           # a write cut short in the last line
    db = TuningDatabase(d)
    assert len(db) == n - 1 and len(db.repairs) == 1
    assert f"line {n}" in db.repairs[0] and "torn last line" in db.repairs[0]
    aside = list(d.glob("database_tuning_record.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == whole[last_start: last_start + 25]
    assert rec.read_bytes() == whole[:last_start]
    # TVM's own loader accepts the trimmed file, and tuning appends to it cleanly
    assert len(db.ms) == n - 1
    assert compile(models["b"], db, target) is not None


def test_corrupted_middle_line_names_file_and_line(tuned, tmp_path):
    d = _copy(tuned["db"], tmp_path)
    rec = d / "database_tuning_record.json"
    lines = rec.read_text().splitlines(keepends=True)
    lines[3] = lines[3][:40] + "#garbage#" + lines[3][40:]
    rec.write_text("".join(lines))
    with pytest.raises(DatabaseCorrupted, match=r"database_tuning_record.json, line 4: damaged") as info:
        TuningDatabase(d)
    assert info.value.line == 4 and info.value.path == str(rec)
    assert rec.read_text() == "".join(lines)               # nothing changed without repair=True
    db = TuningDatabase(d, repair=True)
    assert len(db) == 3 and len(db.ms) == 3
    aside = list(d.glob("database_tuning_record.json.damaged-*"))
    assert aside and aside[0].read_text() == "".join(lines[3:])


def test_corrupt_record_pointing_past_the_workload_file_is_refused(tuned, tmp_path):
    d = _copy(tuned["db"], tmp_path)
    wl = d / "database_workload.json"
    wl.write_text("".join(wl.read_text().splitlines(keepends=True)[:1]))   # keep only workload 0
    with pytest.raises(DatabaseCorrupted, match="workload index 1 is not in the workload file"):
        TuningDatabase(d)


# -- verify_database (what nacos doctor reports through) -----------------------------------------------
def _ms_database(directory):
    """Two matmul workloads with three records each, written by MetaSchedule's own JSONDatabase (no tuning)."""
    import tvm
    from tvm import te
    from tvm.s_tir import meta_schedule as ms
    from tvm.target import Target

    directory.mkdir(parents=True, exist_ok=True)
    db = ms.database.JSONDatabase(work_dir=str(directory), module_equality="structural")
    for n in (8, 16):
        a, b = te.placeholder((n, n), name="A"), te.placeholder((n, n), name="B")
        k = te.reduce_axis((0, n), name="k")
        c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
        func = te.create_prim_func([a, b, c])
        mod = tvm.IRModule({"main": func})
        workload = db.commit_workload(mod)
        for r in range(3):
            sch = tvm.s_tir.Schedule(mod)
            i, _, _ = sch.get_loops(sch.get_sblock("C"))
            sch.split(i, [None, 2 ** (r + 1)])
            db.commit_tuning_record(ms.database.TuningRecord(
                sch.trace, workload, [1e-4 * (r + 1)], Target({"kind": "llvm"}),
                ms.arg_info.ArgInfo.from_prim_func(func)))
    return directory


def _files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_verify_database_good_is_clean_and_writes_nothing(tmp_path):
    from schedules.database import RECORD_FILE, WORKLOAD_FILE, verify_database

    d = _ms_database(tmp_path / "db")
    before = _files(d)
    found = verify_database(d)
    assert [(Path(f.path).name, f.ok, f.intact, f.detail) for f in found] == [
        (WORKLOAD_FILE, True, 2, "2 workloads"), (RECORD_FILE, True, 6, "6 tuning records")]
    assert all(f.line is None and not f.repaired for f in found)
    assert verify_database(d, repair=True) == found and _files(d) == before      # no lock file either
    assert verify_database(tmp_path / "absent") == [] and not (tmp_path / "absent").exists()


def test_verify_database_torn_last_line_and_repair(tmp_path):
    from schedules.database import RECORD_FILE, verify_database

    d = _ms_database(tmp_path / "db")
    rec = d / RECORD_FILE
    whole = rec.read_bytes()
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    rec.write_bytes(whole[: last_start + 25])
    before = _files(d)
    _, bad = verify_database(d)
    assert not bad.ok and bad.torn and bad.line == 6 and bad.intact == 5, bad
    assert bad.problem.startswith("torn last line: not JSON") and "the 5 lines before it are intact" in bad.detail
    assert _files(d) == before                        # nothing written without repair
    _, fixed = verify_database(d, repair=True)
    assert fixed.repaired and fixed.line == 6 and "5 records of 2 workloads load" in fixed.detail
    assert Path(fixed.moved_to).read_bytes() == whole[last_start: last_start + 25]
    assert rec.read_bytes() == whole[:last_start] and all(f.ok for f in verify_database(d))
    assert len(TuningDatabase(d).ms.get_all_tuning_records()) == 5     # TVM's own loader accepts it


def test_verify_database_flipped_byte_and_records_of_unknown_workloads(tmp_path):
    from schedules.database import RECORD_FILE, WORKLOAD_FILE, verify_database

    d = _ms_database(tmp_path / "db")
    rec = d / RECORD_FILE
    lines = rec.read_bytes().split(b"\n")
    line = bytearray(lines[1])
    line[0] ^= 0x01                                   # '[' -> 'Z': not JSON
    lines[1] = bytes(line)
    rec.write_bytes(b"\n".join(lines))
    _, bad = verify_database(d)
    assert not bad.ok and not bad.torn and bad.line == 2 and bad.problem.startswith("not JSON"), bad
    _, fixed = verify_database(d, repair=True)
    assert fixed.repaired and Path(fixed.moved_to).read_bytes().count(b"\n") == 5 and len(TuningDatabase(d)) == 1

    d2 = _ms_database(tmp_path / "db2")
    wl = d2 / WORKLOAD_FILE
    wl.write_bytes(b"".join(wl.read_bytes().splitlines(keepends=True)[:1]))   # workload 1 gone
    wfound, rfound = verify_database(d2)
    assert wfound.ok and wfound.intact == 1
    assert not rfound.ok and rfound.line == 4 and "workload index 1 is not in the workload file" in rfound.problem


def _with_foreign_twins(db, tmp_path, drop_here=()):
    """A copy of `db` where every record has a twin measured on another CPU ("llvm/other-cpu"), ten times
    faster; the records measured here of the workloads in `drop_here` are left out."""
    d = _copy(db, tmp_path)
    rec = d / "database_tuning_record.json"
    hashes = [json.loads(x)[0] for x in (d / "database_workload.json").read_text().splitlines()]
    lines = []
    for line in rec.read_text().splitlines():
        widx, (trace, secs, target, args) = json.loads(line)
        if hashes[widx] not in drop_here:
            lines.append(line)
        lines.append(json.dumps([widx, [trace, [s / 10 for s in secs], {**target, "mcpu": "other-cpu"}, args]]))
    rec.write_text("\n".join(lines) + "\n")
    return d


def test_records_of_another_machine_neither_win_nor_count_as_tuned_here(tuned, tmp_path, models, target):
    from schedules.targets import machine_key
    from schedules.tuner import plan_tuning

    here = tuned["db"].on(target)
    assert here.machine == machine_key(target) and here.transferred() == {}
    conv = next(w for w in tuned["wb"] if w.op_kind == "conv2d" and w.input_shapes[0][1] == 8)
    d = _with_foreign_twins(tuned["db"], tmp_path, drop_here={conv.structural_hash})
    mixed = TuningDatabase(d)                      # unbound: every record counts, the foreign ones win
    bound = TuningDatabase(d, target=target)       # bound: this machine's records only
    for w in tuned["wb"]:
        mine = tuned["db"].lookup(w)
        if w.structural_hash == conv.structural_hash:
            assert not bound.is_tuned(w) and bound.lookup(w) is None
            moved = bound.transferred()[w.structural_hash]
            assert moved.machine == "llvm/other-cpu" and moved.run_ms == pytest.approx(mine.run_ms / 10)
        else:
            assert bound.lookup(w).run_ms == pytest.approx(mine.run_ms)
            assert bound.lookup(w).machine == machine_key(target)
            assert mixed.lookup(w).run_ms == pytest.approx(mine.run_ms / 10)
    assert list(bound.transferred()) == [conv.structural_hash]
    assert mixed.on(target).best_records() == bound.best_records()
    # the untuned-here workload is what tuning would do next; coverage says it is missing
    b = import_onnx(models["b"])
    todo, _ = plan_tuning(b, mixed, target, explicit=False)
    assert [w.structural_hash for w in todo] == [conv.structural_hash]
    assert mixed.coverage(b, target).tasks == 1.0 and bound.coverage(b, target).tasks == pytest.approx(2 / 3)
    # ... and still builds with the other machine's schedule (one record per workload), correct and timed
    applied = bound.apply_database()
    assert len(applied) == tuned["db"].n_workloads
    m = measure(compile(models["b"], mixed, target), Protocol(warmup=1, repeats=3))
    assert m.ok, m.error


def test_seed_database_copies_a_pretuned_one_into_a_fresh_cache_only(tuned, tmp_path):
    """`seed_database`: a fresh directory becomes a copy of the pretuned database (records, pretune state,
    space-task files), which then answers what the source answers; a directory with records is left as it
    is; a source that is not a database is refused. The source is never written to."""
    from schedules.database import RECORD_FILE, seed_database

    src = tmp_path / "pretuned"
    shutil.copytree(tuned["db"].path, src)
    (src / "pretune-state.llvm-x.json").write_text('{"rounds": 1}')
    (src / "space-tasks").mkdir()
    (src / "space-tasks" / "abc.json").write_text("{}")
    before = (src / RECORD_FILE).read_bytes()
    dst = tmp_path / "cache" / "tuning-db"
    assert seed_database(src, dst) is True
    assert (dst / "pretune-state.llvm-x.json").read_text() == '{"rounds": 1}'
    assert (dst / "space-tasks" / "abc.json").exists()
    assert not list(dst.rglob(".*.part"))
    seeded, original = TuningDatabase(dst), TuningDatabase(src)
    assert seeded.record_counts() == original.record_counts() and seeded.record_counts()
    assert seed_database(src, dst) is False               # it holds records now: nothing is copied over it
    (dst / RECORD_FILE).write_bytes((dst / RECORD_FILE).read_bytes()[:0])   # emptied: seeded again
    assert seed_database(src, dst) is True
    assert (src / RECORD_FILE).read_bytes() == before
    with pytest.raises(ScheduleError, match="not a tuning database"):
        seed_database(tmp_path / "nothing", tmp_path / "other")


# -- refresh reads only what was appended --------------------------------------------------------------
def _state(db):
    return {h: (r.run_ms, r.records, r.failed) for h, r in db.record_counts().items()}


def test_refresh_reads_only_appended_lines_and_keeps_its_views_when_nothing_changed(tmp_path):
    from schedules.database import RECORD_FILE, WORKLOAD_FILE

    d = _ms_database(tmp_path / "db")
    rec, wl = d / RECORD_FILE, d / WORKLOAD_FILE
    lines = rec.read_bytes().splitlines(keepends=True)
    rec.write_bytes(b"".join(lines[:2]))              # 2 of the 6 records (both of workload 0)
    db = TuningDatabase(d)
    assert len(db) == 2 and db.n_workloads == 2
    ms_db = db.ms
    db.refresh()                                       # unchanged: nothing read, TVM's view kept
    assert db.ms is ms_db and len(db) == 2
    with open(rec, "ab") as fh:                        # another process appends the other 4
        fh.write(b"".join(lines[2:]))
    db.refresh()
    fresh = TuningDatabase(d)
    assert len(db) == len(fresh) == 6 and _state(db) == _state(fresh)
    assert db.ms is not ms_db and len(db.ms.get_all_tuning_records()) == 6
    # a torn line appended: moved aside as on a whole read, the records before it kept
    with open(rec, "ab") as fh:
        fh.write(lines[0][:30])
    db.refresh()
    assert len(db) == 6 and len(db.repairs) == 1 and "torn last line" in db.repairs[0]
    assert rec.read_bytes() == b"".join(lines)
    # a file rewritten in place (its earlier bytes changed) is read whole, not from the old offset
    rec.write_bytes(b"".join(lines[3:]) + b"".join(lines[:3]))
    db.refresh()
    assert len(db) == 6 and _state(db) == _state(TuningDatabase(d))
    # a shorter file (a repair elsewhere) is read whole too
    rec.write_bytes(b"".join(lines[:1]))
    db.refresh()
    assert len(db) == 1 and _state(db) == _state(TuningDatabase(d))
    # a new workload appended with its records (what a tuning does) is read on from the old offsets
    wl_lines = wl.read_bytes().splitlines(keepends=True)
    wl.write_bytes(wl_lines[0])
    rec.write_bytes(b"".join(lines[:3]))               # workload 0's three records
    db.refresh()
    assert db.n_workloads == 1 and len(db) == 3
    with open(wl, "ab") as fh:
        fh.write(wl_lines[1])
    with open(rec, "ab") as fh:
        fh.write(b"".join(lines[3:]))
    db.refresh()
    assert db.n_workloads == 2 and len(db) == 6 and _state(db) == _state(TuningDatabase(d))
