"""`benchmarks/accelerator_eyeriss.py` on 4 real NAS-Bench-201 networks, ZigZag for real (LOMA kept small),
output in tmp_path: the JSON's fields, the Spearman recomputed from the rows, and a rerun that maps no
layer again (the shared layer cache). No threshold on the correlation itself (4 cells). The script runs as
its users run it (`run_benchmark`, a process of its own); the sample it must draw is the library's
(`archspace.nb201.sample_cells`)."""

import json

import pytest

from archspace.nb201 import NB201Table, default_table_path, sample_cells

pytest.importorskip("zigzag", reason="ZigZag (zigzag-dse) is not installed: pip install nacos[accel]")
pytestmark = [pytest.mark.slow,  # about 40 s here: the first cells' layers are mapped cold
              pytest.mark.skipif(not default_table_path().is_file(),
                                 reason="NAS-Bench-201 table absent (../shared/data/nasbench201/)")]


def test_spearman_against_the_published_eyeriss_column_and_a_rerun_from_the_cache(tmp_path, run_benchmark):
    from scipy import stats

    out = tmp_path / "accel.json"
    argv = ["--cells", "4", "--lpf-limit", "3", "--out", str(out), "--work-dir", str(tmp_path / "work")]
    run_benchmark("accelerator_eyeriss", argv)
    data = json.loads(out.read_text())
    assert data["complete"] is True and data["settings"]["hardware"] == "eyeriss-like"
    rows = data["rows"]
    assert len(rows) == 4 and len({r["arch"] for r in rows}) == 4
    for r in rows:
        assert r["latency_cycles"] > 0 and r["energy_pj"] > 0 and r["published_eyeriss_ms"] > 0
        assert r["layers_costed"] > 0 and r["macs"] > 0
    rho = stats.spearmanr([r["latency_cycles"] for r in rows], [r["published_eyeriss_ms"] for r in rows]).statistic
    assert data["spearman_vs_published_eyeriss"] == pytest.approx(rho)
    assert data["summary"]["spearman_vs_published_eyeriss"] == pytest.approx(rho)
    assert data["summary"]["zigzag_calls"] == sum(r["zigzag_calls"] for r in rows) > 0
    # NAS-Bench-201 has few layer shapes: the later cells hit the first ones' records
    assert data["summary"]["cache_hits"] > 0 and data["cache_records_at_start"] == 0
    for key in ("macs_vs_published_eyeriss", "without_pools_vs_published_eyeriss", "energy_vs_published_eyeriss"):
        assert data["summary"][key]["n"] == 4
    # the same sample rows as the sampler says, and a rerun maps nothing anew
    assert [r["row"] for r in rows] == sample_cells(NB201Table(default_table_path()), 4, 0)
    table = out.with_suffix(".md").read_text()
    assert table.startswith("| against the published Eyeriss latency") and "| MACs" in table
    # a rerun into a fresh file maps nothing anew (the layer cache of --work-dir)
    other = tmp_path / "again.json"
    run_benchmark("accelerator_eyeriss", argv[:4] + ["--out", str(other)] + argv[6:])
    again = json.loads(other.read_text())
    assert again["summary"]["zigzag_calls"] == 0 and again["cache_records_at_start"] > 0
    assert [r["latency_cycles"] for r in again["rows"]] == [r["latency_cycles"] for r in rows]
    # a rerun of the same file resumes: it keeps the cells it holds and costs none again
    run_benchmark("accelerator_eyeriss", argv)
    resumed = json.loads(out.read_text())
    assert resumed["rows_at_start"] == 4 and resumed["rows"] == rows and resumed["complete"] is True
