"""A model's latency read off the tuning database, without building it (a CHaNAS-style latency table).

Once the database holds a record for every task of a space (`nacos pretune`), a candidate's tasks are
known from its import alone (0.2 s: `schedules.frontend`), and each task's fastest record carries the run
time MetaSchedule measured for it on this machine. Their sum, each task counted as often as the model
calls it, is the kernel time the compiled model would spend, at a fraction of a build's cost (0.4 s
against 2.9 s on a 2-core Xeon: `benchmarks/latency_table.py`).
It leaves out what is not a kernel: the Relax VM's dispatch (about 0.5 us a call on a 2-core CPU, see
`TVM-NOTES.md`) and allocation; `calls` is given so a caller can add that, or calibrate the sum against
models it did build and measure. A task with no record on this machine is named in `missing` (its time is
unknown: the sum then says nothing reliable, and `complete` is False).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schedules.database import TuningDatabase

__all__ = ["TableLatency", "table_latency"]


@dataclass(frozen=True)
class TableLatency:
    kernel_ms: float               # sum over tasks with a record: calls x fastest run time on this machine
    calls: int                     # kernel calls per run, every task of the model
    tasks: int                     # distinct tasks of the model
    missing: tuple[str, ...]       # names of the tasks with no working record on this machine

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {"kernel_ms": self.kernel_ms, "calls": self.calls, "tasks": self.tasks,
                "missing": list(self.missing), "complete": self.complete}


def table_latency(mod_or_workloads: Any, db: TuningDatabase, target: Any) -> TableLatency:
    """The latency table's reading for an imported module (`schedules.frontend.import_onnx`), or for its
    workloads when the caller extracted them already (`extract_workloads`, with `target`), from the records
    `db` holds for `target`'s machine (another machine's records do not count: their times are another CPU's)."""
    from schedules.frontend import extract_workloads

    db = db.on(target)
    total, calls, missing = 0.0, 0, []
    workloads = extract_workloads(mod_or_workloads, target)
    for w in workloads:
        calls += w.count
        best = db.lookup(w)
        if best is None or not best.records:
            missing.append(w.name)
        else:
            total += w.count * best.run_ms
    return TableLatency(total, calls, len(workloads), tuple(missing))
