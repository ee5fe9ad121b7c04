"""Real MetaSchedule tunings for tests and benchmarks (as `tvm.s_tir.meta_schedule.testing` gives
MetaSchedule's own tests their workloads).

`tune_workloads` tunes a few small convolution / dense workloads with MetaSchedule's ``replay-trace``
strategy (a uniform random sample of its design space), built and timed on this machine, into plain
MetaSchedule JSON databases: the records that `costmodels`' tests train on and that
`benchmarks/cost_model_quality.py` evaluates its models on. A database that already holds its trials
is reused, so a rerun costs nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from schedules.tuner import make_builder, named_handlers_only, skip_foreign_intrinsics

__all__ = ["FULL_WORKLOADS", "QUICK_WORKLOADS", "TUNING_CORES", "Workload", "count_records", "tune_workloads",
           "tuning_stamps", "workload_prim_func"]

#: (name, kind, shape args). conv: (N, C, H, W, K, R, stride, pad, groups); dense: (N, in, out).
Workload = tuple[str, str, tuple[int, ...]]

#: Convolutions and a dense layer of the sizes the search space produces.
FULL_WORKLOADS: tuple[Workload, ...] = (
    ("conv_16_32_32x32_k3", "conv", (1, 16, 32, 32, 32, 3, 1, 1, 1)),
    ("conv_3_16_32x32_k3", "conv", (1, 3, 32, 32, 16, 3, 1, 1, 1)),
    ("conv_32_32_16x16_k3", "conv", (1, 32, 16, 16, 32, 3, 1, 1, 1)),
    ("conv_32_64_16x16_k3_s2", "conv", (1, 32, 16, 16, 64, 3, 2, 1, 1)),
    ("conv_64_64_8x8_k3", "conv", (1, 64, 8, 8, 64, 3, 1, 1, 1)),
    ("conv_16_16_32x32_k1", "conv", (1, 16, 32, 32, 16, 1, 1, 0, 1)),
    ("conv_64_128_8x8_k1", "conv", (1, 64, 8, 8, 128, 1, 1, 0, 1)),
    ("conv_32_32_28x28_k5", "conv", (1, 32, 28, 28, 32, 5, 1, 2, 1)),
    ("dwconv_64_16x16_k3", "conv", (1, 64, 16, 16, 64, 3, 1, 1, 64)),
    ("dense_512_256", "dense", (1, 512, 256)),
)
#: A 3x3 and a 1x1 convolution: the smallest pair whose records differ in kind (minutes to tune).
QUICK_WORKLOADS: tuple[Workload, ...] = (FULL_WORKLOADS[0], FULL_WORKLOADS[5])

#: Cores the tunings use: fixed, so that a database made on another machine holds the same target.
TUNING_CORES = 2


def workload_prim_func(kind: str, args: Sequence[int]) -> Any:
    """The TE PrimFunc of one workload: conv2d (grouped when groups > 1) or dense, each followed by ReLU."""
    from tvm import te, topi

    if kind == "conv":
        n, c, h, w, k, r, stride, pad, groups = args
        data = te.placeholder((n, c, h, w), name="data")
        kern = te.placeholder((k, c // groups, r, r), name="kernel")
        if groups == 1:
            out = topi.nn.conv2d_nchw(data, kern, stride, pad, 1)
        else:
            out = topi.nn.group_conv2d_nchw(data, kern, stride, pad, 1, groups)
        return te.create_prim_func([data, kern, topi.nn.relu(out)])
    n, i, o = args
    data = te.placeholder((n, i), name="data")
    weight = te.placeholder((o, i), name="weight")
    return te.create_prim_func([data, weight, topi.nn.relu(topi.nn.dense(data, weight))])


def count_records(work_dir: str | Path) -> int:
    """Records in a MetaSchedule JSON database directory (0 when it has none)."""
    p = Path(work_dir) / "database_tuning_record.json"
    return sum(1 for line in p.read_text().splitlines() if line.strip()) if p.is_file() else 0


def tune_workloads(work_dir: str | Path, workloads: Sequence[Workload], trials: int, *, seed: int = 0,
                   combined: bool = False, log: Callable[[str], Any] = print) -> list[Path]:
    """Tune each workload with MetaSchedule's replay-trace strategy (a uniform sample of its design
    space), `trials` measured candidates each, into JSON databases under work_dir: one per workload
    (work_dir/<name>/), or with `combined` one database holding every workload as its own task
    (work_dir/combined/: one builder / runner start-up instead of one per workload). A database that
    already holds its trials is reused. Each database gets a ``nacos_tuning.json`` stamp of what the
    tuning cost (`tuning_stamps`)."""
    skip_foreign_intrinsics()  # before TVM's first import: CPU-only tuning needs no other target's intrinsics
    import tvm
    import tvm.s_tir.meta_schedule as ms

    from schedules.targets import host_target

    target = host_target(TUNING_CORES)
    jobs = ([("combined", list(workloads))] if combined
            else [(name, [(name, kind, args)]) for name, kind, args in workloads])
    dirs = []
    for dir_name, group in jobs:
        wd = Path(work_dir) / dir_name
        dirs.append(wd)
        if count_records(wd) >= trials * len(group):
            continue
        t0 = time.time()
        if len(group) == 1:
            mod = workload_prim_func(group[0][1], group[0][2])
        else:
            mod = tvm.IRModule({name: workload_prim_func(kind, args).with_attr("global_symbol", name)
                                for name, kind, args in group})
        builder = make_builder("local", target)  # the stock LocalBuilder, foreign intrinsics stubbed
        with named_handlers_only():  # an unnamed handler on MetaSchedule's logger breaks its second tuning
            ms.tune_tir(mod, target, str(wd), max_trials_global=trials * len(group), max_trials_per_task=trials,
                        num_trials_per_iter=min(64, trials), strategy="replay-trace", task_scheduler="round-robin",
                        builder=builder, seed=seed)
        seconds = time.time() - t0
        (wd / "nacos_tuning.json").write_text(json.dumps({
            "seconds": round(seconds, 1), "records": count_records(wd), "trials_per_workload": trials,
            "workloads": [g[0] for g in group], "strategy": "replay-trace", "seed": seed,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
        log(f"tuned {dir_name}: {count_records(wd)} records in {seconds:.0f} s")
    return dirs


def tuning_stamps(dirs: Sequence[str | Path]) -> dict[str, Any]:
    """What the tuning of each database cost when it was made (a rerun reuses the databases)."""
    out = {}
    for wd in dirs:
        p = Path(wd) / "nacos_tuning.json"
        out[Path(wd).name] = json.loads(p.read_text()) if p.is_file() else None
    return out
