"""The inner loop on real TVM: import, workloads, the shared database (reuse, coverage, corruption),
tuning faults, the correctness gate and the measurement protocol. Budgets are tiny: 2 trials per
workload, so the tuned schedules are poor; only what was tuned, reused and recorded is asserted."""

from __future__ import annotations

import shutil
import warnings

import onnx
import pytest

from schedules import (DatabaseCorruptError, DatabaseRepairWarning, ScheduleError, TuningDatabase, compile,
                       extract_workloads, import_onnx, measure, reference_latency, tune)
from schedules.tuning_database import RECORD_FILE, WORKLOAD_FILE
from tests.schedules.inner_nets import ConvBnNet, NetA, NetB, Twice, export

TRIALS = 2  # per workload: enough to write records, far too few to tune well


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    d = tmp_path_factory.mktemp("nets")
    return {
        "convbn": export(ConvBnNet(), d / "convbn.onnx", (1, 3, 16, 16)),
        "a": export(NetA(), d / "a.onnx", (1, 3, 16, 16)),
        "a_other_weights": export(NetA(), d / "a2.onnx", (1, 3, 16, 16), seed=1),
        "b": export(NetB(), d / "b.onnx", (1, 3, 16, 16)),
        "twice": export(Twice(), d / "twice.onnx", (1, 8, 8, 8)),
    }


@pytest.fixture(scope="module")
def reuse(nets, tmp_path_factory):
    """Tune net A's convolutions, then net B's: (db, report A, report B, B's workloads)."""
    db = TuningDatabase(tmp_path_factory.mktemp("db"))
    ra = tune(import_onnx(nets["a"]), db, "llvm", TRIALS, trials_per_iter=TRIALS, kinds=("conv2d",),
              builder="inprocess")
    mod_b = import_onnx(nets["b"])
    cov_before = db.coverage(mod_b)
    rb = tune(mod_b, db, "llvm", TRIALS, trials_per_iter=TRIALS, kinds=("conv2d",), builder="inprocess")
    return db, ra, rb, extract_workloads(mod_b, "llvm"), cov_before


# -- import ------------------------------------------------------------------------------------------
def test_import_decomposes_batchnorm_and_fuses(nets):
    mod = import_onnx(nets["convbn"])
    text = mod.script()
    assert "batch_norm" not in text
    assert "fused_conv2d" in text


def test_import_refuses_a_bad_file_naming_it(nets, tmp_path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(nets["convbn"].read_bytes()[:200])
    with pytest.raises(ScheduleError, match="truncated.onnx"):
        import_onnx(truncated)
    model = onnx.load(str(nets["a"]))
    model.graph.node[0].input[0] = "nowhere"  # a dangling input
    dangling = tmp_path / "dangling.onnx"
    onnx.save(model, str(dangling))
    with pytest.raises(ScheduleError, match="dangling.onnx"):
        import_onnx(dangling)
    with pytest.raises(ScheduleError, match="unknown input"):
        import_onnx(nets["a"], {"image": (1, 3, 16, 16)})


# -- workloads ---------------------------------------------------------------------------------------
def test_workloads_kinds_macs_and_bytes_match_hand_figures(nets):
    ws = {w.op_kind: w for w in extract_workloads(import_onnx(nets["convbn"]), "llvm")}
    assert set(ws) == {"conv2d", "depthwise_conv2d", "pointwise_conv2d", "dense", "other"}
    assert ws["conv2d"].macs == 8 * 16 * 16 * 27 and ws["conv2d"].kernel == (3, 3)
    assert ws["depthwise_conv2d"].macs == 8 * 16 * 16 * 9 and ws["depthwise_conv2d"].groups == 8
    assert ws["pointwise_conv2d"].macs == 16 * 16 * 16 * 8 and ws["pointwise_conv2d"].kernel == (1, 1)
    assert ws["dense"].macs == 16 * 10
    assert ws["conv2d"].output_shape == (1, 8, 16, 16)
    # conv + folded BN: data, weight, bias, output (float32)
    assert ws["conv2d"].bytes == 4 * (3 * 16 * 16 + 8 * 3 * 3 * 3 + 8 + 8 * 16 * 16)
    assert all(w.structural_hash for w in ws.values())


def test_workload_called_twice_counts_twice(nets):
    ws = extract_workloads(import_onnx(nets["twice"]), "llvm")
    convs = [w for w in ws if w.op_kind == "conv2d"]
    assert sum(w.count for w in convs) == 2
    assert max(w.count for w in convs) == 2 or len(convs) == 2  # relu fused into one of them or not


# -- database reuse and coverage ---------------------------------------------------------------------
def test_second_architecture_tunes_only_its_new_workloads(reuse):
    db, ra, rb, workloads_b, cov_before = reuse
    assert len(ra.tuned_tasks) == 1 and ra.trials >= 1
    assert [w.op_kind for w in rb.reused_tasks] == ["conv2d"]
    assert len(rb.tuned_tasks) == 1                        # only B's second conv
    assert rb.tuned_tasks[0].input_shapes[0] == (1, 8, 16, 16)
    assert rb.tuned_tasks[0].structural_hash not in {w.structural_hash for w in ra.tuned_tasks}
    assert rb.hit_rate == 0.5
    assert rb.seconds_per_trial > 0


def test_coverage_by_tasks_and_macs(reuse):
    db, ra, rb, workloads_b, cov_before = reuse
    convs = [w for w in workloads_b if w.op_kind == "conv2d"]
    first = next(w for w in convs if w.input_shapes[0][1] == 3)
    total_macs = sum(w.macs * w.count for w in workloads_b)
    assert cov_before == pytest.approx((1 / len(workloads_b), first.macs / total_macs))
    tasks, macs = db.coverage(workloads_b)
    assert tasks == pytest.approx(2 / len(workloads_b))   # the mean was never tuned (kinds=conv2d)
    assert macs == pytest.approx(sum(w.macs for w in convs) / total_macs)
    assert db.covered() == {w.structural_hash for w in convs}
    assert [w.op_kind for w in db.unseen(workloads_b)] == ["other"]
    best = db.best(first)
    assert best is not None and best.working >= 1 and 0 < best.best_ms < 1e3
    assert db.lookup("no-such-hash") is None


def test_tuned_module_compiles_with_the_database_and_passes_the_gate(reuse, nets):
    db = reuse[0]
    compiled = compile(nets["b"], db, "llvm")
    assert compiled.tuned
    m = measure(compiled, warmup=1, repeats=3)
    assert m.ok, m.error


# -- a torn or corrupted database file ---------------------------------------------------------------
def test_corrupt_torn_tail_is_moved_aside_naming_file_and_line(reuse, tmp_path):
    src = reuse[0].path
    d = tmp_path / "db"
    shutil.copytree(src, d, ignore=shutil.ignore_patterns("ms_logs", ".lock"))
    rec = d / RECORD_FILE
    data = rec.read_bytes()
    n_lines = data.count(b"\n")
    rec.write_bytes(data[:-25])  # a write cut short in the last line
    with pytest.warns(DatabaseRepairWarning, match=rf"{RECORD_FILE}, line {n_lines}: torn last line") as caught:
        db = TuningDatabase(d)
    assert len(db) == n_lines - 1                  # every earlier record loads
    asides = list(d.glob(RECORD_FILE + ".torn-*"))
    assert len(asides) == 1 and asides[0].read_bytes() == data[data.rfind(b"\n", 0, len(data) - 1) + 1:-25]
    assert str(asides[0]) in str(caught[0].message)
    assert len(db.reader()) == n_lines - 1         # and MetaSchedule's own loader accepts the trimmed file


def test_corrupt_middle_line_is_refused_then_repaired_on_request(reuse, tmp_path):
    d = tmp_path / "db"
    shutil.copytree(reuse[0].path, d, ignore=shutil.ignore_patterns("ms_logs", ".lock"))
    rec = d / RECORD_FILE
    lines = rec.read_bytes().split(b"\n")
    lines[1] = b'[0, ["garbage'
    rec.write_bytes(b"\n".join(lines))
    with pytest.raises(DatabaseCorruptError, match=rf"{RECORD_FILE}, line 2") as info:
        TuningDatabase(d)
    assert info.value.line == 2 and info.value.path == str(rec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatabaseRepairWarning)
        db = TuningDatabase(d, repair=True)
    assert len(db) == 1 and list(d.glob(RECORD_FILE + ".damaged-*"))
    wl = d / WORKLOAD_FILE
    wl.write_bytes(b"not json\n" + wl.read_bytes())
    with pytest.raises(DatabaseCorruptError, match=rf"{WORKLOAD_FILE}, line 1"):
        TuningDatabase(d)


# -- faults while tuning -----------------------------------------------------------------------------
def test_build_errors_and_timeouts_are_recorded_and_tuning_goes_on(nets, tmp_path):
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build

    calls = []

    def flaky_build(mod, target, params):
        calls.append(1)
        if len(calls) % 2 == 1:
            raise RuntimeError("injected build fault")
        return default_build(mod, target, params)

    db = TuningDatabase(tmp_path / "db")
    report = tune(import_onnx(nets["a"]), db, "llvm", 4, trials_per_iter=4, kinds=("conv2d",), builder="inprocess",
                  build_func=flaky_build, run_timeout_s=1e-4)
    stages = {f.stage for f in report.failures}
    assert stages == {"build", "timeout"}
    assert any("injected build fault" in f.reason for f in report.failures if f.stage == "build")
    assert report.trials == 4 and len(report.failures) == 4   # every candidate measured, none lost
    assert (db.path / "failures.jsonl").read_text().count("\n") == 4
    (w,) = report.tuned_tasks
    assert db.lookup(w).failed == 4 and db.best(w) is None    # a failed record covers nothing


# -- correctness gate and protocol --------------------------------------------------------------------
def test_wrong_result_is_a_failed_measurement(nets):
    compiled = compile(nets["a"], None, "llvm")
    assert not compiled.tuned
    ok = measure(compiled, warmup=0, repeats=2)
    assert ok.ok, ok.error
    wrong = measure(compiled, warmup=0, repeats=2, reference=nets["a_other_weights"])
    assert not wrong.ok and wrong.status == "failed"
    assert wrong.error.startswith("wrong result: output 0 max abs diff")
    assert wrong.median_ms != wrong.median_ms or wrong.median_ms <= 0  # no latency counts


def test_measurement_protocol_fields(nets):
    m = measure(nets["a"], None, "llvm", warmup=2, repeats=4, number=3)
    assert m.ok, m.error
    assert (m.warmup, m.repeats, m.number, m.runs, m.batch, m.backend) == (2, 4, 3, 12, 1, "tvm")
    assert m.min_ms <= m.median_ms <= m.p95_ms and m.std_ms >= 0 and m.threads >= 1
    assert dict(m.versions)["apache-tvm"].startswith("0.27")
    assert "llvm" in m.target
    ort = reference_latency(nets["a"], "onnxruntime", threads=1, warmup=1, repeats=3)
    assert ort.ok and ort.backend == "onnxruntime" and ort.threads == 1 and ort.runs == 3
    tor = reference_latency(nets["a"], "torch", threads=1, module=NetA(), warmup=1, repeats=3)
    assert tor.ok and tor.backend == "torch"
    with pytest.raises(ScheduleError, match="module="):
        reference_latency(nets["a"], "torch")
