"""The NAS-Bench-201 tabular benchmark (benchmarks/tabular_benchmark.py), run as its users run it
(`run_benchmark`, a process of its own): its --quick size end to end, with the figure and the markdown
tables beside the JSON, and the clean exit without the table. The MACs formula it ranks with,
`archspace.nb201_macs.MacsModel`, is checked against exported networks in tests/archspace/test_nb201_macs.py."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.nacos.nb201_objectives import TABLE_MISSING, table

needs_table = pytest.mark.skipif(bool(TABLE_MISSING), reason=TABLE_MISSING or "table present")


def _run(run_benchmark: Callable[..., subprocess.CompletedProcess], out: Path, *, expect: int = 0,
         env_extra: dict | None = None) -> subprocess.CompletedProcess:
    return run_benchmark("tabular_benchmark", ["--quick", "--out", out], expect=expect, timeout=1200,
                         env={**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})})


def test_without_the_table_it_says_so_and_writes_nothing(tmp_path, run_benchmark):
    out = tmp_path / "tb.json"
    res = _run(run_benchmark, out, expect=2, env_extra={"NACOS_NB201_CSV": str(tmp_path / "absent.csv")})
    assert "absent.csv" in res.stderr and "skipped" in res.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@needs_table
def test_quick_run_writes_figures_in_range_and_resumes(tmp_path, run_benchmark):
    out = tmp_path / "tb.json"
    res = _run(run_benchmark, out)
    r = json.loads(out.read_text())
    s = r["settings"]
    assert r["complete"] and r["dataset"] == "cifar10" and r["source"]["rows"] == 15625
    assert r["command"].startswith("python -m benchmarks.tabular_benchmark") and "--quick" in r["command"]
    assert r["machine"]["cores"] >= 1
    assert out.with_suffix(".png").stat().st_size > 10_000
    # the markdown tables, beside the JSON and printed after their captions
    for suffix, head in ((".md", "| device | HV ratio NSGA-II | HV ratio random |"),
                         (".prediction.md", "| device | MACs |"),
                         (".transfer.md", "| trained on \\ scored on |")):
        text = out.with_suffix(suffix).read_text()
        assert text.startswith(head) and text in res.stdout, suffix
    md = out.with_suffix(".md").read_text().splitlines()
    assert len(md) == 2 + len(s["devices"]) and all(line.split(" | ")[0].lstrip("| ") in s["devices"]
                                                    for line in md[2:])
    assert "Published (HELP, gold_6226)" in res.stdout
    assert r["export"]["status"] == "see nb201_export.json" and "nb201_export" in r["export"]["where"]
    t = table()
    # Search: every device, strategy and query budget; ratios in (0, 1]; nothing beats the truth.
    assert set(r["search"]) == set(s["devices"])
    for device, sec in r["search"].items():
        budgets = sec["latency_budgets_ms"]
        assert list(budgets) == [f"p{p:g}" for p in s["budget_percentiles"]]
        for k, b in budgets.items():
            assert sec["true_best_under_budget"][k] == t.best_under_budget(b, "cifar10", device)[1]
        assert sec["reference_point"]["latency_ms"] > t.latency_columns[device].max()
        for name in s["strategies"]:
            for q in s["query_budgets"]:
                entry = sec["strategies"][name][str(q)]
                if name != "aging":
                    hv = entry["hypervolume_ratio"]
                    assert hv["n"] == s["seeds"] and 0.0 < hv["mean"] <= 1.0 + 1e-12
                for k in budgets:
                    best = entry[f"best_under_{k}"]
                    if best["accuracy"]["mean"] is not None:
                        assert best["accuracy"]["mean"] <= sec["true_best_under_budget"][k] + 1e-9
                        assert best["regret"]["mean"] >= -1e-9
                    assert 0.0 <= best["found_true_best"] <= 1.0
        # more queries never lose: the 60-query run extends the 30-query run of the same seed
        for name in ("nsga2", "random"):
            q0, q1 = (str(q) for q in s["query_budgets"])
            assert sec["strategies"][name][q1]["hypervolume_ratio"]["mean"] >= \
                sec["strategies"][name][q0]["hypervolume_ratio"]["mean"] - 1e-12
    # Prediction: rank correlations are correlations; the model was scored on every device.
    pred = r["prediction"]
    for kind in ("live", "all_edges"):
        assert set(pred["macs_ranking"][kind]) == set(t.devices)
        for v in pred["macs_ranking"][kind].values():
            assert -1.0 <= v["spearman"] <= 1.0 and -1.0 <= v["kendall"] <= 1.0
    assert all(c["formula"] == c["exported"] for c in pred["macs"]["checked_against_export"])
    for d in s["train_devices"]:
        for n, reps in zip(s["train_sizes"], s["reps"]):
            cell = pred["latency_model"][f"{d}/{n}"]
            assert set(cell["scored_on"]) == set(t.devices)
            for sc in cell["scored_on"].values():
                assert sc["spearman"]["n"] == reps and -1.0 <= sc["spearman"]["mean"] <= 1.0
                assert -1.0 <= sc["kendall"]["mean"] <= 1.0
    # the model learns something real about its own device: 100 cells rank far better than chance
    assert pred["latency_model"]["gold_6226/100"]["scored_on"]["gold_6226"]["spearman"]["mean"] > 0.5
    claims = r["claims"]
    assert claims and all("claim" in c and "ours" in c for c in claims)
    for c in claims:
        if "published" in c:
            assert c["holds"] == (c["ours"] >= c["published"])
    # A rerun with the same settings resumes: nothing is recomputed, the figures are unchanged.
    res2 = _run(run_benchmark, out)
    assert "resuming" in res2.stderr, res2.stderr[-2000:]
    r2 = json.loads(out.read_text())
    assert r2["search"] == r["search"] and r2["prediction"] == r["prediction"]

