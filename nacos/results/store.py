"""The results store of a run (SQLite) and the layout of a run directory.

One row per candidate, keyed by a sequence number in the order the strategy proposed it. A row goes
through ``pending`` (proposed) -> ``running`` (being evaluated) -> ``ok`` | ``failed`` | ``rejected``
(final). Each change is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) on a database in WAL mode
with ``synchronous=FULL``, so a committed row survives a ``kill -9`` or a power cut, and a candidate
counts (is told to the strategy) only once its final row is committed. A crash leaves at most the rows
that were ``running`` unfinished; `requeue` turns them back into ``pending`` and the search evaluates
them again under the same sequence number: nothing committed is lost, nothing is counted twice.

Every metric is kept as JSON, and the usual ones are copied into columns (`KEY_COLUMNS`) for SQL.
A schema version is checked on open; a damaged file, a file that is not SQLite, or a store of another
version is refused with a `StoreError` that names the file. SQLite's own check finds damage to the
file's structure but not to the bytes of a row, so each row also carries a checksum of its content
(sequence number, id, genome, status, reason, metrics), verified on open and on every read. One process at a
time may write a store (an advisory lock on ``<store>.lock``, released by the kernel even on ``kill -9``).

`verify_store(path)` checks a store file without changing it (the checks of the open, then every row's
metrics and genome JSON) and returns a `StoreFinding`; with ``repair=True`` a damaged store is moved aside
whole and rebuilt from its rows before the first damaged one (``nacos doctor`` reports through it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from nacos.errors import NacosError
from nacos_base.records import Status

__all__ = [
    "FINAL_STATUSES",
    "KEY_COLUMNS",
    "SCHEMA_VERSION",
    "UNFINISHED_STATUSES",
    "CandidateRecord",
    "ResultsStore",
    "RunDir",
    "RunDirError",
    "StoreError",
    "StoreFinding",
    "StoreLockedError",
    "aside_path",
    "atomic_write_text",
    "verify_store",
]

SCHEMA_VERSION = 1
FINAL_STATUSES = (Status.OK, Status.FAILED, Status.REJECTED)
UNFINISHED_STATUSES = (Status.PENDING, Status.RUNNING)
#: metrics copied into their own REAL columns (all metrics stay in the JSON column)
KEY_COLUMNS = ("accuracy", "latency_ms", "peak_memory_mb", "params", "energy_mj")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_APPLICATION_ID = 0x6E61636F  # "naco": marks the SQLite file as a nacos store

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE candidates (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    genome       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'ok', 'failed', 'rejected')),
    reason       TEXT NOT NULL DEFAULT '',
    metrics      TEXT NOT NULL DEFAULT '{{}}',
    {", ".join(f"{c} REAL" for c in KEY_COLUMNS)},
    attempts     INTEGER NOT NULL DEFAULT 0,
    seconds      REAL,
    created_at   REAL NOT NULL,
    started_at   REAL,
    finished_at  REAL,
    checksum     TEXT NOT NULL
);
CREATE INDEX candidates_status ON candidates (status);
"""


class StoreError(NacosError):
    """A results store that cannot be used: damaged, foreign, of another schema version, or misused."""


class StoreLockedError(StoreError):
    """Another process is writing this store (a second search on the same run directory)."""


class RunDirError(NacosError):
    """A run directory that cannot be used: a file, a foreign directory, or not a run directory at all."""


@dataclass(frozen=True)
class CandidateRecord:
    """One row of the store, immutable (like Optuna's `FrozenTrial`). `genome` is the genome's JSON."""

    seq: int
    id: str
    genome: str
    status: Status
    reason: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    attempts: int = 0
    seconds: float | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "id": self.id, "genome": json.loads(self.genome), "status": self.status,
                "reason": self.reason, "metrics": dict(self.metrics), "attempts": self.attempts,
                "seconds": self.seconds, "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at}


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy scalars and arrays
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return str(obj)


def _checksum(seq: int, genome_id: str, genome: str, status: str, reason: str, metrics: str) -> str:
    text = json.dumps([seq, genome_id, genome, status, reason, metrics], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]


def _key_value(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = value.item()  # numpy scalar
        except AttributeError:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
    value = float(value)
    return value if math.isfinite(value) else None


class ResultsStore:
    """The SQLite results store of one run. Use as a context manager, or `close()` when done.

    `readonly=True` opens for reading only (reports, tests watching a running search): no lock, no
    writes. A writer holds an exclusive advisory lock for its whole life.
    """

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock_fh: Any = None
        self._conn: Any = None
        exists = self.path.exists()
        if not exists and (readonly or not create):
            raise StoreError(f"{self.path}: results store not found")
        if exists:
            self._check_header()
        try:
            if not readonly:
                self._take_lock()
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"{self.path}: cannot switch the store to WAL mode (got {mode!r})")
                self._conn.execute("PRAGMA synchronous = FULL")
            self._open_schema(create=create and not readonly)
        except sqlite3.DatabaseError as exc:
            self.close()
            detail = "".join(ch if ch.isprintable() else "?" for ch in str(exc))[:120]
            raise StoreError(f"{self.path}: damaged or not a nacos results store ({detail}); "
                             f"move it aside to start afresh") from exc
        except BaseException:
            self.close()
            raise

    # -- opening ------------------------------------------------------------------------------------
    def _check_header(self) -> None:
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a directory, not a results store")
        with open(self.path, "rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
        if head and head != _SQLITE_MAGIC:
            raise StoreError(f"{self.path}: not an SQLite database (bad header); not a nacos results store")

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(lock_path, "a+")  # noqa: SIM115  (held, and closed, by close())
        try:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            self._lock_fh = None
            raise StoreLockedError(f"{self.path}: another process is writing this results store "
                                   f"(is a search already running on this run directory?)") from None
        self._lock_fh.seek(0)
        self._lock_fh.truncate()
        self._lock_fh.write(f"{os.getpid()}\n")
        self._lock_fh.flush()

    def _open_schema(self, create: bool) -> None:
        # Step 1. Integrity: a truncated or corrupted file fails here, before any row is trusted.
        problems = [r[0] for r in self._conn.execute("PRAGMA integrity_check").fetchall()]
        if problems != ["ok"]:
            detail = "; ".join(" ".join(str(p).split()) for p in problems[:2])
            raise StoreError(f"{self.path}: the results store is damaged ({detail}); move it aside "
                             f"(rows before the damage may be recoverable with sqlite3's .recover)")
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        # Step 2. A new (empty) database gets the schema in one transaction.
        if not tables:
            if not create:
                raise StoreError(f"{self.path}: empty file, not a nacos results store")
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                self._conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                       [("schema_version", str(SCHEMA_VERSION)),
                                        ("created_at", repr(time.time()))])
            return
        # Step 3. An existing one must be ours, and of this schema version.
        app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
        if "meta" not in tables or "candidates" not in tables or app_id != _APPLICATION_ID:
            raise StoreError(f"{self.path}: an SQLite database but not a nacos results store "
                             f"(tables {sorted(tables)})")
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = row[0] if row else None
        if version != str(SCHEMA_VERSION):
            raise StoreError(f"{self.path}: results store of schema version {version}, this nacos reads "
                             f"version {SCHEMA_VERSION}; use the nacos that wrote it, or start a new run directory")
        # Step 4. Row content: every checksum must match.
        self.verify()

    # -- plumbing -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction; committed durably on exit, rolled back on an exception."""
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is closed")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
                self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> ResultsStore:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is closed")
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            detail = "".join(ch if ch.isprintable() else "?" for ch in str(exc))[:120]
            raise StoreError(f"{self.path}: the results store is damaged ({detail}); move it aside "
                             f"(rows before the damage may be recoverable with sqlite3's .recover)") from exc

    # -- metadata -----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        """A JSON value stored under `key` (None when absent)."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        if not rows:
            return None
        try:
            return json.loads(rows[0][0])
        except json.JSONDecodeError:
            return rows[0][0]

    def set_meta(self, key: str, value: Any) -> None:
        with self._transaction():
            self._conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                               "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                               (key, json.dumps(value, sort_keys=True, default=_json_default)))

    # -- rows ---------------------------------------------------------------------------------------
    _COLUMNS = ("seq", "id", "genome", "status", "reason", "metrics", "attempts", "seconds", "created_at",
                "started_at", "finished_at", "checksum")

    def verify(self) -> int:
        """Check every row's checksum; raise `StoreError` naming the file and the first damaged row."""
        n = 0
        for seq, gid, genome, status, reason, metrics, checksum in self._query(
                "SELECT seq, id, genome, status, reason, metrics, checksum FROM candidates ORDER BY seq"):
            self._check_row(seq, gid, genome, status, reason, metrics, checksum)
            n += 1
        return n

    def _check_row(self, seq: Any, gid: Any, genome: Any, status: Any, reason: Any, metrics: Any,
                   checksum: Any) -> None:
        try:
            ok = checksum == _checksum(seq, gid, genome, status, reason, metrics)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise StoreError(f"{self.path}: row {seq} of the results store is damaged (checksum mismatch); "
                             f"the rows before it are intact; move the file aside to start afresh")

    def _record(self, row: tuple) -> CandidateRecord:
        values = dict(zip(self._COLUMNS, row))
        self._check_row(values["seq"], values["id"], values["genome"], values["status"], values["reason"],
                        values["metrics"], values.pop("checksum"))
        try:
            values["metrics"] = json.loads(values["metrics"])
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: row {values['seq']}: metrics are not valid JSON ({exc})") from exc
        try:
            values["status"] = Status(values["status"])
        except ValueError:
            raise StoreError(f"{self.path}: row {values['seq']}: unknown status {values['status']!r}") from None
        return CandidateRecord(**values)

    def records(self, statuses: Sequence[str] | None = None) -> list[CandidateRecord]:
        """Rows in sequence order, optionally only those with one of `statuses`."""
        sql = f"SELECT {', '.join(self._COLUMNS)} FROM candidates"
        params: tuple = ()
        if statuses is not None:
            sql += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            params = tuple(statuses)
        return [self._record(r) for r in self._query(sql + " ORDER BY seq", params)]

    def completed(self) -> list[CandidateRecord]:
        """Final rows (ok, failed, rejected): the candidates that count."""
        return self.records(FINAL_STATUSES)

    def unfinished(self) -> list[CandidateRecord]:
        return self.records(UNFINISHED_STATUSES)

    def get(self, seq: int) -> CandidateRecord | None:
        rows = self._query(f"SELECT {', '.join(self._COLUMNS)} FROM candidates WHERE seq = ?", (seq,))
        return self._record(rows[0]) if rows else None

    def find(self, genome_id: str) -> CandidateRecord | None:
        rows = self._query(f"SELECT {', '.join(self._COLUMNS)} FROM candidates WHERE id = ?", (genome_id,))
        return self._record(rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in (*UNFINISHED_STATUSES, *FINAL_STATUSES)}
        for status, n in self._query("SELECT status, COUNT(*) FROM candidates GROUP BY status"):
            out[status] = n
        return out

    def n_completed(self) -> int:
        marks = ", ".join("?" * len(FINAL_STATUSES))
        return int(self._query(f"SELECT COUNT(*) FROM candidates WHERE status IN ({marks})", FINAL_STATUSES)[0][0])

    # -- the life of a row --------------------------------------------------------------------------
    def add(self, genome_id: str, genome_json: str, status: str = "running") -> int:
        """A proposed candidate (``pending``, or ``running`` when evaluation starts at once): its seq."""
        if status not in UNFINISHED_STATUSES:
            raise StoreError(f"add: status must be one of {UNFINISHED_STATUSES}, got {status!r}")
        now = time.time()
        with self._transaction():
            clash = self._conn.execute("SELECT seq FROM candidates WHERE id = ?", (genome_id,)).fetchone()
            if clash:
                raise StoreError(f"{self.path}: candidate {genome_id} is already in the store (seq {clash[0]})")
            seq = int(self._conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM candidates").fetchone()[0])
            self._conn.execute(
                "INSERT INTO candidates (seq, id, genome, status, attempts, created_at, started_at, checksum) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, genome_id, genome_json, status, 1 if status == "running" else 0, now,
                 now if status == "running" else None, _checksum(seq, genome_id, genome_json, status, "", "{}")))
            return seq

    def start(self, seq: int) -> None:
        """``pending`` -> ``running`` (one more attempt)."""
        with self._transaction():
            self._set_status(seq, "pending", "running")

    def finish(self, seq: int, status: str, metrics: Mapping[str, Any] | None = None, reason: str = "",
               seconds: float | None = None) -> CandidateRecord:
        """The final state of a row, committed: from here on the candidate counts."""
        if status not in FINAL_STATUSES:
            raise StoreError(f"finish: status must be one of {FINAL_STATUSES}, got {status!r}")
        metrics = dict(metrics or {})
        text = json.dumps(metrics, sort_keys=True, default=_json_default)
        keys = [_key_value(metrics.get(c)) for c in KEY_COLUMNS]
        reason = str(reason or "")
        with self._transaction():
            row = self._conn.execute("SELECT id, genome FROM candidates WHERE seq = ? AND status IN "
                                     "('pending', 'running')", (seq,)).fetchone()
            if row is None:
                raise StoreError(f"{self.path}: row {seq} is not unfinished; a candidate is committed once")
            self._conn.execute(
                f"UPDATE candidates SET status = ?, reason = ?, metrics = ?, "
                f"{', '.join(f'{c} = ?' for c in KEY_COLUMNS)}, seconds = ?, finished_at = ?, checksum = ? "
                f"WHERE seq = ?",
                (status, reason, text, *keys, seconds, time.time(),
                 _checksum(seq, row[0], row[1], status, reason, text), seq))
        record = self.get(seq)
        assert record is not None
        return record

    def requeue(self) -> int:
        """After a crash: rows left ``running`` go back to ``pending`` (evaluated again, same seq)."""
        with self._transaction():
            running = [r[0] for r in self._conn.execute("SELECT seq FROM candidates WHERE status = 'running'")]
            for seq in running:
                self._set_status(seq, "running", "pending")
            return len(running)

    def _set_status(self, seq: int, old: str, new: str) -> None:
        """Inside a transaction: one unfinished row from `old` to `new`, its checksum renewed."""
        row = self._conn.execute("SELECT id, genome, reason, metrics FROM candidates WHERE seq = ? AND status = ?",
                                 (seq, old)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: row {seq} is not {old}")
        gid, genome, reason, metrics = row
        started = ", attempts = attempts + 1, started_at = ?" if new == "running" else ""
        params = (new, *((time.time(),) if new == "running" else ()),
                  _checksum(seq, gid, genome, new, reason, metrics), seq)
        self._conn.execute(f"UPDATE candidates SET status = ?{started}, checksum = ? WHERE seq = ?", params)


# ---------------------------------------------------------------------------------------------------
# Run directories
# ---------------------------------------------------------------------------------------------------
def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@dataclass(frozen=True)
class RunDir:
    """The layout of a run directory::

        RUN_DIR/
          .nacos-run.json     marker: this directory belongs to nacos (layout version, creation time)
          config.json         the resolved run configuration
          results.sqlite      the results store (plus its -wal / -shm / .lock companions)
          costmodels/         cost-model files (XGBoost JSON + metadata)
          artifacts/          per-candidate exports (ONNX, ...)
          report/             CSV / JSON tables and plots

    `check` validates without writing anything (for --dry-run and bad-input paths); `prepare` creates
    what is missing; `existing` opens one that must already be a run directory (report, export).
    """

    root: Path
    MARKER: ClassVar[str] = ".nacos-run.json"
    LAYOUT_VERSION: ClassVar[int] = 1

    @property
    def marker_path(self) -> Path:
        return self.root / self.MARKER

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def store_path(self) -> Path:
        return self.root / "results.sqlite"

    @property
    def costmodel_dir(self) -> Path:
        return self.root / "costmodels"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def read_marker(self) -> dict[str, Any]:
        """The marker's content, checked (raises `RunDirError` when damaged or of another layout)."""
        try:
            data = json.loads(self.marker_path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{self.marker_path}: unreadable run-directory marker ({exc})") from exc
        if not isinstance(data, dict) or data.get("nacos_run") is not True:
            raise RunDirError(f"{self.marker_path}: not a nacos run-directory marker")
        if data.get("layout") != self.LAYOUT_VERSION:
            raise RunDirError(f"{self.root}: run directory of layout version {data.get('layout')}, this nacos "
                              f"uses version {self.LAYOUT_VERSION}; use a new run directory")
        return data

    @classmethod
    def check(cls, path: str | Path) -> RunDir:
        """Validate `path` as a run directory to create or resume; writes nothing."""
        run = cls(Path(path))
        root = run.root
        if root.exists() and not root.is_dir():
            raise RunDirError(f"{root}: exists and is not a directory")
        if root.is_dir():
            if run.marker_path.exists():
                run.read_marker()
            elif any(root.iterdir()):
                raise RunDirError(f"{root}: a non-empty directory that is not a nacos run directory (no "
                                  f"{cls.MARKER}); give an empty or new directory")
        return run

    @classmethod
    def prepare(cls, path: str | Path) -> RunDir:
        """The run directory at `path`, created if new (after the same checks as `check`)."""
        run = cls.check(path)
        run.root.mkdir(parents=True, exist_ok=True)
        if not run.marker_path.exists():
            from nacos import __version__

            atomic_write_text(run.marker_path, json.dumps(
                {"nacos_run": True, "layout": cls.LAYOUT_VERSION, "nacos_version": __version__,
                 "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
        for d in (run.costmodel_dir, run.artifacts_dir, run.report_dir):
            d.mkdir(exist_ok=True)
        return run

    @classmethod
    def existing(cls, path: str | Path) -> RunDir:
        """A run directory that must already exist (for report / export)."""
        run = cls(Path(path))
        if not run.root.is_dir():
            raise RunDirError(f"{run.root}: no such run directory")
        if not run.marker_path.exists():
            raise RunDirError(f"{run.root}: not a nacos run directory (no {cls.MARKER})")
        run.read_marker()
        return run

    @property
    def is_new(self) -> bool:
        return not self.store_path.exists()

    def open_store(self, readonly: bool = False) -> ResultsStore:
        return ResultsStore(self.store_path, create=not readonly, readonly=readonly)

    def verify_store(self, *, repair: bool = False) -> StoreFinding:
        """`verify_store` of this run directory's results store."""
        return verify_store(self.store_path, repair=repair)


# ---------------------------------------------------------------------------------------------------
# Verifying and repairing a store file
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoreFinding:
    """The verdict of `verify_store` on one store file."""

    path: str
    ok: bool                       # opens, passes integrity_check and the schema check, every row is intact
    detail: str                    # one line for a report (final rows when ok, where and why when not)
    problem: str = ""              # why the store is damaged ("" when ok)
    row: int | None = None         # seq of the first damaged row, when the damage is in one
    rows: int = 0                  # final rows when ok; rows copied into the new store when repaired
    missing: bool = False          # no store file at all (not damage: no candidate evaluated yet)
    repaired: bool = False         # moved aside and rebuilt from the rows before the damage
    moved_to: str | None = None    # where the damaged file went


def _printable(text: object, limit: int = 200) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))[:limit]


def aside_path(path: str | Path) -> Path:
    """A free ``<path>.damaged-<UTC time>`` name (``~N`` appended when taken) to move a damaged file to."""
    path = Path(path)
    base = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    out, n = base, 0
    while out.exists() or Path(f"{out}-wal").exists():
        n += 1
        out = base.with_name(f"{base.name}~{n}")
    return out


def verify_store(path: str | Path, *, repair: bool = False) -> StoreFinding:
    """Check the store at `path` without changing it: what opening it checks (header, integrity, schema
    version, checksums), then each row's metrics and genome JSON, in seq order.

    With `repair`, a damaged store is moved aside whole (its WAL and SHM with it) and a new one is built
    from the rows before the first damaged row (copied with Python's sqlite3, as sqlite3's ``.recover``
    would; later rows stay in the moved copy, because a search replays rows in sequence order). The
    repair takes the store's writer lock, so it never runs under a live search.
    """
    path = Path(path)
    if not path.exists():
        return StoreFinding(str(path), False, "no results store (no candidate evaluated yet)",
                            problem="no results store", missing=True)
    problem = ""
    try:
        with ResultsStore(path, readonly=True) as store:   # header, integrity_check, schema version, checksums
            problem = _first_damaged_row(store)
            n_final = store.n_completed() if not problem else 0
    except StoreError as exc:
        problem = _printable(exc, 400)
    if not problem:
        return StoreFinding(str(path), True, f"{n_final} final rows", rows=n_final)
    found = re.search(r"row (\d+)", problem)
    row = int(found.group(1)) if found else None
    if not repair:
        return StoreFinding(str(path), False, problem, problem=problem, row=row)
    try:
        kept, aside = _recover_store(path)
    except StoreError as exc:
        return StoreFinding(str(path), False, f"{problem}; not repairable: {_printable(exc, 300)}",
                            problem=problem, row=row)
    return StoreFinding(str(path), False, f"{problem}; moved aside, {kept} rows before the damage copied into a "
                        "new store", problem=problem, row=row, rows=kept, repaired=True, moved_to=str(aside))


def _first_damaged_row(store: ResultsStore) -> str:
    """Why the first row whose checksum, metrics or genome is damaged is damaged ('' when none is)."""
    for row in store._query(f"SELECT {', '.join(ResultsStore._COLUMNS)} FROM candidates ORDER BY seq"):
        try:
            record = store._record(row)
            json.loads(record.genome)
        except StoreError as exc:
            return _printable(exc, 300)
        except (json.JSONDecodeError, TypeError) as exc:
            return f"row {row[0]}: genome is not valid JSON ({_printable(exc)})"
    return ""


@contextlib.contextmanager
def _writer_lock(store_path: Path) -> Iterator[None]:
    """The store's writer lock (the one `ResultsStore` takes): no repair while a search runs."""
    lock_path = store_path.with_name(store_path.name + ".lock")
    fh = open(lock_path, "a+")  # noqa: SIM115
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreLockedError(f"{store_path}: a search is writing this store; stop it before --repair") from None
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


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
    its meta rows; and whether the table was read to its end."""
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
    with _writer_lock(path):
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
            aside = aside_path(path)
            os.replace(path, aside)
            for suffix in ("-wal", "-shm"):
                if Path(f"{path}{suffix}").exists():
                    os.replace(f"{path}{suffix}", f"{aside}{suffix}")
            os.replace(fresh, path)
        finally:
            shutil.rmtree(work, ignore_errors=True)   # only the copies made above
    return len(rows), aside
