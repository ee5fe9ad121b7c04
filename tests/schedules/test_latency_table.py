"""The latency table: a model's kernel time read off the tuning database without building it."""

from schedules.database import TuningDatabase
from schedules.frontend import extract_workloads, import_onnx
from schedules.latency_table import table_latency
from schedules.tuner import EXPLICIT_KINDS, explicit_tune


def test_table_counts_each_call_of_the_tuned_tasks_and_names_the_rest(models, target, tmp_path):
    mod = import_onnx(models["twice"])
    workloads = extract_workloads(mod, target)
    db = TuningDatabase(tmp_path / "db")
    empty = table_latency(mod, db, target)
    assert not empty.complete and empty.kernel_ms == 0.0
    assert sorted(empty.missing) == sorted(w.name for w in workloads)
    assert empty.calls == sum(w.count for w in workloads) > len(workloads)   # the repeated block twice

    explicit_tune(mod, db, target, configs_per_task=1)
    db.refresh()
    table = table_latency(mod, db, target)
    tuned = [w for w in workloads if w.op_kind in EXPLICIT_KINDS]
    assert tuned and sorted(table.missing) == sorted(w.name for w in workloads if w.op_kind not in EXPLICIT_KINDS)
    bound = db.on(target)
    expected = sum(w.count * bound.lookup(w).run_ms for w in tuned)
    assert table.kernel_ms == expected > 0
    # the repeated conv counts twice: its record's time enters the sum once per call
    repeated = [w for w in tuned if w.count > 1]
    assert repeated, "net_twice calls its conv block twice"
