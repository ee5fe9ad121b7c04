"""The default two-stage searcher (`schedules.tuner.auto_tune`): MetaSchedule for the heavy unseen conv /
dense tasks, the explicit space for the rest, on a real model and a real database."""

from __future__ import annotations

from schedules.database import TuningDatabase
from schedules.frontend import extract_workloads, import_onnx
from schedules.records import LayerWorkload
from schedules.tuner import EXPLICIT_KINDS, auto_tune, heavy_tasks


def _w(name: str, macs: int, count: int = 1) -> LayerWorkload:
    return LayerWorkload(name, "conv2d", ((1, 1, 1, 1),), (1, 1, 1, 1), structural_hash=name, macs=macs, count=count)


def test_heavy_tasks_hold_the_share_heaviest_first():
    ws = [_w("a", 10), _w("b", 50), _w("c", 30, count=2), _w("d", 5)]
    assert [w.name for w in heavy_tasks(ws, share=0.8)] == ["c", "b"]          # 60 + 50 of 125 >= 80 %
    assert [w.name for w in heavy_tasks(ws, share=0.99, at_most=3)] == ["c", "b", "a"]
    assert heavy_tasks([], share=0.8) == []
    # after pretuning: what is left is small against the whole network, and only a dominant task gets
    # MetaSchedule's trials (c holds 60 of 1,000 MACs: 6 %; b 5 %; the floor is 5.5 %)
    assert [w.name for w in heavy_tasks(ws, share=0.8, of_total=1000, min_share=0.055)] == ["c"]
    assert heavy_tasks(ws, share=0.8, of_total=10_000, min_share=0.05) == []


def test_auto_tune_metaschedule_for_the_heaviest_explicit_for_the_rest(models, target, tmp_path):
    mod = import_onnx(models["a"])
    db = TuningDatabase(tmp_path / "db")
    convs = [w for w in extract_workloads(mod, target) if w.op_kind in EXPLICIT_KINDS]
    heaviest = max(convs, key=lambda w: w.macs * w.count)
    report = auto_tune(mod, db, target, trials_per_task=2, metaschedule_trials=16, at_most=1, seed=0)
    assert {w.structural_hash for w in report.tuned} == {w.structural_hash for w in convs}
    # the heaviest got MetaSchedule's trials (many records), the others a few explicit configs (one record each)
    assert db.lookup(heaviest).records + db.lookup(heaviest).failed >= 8
    for w in convs:
        if w.structural_hash != heaviest.structural_hash:
            assert db.lookup(w).records == 1
    again = auto_tune(mod, db, target, trials_per_task=2, metaschedule_trials=16, at_most=1, seed=0)
    assert again.tuned == [] and again.trials == 0 and len(again.reused) == len(convs)
