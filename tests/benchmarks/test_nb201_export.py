"""`benchmarks/nb201_export.py --quick`: real NAS-Bench-201 networks exported, compiled with TVM, tuned and
measured, output in tmp_path.

Checks the JSON's structure, the row counts, that correlations lie in [-1, 1] and that a rerun resumes
without new work; no timing thresholds (shared machine)."""

import json

import pytest

from archspace.nb201 import default_table_path

#: the --quick size, as the script's help states it
QUICK = {"strata": 4, "per_stratum": 1, "reference_device": "gold_6226", "configs_per_task": 1, "warmup": 1,
         "repeats": 3, "build_check_cells": 10, "seed": 0}

pytestmark = pytest.mark.skipif(not default_table_path().is_file(),
                                reason="NAS-Bench-201 table absent (../shared/data/nasbench201/)")


def test_nb201_export_quick_writes_rows_correlations_and_resumes(tmp_path, run_benchmark):
    out = tmp_path / "nb201_export.json"
    argv = ["--quick", "--out", str(out), "--work-dir", str(tmp_path / "work")]
    run_benchmark("nb201_export", argv)
    data = json.loads(out.read_text())
    assert data["complete"] is True and data["settings"] == QUICK
    # the runtimes each cell is timed with (the script's BACKENDS), each correlated with every published device
    backends = data["backends"]
    assert backends == ["tvm_untuned", "tvm_tuned", "onnxruntime"]
    assert data["command"].startswith("python") and data["machine"]["cores"] >= 1 and data["started"]
    # the sample: one cell per stratum, no degenerate cell, distinct cells
    cells = data["sample"]["cells"]
    assert len(cells) == QUICK["strata"] * QUICK["per_stratum"] == 4
    assert sorted(c["stratum"] for c in cells) == [0, 1, 2, 3]
    assert len({c["arch"] for c in cells}) == 4 and data["sample"]["degenerate_cells_in_table"] > 0
    rows = data["rows"]
    assert len(rows) == 4 and [r["arch"] for r in rows] == [c["arch"] for c in cells]
    devices = [d for d in data["correlations"] if not d.startswith("_")]
    assert len(devices) == 10 and "gold_6226" in devices
    for r in rows:
        assert r["ok"], r
        assert r["macs"] > 0 and set(r["published_ms"]) == set(devices)
        for b in backends:
            assert r[b]["ok"] and r[b]["median_ms"] > 0 and r[b]["runs"] == QUICK["repeats"]
        t = r["tuning"]
        assert t["conv_tasks"] > 0 and t["reused"] + t["tuned"] <= t["conv_tasks"] and 0 <= t["hit_rate"] <= 1
    # one shared database: a later cell reuses workloads an earlier one tuned
    assert rows[0]["tuning"]["hit_rate"] == 0 and rows[-1]["tuning"]["hit_rate"] > 0
    for d in devices:
        for b in (*backends, "macs"):
            c = data["correlations"][d][b]
            assert c["n"] == 4
            for k in ("spearman", "kendall"):
                assert c[k] is None or -1.0 <= c[k] <= 1.0, (d, b, c)
    assert all(data["correlations"]["gold_6226"][b]["spearman"] is not None for b in backends)
    bc = data["build_check"]
    assert bc["sampled_cells"] == QUICK["build_check_cells"] and bc["built_and_forward_ok"] == bc["sampled_cells"]
    assert bc["failures"] == [] and data["failed_cells"] == []
    assert data["cells_measured_this_run"] == 4
    png = out.with_suffix(".png")
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    # the markdown table beside it: Spearman / Kendall of each backend and of MACs, one row per device
    table = out.with_suffix(".md").read_text().splitlines()
    assert table[0] == "| device | TVM untuned ρ / τ | TVM tuned ρ / τ | onnxruntime ρ / τ | MACs ρ / τ |"
    assert len(table) == 2 + len(devices) and any(line.startswith("| gold_6226 | ") for line in table)
    # a rerun of the same command finds every cell done and measures nothing new
    run_benchmark("nb201_export", argv)
    again = json.loads(out.read_text())
    assert again["rows"] == rows and again["cells_measured_this_run"] == 0
    assert again["build_check"] == bc and again["correlations"] == data["correlations"]
