"""What TVM's thread pool costs a parallel kernel, by how the pool is set up (issue 11, point 4).

Each setup is timed in a fresh process of its own (a pool's configuration and its pinning last for the
process): a parallel reduction of (1, 128, 2, 2) floats to (1, 128, 1, 1) (the global average pool of a
sampled architecture's head: 512 additions, so its time is the launch), the same loop serial, and one
elementwise kernel of 64 x 64 floats. Setups:

- ``no-config``: a fresh process that sets nothing (what MetaSchedule's stock `LocalRunner` workers
  measured every trial under before `schedules.tuner.make_runner`);
- ``mode0``: ``runtime.config_threadpool(0, N)``, what `schedules.measure.set_tvm_threads` called
  before 2026-12-03 (it also pins the calling thread to core 0; the column ``affinity_after`` says);
- ``share-all``: `schedules.measure.set_tvm_threads` as it is now (``config_threadpool(-3, N, cores)``);
- ``env``: ``TVM_NUM_THREADS=N`` in the environment, nothing called.

    python -m benchmarks.thread_pool_launch            # writes results/thread_pool_launch.json and .md
    python -m benchmarks.thread_pool_launch --quick    # fewer repeats
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from benchmarks.common import RESULTS_DIR, ResultFile, Size, add_sizes, resolve_sizes

NAME = "thread_pool_launch"
SETUPS = ("no-config", "mode0", "share-all", "env")
SIZES = {"repeats": Size(5, 30, "timed repeats of each kernel (each the mean of 1,000 runs)"),
         "rounds": Size(1, 3, "fresh processes per setup (the table keeps the median)")}

_CHILD = r"""
import json, os, sys
import numpy as np
setup, threads, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import tvm
from tvm import te
from schedules.measure import set_tvm_threads
from schedules.targets import host_target
cfg = tvm.get_global_func("runtime.config_threadpool")
if setup == "mode0":
    cfg(0, threads)
elif setup == "share-all":
    set_tvm_threads(threads)
target = host_target(threads)
dev = tvm.cpu()

def timed(sch, *shapes):
    lib = tvm.compile(sch.mod, target=target)
    lib = lib.mod if hasattr(lib, "mod") else lib
    args = [tvm.runtime.tensor(np.random.rand(*s).astype("float32")) for s in shapes]
    res = lib.time_evaluator("main", dev, number=1000, repeat=repeats)(*args).results
    return float(np.median(res)) * 1e6

a = te.placeholder((1, 128, 2, 2), name="a")
k2, k3 = te.reduce_axis((0, 2)), te.reduce_axis((0, 2))
r = te.compute((1, 128, 1, 1), lambda n, c, h, w: te.sum(a[n, c, k2, k3], axis=[k2, k3]), name="r")
out = {}
for parallel in (True, False):
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, r]))
    n, c, *_ = sch.get_loops(sch.get_sblock("r"))
    fused = sch.fuse(n, c)
    if parallel:
        sch.parallel(fused)
    out["reduction_parallel_us" if parallel else "reduction_serial_us"] = timed(sch, (1, 128, 2, 2), (1, 128, 1, 1))
x = te.placeholder((64, 64), name="x")
y = te.compute((64, 64), lambda i, j: x[i, j] * 2.0, name="y")
sch = tvm.s_tir.Schedule(te.create_prim_func([x, y]))
i, _ = sch.get_loops(sch.get_sblock("y"))
sch.parallel(i)
out["elementwise_parallel_us"] = timed(sch, (64, 64), (64, 64))
out["affinity_after"] = sorted(os.sched_getaffinity(0))
print(json.dumps(out))
"""


def _run_setup(setup: str, threads: int, repeats: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "TVM_NUM_THREADS"}
    if setup == "env":
        env["TVM_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", _CHILD, setup, str(threads), str(repeats)], env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from schedules.targets import host_threads

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_sizes(p, SIZES, "fewer repeats, one process per setup")
    p.add_argument("--threads", type=int, default=host_threads(), help="pool size (default: every core)")
    p.add_argument("--out", default=RESULTS_DIR / f"{NAME}.json")
    args = resolve_sizes(p.parse_args(argv), SIZES)
    settings = {"repeats": args.repeats, "rounds": args.rounds, "threads": args.threads}
    result = ResultFile(NAME, args.out, settings, resume=False)
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SETUPS}
    for round_index in range(args.rounds):
        for setup in SETUPS:  # interleaved: a drift of the machine's load touches every setup alike
            runs[setup].append(_run_setup(setup, args.threads, args.repeats))
            print(f"round {round_index + 1}/{args.rounds} {setup}: {runs[setup][-1]}", file=sys.stderr)
    keys = ("reduction_parallel_us", "reduction_serial_us", "elementwise_parallel_us")
    summary = {s: {k: sorted(r[k] for r in rs)[len(rs) // 2] for k in keys}
               | {"affinity_after": rs[-1]["affinity_after"]} for s, rs in runs.items()}
    result.payload.update(setups=list(SETUPS), runs=runs, summary=summary, complete=True)
    result.save()
    print(result.table(["setup", *keys, "affinity after"],
                       [[s, *(summary[s][k] for k in keys), summary[s]["affinity_after"]] for s in SETUPS], digits=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
