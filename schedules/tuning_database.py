"""`TuningDatabase`: the tuning records shared by every architecture and every run.

A directory holding one MetaSchedule JSON database (``database_workload.json``: one line per
workload, ``[structural hash, module]``; ``database_tuning_record.json``: one line per measured
candidate, ``[workload line index, [trace, run secs, target, args]]``), so MetaSchedule tuning and
any other search that commits `TuningRecord`s write into the same place and `compile` applies the best
records. On top of it this class answers the inner loop's questions: is a workload tuned, its best
record, which workloads are covered, how much of a module is covered by tasks and by MACs, which of a
candidate's workloads are unseen.

Crash safety (MetaSchedule appends with no fsync and no lock, and one torn line fails its whole load):

- the files are checked line by line before TVM reads them. A torn tail (a last line that is not
  complete JSON, or not newline-terminated) is moved aside to ``<file>.torn-<UTC time>`` (never
  deleted) with a `DatabaseRepairWarning` naming the file and line; the records before it load.
- any other damaged line raises `DatabaseCorruptError` naming the file and line (the earlier lines are
  intact); ``repair=True`` moves that line and everything after it aside the same way instead.
- writers take an exclusive `fcntl` lock on ``<dir>/.lock`` for the whole tuning session (record lines
  point at workload lines by index, so two appending processes would corrupt each other); readers
  take a shared lock while loading. The lock is advisory and local to one machine (not NFS).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from schedules.exceptions import DatabaseCorruptError, DatabaseRepairWarning, ScheduleError
from schedules.records import LayerWorkload

__all__ = ["TuningDatabase", "RecordSummary", "FAILED_RUN_SECS", "WORKLOAD_FILE", "RECORD_FILE"]

#: MetaSchedule stores a candidate whose build or run failed with a run time of 1e10 s.
FAILED_RUN_SECS = 1e9
WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"


@dataclass(frozen=True)
class RecordSummary:
    """What the database knows of one workload: its best working run time and how many records."""

    structural_hash: str
    best_ms: float          # inf when no record works
    working: int            # records that built, ran and were timed
    failed: int             # records whose build or run failed
    target: str             # target of the best record

    @property
    def tuned(self) -> bool:
        return self.working > 0


def _check_workload(obj: Any) -> str | None:
    if not (isinstance(obj, list) and len(obj) == 2 and all(isinstance(x, str) for x in obj)):
        return "expected [structural hash, module]"
    return None


def _check_record(obj: Any, n_workloads: int) -> str | None:
    if not (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], int) and isinstance(obj[1], list)
            and len(obj[1]) == 4):
        return "expected [workload index, [trace, run_secs, target, args]]"
    if not 0 <= obj[0] < n_workloads:
        return f"workload index {obj[0]} is not a line of {WORKLOAD_FILE} ({n_workloads} workloads)"
    secs = obj[1][1]
    if secs is not None and not (isinstance(secs, list) and all(isinstance(x, (int, float)) for x in secs)):
        return "run_secs is not a list of numbers"
    return None


class TuningDatabase:
    """One MetaSchedule JSON database directory, checked, indexed and locked.

    >>> db = TuningDatabase("runs/tuning")          # created when missing
    >>> db.best(workload)                           # RecordSummary or None
    >>> db.coverage(mod, "llvm")                    # (fraction of tasks, fraction of MACs)
    """

    def __init__(self, path: str | Path, *, repair: bool = False) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.workload_file = self.path / WORKLOAD_FILE
        self.record_file = self.path / RECORD_FILE
        self.lock_file = self.path / ".lock"
        self.repair = repair
        self.repairs: list[str] = []       # what was moved aside, one message per file repaired
        self.refresh()

    # -- locking ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        with open(self.lock_file, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Any]:
        """An exclusive session: the files re-checked under the lock and a fresh MetaSchedule
        `JSONDatabase` to append to; the index is refreshed when the session ends."""
        with self._locked(exclusive=True):
            self._load_checked()
            try:
                yield self._open_ms()
            finally:
                self._load_checked()

    def reader(self) -> Any:
        """A MetaSchedule `JSONDatabase` loaded from the checked files (for compiling)."""
        with self._locked(exclusive=False):
            self._load_checked()
            return self._open_ms()

    def _open_ms(self) -> Any:
        from tvm.s_tir import meta_schedule as ms

        return ms.database.JSONDatabase(path_workload=str(self.workload_file), path_tuning_record=str(self.record_file),
                                        allow_missing=True, module_equality="structural")

    # -- checking --------------------------------------------------------------------------------
    def _move_aside(self, file: Path, data: bytes, offset: int, line: int, reason: str, torn: bool) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = file.with_name(f"{file.name}.{'torn' if torn else 'damaged'}-{stamp}")
        n = 0
        while aside.exists():
            n += 1
            aside = file.with_name(f"{file.name}.{'torn' if torn else 'damaged'}-{stamp}.{n}")
        aside.write_bytes(data[offset:])
        with open(file, "r+b") as fh:
            fh.truncate(offset)
            fh.flush()
            os.fsync(fh.fileno())
        msg = (f"{file}, line {line}: {'torn last line' if torn else 'damaged line'} ({reason}); "
               f"{len(data) - offset} bytes from there moved to {aside}; the {line - 1} lines before it load")
        self.repairs.append(msg)
        warnings.warn(msg, DatabaseRepairWarning, stacklevel=4)

    def _scan(self, file: Path, check) -> list[Any]:
        if not file.exists():
            return []
        data = file.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()  # the file ends with a newline
        parsed: list[Any] = []
        offset = 0
        for i, raw in enumerate(lines):
            last = i == len(lines) - 1
            reason = None
            try:
                reason = check(json.loads(raw)) if raw.strip() else "empty line"
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                reason = f"not JSON: {exc}"
            if reason is None and last and not data.endswith(b"\n"):
                reason = "no newline at the end: the write was cut short"
            if reason is not None:
                torn = last
                if not (torn or self.repair):
                    raise DatabaseCorruptError(
                        f"{file}, line {i + 1}: damaged tuning database line ({reason}); the {i} lines before "
                        f"it are intact. Open it with TuningDatabase({str(self.path)!r}, repair=True) to move "
                        f"this line and the rest aside and keep the earlier records.", str(file), i + 1)
                self._move_aside(file, data, offset, i + 1, reason, torn)
                return parsed
            parsed.append(json.loads(raw))
            offset += len(raw) + 1
        return parsed

    def _load_checked(self) -> None:
        workloads = self._scan(self.workload_file, _check_workload)
        records = self._scan(self.record_file, lambda o: _check_record(o, len(workloads)))
        hashes = [w[0] for w in workloads]
        acc: dict[int, list] = {}
        for widx, (_, run_secs, target, _) in records:
            entry = acc.setdefault(widx, [math.inf, 0, 0, ""])
            secs = sum(run_secs) / len(run_secs) if run_secs else math.inf
            if not math.isfinite(secs) or secs >= FAILED_RUN_SECS:
                entry[2] += 1
                continue
            entry[1] += 1
            if secs < entry[0]:
                entry[0], entry[3] = secs, json.dumps(target, sort_keys=True)
        summaries: dict[str, RecordSummary] = {}
        for i, h in enumerate(hashes):
            e = acc.get(i, [math.inf, 0, 0, ""])
            prev = summaries.get(h)
            cur = RecordSummary(h, e[0] * 1e3, e[1], e[2], e[3])
            if prev is not None:  # one workload committed twice: merge
                best = cur if cur.best_ms < prev.best_ms else prev
                cur = RecordSummary(h, best.best_ms, prev.working + cur.working, prev.failed + cur.failed, best.target)
            summaries[h] = cur
        self._summaries = summaries
        self._n_records = len(records)

    def refresh(self) -> None:
        """Re-read both files (another process may have tuned into them)."""
        with self._locked(exclusive=self.repair):
            self._load_checked()

    # -- queries ---------------------------------------------------------------------------------
    @staticmethod
    def _key(workload: LayerWorkload | str) -> str:
        key = workload if isinstance(workload, str) else workload.structural_hash
        if not key:
            raise ScheduleError("a LayerWorkload without a structural_hash cannot be looked up; take "
                                "workloads from schedules.extract_workloads")
        return key

    def lookup(self, workload: LayerWorkload | str) -> RecordSummary | None:
        """What the database holds for `workload` (or its structural hash), working or not; None when
        it has never seen it."""
        return self._summaries.get(self._key(workload))

    def best(self, workload: LayerWorkload | str) -> RecordSummary | None:
        """The best working record's summary, None when no record of `workload` works."""
        s = self.lookup(workload)
        return s if s is not None and s.tuned else None

    def __contains__(self, workload: LayerWorkload | str) -> bool:
        return self.best(workload) is not None

    def covered(self) -> set[str]:
        """Structural hashes of every workload with a working record."""
        return {h for h, s in self._summaries.items() if s.tuned}

    def unseen(self, workloads: Iterable[LayerWorkload]) -> list[LayerWorkload]:
        """The workloads with no working record (what tuning a candidate has to do)."""
        return [w for w in workloads if w not in self]

    def coverage(self, mod_or_workloads: Any, target: Any = "llvm") -> tuple[float, float]:
        """(fraction of tasks, fraction of MACs) of a module (its tasks for `target`) or of a list of
        workloads that have a working record; each workload counted as often as the module calls it."""
        if isinstance(mod_or_workloads, (list, tuple)):
            workloads = list(mod_or_workloads)
        else:
            from schedules.workloads import extract_workloads

            workloads = extract_workloads(mod_or_workloads, target)
        if not workloads:
            return 1.0, 1.0
        done = [w for w in workloads if w in self]
        n, n_done = sum(w.count for w in workloads), sum(w.count for w in done)
        macs, macs_done = sum(w.macs * w.count for w in workloads), sum(w.macs * w.count for w in done)
        return n_done / n, (macs_done / macs if macs else 1.0)

    def __len__(self) -> int:
        """Tuning records (candidates measured), failed ones included."""
        return self._n_records

    @property
    def n_workloads(self) -> int:
        return len(self._summaries)
