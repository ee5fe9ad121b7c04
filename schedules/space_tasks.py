"""The tasks an architecture space can produce, as a file: what `nacos pretune` tunes (blockwise, once
per workload of the space, as CHaNAS does) and what its coverage report counts.

A `SpaceTask` is one distinct tunable task (keyed by the structural hash of its fused PrimFunc, the same
key as the tuning database), with its `weight`: the expected number of times a randomly sampled
architecture of the space calls it. ``weight * run time`` is then the task's expected share of an
architecture's latency, which is how the pretuner spends its trials.

The task's TensorIR module travels with it (``tvm.ir.save_json``, the format MetaSchedule's own JSON
database stores workloads in), so a resumed pretune tunes the very same functions without exporting and
importing the space's networks again. A task file is JSON, written atomically; it is read back checked.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schedules.errors import ScheduleError
from schedules.records import LayerWorkload

__all__ = ["SpaceTask", "TASK_FILE_FORMAT", "merge_tasks", "onnx_file_tasks", "read_enumeration_log",
           "read_task_file", "task_file_digest", "write_task_file"]

TASK_FILE_FORMAT = "nacos-space-tasks/1"


@dataclass(frozen=True)
class SpaceTask:
    """One distinct task of a space: its workload record, its expected calls per architecture, its module."""

    workload: LayerWorkload
    weight: float
    mod_json: str = ""

    @property
    def key(self) -> str:
        return self.workload.structural_hash

    @property
    def expected_macs(self) -> float:
        """MACs this task contributes to an average architecture of the space."""
        return self.weight * self.workload.macs

    def module(self) -> Any:
        """The task's TensorIR `IRModule` (what MetaSchedule tunes)."""
        import tvm

        if not self.mod_json:
            raise ScheduleError(f"space task {self.workload.name}: no module stored")
        return tvm.ir.load_json(self.mod_json)

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload.to_dict(), "weight": self.weight, "mod_json": self.mod_json}

    @classmethod
    def from_dict(cls, data: Any) -> "SpaceTask":
        if not isinstance(data, dict) or set(data) != {"workload", "weight", "mod_json"}:
            raise ScheduleError("space task: expected an object with keys workload, weight, mod_json")
        weight = data["weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ScheduleError(f"space task: weight must be a number >= 0, got {weight!r}")
        return cls(LayerWorkload.from_dict(data["workload"]), float(weight), str(data["mod_json"]))


def merge_tasks(groups: Iterable[tuple[float, Sequence[LayerWorkload]]], mods: Mapping[str, str]) -> list[SpaceTask]:
    """Distinct tasks of several (probability-weighted) groups of workloads, each with its module's JSON
    from `mods` (structural hash -> ``tvm.ir.save_json`` text).

    Each group is ``(factor, workloads)``: a task found in it gains ``factor * workload.count`` weight.
    A factor may be negative (to subtract the occurrences of a sub-network), but no task's total may.
    Tasks come out heaviest first (weight x MACs), ties by name, so the order is deterministic."""
    weights: dict[str, float] = {}
    first: dict[str, LayerWorkload] = {}
    for factor, workloads in groups:
        for workload in workloads:
            weights[workload.structural_hash] = weights.get(workload.structural_hash, 0.0) + factor * workload.count
            first.setdefault(workload.structural_hash, workload)
    tasks = []
    for key, weight in weights.items():
        if weight < -1e-9:
            raise ScheduleError(f"task {first[key].name}: negative expected count {weight:.3f}")
        tasks.append(SpaceTask(first[key], max(0.0, round(weight, 9)), mods.get(key, "")))
    tasks.sort(key=lambda t: (-t.weight * max(t.workload.macs, 1), t.workload.name, t.key))
    return tasks


def onnx_file_tasks(onnx_path: str | Path, target: Any, known: Mapping[str, str]) -> tuple[list[dict], dict[str, str]]:
    """The tasks of one exported network, as an enumeration log keeps them: its workloads (as dicts,
    in extraction order) and, for each structural hash not in `known`, the task's module as TVM JSON."""
    import tvm

    from schedules.frontend import extract_tasks, import_onnx, workload_of_task

    workloads: list[dict] = []
    new: dict[str, str] = {}
    for task in extract_tasks(import_onnx(onnx_path), target):
        w = workload_of_task(task)
        workloads.append(w.to_dict())
        if w.structural_hash not in known and w.structural_hash not in new:
            new[w.structural_hash] = tvm.ir.save_json(task.dispatched[0])
    return workloads, new


def read_enumeration_log(path: str | Path, key: str) -> tuple[dict[int, list[dict]], dict[str, str]]:
    """Read an append-only enumeration log (one JSON line per network: `key` -> its number, "workloads",
    "mods"): the networks done and the modules seen. A torn last line ends the read: that network is
    imported again."""
    done: dict[int, list[dict]] = {}
    mods: dict[str, str] = {}
    path = Path(path)
    if not path.exists():
        return done, mods
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            done[int(row[key])] = row["workloads"]
            mods.update(row["mods"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            break
    return done, mods


def task_file_digest(tasks: Sequence[SpaceTask]) -> str:
    """A short digest of the task set (hashes and weights): which tasks a coverage figure is about."""
    h = hashlib.sha256()
    for t in sorted(tasks, key=lambda t: t.key):
        h.update(f"{t.key}:{t.weight:.6f};".encode())
    return h.hexdigest()[:16]


def write_task_file(path: str | Path, tasks: Sequence[SpaceTask], meta: dict[str, Any]) -> None:
    """Write the task file atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format": TASK_FILE_FORMAT, "meta": meta, "digest": task_file_digest(tasks),
            "tasks": [t.to_dict() for t in tasks]}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(body, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_task_file(path: str | Path) -> tuple[list[SpaceTask], dict[str, Any]]:
    """(tasks, meta) of a task file; `ScheduleError` naming the file when it is not one."""
    path = Path(path)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScheduleError(f"{path}: not a readable space-task file ({exc})") from exc
    if not isinstance(body, dict) or body.get("format") != TASK_FILE_FORMAT or not isinstance(body.get("tasks"), list):
        raise ScheduleError(f"{path}: not a space-task file (format {TASK_FILE_FORMAT!r} expected)")
    try:
        tasks = [SpaceTask.from_dict(t) for t in body["tasks"]]
    except Exception as exc:  # RecordError / ScheduleError from the records
        raise ScheduleError(f"{path}: damaged space-task entry ({exc})") from exc
    if body.get("digest") != task_file_digest(tasks):
        raise ScheduleError(f"{path}: digest mismatch (the file was edited or damaged); delete it to enumerate again")
    return tasks, dict(body.get("meta") or {})
