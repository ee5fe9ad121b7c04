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

Each format's owner checks (and repairs) its own files; this module only turns their findings into
one report: `nacos.results.store.verify_store`, `schedules.database.verify_database`,
`costmodels.persist.verify_model_dir`.

Nothing is written unless ``repair=True``. Repairs never delete: a damaged tail of a JSON-lines file
goes to ``<file>.damaged-<UTC time>`` (the lines before it stay and load); a damaged results store is
moved aside whole and a new one is rebuilt from the rows before the first damaged row (rows are
copied with Python's sqlite3, as sqlite3's ``.recover`` would; rows after the damage stay in the
moved-aside copy, because the search replays rows in sequence order); a damaged cost-model directory
is moved aside (the screen retrains it from the store); a damaged artifact is moved aside. A damaged
``config.json``, marker or checkpoint is not repairable: the message says what to do.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nacos.results.store import ResultsStore, RunDir, RunDirError, StoreError, aside_path, verify_store
from nacos_base.records import Status

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


def _mode_checks_database(mode: str) -> bool:
    """Whether a run of `mode` has its config's tuning database checked (the mode's record says)."""
    from nacos.search.modes import get_mode

    return get_mode(mode).checks_database


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
def _check_store(run: RunDir, repair: bool, checks: list[FileCheck]) -> ResultsStore | None:
    """Check (and with `repair`, rebuild) the store; returns it opened read-only when it is usable."""
    found = verify_store(run.store_path, repair=repair)
    if found.missing:
        checks.append(FileCheck("store", found.path, MISSING, found.detail))
        return None
    status = REPAIRED if found.repaired else OK if found.ok else DAMAGED
    checks.append(FileCheck("store", found.path, status, found.detail, line=found.row, problem=status == DAMAGED,
                            repaired_to=found.moved_to))
    if status == DAMAGED:
        return None
    try:
        return ResultsStore(run.store_path, readonly=True)
    except StoreError as exc:   # changed since it was verified
        checks.append(FileCheck("store", found.path, DAMAGED, _printable(exc, 400), problem=True))
        return None


def _check_artifacts(run: RunDir, store: ResultsStore, repair: bool, checks: list[FileCheck]) -> None:
    import onnx

    try:
        records = store.completed()
    except StoreError as exc:  # damage met after the open (should not happen: the open read every row)
        checks.append(FileCheck("store", str(store.path), DAMAGED, _printable(exc, 300), problem=True))
        return
    n_ok = 0
    for record in records:
        if record.status != Status.OK:
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
                aside = aside_path(path)
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
def _check_tuning_db(db_dir: Path, repair: bool, checks: list[FileCheck], origin: str) -> None:
    from schedules.database import verify_database

    findings = verify_database(db_dir, repair=repair)
    if not findings:
        checks.append(FileCheck("tuning-db", str(db_dir), MISSING, f"no tuning database yet ({origin})"))
        return
    for found in findings:
        status = REPAIRED if found.repaired else OK if found.ok else DAMAGED
        checks.append(FileCheck("tuning-db", found.path, status, found.detail, line=found.line,
                                problem=status == DAMAGED, repaired_to=found.moved_to))


# ---------------------------------------------------------------------------------------------------
# Cost models and checkpoints
# ---------------------------------------------------------------------------------------------------
def _check_costmodel(model_dir: Path, repair: bool, checks: list[FileCheck]) -> None:
    from costmodels.persist import verify_model_dir

    found = verify_model_dir(model_dir, repair=repair)
    if found.ok:
        checks.append(FileCheck("costmodel", found.path, OK, "meta, boosters, features and digest check"))
    elif found.repaired:
        checks.append(FileCheck("costmodel", found.path, REPAIRED, f"{found.problem}; the model moved aside (the "
                                "search retrains it from the results store)", line=found.line,
                                repaired_to=found.moved_to))
    else:
        checks.append(FileCheck("costmodel", found.path, DAMAGED, found.problem, line=found.line, problem=True))


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
        run.read_marker()
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
    elif cfg is not None and _mode_checks_database(cfg.mode):
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

