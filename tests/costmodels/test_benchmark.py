import json

from benchmarks.cost_model_quality import main

from .conftest import TRIALS


def test_quick_benchmark_writes_its_figures(ms_work_dir, tmp_path):
    out = tmp_path / "cost_model_quality.json"
    args = ["--quick", "--trials", str(TRIALS), "--work-dir", str(ms_work_dir.parent), "--out", str(out)]
    assert main(args) == 0
    data = json.loads(out.read_text())
    for key in ("schedule_top5_recall", "schedule_pairwise_accuracy"):
        assert 0.0 <= data[key] <= 1.0
    if data["arch"]["primary"] is not None:
        assert -1.0 <= data["arch_kendall_tau"] <= 1.0 and 0.0 <= data["arch_within_10pct"] <= 1.0
    else:
        assert data["arch"]["note"].startswith("skipped")
    assert data["command"].startswith("python") and data["machine"]["cores"] >= 1
    assert data["schedule"]["ranker"]["n_workloads"] == 2 and data["schedule"]["ranker"]["n_records"] >= 2 * TRIALS - 4
    assert "measured on this machine" in data["schedule"]["data"]
