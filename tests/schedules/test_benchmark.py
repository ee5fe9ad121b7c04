import json

import pytest

from benchmarks.inner_loop import main


def test_inner_loop_benchmark_writes_its_figures_and_resumes(tmp_path, capsys):
    out = tmp_path / "inner_loop.json"
    argv = ["--quick", "--archs", "1", "--tune-top", "1", "--explicit-configs", "0", "--repeats", "3",
            "--warmup", "1", "--work-dir", str(tmp_path / "work"), "--out", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["complete"] and len(data["rows"]) == 1
    row = data["rows"][0]
    assert row["ms_trials"] >= 15 and len(row["ms_tuned_tasks"]) == 1 and row["hit_rate"] == 0.0
    assert 0 < row["coverage_macs"] <= 1 and row["tasks"] >= 5
    for key in ("tvm_untuned_ms", "tvm_tuned_ms", "ort_ms", "torch_ms"):
        assert row[key] is not None and row[key] > 0, (key, row["errors"])
    assert data["geomean_tvm_over_ort"] == pytest.approx(row["tvm_over_ort"]) and row["tvm_over_ort"] > 0
    assert data["hit_rate_last"] == 0.0 and data["seconds_per_trial"] > 0
    assert data["command"].startswith("python") and data["machine"]["cores"] >= 1 and data["peak_gflops"] > 0
    # a rerun of the same command finds the row done and measures nothing new
    assert main(argv) == 0
    again = json.loads(out.read_text())
    assert again["rows"] == data["rows"]
