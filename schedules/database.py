"""`TuningDatabase`: the tuning records shared by every architecture and every run.

It is MetaSchedule's JSON database (``database_workload.json``: one workload per line, keyed by
structural hash; ``database_tuning_record.json``: one measured schedule trace per line), so both
schedule searches (MetaSchedule and the explicit `ScheduleConfig` space) write into it and
`compile` applies its best records. On top of it this class answers what the inner loop asks: is
this workload tuned, what is its best record, how much of a module is covered, by tasks and by MACs.

MetaSchedule appends lines with no fsync and no lock, and a torn last line makes its whole load
fail. So the files are checked line by line before TVM opens them:

- a torn last line (the file does not end in a newline: a write cut short) is moved aside into
  ``<file>.damaged-<UTC time>`` and the records before it load; `repairs` says what was moved;
- any other damaged line raises `DatabaseCorrupted` naming the file and the line; with
  ``repair=True`` that line and everything after it are moved aside the same way. Nothing is deleted.

`verify_database(path)` runs the same line checks without opening (or changing) anything and returns
one `DatabaseFinding` per file; with ``repair=True`` it moves the damaged tails aside as above
(``nacos doctor`` reports through it).

Records carry the target they were measured on, and a run time holds only on the machine that measured
it (the same schedule can rank differently on another CPU). A database bound to a target (`on(target)`,
or ``TuningDatabase(path, target=...)``) therefore answers for that machine (`schedules.targets.
machine_key`: kind and CPU): a workload is tuned, covered and looked up by the records measured there,
and `apply_database()` (what `schedules.measure.compile` builds with) applies the fastest of them. A
workload with records of other machines only still builds with their fastest (`transferred()`: a
tuned schedule from elsewhere beats the untuned default by far, and the latency is measured here
anyway), but it counts as untuned, so tuning and pretuning measure it on this machine. Unbound, the
database reads every record as one machine's (what it did before targets were told apart).

MetaSchedule keeps no lock, and its tuning records point at workloads by line number, so two
writers appending at once would silently mis-attribute records. The database therefore takes a
file lock (``.lock`` beside the files, `fcntl.flock`): tuning holds it exclusively for the whole
session (`writing()`, which re-reads the files once the lock is held, so a workload another process
tuned meanwhile is reused, not tuned again), and every re-read holds it shared, so a reader never
mistakes a line being appended for a torn one. Several searches, processes or cluster workers can
share one database; their tunings take turns. (Within one process the lock is re-entrant; it is
not meant to be shared between threads.)
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from schedules.errors import DatabaseCorrupted, ScheduleError
from schedules.records import LayerWorkload
from schedules.targets import machine_key

__all__ = ["FAILED_RUN_SECS", "RECORD_FILE", "WORKLOAD_FILE", "BestRecord", "Coverage", "DatabaseFinding",
           "TuningDatabase", "seed_database", "verify_database"]

log = logging.getLogger(__name__)

#: MetaSchedule stores a failed build / run with this run time (or above); such a record covers nothing.
FAILED_RUN_SECS = 1e9

WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"


LOCK_FILE = ".lock"
#: resolved database directory -> depth of this process's exclusive hold (re-entrancy)
_HELD: dict[str, int] = {}


@contextlib.contextmanager
def _locked(directory: Path, exclusive: bool) -> Iterator[None]:
    """Hold the database directory's file lock (shared or exclusive); re-entrant within the process
    that holds it exclusively."""
    key = str(directory.resolve())
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if exclusive:
            _HELD[key] = 1
        try:
            yield
        finally:
            if exclusive:
                _HELD.pop(key, None)
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True)
class BestRecord:
    """The fastest working record of one workload."""

    structural_hash: str
    run_ms: float
    records: int          # working records of this workload
    failed: int           # records whose build or run failed
    target: str
    machine: str = ""     # `schedules.targets.machine_key` of the best record's target


@dataclass(frozen=True)
class Coverage:
    tasks_covered: int
    tasks_total: int
    macs_covered: int
    macs_total: int
    uncovered: tuple[str, ...]      # names of the workloads with no working record

    @property
    def tasks(self) -> float:
        return self.tasks_covered / self.tasks_total if self.tasks_total else 1.0

    @property
    def macs(self) -> float:
        return self.macs_covered / self.macs_total if self.macs_total else 1.0


#: bytes kept from just before where a file was last read, compared before reading on from there
_TAIL_BYTES = 256


@dataclass(frozen=True)
class _ReadState:
    """How far `TuningDatabase` read one of its files: its identity then, the offset, the bytes before it."""

    inode: int
    device: int
    size: int
    tail: bytes

    def matches(self, st: os.stat_result) -> bool:
        """The same file, not shorter than when read (so only appended to, if its tail still matches)."""
        return st.st_ino == self.inode and st.st_dev == self.device and st.st_size >= self.size


def _check_workload_line(obj: Any) -> str | None:
    if not (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], str)):
        return "expected [structural hash, module]"
    return None


def _check_record_line(obj: Any, n_workloads: int) -> str | None:
    if not (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], int) and isinstance(obj[1], list)
            and len(obj[1]) == 4):
        return "expected [workload index, [trace, run_secs, target, args]]"
    if not 0 <= obj[0] < n_workloads:
        return f"workload index {obj[0]} is not in the workload file ({n_workloads} workloads)"
    run_secs = obj[1][1]
    if run_secs is not None and not (isinstance(run_secs, list) and all(isinstance(x, (int, float)) for x in run_secs)):
        return "run_secs is not a list of numbers"
    return None


class TuningDatabase:
    """A directory holding one MetaSchedule JSON database, checked and indexed.

    >>> db = TuningDatabase("runs/tuning")            # created when missing
    >>> db.lookup(workload)                          # BestRecord or None
    >>> db.coverage(mod, target).macs                # fraction of the module's MACs covered
    >>> here = db.on(host_target())                  # the same files, answering for this machine
    """

    def __init__(self, path: str | Path, *, repair: bool = False, target: Any = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.workload_file = self.path / WORKLOAD_FILE
        self.record_file = self.path / RECORD_FILE
        self.repairs: list[str] = []
        #: file -> where its damaged tail was moved (the structured twin of `repairs`)
        self.moved_aside: dict[str, str] = {}
        self._repair = repair
        #: `machine_key` this database answers for; None: every record counts, whatever its target
        self.machine: str | None = machine_key(target) if target is not None else None
        #: how far each file was read (`_scan`): None until it is
        self._wstate: _ReadState | None = None
        self._rstate: _ReadState | None = None
        self.refresh()

    def on(self, target: Any) -> "TuningDatabase":
        """The same database bound to `target`'s machine (see the module docstring): itself when it is
        bound to that machine already, else a view of the same files (not read again; kept until the next
        `refresh`). Tuning through a view writes into the same files; `refresh` this one afterwards."""
        key = machine_key(target)
        if key == self.machine:
            return self
        view = self._views.get(key)
        if view is None:
            view = copy.copy(self)
            view.machine, view._views = key, {}
            view._ms, view._apply = None, None
            view._index_best()
            self._views[key] = view
        return view

    @contextlib.contextmanager
    def writing_on(self, target: Any) -> Iterator["TuningDatabase"]:
        """`writing()` of this database bound to `target`'s machine (`on`); afterwards this database holds
        what the view read back under the lock, without reading the files once more."""
        view = self.on(target)
        with view.writing():
            yield view
        if view is not self:
            self._workloads, self._hashes, self._index = view._workloads, view._hashes, view._index
            self._per_machine, self._n_records = view._per_machine, view._n_records
            self._wstate, self._rstate = view._wstate, view._rstate
            self._ms, self._apply, self._views = None, None, {}
            self._index_best()

    # -- checking and indexing ------------------------------------------------------------------
    def _scan(self, file: Path, check: Callable[[Any], str | None],
              since: _ReadState | None = None) -> tuple[list[Any], _ReadState | None, bool]:
        """(parsed lines, how far the file was read, whether they are only the lines added since `since`).

        The files are only ever appended to (MetaSchedule appends; a repair cuts a damaged tail, which
        shrinks the file), so when the file is the one read last time, grown, with the same bytes just before
        where that read stopped, only the new lines are read: a refresh of an unchanged 90 MB database
        costs a `stat` and a 256-byte read, not a 6 s parse. Anything else (another file, a shorter one,
        changed bytes) is read whole. Damaged lines are handled as the module docstring says."""
        if not file.exists():
            return [], None, False
        st = file.stat()
        base = 0
        if since is not None and since.matches(st):
            with open(file, "rb") as fh:
                fh.seek(since.size - len(since.tail))
                if fh.read(len(since.tail)) == since.tail:
                    if st.st_size == since.size:
                        return [], since, True
                    base, data = since.size, fh.read()
        if base == 0:
            data = file.read_bytes()
        damage = _first_damage(data, check)
        if damage.line is not None:
            where = f"{file}, line {damage.line}{' after the lines read before' if base else ''}"
            if not (damage.torn or self._repair):
                raise DatabaseCorrupted(
                    f"{where}: damaged tuning database line ({damage.reason}); the {len(damage.parsed)} lines before "
                    f"it are intact. Open with TuningDatabase(..., repair=True) to move this line and the rest "
                    f"aside and keep the earlier records.", str(file), damage.line)
            aside = _move_tail_aside(file, data, damage.offset, base)
            msg = (f"{where}: {'torn last line' if damage.torn else 'damaged line'} ({damage.reason}); "
                   f"{len(data) - damage.offset} bytes moved to {aside}, {len(damage.parsed)} earlier lines kept")
            log.warning(msg)
            self.repairs.append(msg)
            self.moved_aside[str(file)] = str(aside)
            data = data[:damage.offset]
        tail = ((since.tail if base else b"") + data)[-_TAIL_BYTES:]
        return damage.parsed, _ReadState(st.st_ino, st.st_dev, base + len(data), tail), bool(base)

    @contextlib.contextmanager
    def writing(self) -> Iterator["TuningDatabase"]:
        """Hold the database exclusively (other processes' tunings wait) with its index and
        MetaSchedule view re-read under the lock; re-read again when done."""
        with _locked(self.path, exclusive=True):
            self.refresh()
            try:
                yield self
            finally:
                self.refresh()

    def refresh(self) -> None:
        """Re-read both files (after a tuning run wrote to them), under the shared lock: only the lines
        appended since the last read (`_scan`); nothing, and every derived view kept, when none were."""
        with _locked(self.path, exclusive=False):
            workloads, wstate, w_added = self._scan(self.workload_file, _check_workload_line, self._wstate)
            n_workloads = len(self._workloads) + len(workloads) if w_added else len(workloads)
            records, rstate, r_added = self._scan(self.record_file, lambda o: _check_record_line(o, n_workloads),
                                                  self._rstate if w_added else None)
        self._wstate, self._rstate = wstate, rstate
        if w_added and r_added and not workloads and not records:
            return
        if w_added:
            workloads = self._workloads + workloads
        if w_added and r_added:
            # copied, not changed in place: views made by `on` share these with this database
            per = {w: {m: list(e) for m, e in machines.items()} for w, machines in self._per_machine.items()}
            n_records = self._n_records + len(records)
        else:
            per, n_records = {}, len(records)
        self._workloads = workloads
        self._hashes = [w[0] for w in workloads]
        self._index = {h: i for i, h in enumerate(self._hashes)}
        # workload index -> machine -> [best mean run secs, its record line, working records, failed ones]
        for line in records:
            widx, (_, run_secs, target, _) = line
            entry = per.setdefault(widx, {}).setdefault(machine_key(target), [math.inf, None, 0, 0])
            secs = sum(run_secs) / len(run_secs) if run_secs else math.inf
            if secs >= FAILED_RUN_SECS or not math.isfinite(secs):
                entry[3] += 1
                continue
            entry[2] += 1
            if secs < entry[0]:
                entry[0], entry[1] = secs, line
        self._per_machine = per
        self._n_records = n_records
        self._ms, self._apply = None, None
        self._views: dict[str, TuningDatabase] = {}
        self._index_best()

    def _index_best(self) -> None:
        """`_best` (what this database answers) and `_transferred` (other machines' best, for the workloads
        with no working record here) from the per-machine index."""
        def best_of(h: str, entries: list[tuple[str, list]]) -> BestRecord:
            secs, line, _, _, key = min(((*e, k) for k, e in entries), key=lambda x: x[0])
            target = json.dumps(line[1][2], sort_keys=True) if line is not None else ""
            return BestRecord(h, secs * 1e3, sum(e[2] for _, e in entries), sum(e[3] for _, e in entries), target,
                              key if line is not None else "")

        self._best, self._transferred = {}, {}
        for widx, machines in self._per_machine.items():
            h = self._hashes[widx]
            here = [(k, e) for k, e in machines.items() if self.machine is None or k == self.machine]
            if here:
                self._best[h] = best_of(h, here)
            if self.machine is not None and not any(e[2] for _, e in here):
                elsewhere = [(k, e) for k, e in machines.items() if k != self.machine and e[2]]
                if elsewhere:
                    self._transferred[h] = best_of(h, elsewhere)

    def transferred(self) -> dict[str, BestRecord]:
        """Structural hash -> the best record of another machine, for each workload with no working record
        on this database's machine but some elsewhere (empty when unbound): `apply_database` builds those
        workloads with these records, and tuning treats them as untuned."""
        return dict(self._transferred)

    def applied(self, workload: LayerWorkload | str) -> tuple[BestRecord, list, list] | None:
        """(best record, its workload line, its record line) of what a build for this database's machine
        applies to `workload`: this machine's fastest, else another's (`transferred`); None when neither."""
        key = self._key(workload)
        rec = self._best.get(key)
        if rec is None or not rec.records:
            rec = self._transferred.get(key)
        if rec is None or not rec.records:
            return None
        widx = self._index[key]
        return rec, self._workloads[widx], self._per_machine[widx][rec.machine][1]

    def apply_database(self) -> Any:
        """The MetaSchedule database to build with (`relax.transform.MetaScheduleApplyDatabase`): unbound,
        the JSON database itself; bound to a machine, an in-memory one holding per workload the fastest
        record measured on that machine, else the fastest of another (`transferred`)."""
        if self.machine is None:
            return self.ms
        if self._apply is None:
            from tvm.s_tir import meta_schedule as ms

            mem = ms.database.MemoryDatabase(module_equality="structural")
            for h in {**self._transferred, **self.best_records()}:
                _, workload_line, record_line = self.applied(h)
                workload = mem.commit_workload(ms.database.Workload.from_json(workload_line).mod)
                mem.commit_tuning_record(ms.database.TuningRecord.from_json(record_line[1], workload))
            self._apply = mem
        return self._apply

    # -- MetaSchedule side -----------------------------------------------------------------------
    @property
    def ms(self) -> Any:
        """The `tvm.s_tir.meta_schedule.database.JSONDatabase` over the checked files."""
        if self._ms is None:
            from tvm.s_tir import meta_schedule as ms

            self._ms = ms.database.JSONDatabase(work_dir=str(self.path), module_equality="structural")
        return self._ms

    # -- queries ---------------------------------------------------------------------------------
    @staticmethod
    def _key(workload: LayerWorkload | str) -> str:
        key = workload if isinstance(workload, str) else workload.structural_hash
        if not key:
            raise ScheduleError("a LayerWorkload without a structural_hash cannot be looked up; "
                                "take workloads from extract_workloads")
        return key

    def lookup(self, workload: LayerWorkload | str) -> BestRecord | None:
        """The best working record of a workload (or its structural hash), None when it has none."""
        return self._best.get(self._key(workload))

    def is_tuned(self, workload: LayerWorkload | str) -> bool:
        rec = self.lookup(workload)
        return rec is not None and rec.records > 0

    def covered(self) -> list[str]:
        """Structural hashes of every workload with a working record."""
        return sorted(h for h, r in self._best.items() if r.records > 0)

    def best_records(self) -> dict[str, BestRecord]:
        """Structural hash -> best record, of every workload with a working record."""
        return {h: r for h, r in self._best.items() if r.records > 0}

    def record_counts(self) -> dict[str, BestRecord]:
        """Structural hash -> `BestRecord` of every workload with any record, working or failed (a workload
        whose records all failed has ``records == 0`` and ``run_ms == inf``)."""
        return dict(self._best)

    def unseen(self, workloads: Iterable[LayerWorkload]) -> list[LayerWorkload]:
        return [w for w in workloads if not self.is_tuned(w)]

    def coverage(self, mod_or_workloads: Any, target: Any = None) -> Coverage:
        """Coverage of a module (with `target`) or of a list of workloads: tasks and MACs (each
        weighted by how many times the module calls it) that have a working record."""
        if isinstance(mod_or_workloads, (list, tuple)):
            workloads = list(mod_or_workloads)
        else:
            if target is None:
                raise ScheduleError("coverage(mod, target): a module's tasks depend on the target")
            from schedules.frontend import extract_workloads

            workloads = extract_workloads(mod_or_workloads, target)
        done = [w for w in workloads if self.is_tuned(w)]
        return Coverage(len(done), len(workloads), sum(w.macs * w.count for w in done),
                        sum(w.macs * w.count for w in workloads),
                        tuple(w.name for w in workloads if not self.is_tuned(w)))

    def __len__(self) -> int:
        return self._n_records

    @property
    def n_workloads(self) -> int:
        return len(self._hashes)


@dataclass(frozen=True)
class _Damage:
    parsed: list[Any]        # the lines before the first damage, parsed
    offset: int              # byte offset where the damaged line starts
    line: int | None         # its 1-based line number; None when every line is good
    reason: str = ""
    torn: bool = False       # the damaged line is the last one and has no newline: a write cut short


def _first_damage(data: bytes, check: Callable[[Any], str | None]) -> _Damage:
    """The lines of a JSON-lines file checked one by one, up to the first damaged one."""
    lines = data.split(b"\n")
    ends_clean = data.endswith(b"\n") or not data
    if ends_clean:
        lines = lines[:-1]
    parsed: list[Any] = []
    offset = 0
    for i, raw in enumerate(lines):
        reason = None
        if raw.strip():
            try:
                obj = json.loads(raw)
                reason = check(obj)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                reason = f"not JSON ({exc.msg if hasattr(exc, 'msg') else exc})"
        else:
            reason = "empty line"
        if reason is not None:
            return _Damage(parsed, offset, i + 1, reason, i == len(lines) - 1 and not ends_clean)
        parsed.append(obj)
        offset += len(raw) + 1
    return _Damage(parsed, offset, None)


def _move_tail_aside(file: Path, data: bytes, offset: int, base: int = 0) -> Path:
    """Copy ``data[offset:]`` to a free ``<file>.damaged-<UTC time>`` and cut `file` at ``base + offset``
    (`data`: the file's bytes from `base` on)."""
    aside = file.with_name(f"{file.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    n = 0
    while aside.exists():
        n += 1
        aside = aside.with_name(aside.name.split("~")[0] + f"~{n}")
    aside.write_bytes(data[offset:])
    with open(file, "r+b") as fh:
        fh.truncate(base + offset)
    return aside


@dataclass(frozen=True)
class DatabaseFinding:
    """The verdict of `verify_database` on one file of a tuning database."""

    path: str
    ok: bool                       # every line parses and has the record layout
    detail: str                    # one line for a report (counts when ok, where and why when not)
    problem: str = ""              # why the first damaged line is damaged ("" when ok)
    line: int | None = None        # 1-based line of the first damage
    intact: int = 0                # lines before the damage (every line when ok)
    torn: bool = False             # the damage is a last line cut short
    repaired: bool = False         # the damaged tail was moved aside; the lines before it load
    moved_to: str | None = None    # where the damaged tail went


def _printable(text: object, limit: int = 200) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))[:limit]


def _finding(file: Path, damage: _Damage, what: str) -> DatabaseFinding:
    n = len(damage.parsed)
    if damage.line is None:
        return DatabaseFinding(str(file), True, f"{n} {what}", intact=n)
    problem = ("torn last line: " if damage.torn else "") + damage.reason
    return DatabaseFinding(str(file), False, f"line {damage.line}: {problem}; the {n} lines before it are intact",
                           problem=problem, line=damage.line, intact=n, torn=damage.torn)


def verify_database(path: str | Path, *, repair: bool = False) -> list[DatabaseFinding]:
    """Check the workload and record files of the database at `path` line by line: JSON, the record
    layout, records pointing at workloads the workload file lacks (counted up to its first damage).

    One finding per file that exists (the workload file always, when the database exists); an empty list
    when `path` holds no database. Nothing is written unless `repair`: then each damaged tail is moved
    aside (`TuningDatabase(path, repair=True)`) and the findings say where.
    """
    root = Path(path)
    files = [root / WORKLOAD_FILE, root / RECORD_FILE]
    if not root.is_dir() or not any(f.exists() for f in files):
        return []
    wdamage = _first_damage(files[0].read_bytes() if files[0].exists() else b"", _check_workload_line)
    findings = [_finding(files[0], wdamage, "workloads")]
    if files[1].exists():
        n = len(wdamage.parsed)
        findings.append(_finding(files[1], _first_damage(files[1].read_bytes(), lambda o: _check_record_line(o, n)),
                                 "tuning records"))
    if not repair or all(f.ok for f in findings):
        return findings
    try:
        db = TuningDatabase(root, repair=True)   # moves each damaged tail aside, keeps the lines before
    except (OSError, ValueError) as exc:
        return [f if f.ok else replace(f, detail=f"{f.detail}; repair failed: {_printable(exc)}") for f in findings]
    out = []
    for f in findings:
        moved = db.moved_aside.get(f.path)
        if not f.ok or moved:
            f = replace(f, repaired=True, moved_to=moved,
                        detail=f"{f.detail}; tail moved aside, {len(db)} records of {db.n_workloads} workloads load")
        out.append(f)
    return out


def seed_database(source: Path | str, dest: Path | str) -> bool:
    """Copy the pretuned database `source` into `dest` when `dest` holds no records yet (a fresh cache);
    True when it copied. The JSON files, the pretune state files and the space-task files beside them are
    copied whole, each through a temporary name, so a kill leaves no half file and the committed source
    is never appended to (the search appends to the copy). A `source` that is not a database is refused."""
    import shutil

    src, dst = Path(source), Path(dest)
    if not all((src / name).is_file() for name in (WORKLOAD_FILE, RECORD_FILE)):
        raise ScheduleError(f"{src}: not a tuning database (no {WORKLOAD_FILE} / {RECORD_FILE})")
    if (dst / RECORD_FILE).exists() and (dst / RECORD_FILE).stat().st_size > 0:
        return False
    extra = [p for p in src.glob("pretune-state*.json")] + [p for p in src.glob("space-tasks/*.json")]
    # the record file last: its presence is what says "seeded"
    for path in [*extra, src / WORKLOAD_FILE, src / RECORD_FILE]:
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    return True
