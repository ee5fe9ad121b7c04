import json

from .conftest import TRIALS


def test_quick_benchmark_writes_its_figures(ms_work_dir, tmp_path, run_benchmark):
    out = tmp_path / "cost_model_quality.json"
    args = ["--quick", "--trials", str(TRIALS), "--work-dir", str(ms_work_dir.parent), "--out", str(out), "--warm", "4"]
    run_benchmark("cost_model_quality", args)
    data = json.loads(out.read_text())
    for key in ("schedule_top5_recall", "schedule_pairwise_accuracy", "schedule_top5_recall_metaschedule_xgb",
                "schedule_pairwise_accuracy_metaschedule_xgb", "schedule_top5_recall_ranker",
                "schedule_pairwise_accuracy_ranker"):
        assert 0.0 <= data[key] <= 1.0, key
    ours = data["schedule"]["ms_cost_model"]
    # the top-level figures are the project's MetaSchedule cost model's, side by side with XGBModel's
    assert data["schedule_top5_recall"] == ours["ours"]["top5_recall"]
    assert data["schedule_pairwise_accuracy_metaschedule_xgb"] == ours["metaschedule_xgb"]["pairwise_accuracy"]
    assert ours["n_workloads"] == 2 and ours["n_records"] >= 2 * TRIALS - 4
    assert data["schedule"]["ms_cost_model_rank_pairwise"]["objective"] == "rank:pairwise"
    warm = data["schedule"]["ms_cost_model_warm"]
    assert warm["warm"] == 4 and 0.0 <= warm["ours"]["top5_recall"] <= 1.0
    if data["arch"]["primary"] is not None:
        assert -1.0 <= data["arch_kendall_tau"] <= 1.0 and 0.0 <= data["arch_within_10pct"] <= 1.0
    else:
        assert data["arch"]["note"].startswith("skipped")
    assert data["command"].startswith("python") and data["machine"]["cores"] >= 1
    assert data["schedule"]["ranker"]["n_workloads"] == 2 and data["schedule"]["ranker"]["n_records"] >= 2 * TRIALS - 4
    assert "measured on this machine" in data["schedule"]["data"]
    assert data["benchmark"] == "cost_model_quality" and data["settings"]["trials"] == TRIALS
    table = out.with_suffix(".md").read_text().splitlines()
    assert table[0].startswith("| schedule level") and len(table) == 6
