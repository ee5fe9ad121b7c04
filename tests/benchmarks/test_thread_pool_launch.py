"""`benchmarks.thread_pool_launch --quick` runs each pool setup in its own process and writes its files."""

from __future__ import annotations

import json
import os

import pytest


@pytest.mark.slow
def test_quick_run_writes_every_setup(tmp_path, run_benchmark):
    out = tmp_path / "tpl.json"
    run_benchmark("thread_pool_launch", ["--quick", "--threads", "2", "--out", out])
    data = json.loads(out.read_text())
    setups = data["setups"]  # the pool setups the benchmark compares, each in a process of its own
    assert {"no-config", "mode0", "share-all", "env"} <= set(setups)
    assert set(data["summary"]) == set(data["runs"]) == set(setups)
    for setup, row in data["summary"].items():
        assert row["reduction_parallel_us"] > 0 and row["reduction_serial_us"] > 0, setup
    # the setup the measurement uses keeps the process's cores; the old default mode pinned it to one
    assert data["summary"]["share-all"]["affinity_after"] == sorted(os.sched_getaffinity(0))
    if len(os.sched_getaffinity(0)) > 1:
        assert len(data["summary"]["mode0"]["affinity_after"]) == 1
    assert out.with_suffix(".md").read_text().count("\n") >= 2 + len(setups) - 1
