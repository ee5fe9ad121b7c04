"""Test helpers of the cost models: real MetaSchedule records grouped the way the models are scored
(leave one workload out). The tunings themselves come from `schedules.testing.tune_workloads`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from costmodels.datasets import read_metaschedule_db
from costmodels.ranker import ScheduleSample

__all__ = ["schedule_samples", "workload_key"]


def workload_key(sample: ScheduleSample) -> str:
    """One workload's name from its shapes: op kind, input -> output, kernel, strides, groups."""
    w = sample.workload
    return (f"{w.op_kind}{list(w.input_shapes[0])}->{list(w.output_shape)}"
            f"k{list(w.kernel)}s{list(w.strides)}g{w.groups}")


def schedule_samples(dirs: Sequence[str | os.PathLike]) -> tuple[dict[str, list[ScheduleSample]], dict[str, dict]]:
    """Every measured record of the MetaSchedule databases in `dirs`, grouped by workload (`workload_key`),
    and per database what its reader skipped."""
    by_wl: dict[str, list[ScheduleSample]] = {}
    skipped = {}
    for wd in dirs:
        db = read_metaschedule_db(wd)
        skipped[Path(wd).name] = db.skipped
        for s in db.samples:
            by_wl.setdefault(workload_key(s), []).append(s)
    return by_wl, skipped
