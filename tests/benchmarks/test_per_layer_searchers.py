"""`benchmarks/per_layer_searchers.py` at --quick size (real export, TVM builds, explicit search and a
4-trial MetaSchedule run on one task, output in tmp_path), then its resume: a rerun with the same
settings finds the row done and keeps it as it was. Structure only; no timing thresholds (shared machine)."""

import json
import math

TIMES = ("unscheduled_us", "default_us", "explicit_us", "metaschedule_us")


def test_quick_run_then_resume(tmp_path, run_benchmark):
    out = tmp_path / "per_layer.json"
    base = ["--quick", "--work-dir", str(tmp_path / "work"), "--out", str(out), "--tasks-per-network", "1"]
    run_benchmark("per_layer_searchers", base)
    data = json.loads(out.read_text())
    assert data["complete"] is True and data["settings"]["quick"] is True
    assert data["command"].startswith("python") and data["machine"]["cores"] >= 1
    (row,) = data["rows"]
    assert row["network"] == "mobilenet_v2" and not row["errors"], row["errors"]
    for key in TIMES:
        assert row[key] > 0 and math.isfinite(row[key]), key
    assert math.isclose(row["explicit_over_metaschedule"], row["explicit_us"] / row["metaschedule_us"])
    assert row["explicit_tried"] >= 1 and row["default_template"] in ("tiled", "rfactor")
    assert data["summary"]["rows"] == 1
    table = out.with_suffix(".md").read_text().splitlines()
    assert table[0].startswith("| network | task") and len(table) == 3 and "mobilenet_v2" in table[2]
    # the same settings resume: the done row is skipped, not re-measured
    run_benchmark("per_layer_searchers", base)
    assert json.loads(out.read_text())["rows"] == data["rows"]
