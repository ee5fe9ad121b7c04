"""`benchmarks/inner_loop_reuse.py --quick` end to end into a temporary directory, then a resumed rerun."""

from __future__ import annotations

import pytest

from benchmarks import inner_loop_reuse as inner_loop
from benchmarks.common import read_json


@pytest.mark.benchmark
def test_quick_inner_loop_writes_rows_and_resumes(tmp_path):
    out = tmp_path / "inner_loop.json"
    payload = inner_loop.main(["--quick", "--out", str(out)])
    data = read_json(out)
    assert data == payload and len(data["rows"]) == 2
    for key in ("geomean_tvm_over_ort", "hit_rate_last", "seconds_per_trial", "command", "machine", "peak_gflops"):
        assert key in data
    assert 0.0 <= data["hit_rate_last"] <= 1.0 and data["seconds_per_trial"] > 0
    for row in data["rows"]:
        assert row["tvm_untuned_ms"] > 0 and row["onnxruntime_ms"] > 0 and row["torch_ms"] > 0
        assert row["tuned_tasks"] + row["reused_tasks"] >= 1
    mtime = out.stat().st_mtime_ns
    again = inner_loop.main(["--quick", "--out", str(out)])   # resumes: nothing left to do
    assert again["rows"] == data["rows"] and out.stat().st_mtime_ns >= mtime
