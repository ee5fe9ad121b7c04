import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _nacos(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "nacos", *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV)


def test_space_json_lists_checked_architectures(tmp_path):
    res = _nacos("space", "--n", "3", "--json", "--runs", "5", "--out-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert isinstance(rows, list) and len(rows) == 3
    for row in rows:
        assert row["id"] and row["macs"] > 0 and row["params"] > 0 and row["peak_memory_bytes"] > 0
        assert row["ort_latency_ms"] > 0 and row["accuracy"] is None
        assert os.path.exists(row["onnx"])
    assert len({r["id"] for r in rows}) == 3


def test_space_table_and_help():
    res = _nacos("space", "--n", "1", "--runs", "3")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].split()[:3] == ["id", "res", "width"]
    res = _nacos("--help")
    assert res.returncode == 0 and "space" in res.stdout and "train-supernet" in res.stdout
    res = _nacos("space", "--help")
    assert res.returncode == 0 and "--checkpoint" in res.stdout and "(default: 5)" in res.stdout


@pytest.mark.parametrize("args, message", [
    (("space", "--n", "0"), "--n, --batch and --runs must be >= 1"),
    (("space", "--n", "1", "--checkpoint", "/nonexistent/x.pt"), "x.pt: checkpoint not found"),
])
def test_space_bad_input_exits_2(args, message):
    res = _nacos(*args)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_no_command_prints_help_and_exits_2():
    res = _nacos()
    assert res.returncode == 2 and "usage: nacos" in res.stdout
