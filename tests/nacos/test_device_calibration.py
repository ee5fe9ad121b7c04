"""`nacos calibrate --nb201-shots K`: K NAS-Bench-201 cells really built, exported and timed on this machine
(onnxruntime in a process of its own), the few-shot transfer model predicting the rest from the table's
other devices, and the result a table any strategy searches on. On a 400-row slice of the shared table
(any table of the NAS-Bench-201 layout works) to stay quick."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from archspace.nb201 import NB201Subspace, NB201Table, default_table_path

ROWS = 400


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    full = default_table_path()
    if not full.is_file():
        pytest.skip(f"no NAS-Bench-201 table at {full} (../shared/data)")
    path = tmp_path_factory.mktemp("nb201") / "slice.csv"
    with open(full, newline="") as src, open(path, "w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        for i, row in enumerate(reader):
            if i > ROWS:
                break
            writer.writerow(row)
    return path


def _calibrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nacos", "calibrate", *args], capture_output=True, text=True,
                          timeout=900)


def test_a_few_cells_timed_here_give_a_table_a_strategy_searches(table, tmp_path):
    out = tmp_path / "cal" / "nb201_here.csv"
    proc = _calibrate("--nb201-shots", "4", "--table", str(table), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result == json.loads(out.with_suffix(".json").read_text())
    assert result["format"] == "nacos-device-calibration/1" and result["runtime"] == "onnxruntime"
    assert result["measured_now"] == 4 and len(result["shots"]) == 4
    assert result["machine"].startswith("llvm/") and result["method"] == "ridge_select"
    assert -1.0 <= result["leave_one_out_spearman"] <= 1.0
    cal = NB201Table(out)
    assert len(cal) == ROWS and "here" in cal.devices
    here = cal.latency_columns["here"]
    assert all(math.isfinite(v) and v > 0 for v in here)
    for shot in result["shots"]:                   # the measured cells stand as measured
        assert here[shot["row"]] == pytest.approx(shot["ms"], rel=1e-5)
        assert cal.archs[shot["row"]].to_string() == shot["arch"] and shot["ms"] > 0
    # the other devices are the table's own, untouched
    src = NB201Table(table)
    for d in src.devices:
        assert list(cal.latency_columns[d]) == list(src.latency_columns[d])

    # a larger K measures only what is missing (the shots log survives between runs)
    more = _calibrate("--nb201-shots", "5", "--table", str(table), "--out", str(out), "--json")
    assert more.returncode == 0, more.stderr[-3000:]
    again = json.loads(more.stdout)
    assert again["measured_now"] == 1 and len(again["shots"]) == 5
    assert {s["arch"] for s in result["shots"]} <= {s["arch"] for s in again["shots"]}

    # what the table is for: a search on this machine's latency, in seconds
    from nacos.strategies import make_strategy

    cal = NB201Table(out)
    objective = cal.objective(device="here")
    strategy = make_strategy("nsga2", NB201Subspace(cal.archs), seed=0,
                             objectives=["accuracy:max", "latency_ms:min"], population=8)
    for _ in range(24):
        arch = strategy.ask()
        ev = objective(arch)
        strategy.tell(arch, [ev.metrics["accuracy"], ev.metrics["latency_ms"]], True)
    assert len(strategy.history) == 24 and all(t.objectives is not None for t in strategy.history)


@pytest.mark.parametrize("args, says", [
    (["--nb201-shots", "1"], "needs >= 2 measured cells"),
    (["--nb201-shots", "3", "--device", "My Box"], "lower-case letters, digits and _"),
    (["--nb201-shots", "3", "--device", "gold_6226"], "has a column lat_ms_gold_6226 already"),
    (["--nb201-shots", "3", "--runtime", "onnxruntime", "--database", "/nonexistent"], "only with --runtime tvm"),
])
def test_bad_requests_exit_2_before_anything_is_measured(table, tmp_path, args, says):
    out = tmp_path / "o.csv"
    proc = _calibrate(*args, "--table", str(table), "--out", str(out))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert says in proc.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_missing_table_exits_2(tmp_path):
    proc = _calibrate("--nb201-shots", "3", "--table", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o.csv"))
    assert proc.returncode == 2 and "not found" in proc.stderr
