"""`benchmarks/inner_loop.py`: a --quick-sized run (real exports, tuning, TVM builds and measurements, output
in tmp_path) and the resume of rows written by an earlier version. Structure and exact row counts only;
no timing thresholds (shared machine)."""

import json
import math

LATENCIES = ("tvm_untuned_ms", "tvm_tuned_ms", "ort_ms", "torch_ms")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and x > 0 and math.isfinite(x)


def test_inner_loop_quick_sampled_then_networks_one_database(tmp_path, run_benchmark):
    out = tmp_path / "inner_loop.json"
    # one sampled architecture (MetaSchedule on its largest task), then ResNet-18 (explicit space, one config
    # per conv / dense task) and ResNet-34, which has ResNet-18's conv shapes: it finds them in the database
    argv = ["--quick", "--archs", "1", "--tune-top", "1", "--explicit-configs", "0",
            "--networks", "resnet18", "resnet34", "--network-tune-top", "0", "--network-explicit-configs", "1",
            "--warmup", "1", "--repeats", "2", "--work-dir", str(tmp_path / "work"), "--out", str(out)]
    run_benchmark("inner_loop", argv)
    data = json.loads(out.read_text())
    assert data["complete"] is True
    assert data["command"].startswith("python") and data["machine"]["cores"] >= 1
    assert _positive(data["peak_gflops"]) and _positive(data["bandwidth_gbs"])
    assert data["network_settings"]["networks"] == ["resnet18", "resnet34"]
    assert data["network_settings"]["resolution"] == 16
    rows = data["rows"]
    assert [r["name"] for r in rows] == ["arch0", "resnet18", "resnet34"]
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert [r["kind"] for r in rows] == ["sampled", "network", "network"]
    arch, r18, r34 = rows
    for r in rows:
        for key in LATENCIES:
            assert _positive(r[key]), (r["name"], key, r["errors"])
        for key in ("macs", "bytes", "flops", "intensity", "tuned_gflops", "ort_gflops", "fraction_of_peak",
                    "attainable_gflops", "tvm_over_ort", "tvm_over_torch"):
            assert _positive(r[key]), (r["name"], key)
        assert r["attainable_gflops"] <= data["peak_gflops"]
        assert 0 <= r["hit_rate"] <= 1 and 0 <= r["coverage_macs"] <= 1
    # the database fills: arch0 starts it, ResNet-34 reuses ResNet-18's conv records
    assert arch["hit_rate"] == 0.0 and arch["db_tuned_before"] == 0
    assert arch["ms_trials"] >= 15 and len(arch["ms_tuned_tasks"]) == 1
    assert r18["resolution"] == 16 and r18["in_channels"] == 3 and r18["label"] == "ResNet-18"
    assert r18["ms_trials"] == 0 and r18["explicit_configs_tried"] >= 1 and r18["explicit_tuned_tasks"] >= 1
    assert r18["db_tuned_before"] >= 1
    assert r34["db_tuned_before"] > r18["db_tuned_before"]
    assert r34["new_tasks"] < r34["tasks"] and r34["hit_rate"] > r18["hit_rate"]
    assert arch["tasks_in_earlier_rows"] == 0 and r34["tasks_in_earlier_rows"] >= 1
    for r in rows:  # the database started empty: every hit is a task of an earlier row
        assert r["tasks"] - r["new_tasks"] <= r["tasks_in_earlier_rows"]
    s = data["summary"]
    assert s["sampled"]["rows"] == 1 and s["networks"]["rows"] == 2 and s["all"]["rows"] == 3
    for part in ("sampled", "networks"):
        for key in ("geomean_tuned_tvm_over_ort", "geomean_tuned_tvm_over_torch", "geomean_untuned_tvm_over_ort"):
            assert _positive(s[part][key]), (part, key)
        assert len(s[part]["fraction_of_peak"]) == 2
    assert [d["name"] for d in s["database_filling"]] == ["arch0", "resnet18", "resnet34"]
    assert s["database_continuity"] == "ok" and s["rows_with_hits_from_outside"] == []
    assert len(s["roofline"]["rows"]) == 3 and _positive(s["roofline"]["ridge_intensity"])
    assert math.isclose(data["geomean_tvm_over_ort"], arch["tvm_over_ort"]) and data["hit_rate_last"] == 0.0
    assert _positive(data["seconds_per_trial"])
    png = out.with_suffix(".png")
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    # a rerun of the same command finds every row done: nothing tuned or measured again
    run_benchmark("inner_loop", argv)
    again = json.loads(out.read_text())
    keep = LATENCIES + ("tune_seconds", "ms_trials", "explicit_configs_tried", "hit_rate", "db_tuned_before")
    assert [[r[k] for k in keep] for r in again["rows"]] == [[r[k] for k in keep] for r in rows]
    assert len(again["peak_gflops_measurements"]) == 2
    assert "pretune" not in data and data["pretune_seconds"] is None
    assert data["amortized_tuning_seconds_per_arch"] is None

    # --pretuned: a fresh work dir starts from a copy of that database (here the first run's, which is not a
    # pretuned one for the space: the status says so), so arch0 finds what the first run tuned for it
    out2, work2 = tmp_path / "pretuned.json", tmp_path / "work2"
    run_benchmark("inner_loop", ["--quick", "--archs", "1", "--tune-top", "0", "--explicit-configs", "0", "--networks",
                                 "--warmup", "1", "--repeats", "2", "--pretuned", tmp_path / "work" / "db",
                                 "--work-dir", work2, "--out", out2])
    third = json.loads(out2.read_text())
    assert third["settings"]["pretuned"] == str(tmp_path / "work" / "db")
    assert third["pretune"]["pretuned"] is False and "no pretuned database" in third["pretune"]["note"]
    assert third["pretune_seconds"] is None and third["space_mac_coverage"] is None
    (row,) = third["rows"]
    from schedules.database import TuningDatabase

    assert row["name"] == "arch0" and row["db_tuned_before"] == len(TuningDatabase(tmp_path / "work" / "db").covered())
    assert row["new_tasks"] < arch["new_tasks"]      # its MetaSchedule-tuned task came with the copy
    assert third["amortized_tuning_seconds_per_arch"] == row["tune_seconds"]
    assert not (work2 / "db" / "ms_logs").exists()   # the copy leaves the tuning logs behind


def test_inner_loop_keeps_rows_of_an_earlier_version_and_drops_stale_network_rows(tmp_path, run_benchmark):
    """Rows written before the network part (no name, kind or bytes) are kept when the sampled settings
    match; network rows measured under other network settings are dropped. Nothing is tuned here."""
    out, work = tmp_path / "inner_loop.json", tmp_path / "work"
    settings = {"archs": 1, "trials_per_task": 16, "tune_top": 4, "explicit_configs": 4, "warmup": 5, "repeats": 30,
                "seed": 0}
    old_row = {"index": 0, "arch": {}, "resolution": 28, "tasks": 28, "new_tasks": 28, "hit_rate": 0.0,
               "macs": 2764216, "ms_tuned_tasks": ["t"], "ms_trials": 64, "ms_seconds": 235.0,
               "explicit_tuned_tasks": 22, "explicit_configs_tried": 88, "faults": 0, "tune_seconds": 355.8,
               "coverage_tasks": 0.93, "coverage_macs": 1.0, "tvm_untuned_ms": 1.13, "tvm_tuned_ms": 0.83,
               "ort_ms": 0.29, "torch_ms": 4.3, "tvm_tuned": {}, "errors": {}, "tvm_over_ort": 0.83 / 0.29,
               "tuned_gflops": 6.6, "fraction_of_peak": 0.25}
    stale = {**old_row, "index": 1, "name": "resnet18", "kind": "network"}
    old = {"benchmark": "inner_loop", "command": "python -m benchmarks.inner_loop", "settings": settings,
           "network_settings": {"networks": ["resnet18"]}, "work_dir": str(work), "target": "llvm", "threads": 2,
           "machine": {"cores": 2}, "peak_gflops": 1.0, "rows": [old_row, stale]}
    out.write_text(json.dumps(old))
    run_benchmark("inner_loop", ["--archs", "1", "--networks", "--work-dir", work, "--out", out])
    data = json.loads(out.read_text())
    assert len(data["rows"]) == 1 and data["complete"] is True
    row = data["rows"][0]
    assert row["name"] == "arch0" and row["kind"] == "sampled"
    for key in ("tvm_untuned_ms", "tvm_tuned_ms", "ort_ms", "torch_ms", "tune_seconds", "ms_trials", "macs"):
        assert row[key] == old_row[key]
    assert _positive(row["bytes"]) and _positive(row["intensity"])  # filled in from the re-extracted workloads
    assert row["tasks_in_earlier_rows"] == 0
    assert data["network_settings"]["networks"] == []
    assert data["peak_gflops_measurements"][0] == 1.0 and len(data["peak_gflops_measurements"]) == 2
    assert data["peak_gflops"] == max(data["peak_gflops_measurements"])
    assert data["summary"]["networks"]["rows"] == 0 and data["summary"]["sampled"]["rows"] == 1
    assert not (work / "db" / "ms_logs").exists()  # nothing was tuned
