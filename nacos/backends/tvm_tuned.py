"""TVM backends over the shared tuning database.

- `DatabaseLatency` ("tvm-database"): compile with the database's best records as they are, tuning
  nothing (what `nacos export` builds a two-stage candidate with).
- `TunedLatency` ("tvm-tuned", two-stage): first tune the candidate's workloads the database has not
  seen, in a worker process (`nacos.backends.tuning_worker`), then compile as `DatabaseLatency` does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nacos.backends.base import Built
from nacos.backends.tuning_worker import (  # HOST_CPUS: read before TVM pins a core
    HOST_CPUS,
    TuningJob,
    run_tuning_worker,
)
from nacos.backends.tvm import TVMBackend
from nacos.errors import DiskFullError, says_disk_full

__all__ = ["DatabaseLatency", "TunedLatency"]


class DatabaseLatency(TVMBackend):
    """Compiled with the best records of the shared database (``tuning.database``); nothing is tuned, so
    a workload the database has not seen is compiled unscheduled."""

    name = "tvm-database"
    reads_database = True

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        from schedules.database import TuningDatabase

        self.db = TuningDatabase(Path(cfg.tuning.database))

    def describe(self, genome: Any) -> dict[str, Any]:
        return {"source": "tuning database", "database": str(self.db.path)}

    def _compile(self, onnx_path: Path, mod: Any = None) -> Any:
        from schedules.measure import compile

        return compile(onnx_path, self.db, self.target, mod=mod)

    def _build(self, genome: Any, arch: Any, onnx_path: Path) -> Built:
        return self._built(self._compile(onnx_path))


class TunedLatency(DatabaseLatency):
    """Two-stage: tune the unseen workloads into the shared database, then measure with its best records.

    The tuning runs in a worker process (`nacos.backends.tuning_worker`): a segfault, an out-of-memory kill or a
    hang of TVM there (killed after ``tuning.timeout_s``) fails this candidate with the reason, and the
    search goes on. Measuring stays here: it is short, and `schedules.measure` checks each result."""

    name = "tvm-tuned"

    def _job(self, onnx_path: Path):
        t = self.cfg.tuning
        return TuningJob(onnx=str(Path(onnx_path).resolve()), database=str(self.db.path.resolve()),
                         target=str(self.target), searcher=t.searcher, metaschedule_trials=t.metaschedule_trials,
                         trials_per_workload=t.trials_per_workload, seed=self.cfg.seed,
                         rpc=self.cfg.target if self.rpc is not None else "", threads=t.threads,
                         memory_mb=t.worker_memory_mb, cpus=HOST_CPUS)

    def _build(self, genome: Any, arch: Any, onnx_path: Path) -> Built:
        from schedules.frontend import extract_workloads, import_onnx
        from schedules.latency_table import table_latency
        from schedules.tuner import plan_tuning

        t = self.cfg.tuning
        start = time.perf_counter()
        # Step 1. What other processes (earlier workers, other searches) committed meanwhile, and what is unseen.
        self.db.refresh()
        mod = import_onnx(onnx_path)   # imported once: planned on, then compiled (seconds a candidate)
        workloads = extract_workloads(mod, self.target)   # extracted once: planned on, then read off the table
        todo, reused = plan_tuning(workloads, self.db, self.target, explicit=t.searcher != "metaschedule")
        # Step 2. Tune the unseen workloads in a worker (none when nothing is unseen: its start alone costs
        # seconds, TVM's import).
        if not todo:
            report = {"tuned": 0, "reused": len(reused), "hit_rate": 1.0, "trials": 0,
                      "seconds": time.perf_counter() - start, "faults": 0}
            worker_seconds = 0.0
        else:
            outcome = run_tuning_worker(self._job(onnx_path), t.timeout_s)
            # what the worker committed (or, killed, left behind: a torn last line is moved aside here)
            self.db.refresh()
            if not outcome.ok:
                if says_disk_full(outcome.reason):  # not the candidate's fault: stop, keep its row unfinished
                    raise DiskFullError(f"tuning worker: {outcome.reason}")
                return Built(False, reason=outcome.reason, seconds=time.perf_counter() - start,
                             details={"tuning_worker_seconds": outcome.seconds,
                                      "tuning_worker_returncode": outcome.returncode,
                                      "untuned_tasks": len(todo), "reused_tasks": len(reused)})
            report, worker_seconds = outcome.report, outcome.seconds
        # Step 3. Compile with the database's best records; the latency table's reading goes beside the
        # measured latency (what `nacos.search.table_screen` calibrates the table with).
        compiled = self._compile(onnx_path, mod)
        table = table_latency(workloads, self.db, self.target)
        return self._built(compiled, {"tuned_tasks": report["tuned"], "reused_tasks": report["reused"],
                                      "hit_rate": report["hit_rate"], "trials": report["trials"],
                                      "tuning_seconds": report["seconds"], "tuning_faults": report["faults"],
                                      "tuning_worker_seconds": worker_seconds, "table_kernel_ms": table.kernel_ms,
                                      "table_calls": table.calls, "table_complete": table.complete},
                           seconds=time.perf_counter() - start)
