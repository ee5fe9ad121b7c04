"""`benchmarks.thread_pool_launch --quick` runs each pool setup in its own process and writes its files."""

from __future__ import annotations

import json
import os

import pytest

from benchmarks import thread_pool_launch


@pytest.mark.slow
def test_quick_run_writes_every_setup(tmp_path):
    out = tmp_path / "tpl.json"
    assert thread_pool_launch.main(["--quick", "--threads", "2", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["summary"]) == set(thread_pool_launch.SETUPS)
    for setup, row in data["summary"].items():
        assert row["reduction_parallel_us"] > 0 and row["reduction_serial_us"] > 0, setup
    # the setup the measurement uses keeps the process's cores; the old default mode pinned it to one
    assert data["summary"]["share-all"]["affinity_after"] == sorted(os.sched_getaffinity(0))
    if len(os.sched_getaffinity(0)) > 1:
        assert len(data["summary"]["mode0"]["affinity_after"]) == 1
    assert out.with_suffix(".md").read_text().count("\n") >= 2 + len(thread_pool_launch.SETUPS) - 1
