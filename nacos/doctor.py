"""`nacos doctor`: check every file a run directory depends on, and repair what can be repaired.

What is checked (each file gets one `FileCheck`: ok / damaged / missing / unsafe, or repaired):

- the run-directory marker and ``config.json`` (JSON, and a configuration this nacos accepts);
- the SQLite results store: ``PRAGMA integrity_check``, every row's checksum, its metrics and genome
  JSON, and that the ONNX artifact of every ``ok`` row exists and passes ``onnx.checker``;
- the MetaSchedule JSON tuning database it uses (``tuning.database`` of the config, resolved as the
  search resolves it: relative to the current directory; or ``database=``), and any such database
  inside the run directory: every line parses and has the record layout, the first damaged line named;
- cost models under ``costmodels/``: meta.json and the XGBoost JSON boosters parse, and the model loads
  with its kind, feature version, feature names and training digest checked (`costmodels.persist`);
- the supernet checkpoint of the config and any ``*.pt`` in the run directory, read with
  ``torch.load(weights_only=True)``; pickle files (``*.pkl``, ``*.pickle``, ``*.joblib``) are reported
  as unsafe and never opened.

Nothing is written unless ``repair=True``. Repairs never delete: a damaged tail of a JSON-lines file
goes to ``<file>.damaged-<UTC time>`` (the lines before it stay and load); a damaged results store is
moved aside whole and a new one is rebuilt from the rows before the first damaged row (rows are
copied with Python's sqlite3, as sqlite3's ``.recover`` would; rows after the damage stay in the
moved-aside copy, because the search replays rows in sequence order); a damaged cost-model directory
is moved aside (the screen retrains it from the store); a damaged artifact is moved aside. A damaged
``config.json``, marker or checkpoint is not repairable: the message says what to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from nacos.store import SCHEMA_VERSION, ResultsStore, RunDir, RunDirError, StoreError

__all__ = ["DoctorReport", "FileCheck", "diagnose", "format_report"]

OK, DAMAGED, MISSING, UNSAFE, REPAIRED = "ok", "damaged", "missing", "unsafe", "repaired"
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
#: an artifact directory name taken from the store: a plain name, never a path
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass
class FileCheck:
    """The verdict on one file. `problem` says whether it makes the run directory unhealthy."""

    kind: str                     # marker, config, store, artifact, tuning-db, costmodel, checkpoint, pickle
    path: str
    status: str                   # ok, damaged, missing, unsafe, repaired
    detail: str = ""
    line: int | None = None       # 1-based line (JSON-lines and JSON files) or row (the store)
    problem: bool = False
    repaired_to: str | None = None   # where the damaged part was moved

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DoctorReport:
    run_dir: str
    repair: bool
    checks: list[FileCheck] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not any(c.problem for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "repair": self.repair, "healthy": self.healthy,
                "checks": [c.to_dict() for c in self.checks]}


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _aside(path: Path) -> Path:
    """A free ``<path>.damaged-<UTC time>`` name (``~N`` appended when taken)."""
    base = path.with_name(f"{path.name}.damaged-{_stamp()}")
    out, n = base, 0
    while out.exists() or Path(f"{out}-wal").exists():
        n += 1
        out = base.with_name(f"{base.name}~{n}")
    return out


def _inside(root: Path, path: Path) -> bool:
    """Whether `path`, symbolic links followed, lies inside `root` (a repair never moves a file elsewhere)."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _printable(text: object, limit: int = 200) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))[:limit]


# ---------------------------------------------------------------------------------------------------
# config.json and the marker
# ---------------------------------------------------------------------------------------------------
def _check_config(run: RunDir, needed: bool) -> tuple[FileCheck, Any]:
    from nacos.config import ConfigError, config_from_dict

    path = run.config_path
    if not path.exists():
        return FileCheck("config", str(path), MISSING, "no config.json" + (
            " but the run has a results store: restore it, or start a new run directory" if needed else
            " (the search was never started)"), problem=needed), None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return FileCheck("config", str(path), DAMAGED, f"not JSON ({exc.msg}, column {exc.colno}); not repairable: "
                         "restore it from the command that started the run", line=exc.lineno, problem=True), None
    except (OSError, UnicodeDecodeError) as exc:
        return FileCheck("config", str(path), DAMAGED, f"unreadable ({_printable(exc)})", problem=True), None
    try:
        cfg = config_from_dict(data)
    except ConfigError as exc:
        return FileCheck("config", str(path), DAMAGED, f"not a configuration of this nacos ({_printable(exc, 300)}); "
                         "not repairable", problem=True), None
    return FileCheck("config", str(path), OK), cfg


# ---------------------------------------------------------------------------------------------------
# The results store
# ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _store_lock(store_path: Path):
    """The store's writer lock (the one `ResultsStore` takes): no repair while a search runs."""
    lock_path = store_path.with_name(store_path.name + ".lock")
    fh = open(lock_path, "a+")  # noqa: SIM115
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{store_path}: a search is writing this store; stop it before --repair") from None
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


def _first_bad_row(store: ResultsStore) -> tuple[int | None, str]:
    """(seq of the first row whose checksum, metrics or genome is damaged, why), or (None, '')."""
    for row in store._query(f"SELECT {', '.join(ResultsStore._COLUMNS)} FROM candidates ORDER BY seq"):
        try:
            record = store._record(row)
            json.loads(record.genome)
        except StoreError as exc:
            return int(row[0]), _printable(exc, 300)
        except (json.JSONDecodeError, TypeError) as exc:
            return int(row[0]), f"row {row[0]}: genome is not valid JSON ({_printable(exc)})"
    return None, ""


def _row_from_error(message: str) -> int | None:
    found = re.search(r"row (\d+)", message)
    return int(found.group(1)) if found else None


def _check_store(run: RunDir, repair: bool, checks: list[FileCheck]) -> ResultsStore | None:
    """Check (and with `repair`, rebuild) the store; returns it opened read-only when it is usable."""
    path = run.store_path
    if not path.exists():
        checks.append(FileCheck("store", str(path), MISSING, "no results store (no candidate evaluated yet)"))
        return None
    problem = ""
    store = None
    try:
        store = ResultsStore(path, readonly=True)   # header, integrity_check, schema version, checksums
        bad, why = _first_bad_row(store)
        if bad is not None:
            problem = why
    except StoreError as exc:
        problem = _printable(exc, 400)
    if not problem:
        checks.append(FileCheck("store", str(path), OK, f"{store.n_completed()} final rows"))
        return store
    if store is not None:
        store.close()
    line = _row_from_error(problem)
    if not repair:
        checks.append(FileCheck("store", str(path), DAMAGED, problem, line=line, problem=True))
        return None
    try:
        kept, aside = _recover_store(path)
    except StoreError as exc:
        checks.append(FileCheck("store", str(path), DAMAGED, f"{problem}; not repairable: {_printable(exc, 300)}",
                                line=line, problem=True))
        return None
    checks.append(FileCheck("store", str(path), REPAIRED, f"{problem}; moved aside, {kept} rows before the "
                            f"damage copied into a new store", line=line, repaired_to=str(aside)))
    return ResultsStore(path, readonly=True)


def _pad_to_declared_size(path: Path) -> None:
    """A store cut short (a truncated copy) is read by SQLite as malformed from its first page on;
    padded with zero pages to the size its header declares, the pages before the cut read again."""
    with open(path, "r+b") as fh:
        head = fh.read(100)
        if len(head) < 100:
            return
        page_size = int.from_bytes(head[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        declared = int.from_bytes(head[28:32], "big")
        size = fh.seek(0, os.SEEK_END)
        if page_size >= 512 and declared * page_size > size and declared < 1 << 22:
            fh.write(bytes(declared * page_size - size))


def _read_rows(path: Path) -> tuple[list[tuple], list[tuple[str, str]], bool]:
    """Rows of a damaged store, in seq order, up to the first that cannot be read or fails its checksum;
    and whether the table was read to its end."""
    from nacos.store import _checksum

    conn = sqlite3.connect(str(path), isolation_level=None)
    rows: list[tuple] = []
    meta: list[tuple[str, str]] = []
    complete = False
    try:
        with contextlib.suppress(sqlite3.DatabaseError):
            meta = [(str(k), str(v)) for k, v in conn.execute("SELECT key, value FROM meta")]
        version = dict(meta).get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise StoreError(f"the schema version cannot be read from the damaged file (got {version!r})")
        try:
            cursor = conn.execute(f"SELECT {', '.join(ResultsStore._COLUMNS)} FROM candidates ORDER BY seq")
            for row in cursor:
                seq, gid, genome, status, reason, metrics = row[:6]
                if seq != len(rows) + 1:
                    break  # a gap: the search replays rows in order, keep the contiguous prefix
                try:
                    good = row[-1] == _checksum(seq, gid, genome, status, reason, metrics)
                except (TypeError, ValueError):
                    good = False
                if not good:
                    break
                rows.append(row)
            else:
                complete = True
        except sqlite3.DatabaseError:
            pass  # damage met while scanning: keep the rows read before it
    finally:
        conn.close()
    return rows, meta, complete


def _recover_store(path: Path) -> tuple[int, Path]:
    """Move the damaged store aside and rebuild it from its rows before the damage: (rows kept, aside)."""
    with _store_lock(path):
        work = path.parent / f".doctor-{os.getpid()}"
        work.mkdir(exist_ok=True)
        try:
            # Step 1. Read from a copy (the original and its WAL stay untouched until the swap).
            copy = work / "damaged.sqlite"
            shutil.copy2(path, copy)
            if Path(f"{path}-wal").exists():
                shutil.copy2(f"{path}-wal", f"{copy}-wal")
            _pad_to_declared_size(copy)
            try:
                rows, meta, complete = _read_rows(copy)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"no table could be read ({_printable(exc)}); move it aside to start afresh") from exc
            if not rows and not complete:
                raise StoreError("no row before the damage could be read; move it aside to start afresh")
            # Step 2. A new store with the same meta and the rows before the damage.
            fresh = work / "recovered.sqlite"
            with ResultsStore(fresh) as new:
                with new._transaction():
                    new._conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta)
                    new._conn.executemany(
                        f"INSERT INTO candidates ({', '.join(ResultsStore._COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(ResultsStore._COLUMNS))})", rows)
            # Step 3. Swap: the damaged file (and its WAL / SHM) renamed aside, the new one in place.
            aside = _aside(path)
            os.replace(path, aside)
            for suffix in ("-wal", "-shm"):
                if Path(f"{path}{suffix}").exists():
                    os.replace(f"{path}{suffix}", f"{aside}{suffix}")
            os.replace(fresh, path)
        finally:
            shutil.rmtree(work, ignore_errors=True)   # only the copies made above
    return len(rows), aside


def _check_artifacts(run: RunDir, store: ResultsStore, repair: bool, checks: list[FileCheck]) -> None:
    import onnx

    try:
        records = store.completed()
    except StoreError as exc:  # damage met after the open (should not happen: the open read every row)
        checks.append(FileCheck("store", str(store.path), DAMAGED, _printable(exc, 300), problem=True))
        return
    n_ok = 0
    for record in records:
        if record.status != "ok":
            continue
        name = record.metrics.get("arch_id", record.id) if isinstance(record.metrics, dict) else record.id
        if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
            checks.append(FileCheck("artifact", str(run.artifacts_dir), DAMAGED,
                                    f"row {record.seq} names artifact {_printable(name, 60)!r}, not a plain name "
                                    "inside artifacts/: refused", line=record.seq, problem=True))
            continue
        path = run.artifacts_dir / name / "model.onnx"
        if not _inside(run.root, path):
            checks.append(FileCheck("artifact", str(path), DAMAGED, f"row {record.seq}: the artifact is a link to "
                                    f"{path.resolve()}, outside the run directory: refused", line=record.seq,
                                    problem=True))
            continue
        if not path.is_file():
            checks.append(FileCheck("artifact", str(path), MISSING, f"the ONNX export of row {record.seq} is missing",
                                    line=record.seq, problem=True))
            continue
        try:
            onnx.checker.check_model(str(path))
        except Exception as exc:  # onnx raises several types (ValidationError, DecodeError, ...)
            first_line = str(exc).splitlines()[0] if str(exc) else exc
            why = f"row {record.seq}: not a valid ONNX model ({_printable(first_line)})"
            if repair:
                aside = _aside(path)
                os.replace(path, aside)
                checks.append(FileCheck("artifact", str(path), REPAIRED, why + "; moved aside (the report skips "
                                        "its layer table)", line=record.seq, repaired_to=str(aside)))
            else:
                checks.append(FileCheck("artifact", str(path), DAMAGED, why, line=record.seq, problem=True))
            continue
        n_ok += 1
    if n_ok:
        checks.append(FileCheck("artifact", str(run.artifacts_dir), OK, f"{n_ok} ONNX artifacts of ok rows"))


# ---------------------------------------------------------------------------------------------------
# The tuning database (MetaSchedule JSON lines)
# ---------------------------------------------------------------------------------------------------
def _scan_lines(file: Path, check: Callable[[Any], str | None]) -> tuple[list[Any], int | None, str]:
    """Read-only twin of `TuningDatabase._scan`: (good lines, 1-based line of the first damage, why)."""
    data = file.read_bytes()
    ends_clean = data.endswith(b"\n") or not data
    lines = data.split(b"\n")
    if ends_clean:
        lines = lines[:-1]
    parsed: list[Any] = []
    for i, raw in enumerate(lines):
        if not raw.strip():
            return parsed, i + 1, "empty line"
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            torn = i == len(lines) - 1 and not ends_clean
            return parsed, i + 1, ("torn last line: " if torn else "") + f"not JSON ({getattr(exc, 'msg', exc)})"
        reason = check(obj)
        if reason is not None:
            return parsed, i + 1, reason
        parsed.append(obj)
    return parsed, None, ""


def _check_tuning_db(db_dir: Path, repair: bool, checks: list[FileCheck], origin: str) -> None:
    from schedules.database import (
        RECORD_FILE,
        WORKLOAD_FILE,
        TuningDatabase,
        _check_record_line,
        _check_workload_line,
    )

    files = [db_dir / WORKLOAD_FILE, db_dir / RECORD_FILE]
    if not db_dir.is_dir() or not any(f.exists() for f in files):
        checks.append(FileCheck("tuning-db", str(db_dir), MISSING, f"no tuning database yet ({origin})"))
        return
    found: list[FileCheck] = []
    workloads, wline, wwhy = _scan_lines(files[0], _check_workload_line) if files[0].exists() else ([], None, "")
    found.append(FileCheck("tuning-db", str(files[0]), OK if wline is None else DAMAGED,
                           f"{len(workloads)} workloads" if wline is None else
                           f"line {wline}: {wwhy}; the {len(workloads)} lines before it are intact",
                           line=wline, problem=wline is not None))
    if files[1].exists():
        n = len(workloads)
        records, rline, rwhy = _scan_lines(files[1], lambda o: _check_record_line(o, n))
        found.append(FileCheck("tuning-db", str(files[1]), OK if rline is None else DAMAGED,
                               f"{len(records)} tuning records" if rline is None else
                               f"line {rline}: {rwhy}; the {len(records)} lines before it are intact",
                               line=rline, problem=rline is not None))
    if repair and any(c.problem for c in found):
        try:
            db = TuningDatabase(db_dir, repair=True)   # moves each damaged tail aside, keeps the lines before
        except (OSError, ValueError) as exc:
            for c in found:
                if c.problem:
                    c.detail += f"; repair failed: {_printable(exc)}"
        else:
            for c in found:
                moved = [r for r in db.repairs if r.startswith(f"{c.path},")]
                if c.problem or moved:
                    target = re.search(r"moved to (\S+),", moved[0]) if moved else None
                    c.status, c.problem = REPAIRED, False
                    c.repaired_to = target.group(1) if target else None
                    c.detail += f"; tail moved aside, {len(db)} records of {db.n_workloads} workloads load"
    checks.extend(found)


# ---------------------------------------------------------------------------------------------------
# Cost models and checkpoints
# ---------------------------------------------------------------------------------------------------
def _json_error(path: Path) -> tuple[int | None, str] | None:
    try:
        json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        return exc.lineno, f"{path.name}: not JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
    except UnicodeDecodeError as exc:
        return None, f"{path.name}: not UTF-8 text ({exc.reason})"
    return None


def _check_costmodel(model_dir: Path, repair: bool, checks: list[FileCheck]) -> None:
    from costmodels.arch_latency import ArchLatencyModel
    from costmodels.errors import CostModelError
    from costmodels.ranker import ScheduleRanker

    kinds = {"ArchLatencyModel": ArchLatencyModel, "ScheduleRanker": ScheduleRanker}
    meta_path = model_dir / "meta.json"
    why: str | None = None
    line: int | None = None
    err = _json_error(meta_path)
    if err:
        line, why = err
    else:
        meta = json.loads(meta_path.read_text())
        cls = kinds.get(meta.get("kind")) if isinstance(meta, dict) else None
        if cls is None:
            why = f"meta.json: unknown cost-model kind {meta.get('kind') if isinstance(meta, dict) else meta!r}"
        else:
            names = meta.get("boosters", [])
            for name in names if isinstance(names, list) else []:
                if (isinstance(name, str) and name.endswith(".json") and "/" not in name
                        and (model_dir / name).is_file()):
                    err = _json_error(model_dir / name)
                    if err:
                        line, why = err
                        break
            if why is None:
                try:
                    cls.load(model_dir)   # kind, versions, feature names, boosters, training digest
                except (CostModelError, KeyError, TypeError, ValueError) as exc:
                    why = _printable(exc, 300)
    if why is None:
        checks.append(FileCheck("costmodel", str(model_dir), OK, "meta, boosters, features and digest check"))
        return
    if repair:
        aside = _aside(model_dir)
        os.replace(model_dir, aside)
        checks.append(FileCheck("costmodel", str(model_dir), REPAIRED, f"{why}; the model moved aside (the search "
                                "retrains it from the results store)", line=line, repaired_to=str(aside)))
    else:
        checks.append(FileCheck("costmodel", str(model_dir), DAMAGED, why, line=line, problem=True))


def _check_checkpoint(path: Path, checks: list[FileCheck], named_by: str) -> None:
    from archspace.errors import CheckpointError
    from archspace.training import load_supernet

    if not path.exists():
        checks.append(FileCheck("checkpoint", str(path), MISSING, f"named by {named_by}", problem=True))
        return
    try:
        load_supernet(path)   # torch.load(weights_only=True): a pickled object is refused, never run
    except (CheckpointError, KeyError, TypeError, ValueError) as exc:
        checks.append(FileCheck("checkpoint", str(path), DAMAGED, f"{_printable(exc, 300)}; not repairable: "
                                "retrain (nacos train-supernet) or restore it", problem=True))
        return
    checks.append(FileCheck("checkpoint", str(path), OK, f"named by {named_by}"))


# ---------------------------------------------------------------------------------------------------
# The whole run directory
# ---------------------------------------------------------------------------------------------------
def diagnose(run_dir: str | Path, *, repair: bool = False, database: str | Path | None = None) -> DoctorReport:
    """Check (and with `repair`, repair) the run directory at `run_dir`.

    Raises `RunDirError` (a user error: exit 2) when `run_dir` is not a nacos run directory at all.
    `database`: the tuning database to check instead of the config's ``tuning.database``.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise RunDirError(f"{root}: no such run directory")
    run = RunDir(root)
    if not run.marker_path.exists():
        raise RunDirError(f"{root}: not a nacos run directory (no {RunDir.MARKER})")
    report = DoctorReport(str(root), repair)
    checks = report.checks
    try:
        run._read_marker()
        checks.append(FileCheck("marker", str(run.marker_path), OK))
    except RunDirError as exc:
        checks.append(FileCheck("marker", str(run.marker_path), DAMAGED, f"{exc}; not repairable", problem=True))

    cfg_check, cfg = _check_config(run, needed=run.store_path.exists())
    checks.append(cfg_check)

    store = _check_store(run, repair, checks)
    if store is not None:
        try:
            _check_artifacts(run, store, repair, checks)
        finally:
            store.close()

    # Tuning databases: the config's (or the one named), and any inside the run directory.
    db_dirs: dict[Path, str] = {}
    if database is not None:
        db_dirs[Path(database)] = "named with --database"
    elif cfg is not None and cfg.mode != "baseline":
        db_dirs[Path(cfg.tuning.database)] = "tuning.database of config.json, relative to the current directory"
    for f in sorted(root.rglob("database_*.json")):
        if f.name in ("database_workload.json", "database_tuning_record.json"):
            db_dirs.setdefault(f.parent, "inside the run directory")
    for db_dir, origin in db_dirs.items():
        _check_tuning_db(db_dir, repair, checks, origin)

    if run.costmodel_dir.is_dir():
        for meta in sorted(run.costmodel_dir.rglob("meta.json")):
            if ".damaged-" in str(meta.parent):
                continue
            if not _inside(run.root, meta):
                checks.append(FileCheck("costmodel", str(meta.parent), DAMAGED, f"a link to {meta.parent.resolve()}, "
                                        "outside the run directory: refused", problem=True))
                continue
            _check_costmodel(meta.parent, repair, checks)

    if cfg is not None:
        from archspace.training import default_checkpoint_path

        ckpt = default_checkpoint_path() if cfg.checkpoint == "default" else Path(cfg.checkpoint)
        _check_checkpoint(ckpt, checks, "checkpoint of config.json")
    for pt in sorted(root.rglob("*.pt")):
        if _inside(root, pt):
            _check_checkpoint(pt, checks, "found in the run directory")
    for suffix in _PICKLE_SUFFIXES:
        for f in sorted(root.rglob(f"*{suffix}")):
            checks.append(FileCheck("pickle", str(f), UNSAFE, "a pickle file in the run directory: nacos writes none "
                                    "and never loads one (unpickling runs arbitrary code); remove it if unknown",
                                    problem=True))
    return report


def format_report(report: DoctorReport) -> str:
    """The per-file table of `nacos doctor`."""
    lines = [f"run directory {report.run_dir}"]
    for c in report.checks:
        where = f" (line {c.line})" if c.line is not None and c.kind != "store" else (
            f" (row {c.line})" if c.line is not None else "")
        lines.append(f"  {c.status:<8} {c.kind:<10} {c.path}{where}" + (f": {c.detail}" if c.detail else ""))
        if c.repaired_to:
            lines.append(f"           damaged part kept in {c.repaired_to}")
    verdict = "healthy" if report.healthy else (
        "damage found" + ("" if report.repair else "; rerun with --repair to move damaged parts aside"))
    lines.append(verdict)
    return "\n".join(lines)

