"""`nacos doctor` on a real run directory: a results store, ONNX artifacts, a MetaSchedule JSON tuning
database written by TVM itself, a saved cost model and the packaged checkpoint. Each kind of file is
damaged (cut mid-line, random bytes); the doctor must name the file and the line (or row), change
nothing without --repair, and with --repair move the damaged tail aside so the earlier records load."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from nacos.cli import main
from nacos.config import config_from_dict
from nacos.results.store import ResultsStore, RunDir
from schedules.database import RECORD_FILE, WORKLOAD_FILE, TuningDatabase

N_ROWS = 40


def _tiny_onnx(path: Path, width: int) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _write_tuning_db(directory: Path) -> None:
    """Three matmul workloads with three records each, written by MetaSchedule's own JSONDatabase."""
    import tvm
    from tvm import te
    from tvm.s_tir import meta_schedule as ms
    from tvm.target import Target

    directory.mkdir(parents=True, exist_ok=True)
    db = ms.database.JSONDatabase(work_dir=str(directory), module_equality="structural")
    target = Target({"kind": "llvm"})
    for n in (8, 16, 32):
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
                sch.trace, workload, [1e-4 * (r + 1)], target, ms.arg_info.ArgInfo.from_prim_func(func)))


def _write_costmodel(directory: Path) -> None:
    from costmodels import RankerConfig, ScheduleRanker, ScheduleSample, conv2d_workload
    from schedules.records import ScheduleConfig

    rng = random.Random(0)
    samples = []
    for i, (c, r) in enumerate([(8, 16), (16, 8)]):
        w = conv2d_workload(f"w{i}", (1, c, r, r), 16, 3, 1, 1)
        for _ in range(12):
            cfg = ScheduleConfig(tile_oc=rng.choice([1, 4, 16]), tile_ow=rng.choice([1, 2, 4]))
            samples.append(ScheduleSample(w, cfg, 1e-3 * cfg.tile_oc + rng.random() * 1e-4))
    ScheduleRanker(RankerConfig(schedule_kind="config", n_rounds=10)).fit(samples).save(directory)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A healthy run directory (and its tuning database beside it), copied by each test."""
    base = tmp_path_factory.mktemp("doctor")
    _write_tuning_db(base / "tuning-db")
    run = RunDir.prepare(base / "run")
    cfg = config_from_dict({"mode": "two-stage", "tuning": {"database": str(base / "tuning-db")}})
    (run.config_path).write_text(cfg.to_json() + "\n")
    with ResultsStore(run.store_path) as store:
        for i in range(N_ROWS):
            seq = store.add(f"cand{i:03d}", json.dumps({"g": i}))
            status = "ok" if i % 4 else "failed"
            arch_id = f"arch{i:03d}"
            if status == "ok":
                _tiny_onnx(run.artifacts_dir / arch_id / "model.onnx", 4 + i)
            store.finish(seq, status, {"arch_id": arch_id, "accuracy": 90 + i / 10, "latency_ms": 1.0 + i,
                                       "note": "x" * 200}, "" if status == "ok" else f"reason {i}", seconds=0.5)
    _write_costmodel(run.costmodel_dir / "ranker")
    return base


@pytest.fixture
def setup(template, tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(run dir, tuning db dir) of a fresh copy; config.json points at the copy's database."""
    shutil.copytree(template / "tuning-db", tmp_path / "tuning-db")
    shutil.copytree(template / "run", tmp_path / "run")
    run = RunDir(tmp_path / "run")
    cfg = json.loads(run.config_path.read_text())
    cfg["tuning"]["database"] = str(tmp_path / "tuning-db")
    run.config_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "run", tmp_path / "tuning-db"


def _doctor(*args: str, capsys) -> tuple[int, dict]:
    code = main(["doctor", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def _problems(report: dict) -> list[dict]:
    return [c for c in report["checks"] if c["problem"]]


def _snapshot(*dirs: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for d in dirs for p in sorted(d.rglob("*")) if p.is_file()
            and not p.name.endswith((".lock", "-shm", "-wal"))}


def test_a_healthy_run_directory(setup, capsys):
    run_dir, db_dir = setup
    code, report = _doctor(str(run_dir), capsys=capsys)
    assert code == 0 and report["healthy"], _problems(report)
    kinds = {c["kind"] for c in report["checks"] if c["status"] == "ok"}
    assert kinds >= {"marker", "config", "store", "artifact", "tuning-db", "costmodel", "checkpoint"}
    # the text form: one line per file
    assert main(["doctor", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "healthy" in out and str(db_dir / RECORD_FILE) in out


def test_not_a_run_directory_is_bad_input(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("x")
    assert main(["doctor", str(tmp_path / "plain")]) == 2
    assert "not a nacos run directory" in capsys.readouterr().err
    assert main(["doctor", str(tmp_path / "absent")]) == 2
    assert not (tmp_path / "absent").exists() and sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["x.txt"]


@pytest.mark.parametrize("which", [WORKLOAD_FILE, RECORD_FILE])
def test_corrupt_tuning_db_cut_mid_line(setup, capsys, which):
    run_dir, db_dir = setup
    f = db_dir / which
    data = f.read_bytes()
    n_lines = data.count(b"\n")
    cut = data.rindex(b"\n", 0, len(data) - 1) + 1 + 25     # 25 bytes into the last line
    f.write_bytes(data[:cut])
    before = _snapshot(run_dir, db_dir)
    code, report = _doctor(str(run_dir), capsys=capsys)
    assert code == 1
    bad = [c for c in _problems(report) if c["path"] == str(f)]
    assert len(bad) == 1 and bad[0]["line"] == n_lines and "torn last line" in bad[0]["detail"], report
    assert _snapshot(run_dir, db_dir) == before          # nothing written without --repair

    code, report = _doctor(str(run_dir), "--repair", capsys=capsys)
    assert code == 0, _problems(report)
    fixed = next(c for c in report["checks"] if c["path"] == str(f))
    assert fixed["status"] == "repaired" and Path(fixed["repaired_to"]).read_bytes() == data[data.rindex(
        b"\n", 0, len(data) - 1) + 1:cut]                 # the torn tail, kept aside
    db = TuningDatabase(db_dir)
    expected_records = 9 - 3 if which == WORKLOAD_FILE else 8   # a lost workload takes its 3 records along
    assert len(db) == expected_records and not db.repairs
    assert len(db.ms.get_all_tuning_records()) == expected_records   # TVM's own loader accepts the files
    code, report = _doctor(str(run_dir), capsys=capsys)
    assert code == 0, _problems(report)


def test_corrupt_tuning_db_random_bytes_in_a_middle_line(setup, capsys):
    run_dir, db_dir = setup
    f = db_dir / RECORD_FILE
    lines = f.read_bytes().split(b"\n")
    rng = random.Random(7)
    line = bytearray(lines[4])
    for pos in rng.sample(range(len(line)), 12):
        line[pos] = rng.randrange(256)
    lines[4] = bytes(line).replace(b"\n", b"!")
    f.write_bytes(b"\n".join(lines))
    code, report = _doctor(str(run_dir), capsys=capsys)
    bad = _problems(report)
    assert code == 1 and [(c["path"], c["line"]) for c in bad] == [(str(f), 5)], bad
    assert "the 4 lines before it are intact" in bad[0]["detail"]
    code, report = _doctor(str(run_dir), "--repair", capsys=capsys)
    assert code == 0
    aside = Path(next(c for c in report["checks"] if c["path"] == str(f))["repaired_to"])
    assert aside.read_bytes().count(b"\n") == 5 and aside.name.startswith(RECORD_FILE + ".damaged-")
    assert len(TuningDatabase(db_dir)) == 4 and len(TuningDatabase(db_dir).ms.get_all_tuning_records()) == 4


def test_corrupt_store_row_damaged(setup, capsys):
    run_dir, _ = setup
    store = run_dir / "results.sqlite"
    data = bytearray(store.read_bytes())
    pos = data.index(b"reason 12")              # row 13's reason, changed in place
    data[pos:pos + 9] = b"REASON 12"
    store.write_bytes(bytes(data))
    code, report = _doctor(str(run_dir), capsys=capsys)
    bad = _problems(report)
    assert code == 1 and len(bad) == 1 and bad[0]["kind"] == "store" and bad[0]["line"] == 13, bad
    assert "row 13" in bad[0]["detail"]
    code, report = _doctor(str(run_dir), "--repair", capsys=capsys)
    assert code == 0, _problems(report)
    fixed = next(c for c in report["checks"] if c["kind"] == "store")
    assert fixed["status"] == "repaired" and Path(fixed["repaired_to"]).read_bytes() == bytes(data)
    with ResultsStore(store) as s:                # opens for writing: the search can resume on it
        assert [r.seq for r in s.records()] == list(range(1, 13))
        assert s.get_meta("schema_version") == 1
        s.add("next", "{}")


def test_corrupt_store_cut_in_the_middle(setup, capsys):
    run_dir, _ = setup
    store = run_dir / "results.sqlite"
    data = store.read_bytes()
    store.write_bytes(data[: len(data) - 4096 - 123])      # the last page and a bit of the one before
    code, report = _doctor(str(run_dir), capsys=capsys)
    bad = _problems(report)
    assert code == 1 and bad[0]["kind"] == "store" and str(store) == bad[0]["path"], bad
    assert "damaged" in bad[0]["detail"]
    code, report = _doctor(str(run_dir), "--repair", capsys=capsys)
    fixed = next(c for c in report["checks"] if c["kind"] == "store")
    assert fixed["status"] == "repaired", fixed
    with ResultsStore(store, readonly=True) as s:
        seqs = [r.seq for r in s.records()]
    assert 0 < len(seqs) < N_ROWS and seqs == list(range(1, len(seqs) + 1))
    assert f"{len(seqs)} rows before the damage" in fixed["detail"]
    # artifacts of the kept ok rows are still all there, so the directory is healthy again
    assert code == 0, _problems(report)


def test_corrupt_store_random_bytes_in_the_header_is_not_repairable(setup, capsys):
    run_dir, _ = setup
    store = run_dir / "results.sqlite"
    data = bytearray(store.read_bytes())
    data[:16] = random.Random(1).randbytes(16)
    store.write_bytes(bytes(data))
    code, report = _doctor(str(run_dir), "--repair", capsys=capsys)
    bad = _problems(report)
    assert code == 1 and bad[0]["kind"] == "store" and "not repairable" in bad[0]["detail"], bad
    assert store.read_bytes() == bytes(data)     # left as it was


def test_corrupt_sqlite_integrity_failure_is_named(setup, capsys):
    run_dir, _ = setup
    store = run_dir / "results.sqlite"
    conn = sqlite3.connect(store)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    n_pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    data = bytearray(store.read_bytes())
    rng = random.Random(3)
    page = n_pages - 2                             # a page near the end (a leaf of the candidates table)
    data[page * page_size + 8: page * page_size + 8 + 600] = rng.randbytes(600)
    store.write_bytes(bytes(data))
    code, report = _doctor(str(run_dir), capsys=capsys)
    assert code == 1 and _problems(report)[0]["kind"] == "store"
    code, report = _doctor(str(run_dir), "--repair", capsys=capsys)
    fixed = next(c for c in report["checks"] if c["kind"] == "store")
    assert fixed["status"] == "repaired", fixed
    with ResultsStore(store) as s:
        assert s.verify() == len(s.records()) > 0


def test_corrupt_config_damaged_is_named_and_not_repairable(setup, capsys):
    run_dir, _ = setup
    cfg = run_dir / "config.json"
    text = cfg.read_text()
    cfg.write_text(text[: len(text) // 2])
    code, report = _doctor(str(run_dir), "--repair", capsys=capsys)
    bad = [c for c in _problems(report) if c["kind"] == "config"]
    assert code == 1 and bad and bad[0]["line"] is not None and "not repairable" in bad[0]["detail"]
    assert cfg.read_text() == text[: len(text) // 2]
    cfg.write_text(json.dumps({**json.loads(text), "tuning": {"no_such_key": 1}}))
    code, report = _doctor(str(run_dir), capsys=capsys)
    assert code == 1 and "no_such_key" in _problems(report)[0]["detail"]


def test_corrupt_costmodel_booster_cut_mid_line(setup, capsys):
    run_dir, _ = setup
    model = run_dir / "costmodels" / "ranker"
    booster = model / "booster_0.json"
    booster.write_bytes(booster.read_bytes()[:-40])
    code, report = _doctor(str(run_dir), capsys=capsys)
    bad = _problems(report)
    assert code == 1 and len(bad) == 1 and bad[0]["kind"] == "costmodel" and bad[0]["line"] == 1
    assert "booster_0.json: not JSON" in bad[0]["detail"]
    code, report = _doctor(str(run_dir), "--repair", capsys=capsys)
    assert code == 0 and not model.exists()
    aside = Path(next(c for c in report["checks"] if c["kind"] == "costmodel")["repaired_to"])
    assert (aside / "meta.json").is_file() and aside.name.startswith("ranker.damaged-")


def test_corrupt_costmodel_feature_names_that_do_not_match(setup, capsys):
    run_dir, _ = setup
    meta_path = run_dir / "costmodels" / "ranker" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["feature_names"] = list(reversed(meta["feature_names"]))
    meta_path.write_text(json.dumps(meta))
    code, report = _doctor(str(run_dir), capsys=capsys)
    assert code == 1 and "features do not match" in _problems(report)[0]["detail"]


def test_corrupt_missing_and_damaged_artifacts(setup, capsys):
    run_dir, _ = setup
    shutil.rmtree(run_dir / "artifacts" / "arch001")
    onnx_file = run_dir / "artifacts" / "arch002" / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:20])
    code, report = _doctor(str(run_dir), capsys=capsys)
    bad = {(c["status"], c["line"]) for c in _problems(report)}
    assert code == 1 and bad == {("missing", 2), ("damaged", 3)}, report
    code, report = _doctor(str(run_dir), "--repair", capsys=capsys)
    assert code == 1 and [c["status"] for c in _problems(report)] == ["missing"]   # a missing file stays missing
    assert not onnx_file.exists() and list(onnx_file.parent.glob("model.onnx.damaged-*"))


def test_an_artifact_name_that_escapes_the_run_directory_is_refused(setup, capsys):
    run_dir, _ = setup
    with ResultsStore(run_dir / "results.sqlite") as s:
        seq = s.add("evil", "{}")
        s.finish(seq, "ok", {"arch_id": "../../outside"})
    code, report = _doctor(str(run_dir), capsys=capsys)
    bad = _problems(report)
    assert code == 1 and bad[0]["kind"] == "artifact" and "refused" in bad[0]["detail"]


def test_no_store_repair_while_a_search_holds_the_lock(setup, capsys):
    import fcntl

    run_dir, _ = setup
    store = run_dir / "results.sqlite"
    data = bytearray(store.read_bytes())
    pos = data.index(b"reason 4")
    data[pos:pos + 8] = b"REASON 4"
    store.write_bytes(bytes(data))
    with open(run_dir / "results.sqlite.lock", "a+") as lock:     # what a running search holds
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, report = _doctor(str(run_dir), "--repair", capsys=capsys)
    bad = _problems(report)
    assert code == 1 and "a search is writing this store" in bad[0]["detail"] and bad[0]["line"] == 5
    assert store.read_bytes() == bytes(data) and not list(run_dir.glob("results.sqlite.damaged-*"))
