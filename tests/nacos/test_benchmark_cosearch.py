"""`benchmarks/cosearch_vs_baseline.py --quick` end to end: three real searches (baseline on onnxruntime,
two-stage, one-stage; real export, TVM builds and measurements), each run's presented candidates judged on
their deployed latency (the better of onnxruntime and the tuned database), the JSON and the plot written,
and a rerun resuming without new work."""

import json


def test_cosearch_vs_baseline_quick(tmp_path, run_benchmark):
    out = tmp_path / "cvb.json"
    argv = ["--quick", "--time-per-run", "5", "--judge", "1", "--work-dir", str(tmp_path / "work"),
            "--out", str(out), "--quiet"]
    run_benchmark("cosearch_vs_baseline", argv)
    data = json.loads(out.read_text())
    assert data["complete"] and data["machine"]["cores"] >= 1 and data["command"].startswith("python")
    assert data["baseline_latency"] == "onnxruntime" and data["seeds"] == 1
    summary = data["summary"]
    assert set(summary["aggregate"]) == {"baseline", "two-stage", "one-stage"}
    for key, run in summary["per_run"].items():
        assert run["candidates"] >= 1 and run["judged"] <= 1, key
        assert set(run["budgets"]) == {"25", "50", "75"}
        for p in run["points"]:   # judged on deployed latency: the better of the two runtimes
            assert p["deployed_ms"] == min(p["tuned_ms"], p["onnxruntime_ms"]) > 0
    # the baseline searched with onnxruntime's latency: its own latency is what onnxruntime measured then
    base = summary["per_run"]["baseline-seed0"]
    assert all(p["source"] == "remeasured" for p in base["points"])
    for entry in data["judged"].values():
        assert (entry["ok"] and entry["deployed_ms"] > 0) or entry["reason"]
    assert isinstance(data["overlooked"], int) and data["overlooked"] == sum(
        len(b["overlooked"]) for b in base["budgets"].values())
    assert (tmp_path / "cvb.png").stat().st_size > 0 and (tmp_path / "cvb.md").read_text().startswith("| mode")
    # the checked interface: the hypervolume ratios at the top level, equal to the one seed's ratio
    for mode in ("two_stage", "one_stage"):
        ratio = data[f"hypervolume_ratio_{mode}_over_baseline"]
        hv = {m: summary["per_run"][f"{m}-seed0"]["hypervolume_deployed"] for m in ("baseline", mode.replace("_", "-"))}
        if hv["baseline"] > 0:
            assert abs(ratio - hv[mode.replace("_", "-")] / hv["baseline"]) < 1e-12
            assert summary[f"hypervolume_ratio_{mode}_over_baseline_ci95"][0] <= ratio + 1e-12
        else:
            assert ratio is None
    assert data["hypervolume_ratio_ci95"] == summary["hypervolume_ratio_two_stage_over_baseline_ci95"]
    assert "hypervolume" in data["verdict"] or "no seed" in data["verdict"]
    # the rerun finds each run's wall clock spent and every judgement made: same rows, same figures
    run_benchmark("cosearch_vs_baseline", argv)
    again = json.loads(out.read_text())
    assert again["judged"] == data["judged"]
    assert {k: v["candidates"] for k, v in again["summary"]["per_run"].items()} == \
        {k: v["candidates"] for k, v in summary["per_run"].items()}


def test_cosearch_vs_baseline_refuses_a_pretuned_folder_that_is_no_database(tmp_path, run_benchmark):
    done = run_benchmark("cosearch_vs_baseline", ["--pretuned", str(tmp_path), "--out", str(tmp_path / "x.json")],
                         expect=2)
    assert "not a tuning database" in done.stderr and not (tmp_path / "x.json").exists()
