"""TVM's thread pool as the measurement and the tuner's runner set it up.

`schedules.measure.set_tvm_threads` must leave the process's CPU affinity as it found it (the default
affinity mode pinned the calling thread, and every thread started after it, to core 0), and the
MetaSchedule runner that tuning uses must configure its workers' pool the same way (a fresh worker's
default pool paid about 9 us to launch each parallel kernel: records were chosen under that cost).
Run in a child process: the test process's own pool stays untouched.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest

_CHILD = r"""
import json, os
import numpy as np
import tvm
from tvm import te
from schedules.measure import set_tvm_threads
from schedules.targets import host_target

before = sorted(os.sched_getaffinity(0))
set_tvm_threads(len(before))
a = te.placeholder((64, 64), name="a")
b = te.compute((64, 64), lambda i, j: a[i, j] * 2.0, name="b")
sch = tvm.s_tir.Schedule(te.create_prim_func([a, b]))
i, _ = sch.get_loops(sch.get_sblock("b"))
sch.parallel(i)
lib = tvm.compile(sch.mod, target=host_target())
lib = lib.mod if hasattr(lib, "mod") else lib
x = tvm.runtime.tensor(np.ones((64, 64), "float32"))
y = tvm.runtime.tensor(np.zeros((64, 64), "float32"))
lib["main"](x, y)
print(json.dumps({"before": before, "after": sorted(os.sched_getaffinity(0)), "ok": bool((y.numpy() == 2).all())}))
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to see a pinning")
def test_set_tvm_threads_keeps_the_process_affinity():
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"]
    assert result["after"] == result["before"], "the thread pool pinned this thread: onnxruntime timed after it " \
                                                "in this process would run on fewer cores"


def test_the_tuning_runner_configures_its_workers_pool():
    from schedules.measure import set_tvm_threads
    from schedules.targets import host_target
    from schedules.tuner import make_runner

    runner = make_runner(host_target(3), 5.0)
    init = runner.pool._initializer  # LocalRunner keeps no copy; its worker pool calls this in each worker
    assert isinstance(init, functools.partial) and init.func is set_tvm_threads and init.args == (3,)
    assert runner.timeout_sec == 5.0
