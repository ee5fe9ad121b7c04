import json
import shutil
from pathlib import Path

import pytest

from costmodels import CostModelError, layer_params
from costmodels.datasets import load_nb201, nb201_layers, parse_nb201, read_metaschedule_db

ALL3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_metaschedule_db_torn_tail_failed_runs_and_corrupt_lines(ms_work_dir, tmp_path):
    src = Path(ms_work_dir)
    good = read_metaschedule_db(src)
    d = tmp_path / "db"
    shutil.copytree(src, d)
    rec = d / "database_tuning_record.json"
    lines = rec.read_text().splitlines()
    failed = json.loads(lines[0])
    failed[1][1] = [1e10]  # MetaSchedule's figure for a candidate that failed
    rec.write_text("\n".join([json.dumps(failed)] + lines[1:]) + "\n" + lines[1][: len(lines[1]) // 2])
    db = read_metaschedule_db(d)
    assert db.skipped == {"failed_run": 1, "torn_last_line": 1}
    assert len(db.samples) == len(good.samples) - 1
    rec.write_text("\n".join(lines[:2] + ["{corrupt"] + lines[2:]) + "\n")
    with pytest.raises(CostModelError, match=r":3: corrupt record"):
        read_metaschedule_db(d)
    with pytest.raises(CostModelError, match="not a MetaSchedule"):
        read_metaschedule_db(tmp_path)


def test_best_known_ms_feeds_database_knowledge(ms_work_dir):
    from costmodels import ARCH_FEATURES, arch_features
    from costmodels.datasets import best_known_ms

    db = read_metaschedule_db(ms_work_dir)
    known = best_known_ms(ms_work_dir)
    assert set(known) == {s.workload.structural_hash for s in db.samples}
    for h, ms in known.items():
        assert ms == min(s.latency_ms for s in db.samples if s.workload.structural_hash == h)
    layers = list(db.workloads)
    f = dict(zip(ARCH_FEATURES, arch_features(layers, known_ms=known)))
    assert f["db_coverage_macs"] == 1.0 and f["db_log2_known_ms"] > 0


def test_nb201_layers_by_hand():
    layers = nb201_layers(ALL3)
    convs = [w for w in layers if w.op_kind in ("conv2d", "pointwise_conv2d")]
    assert len(convs) == 1 + 15 * 6 + 2 * 3  # stem, 6 per cell, 3 per reduction block
    cell0 = [w for w in layers if w.name.startswith("s0c0_e")]
    assert all(w.macs == 32 * 32 * 16 * 16 * 9 for w in cell0)
    # conv weights, no bias (BN follows), plus the classifier: BN parameters are not layers here
    assert sum(layer_params(w, bias=False) for w in convs) == (
        3 * 16 * 9 + 5 * 6 * (16 * 16 * 9) + 5 * 6 * (32 * 32 * 9) + 5 * 6 * (64 * 64 * 9)
        + (16 * 32 * 9 + 32 * 32 * 9 + 16 * 32) + (32 * 64 * 9 + 64 * 64 * 9 + 32 * 64)) - 0
    none = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert len(nb201_layers(none)) < len(layers)
    with pytest.raises(CostModelError):
        parse_nb201("|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|")


def test_nb201_table(nb201_path):
    rows = load_nb201(nb201_path)
    assert len(rows) == 15625
    assert rows[6111]["cifar10_test_acc"] == pytest.approx(94.37, abs=0.01)
    assert all(r["lat_ms_gold_6226"] > 0 for r in rows[:100])
    with pytest.raises(FileNotFoundError):
        load_nb201(nb201_path.parent / "absent.csv")
