"""`benchmarks/schedule_transfer.py --quick`: real exports, TVM builds and measurements, output in tmp_path.

Checks the JSON's structure and that every figure is positive; no timing thresholds (shared machine)."""

import json
import math


def test_schedule_transfer_quick_writes_matrix_heat_map_and_resumes(tmp_path, run_benchmark):
    out = tmp_path / "schedule_transfer.json"
    # ResNet-18 and -34 build fastest of the five (19 TVM functions each); 1 policy per network
    argv = ["--quick", "--networks", "resnet18", "resnet34", "--policies", "1", "--warmup", "1", "--repeats", "2",
            "--work-dir", str(tmp_path / "work"), "--out", str(out)]
    run_benchmark("schedule_transfer", argv)
    data = json.loads(out.read_text())
    names = data["settings"]["networks"]
    assert names == ["resnet18", "resnet34"] and data["complete"] is True
    assert data["command"].startswith("python") and data["machine"]["cores"] >= 1
    assert "apache-tvm" in data["versions"] and data["untuned_means"]
    tuned_compile = data["tuned_compile"]  # how the script compiles a ceiling (its TUNED_COMPILE)
    assert "MetaScheduleApplyDatabase" in tuned_compile
    for name in names:
        net = data["networks"][name]
        assert net["untuned"]["ok"] and net["untuned"]["median_ms"] > 0, net["untuned"]
        assert len(net["policies"]) == 1 and net["best"] is not None
        assert net["best"]["measurement"]["median_ms"] > 0 and net["best"]["speedup"] > 0
        assert net["best"]["measurement"]["unscheduled_layers"] == []  # the policy reached every conv / dense layer
        ceiling = net["ceiling"]
        assert ceiling["ok"] and ceiling["median_ms"] > 0, ceiling
        assert ceiling["compiled_by"] == tuned_compile and ceiling["coverage_macs"] > 0
        assert ceiling["layers"] and all(layer["tuned_ms"] is None or layer["tuned_ms"] > 0
                                         for layer in ceiling["layers"])
    # ResNet-18 is tuned first (its largest conv task, 16 trials); ResNet-34 has the same conv shapes,
    # so its ceiling reuses that record and MetaSchedule tunes its next largest unseen task
    r18, r34 = data["networks"]["resnet18"]["ceiling"], data["networks"]["resnet34"]["ceiling"]
    assert r18["metaschedule_trials"] >= 15 and r34["metaschedule_trials"] >= 15
    assert r34["unseen_conv_tasks"] == r34["conv_tasks"] - 1
    assert any(layer["by"] == "reused" for layer in r34["layers"])
    m = data["matrix"]
    assert m["networks"] == names and len(m["speedup"]) == 2 and all(len(r) == 2 for r in m["speedup"])
    for row_s, row_l in zip(m["speedup"], m["latency_ms"]):
        assert all(x is not None and x > 0 and math.isfinite(x) for x in row_s + row_l)
    for i, a in enumerate(names):   # the diagonal is the search's best, speed-up = untuned / best
        net = data["networks"][a]
        assert math.isclose(m["speedup"][i][i], net["untuned"]["median_ms"] / net["best"]["measurement"]["median_ms"])
    assert set(data["matrix_cells"]) == {"resnet18->resnet34", "resnet34->resnet18"}
    s = data["summary"]
    assert s["columns_complete"] == 2 and s["off_diagonal_cells"] == 2 and 0 <= s["off_diagonal_slowdowns"] <= 2
    assert set(s["per_network"]) == set(names)
    # the summary and the claim's verdict follow the stated rule from the matrix itself: a column's best
    # policy is the row with the largest speed-up (the first on a tie); a slow-down is a speed-up < 1
    spd = m["speedup"]
    best_on = [max(range(len(names)), key=lambda i: spd[i][j]) for j in range(len(names))]
    own_best = sum(best_on[j] == j for j in range(len(names)))
    off_slow = sum(spd[i][j] < 1.0 for i in range(len(names)) for j in range(len(names)) if i != j)
    assert s["networks_whose_own_policy_is_best"] == own_best and s["off_diagonal_slowdowns"] == off_slow
    for j, b in enumerate(names):
        assert s["per_network"][b]["own_policy_best_of_all_applied"] is (best_on[j] == j)
        assert s["per_network"][b]["best_policy_on_it"] == names[best_on[j]]
    assert data["claim"]["holds"] is (own_best > len(names) / 2 and off_slow > 0)
    assert data["claim_holds"] is data["claim"]["holds"]
    assert all(data["ceiling"][n]["speedup"] > 0 for n in names)
    png = out.with_suffix(".png")
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    # the markdown table beside it: one row per policy, then the ceiling and three rows of latencies
    table = out.with_suffix(".md").read_text().splitlines()
    assert table[0] == "| best policy of \\ applied to | ResNet-18 | ResNet-34 |" and len(table) == 2 + 2 + 4
    assert table[2].startswith("| ResNet-18 | ") and table[4].startswith("| MetaSchedule (ceiling) | ")
    # a rerun of the same command finds everything done and measures nothing new
    run_benchmark("schedule_transfer", argv)
    again = json.loads(out.read_text())
    assert again["networks"] == data["networks"] and again["matrix_cells"] == data["matrix_cells"]
