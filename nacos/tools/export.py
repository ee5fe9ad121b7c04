"""`nacos export`: one candidate of a finished run, packed for deployment.

Into OUT (default ``RUN_DIR/export/<arch_id>/``) go ``model.onnx`` (the run's checked artifact, or
re-exported with the run's supernet), ``model.so`` (the TVM library compiled the way the run's mode
measured it: two-stage with the tuning database's best records, baseline with its one default
schedule, one-stage with the genome's per-layer schedules), ``schedules.json`` (the schedules used;
for a database, its best records of the model's workloads, plus ``tuning-db/``: the same records as
a MetaSchedule JSON database that `schedules.TuningDatabase` opens), and ``card.json`` (architecture,
every metric of the store's row, target, tool versions, date, files with sha256).

The library is loaded back (`tvm.runtime.load_module` + `relax.VirtualMachine`) and its output
compared with onnxruntime's before anything is moved into OUT; OUT is written whole or not at all
(built in a temporary sibling, then renamed).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacos.errors import NacosError
from nacos_base.errors import NacosBaseError
from nacos_base.records import Status

__all__ = ["ExportCheckFailed", "Picked", "export_candidate", "pick_candidate"]

CARD_VERSION = 1


class ExportCheckFailed(NacosBaseError, RuntimeError):
    """The exported library did not load, run, or match onnxruntime (nacos or TVM is at fault, not the input)."""


@dataclass(frozen=True)
class Picked:
    """The candidate `--pick` chose: its store row (`CandidateRecord.to_dict()`) and how it was chosen."""

    row: dict[str, Any]
    how: str

    @property
    def arch_id(self) -> str:
        return str(self.row["metrics"].get("arch_id") or self.row["id"])


def _ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best accuracy first; ties to the faster, then the earlier candidate."""
    def key(r: dict[str, Any]) -> tuple[float, float, int]:
        m = r["metrics"]
        lat = m.get("latency_ms")
        return (-float(m.get("accuracy", -math.inf)), float(lat) if lat is not None else math.inf, r["seq"])
    return sorted(rows, key=key)


def pick_candidate(rows: list[dict[str, Any]], pick: str) -> Picked:
    """best | under:LATENCY_MS | a candidate id or architecture id, among the store's rows."""
    ok = [r for r in rows if r["status"] == Status.OK and r["metrics"].get("accuracy") is not None]
    if pick == "best":
        if not ok:
            raise NacosError(f"--pick best: the run has no ok candidate ({len(rows)} rows, "
                             f"{sum(r['status'] == 'ok' for r in rows)} ok)")
        return Picked(_ranked(ok)[0], "best accuracy among ok candidates")
    if pick.startswith("under:"):
        text = pick[len("under:"):]
        try:
            limit = float(text)
        except ValueError:
            limit = math.nan
        if not math.isfinite(limit) or limit <= 0:
            raise NacosError(f"--pick {pick}: LATENCY_MS must be a positive number of milliseconds")
        fits = [r for r in ok if r["metrics"].get("latency_ms") is not None and r["metrics"]["latency_ms"] <= limit]
        if not fits:
            fastest = min((r["metrics"]["latency_ms"] for r in ok if r["metrics"].get("latency_ms") is not None),
                          default=None)
            raise NacosError(f"--pick {pick}: no ok candidate at or under {limit:g} ms"
                             + (f" (the fastest ok one runs in {fastest:.4g} ms)" if fastest is not None
                                else " (the run has no ok candidate)"))
        return Picked(_ranked(fits)[0], f"best accuracy with latency_ms <= {limit:g}")
    matches = [r for r in rows if pick in (r["id"], r["metrics"].get("arch_id"))]
    if not matches:
        raise NacosError(f"--pick {pick}: no candidate or architecture of that id in the run; use best, "
                         f"under:LATENCY_MS or one of the ids `nacos report` lists")
    good = [r for r in matches if r["status"] == Status.OK]
    if not good:
        r = matches[0]
        raise NacosError(f"--pick {pick}: candidate {r['id']} is {r['status']} ({r['reason'] or 'no reason'}); "
                         f"only ok candidates can be exported")
    return Picked(_ranked(good)[0], f"id {pick}")


def _load_run(run_dir: Path) -> tuple[Any, Any, list[dict[str, Any]]]:
    """(RunDir, RunConfig, store rows) of an existing run directory; read only."""
    from nacos.config import config_from_dict
    from nacos.results.store import RunDir

    run = RunDir.existing(run_dir)
    if not run.config_path.exists():
        raise NacosError(f"{run.root}: has no config.json; was the search ever started?")
    try:
        cfg = config_from_dict(json.loads(run.config_path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NacosError(f"{run.config_path}: not valid JSON ({exc})") from exc
    store = run.open_store(readonly=True)
    try:
        rows = [r.to_dict() for r in store.completed()]
    finally:
        store.close()
    return run, cfg, rows


def _genome_and_arch(cfg: Any, space: Any, row: dict[str, Any]) -> tuple[Any, Any]:
    """The row's genome (an Architecture, or a one-stage CoGenome) and its Architecture, as the mode's
    record (`nacos.search.modes`) reads them."""
    from nacos.search.modes import run_mode

    mode = run_mode(cfg)
    genome = mode.genome_space(space).parse(json.dumps(row["genome"]))
    return genome, mode.arch_of(genome)


def _database_path(cfg: Any, database: str | None) -> Path:
    path = Path(database or cfg.tuning.database)
    if not (path / "database_workload.json").is_file():
        raise NacosError(f"{path}: no tuning database there (the run's tuning.database, relative to the "
                         f"directory the search ran in); pass --database DIR")
    return path


def _export_backend(cfg: Any, space: Any, database: str | None) -> Any:
    """The TVM backend that builds the way the run's mode measured (a database-reading one over the run's
    database, or the one named with --database)."""
    import dataclasses

    from nacos.backends import backend_class, get_backend

    name = _export_backend_name(cfg)
    if backend_class(name).reads_database:
        path = _database_path(cfg, database)
        cfg = dataclasses.replace(cfg, tuning=dataclasses.replace(cfg.tuning, database=str(path)))
    return get_backend(name, cfg, space)


def _export_backend_reads_database(cfg: Any) -> bool:
    from nacos.backends import backend_class

    return bool(backend_class(_export_backend_name(cfg)).reads_database)


def _export_backend_name(cfg: Any) -> str:
    """The backend that builds the mode's library (its record's `export_backend`): two-stage compiles with
    the database as it is (an export never tunes), the others with the schedules their search measured."""
    from nacos.search.modes import run_mode

    return run_mode(cfg).export_backend


def _compile(cfg: Any, space: Any, genome: Any, arch: Any, onnx_path: Path, database: str | None
             ) -> tuple[Any, dict[str, Any], Any]:
    """(schedules.measure.Compiled, schedules description, TuningDatabase or None) the way the mode measured."""
    backend = _export_backend(cfg, space, database)
    built = backend.build(genome, arch, onnx_path)  # built, not timed
    if not built.ok:
        raise ExportCheckFailed(f"the {backend.name} build failed: {built.reason}")
    return built.artifact, backend.describe(genome), getattr(backend, "db", None) if backend.reads_database else None


def _database_records(db: Any, onnx_path: Path, target: Any, out: Path) -> list[dict[str, Any]]:
    """The record each workload of the model was built with (`compile`'s choice: the target machine's
    fastest, else another machine's fastest, marked ``transferred``), as plain JSON, and the same records
    written as a MetaSchedule JSON database under `out` (workload lines re-indexed)."""
    from schedules.database import RECORD_FILE, WORKLOAD_FILE
    from schedules.frontend import extract_workloads, import_onnx

    db.refresh()
    db = db.on(target)
    transferred = db.transferred()
    out.mkdir(parents=True)
    summary, workloads_out, records_out = [], [], []
    for w in extract_workloads(import_onnx(onnx_path), target):
        entry = {"name": w.name, "op_kind": w.op_kind, "structural_hash": w.structural_hash,
                 "calls": w.count, "macs": w.macs, "tuned": db.is_tuned(w),
                 "transferred": w.structural_hash in transferred}
        applied = db.applied(w)
        if applied is not None:
            best, workload_line, record_line = applied
            entry.update(run_ms=best.run_ms, records=best.records, record=record_line[1], measured_on=best.machine)
            records_out.append([len(workloads_out), record_line[1]])
            workloads_out.append(workload_line)
        summary.append(entry)
    (out / WORKLOAD_FILE).write_text("".join(json.dumps(w) + "\n" for w in workloads_out))
    (out / RECORD_FILE).write_text("".join(json.dumps(r) + "\n" for r in records_out))
    return summary


def _check_library(lib_path: Path, compiled: Any) -> dict[str, Any]:
    """Load the exported library back, run it, compare with onnxruntime (the search's own gate)."""
    import dataclasses

    import tvm

    from schedules.measure import check_against_onnxruntime

    inputs = compiled.random_inputs(seed=1)
    try:
        loaded = dataclasses.replace(compiled, executable=tvm.runtime.load_module(str(lib_path)))
        outputs = loaded.run(inputs)  # relax.VirtualMachine over the loaded library
    except Exception as exc:
        raise ExportCheckFailed(f"{lib_path.name}: does not load or run back ({type(exc).__name__}: {exc})") from exc
    ok, reason = check_against_onnxruntime(compiled, outputs, inputs=inputs)
    if not ok:
        raise ExportCheckFailed(f"{lib_path.name}: {reason}")
    return {"loads_and_runs": True, "matches_onnxruntime": True, "rtol": 1e-4, "inputs": "standard normal, seed 1"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> dict[str, dict[str, Any]]:
    return {str(p.relative_to(root)): {"sha256": _sha256(p), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file()}


def _versions() -> dict[str, str]:
    import platform

    from nacos import __version__
    from schedules.targets import versions

    return {"nacos": __version__, "python": platform.python_version(), **dict(versions())}


def _out_dir(run: Any, picked: Picked, out: Path | None) -> Path:
    out = Path(out) if out is not None else run.root / "export" / picked.arch_id
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "card.json").is_file())):
        raise NacosError(f"{out}: exists and is not an earlier export (no card.json); give a new or empty --out")
    return out


def export_candidate(run_dir: Path | str, pick: str = "best", out: Path | str | None = None,
                     database: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Export the picked candidate of `run_dir` into `out`; returns the card (plus ``out``)."""
    from archspace.space import ArchSpace, SpaceConfig
    from nacos.tools.model import Stages

    # Step 1. Read and check everything the user named; nothing is written before this passes.
    run, cfg, rows = _load_run(Path(run_dir))
    if str(cfg.target).startswith("accel://"):
        raise NacosError(f"{run_dir}: a run on {cfg.target} has no compiled library to export (ZigZag prices "
                         f"a mapping per layer, it builds nothing); each row's latency details hold the "
                         f"per-layer mappings (nacos report)")
    picked = pick_candidate(rows, pick)
    space = ArchSpace(SpaceConfig.from_dict(dict(cfg.space)))
    genome, arch = _genome_and_arch(cfg, space, picked.row)
    out_dir = _out_dir(run, picked, Path(out) if out is not None else None)
    if _export_backend_reads_database(cfg):
        _database_path(cfg, database)
    stages = Stages(["model.onnx", "compile", "export library", "load back and check", "schedules and card"],
                    progress, "export")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp", dir=out_dir.parent))
    try:
        # Step 2. The model: the run's checked artifact, or a fresh export with the run's supernet.
        with stages.stage("model.onnx"):
            artifact = run.artifacts_dir / picked.arch_id / "model.onnx"
            if artifact.is_file():
                shutil.copyfile(artifact, tmp / "model.onnx")
                onnx_source = "run artifact"
            else:
                from archspace.export import export_onnx
                from archspace.training import load_supernet

                supernet = load_supernet(None if cfg.checkpoint == "default" else cfg.checkpoint, space)
                export_onnx(arch, tmp / "model.onnx", batch=cfg.batch, supernet=supernet)
                onnx_source = "re-exported with the run's supernet"
        # Step 3. Compile as the mode measured, export the library, load it back and check it.
        with stages.stage("compile"):
            compiled, schedules, db = _compile(cfg, space, genome, arch, tmp / "model.onnx", database)
        with stages.stage("export library"):
            compiled.executable.export_library(str(tmp / "model.so"))
        with stages.stage("load back and check"):
            check = _check_library(tmp / "model.so", compiled)
        # Step 4. Schedules and the card.
        with stages.stage("schedules and card"):
            if db is not None:
                schedules["workloads"] = _database_records(db, tmp / "model.onnx", compiled.target, tmp / "tuning-db")
            (tmp / "schedules.json").write_text(json.dumps(schedules, indent=2) + "\n")
            card = {"card_version": CARD_VERSION, "run_dir": str(run.root), "mode": cfg.mode, "picked": picked.how,
                    "candidate_id": picked.row["id"], "seq": picked.row["seq"], "arch_id": arch.id,
                    "architecture": arch.to_dict(), "short": arch.short(), "genome": picked.row["genome"],
                    "metrics": picked.row["metrics"], "status": picked.row["status"],
                    "target": cfg.target, "tvm_target": str(compiled.target), "batch": cfg.batch,
                    "inputs": {k: list(v) for k, v in compiled.input_shapes.items()}, "onnx": onnx_source,
                    "schedules": schedules["source"], "build_seconds": compiled.seconds, "check": check,
                    "versions": _versions(),
                    "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "files": _files(tmp)}
            (tmp / "card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)  # an earlier export of ours (checked in step 1)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_if_empty(out_dir.parent, run.root)
        raise
    finally:
        stages.close()
    return {**card, "out": str(out_dir)}


def _remove_if_empty(directory: Path, stop: Path) -> None:
    """Remove `directory` (the export/ folder this call may have made) when empty, never `stop`."""
    try:
        if directory.resolve() != stop.resolve() and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
    except OSError:
        pass
