"""benchmarks/accelerator_cosearch.py at smoke size on real ZigZag: the three modes run on the accelerator
target, every candidate is judged on its deployed EDP, the result has the issue's top-level keys, and a
rerun resumes every search and maps no layer again."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("zigzag")

pytestmark = pytest.mark.slow


def test_quick_run_writes_the_verdict_keys_and_a_rerun_maps_nothing(tmp_path, run_benchmark):
    work, out = tmp_path / "work", tmp_path / "out.json"
    argv = ["--quick", "--seeds", "1", "--trials", "2", "--work-dir", str(work), "--out", str(out), "--quiet"]
    run_benchmark("accelerator_cosearch", argv)
    result = json.loads(out.read_text())
    assert result["complete"] and set(result["modes"]) == {"baseline", "two-stage", "one-stage"}
    for key in ("hypervolume_ratio_two_stage_over_baseline", "hypervolume_ratio_one_stage_over_baseline",
                "mapping_speedup", "accuracy_floor", "spearman_vs_published_eyeriss"):
        assert key in result, key
    runs = result["runs"]
    assert set(runs) == {"baseline-seed0", "two-stage-seed0", "one-stage-seed0"}
    for key, rows in runs.items():
        assert len(rows) == 2, key
        for row in rows:
            costs = result["deployed"][row["arch_id"]]
            # the deployed EDP is the better mapping of the architecture, never above what the mode saw
            assert costs["deployed_edp"] == pytest.approx(min(costs["fixed_edp"], costs["searched_edp"]))
            if key.startswith("baseline"):
                assert row["edp"] == pytest.approx(costs["fixed_edp"], rel=1e-6)
            if key.startswith("two-stage"):
                assert row["edp"] == pytest.approx(costs["searched_edp"], rel=1e-6)
    speedup = result["mapping_speedup"]
    assert speedup["layers"] > 5 and speedup["edp_range"][0] <= speedup["edp_geomean"] <= speedup["edp_range"][1]
    for mode in result["modes"].values():
        assert mode["hypervolume_mean"] >= 0 and len(mode["picks"]) == 1

    cache = work / "accelerator-layers.jsonl"
    lines = len(cache.read_text().splitlines())
    run_benchmark("accelerator_cosearch", argv)
    assert len(cache.read_text().splitlines()) == lines   # every search replayed, every layer a cache hit
    assert json.loads(out.read_text())["runs"] == runs
