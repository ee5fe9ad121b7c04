import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_supernet_benchmark_quick_writes_its_result(tmp_path):
    out = tmp_path / "supernet.json"
    res = subprocess.run([sys.executable, "-m", "benchmarks.supernet", "--quick", "--quiet", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["complete"] and result["n_subnets"] == 5
    assert -1.0 <= result["kendall_tau"] <= 1.0
    assert {r["role"] for r in result["rows"]} >= {"largest", "smallest"}
    for r in result["rows"]:
        assert 0.0 <= r["inherited_accuracy"] <= 1.0 and 0.0 <= r["standalone_accuracy"] <= 1.0
    assert result["machine"]["cores"] >= 1 and "torch" in result["machine"]["versions"]
    assert result["command"].startswith("python -m benchmarks.supernet")
    table = out.with_suffix(".md").read_text().splitlines()
    assert table[0].startswith("| subnet") and len(table) == 2 + result["n_subnets"]
