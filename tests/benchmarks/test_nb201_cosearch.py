"""benchmarks/nb201_cosearch.py and the record-set search space (`archspace.nb201.NB201Subspace`).

The comparison runs in seconds on any table of the record layout. Besides the committed record set (when
one exists), the tests use a stand-in built from the published NAS-Bench-201 table: 300 connected cells
whose four "ways" are four published devices relabelled (onnxruntime := gold_6226, untuned :=
raspi4, default := pixel3, tuned := silver_4114) and whose MACs column is the Eyeriss latency scaled:
real cells and real latencies, only the names are borrowed, so every invariant below is checked on data
whose orderings differ between the ways as real compiled records do.

The script runs as its users run it (`run_benchmark`, a process of its own); every figure is recomputed
here from the record set and what the JSON says each run queried (``queried_rows``), and those runs are
replayed with the library's NSGA-II on `NB201Subspace`."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from archspace.nb201 import (
    NB201Subspace,
    NB201Table,
    default_table_path,
    live_edges,
    load_records,
    record_columns,
    records_table_path,
)

STAND_IN = {"onnxruntime": "gold_6226", "tvm_untuned": "raspi4", "tvm_default": "pixel3", "tvm_tuned": "silver_4114"}


@pytest.fixture(scope="module")
def source():
    path = default_table_path()
    if not path.is_file():
        pytest.skip(f"NAS-Bench-201 table absent at {path} (see ../shared/DATA.md; set $NACOS_NB201_CSV)")
    return NB201Table(path)


@pytest.fixture(scope="module")
def stand_in(source, tmp_path_factory):
    rng = np.random.default_rng(0)
    pool = [i for i, a in enumerate(source.archs) if live_edges(a.ops)]
    rows = sorted(rng.choice(pool, size=300, replace=False).tolist())
    cols = record_columns(["cifar10_test_acc", "cifar100_test_acc", "imagenet16_120_test_acc"])
    path = tmp_path_factory.mktemp("records") / "nb201_records.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([c for c, _, _ in cols])
        for r in rows:
            lat = {way: float(source.latency_columns[d][r]) for way, d in STAND_IN.items()}
            w.writerow([int(source.benchmark_indices[r]), source.archs[r].to_string(),
                        *[source.accuracy_columns[d][r] for d in ("cifar10", "cifar100", "imagenet16_120")],
                        *lat.values(), min(lat["onnxruntime"], lat["tvm_tuned"]), *[0.0] * 4,
                        int(source.latency_columns["eyeriss"][r] * 1e6), 10, 10, 0])
    return path


def _signals(path):
    """Every way's latency column of the record set at `path`, and its MACs column as "macs"."""
    table = load_records(path)
    with open(path, newline="") as fh:
        macs = {r["arch"]: float(r["macs"]) for r in csv.DictReader(fh)}
    signal = {w: table.latency_columns[w] for w in table.devices}
    signal["macs"] = np.array([macs[a.to_string()] for a in table.archs])
    return table, signal


def _replay(archs, accuracy, signal, seed, queries, population):
    """The rows one NSGA-II run on (accuracy max, `signal` min) over the cells `archs` queries, in order."""
    from nacos.strategies import make_strategy

    strategy = make_strategy("nsga2", NB201Subspace(archs), seed,
                             objectives=[("accuracy", "max"), ("latency_ms", "min")], population=population)
    row = {a: i for i, a in enumerate(archs)}
    rows = []
    for _ in range(queries):
        arch = strategy.ask()
        i = row[arch]
        strategy.tell(arch, [float(accuracy[i]), float(signal[i])], True)
        rows.append(i)
    return rows


def test_comparison_on_stand_in(stand_in, tmp_path, run_benchmark):
    from nacos.results.pareto import hypervolume

    out = tmp_path / "nb201_cosearch.json"
    run_benchmark("nb201_cosearch", ["--quick", "--records", stand_in, "--out", out])
    res = json.loads(out.read_text())
    assert res["cells_measured"] == 300
    lo, hi = res["hypervolume_ratio_ci95"]
    assert lo <= res["hypervolume_ratio_two_stage_over_baseline"] <= hi
    assert set(res["baselines"]) == {"baseline_onnxruntime", "baseline_default_schedule", "baseline_macs"}
    assert set(res["modes"]) == {*res["baselines"], "two_stage"} == set(res["queried_rows"])

    table, signal = _signals(stand_in)
    accuracy, deployed = table.accuracy_columns["cifar10"], table.latency_columns["deployed"]
    settings = res["settings"]
    # the headline is the ratio of mean hypervolumes, recomputed here from the runs themselves: the rows
    # each run queried (the JSON's), which a replay of the same NSGA-II run queries too
    ref = (res["reference_point"]["accuracy"], res["reference_point"]["deployed_ms"])
    for mode in ("two_stage", "baseline_onnxruntime"):
        runs = res["queried_rows"][mode]
        assert len(runs) == settings["seeds"] == 3
        hvs = []
        for seed, rows in enumerate(runs):
            assert len(rows) == settings["queries"]
            assert len(set(rows)) == len(rows)  # no cell queried twice
            assert rows == _replay(table.archs, accuracy, signal[res["modes"][mode]], seed, settings["queries"],
                                   settings["population"])
            pts = np.stack([accuracy[rows], deployed[rows]], axis=1)
            hvs.append(hypervolume(pts, ("max", "min"), ref))
        assert res["hypervolume"][mode]["per_seed"] == pytest.approx(hvs)
    ratio = res["hypervolume"]["two_stage"]["mean"] / res["hypervolume"]["baseline_onnxruntime"]["mean"]
    assert res["hypervolume_ratio_two_stage_over_baseline"] == pytest.approx(ratio)
    # deployed latency is never above onnxruntime's or tuned TVM's: picks made on them never violate
    for mode in ("baseline_onnxruntime", "two_stage"):
        assert all(v["violations"] == 0 for v in res["best_accuracy_under_budgets"][mode].values())
    # overlooked, recounted from the columns
    ort, tuned = signal["onnxruntime"], signal["tvm_tuned"]
    total = 0
    for p in (25, 50, 75):
        b = float(np.percentile(deployed, p))
        best = accuracy[ort <= b].max()
        total += int(np.sum((tuned <= b) & (ort > b) & (accuracy > best)))
    assert res["overlooked"] == total
    from scipy import stats
    assert res["spearman_tuned_vs_ort"] == pytest.approx(stats.spearmanr(tuned, ort).statistic)
    assert (tmp_path / "nb201_cosearch.md").exists()


def test_missing_records_exit_2(tmp_path, run_benchmark):
    argv = ["--quick", "--records", tmp_path / "none.csv", "--out", tmp_path / "o.json"]
    proc = run_benchmark("nb201_cosearch", argv, expect=2)
    assert "no record set" in proc.stderr and not (tmp_path / "o.json").exists()


def test_committed_record_set_loads_and_searches(tmp_path, run_benchmark):
    path = records_table_path()
    if not path.is_file():
        pytest.skip(f"no committed record set at {path} yet")
    table = load_records()
    assert {"onnxruntime", "tvm_tuned", "deployed"} <= set(table.devices)
    if len(table) < 10:
        pytest.skip(f"the committed record set holds {len(table)} cells, too few to search")
    run_benchmark("nb201_cosearch", ["--quick", "--out", tmp_path / "o.json"])
    assert json.loads((tmp_path / "o.json").read_text())["cells_measured"] == len(table)
