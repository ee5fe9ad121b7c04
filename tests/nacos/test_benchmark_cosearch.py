"""`benchmarks/cosearch_vs_baseline.py --quick` end to end: three real searches (baseline, two-stage,
one-stage; real export, TVM builds and measurements), the baseline's candidates re-measured with
tuned schedules, the JSON and the plot written, and a rerun resuming without new work."""

import json


def test_cosearch_vs_baseline_quick(tmp_path, run_benchmark):
    out = tmp_path / "cvb.json"
    argv = ["--quick", "--time-per-run", "5", "--remeasure", "1", "--work-dir", str(tmp_path / "work"),
            "--out", str(out), "--quiet"]
    run_benchmark("cosearch_vs_baseline", argv)
    data = json.loads(out.read_text())
    assert data["complete"] and data["machine"]["cores"] >= 1 and data["command"].startswith("python")
    summary = data["summary"]
    assert set(summary["aggregate"]) == {"baseline", "two-stage", "one-stage"}
    for key, run in summary["per_run"].items():
        assert run["candidates"] >= 1 and set(run["budgets"]) == {"1", "1.5"}, key
    # every baseline candidate re-measured has a tuned latency (or the reason it has none)
    (measured,) = data["tuned_remeasure"].values()
    assert len(measured) == 1
    for m in measured.values():
        assert (m["ok"] and m["tuned_ms"] > 0) or m["reason"]
    base = summary["per_run"]["baseline-seed0"]["budgets"]["1"]
    assert "overlooked" in base and "pick_tuned_ms" in base or base["pick"] is None
    assert (tmp_path / "cvb.png").stat().st_size > 0
    # the checked interface: mean hypervolume ratios over seeds at the top level, equal to the per-seed ratio
    for mode in ("two_stage", "one_stage"):
        ratio = data[f"hypervolume_ratio_{mode}_over_baseline"]
        per_seed = summary[f"hypervolume_ratio_{mode}_over_baseline_per_seed"]
        hv = {m: summary["per_run"][f"{m}-seed0"]["hypervolume_tuned"] for m in ("baseline", mode.replace("_", "-"))}
        if hv["baseline"] > 0:
            assert ratio == per_seed["0"] == hv[mode.replace("_", "-")] / hv["baseline"]
        else:
            assert ratio is None and per_seed == {}
    # the rerun finds each run's wall clock spent and every re-measurement done: same rows
    run_benchmark("cosearch_vs_baseline", argv)
    again = json.loads(out.read_text())
    assert again["tuned_remeasure"] == data["tuned_remeasure"]
    assert {k: v["candidates"] for k, v in again["summary"]["per_run"].items()} == \
        {k: v["candidates"] for k, v in summary["per_run"].items()}
