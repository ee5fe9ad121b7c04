"""`benchmarks/latency_table.py --quick`: sampled architectures, their latency read off the committed
pretuned database and the same models compiled with it and measured; output in tmp_path. Checks the
rows, the summary's ranges and that a rerun resumes without new work; no timing thresholds."""

import json


def test_latency_table_quick_rows_summary_and_resume(tmp_path, run_benchmark):
    out = tmp_path / "latency_table.json"
    run_benchmark("latency_table", ["--quick", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["complete"] is True and data["settings"]["n_archs"] == 3 and data["machine"]["cores"] >= 1
    rows = data["rows"]
    assert len(rows) == 3 and len({r["id"] for r in rows}) == 3
    for r in rows:
        assert r["tasks"] > 0 and r["calls"] >= r["tasks"] and len(r["missing"]) <= r["tasks"]
        assert r["complete"] == (not r["missing"])
        assert r["measure_status"] == "ok" and r["measured_ms"] > 0
        # a table with every task tuned here has a kernel time; one with none has nothing to sum
        assert (r["kernel_ms"] > 0) == (len(r["missing"]) < r["tasks"])
        assert r["table_seconds"] > 0 and r["build_seconds"] > 0
    if data["n_complete"] >= 3:
        assert -1 <= data["spearman"] <= 1 and data["ratio_min"] <= data["ratio_median"] <= data["ratio_max"]
    else:
        assert data["spearman"] is None
    assert (tmp_path / "latency_table.md").is_file()
    again = run_benchmark("latency_table", ["--quick", "--out", str(out)])
    assert "[1/3]" not in again.stdout and json.loads(out.read_text())["rows"] == rows
