"""Every distinct task the elastic MBConv space can produce, with its expected calls per architecture.

Exact and cheap, because a block's tasks depend only on its own choices: block ``b`` of stage ``s`` at
resolution ``r`` and width ``w`` has input channels fixed by the stage plan (the previous stage's output
for ``b = 0``, its own stage's for ``b >= 1``), so its kernel size and expand ratio alone decide its
fused functions, and every block ``b >= 1`` of a stage has the same shapes. Hence for every
(resolution, width, kernel, expand) two real networks are built, exported and imported by TVM, each
with that kernel and expand ratio in every block: one with every stage at the smallest depth, one at
the largest. Their tasks are every task the space has (the stem, the head, the classifier and the
pooling included), with the fused epilogues TVM really produces (a residual add only where the block
has one), under the same structural hashes the tuning database keys records by.

The expected calls of a task under uniform sampling (`ArchSpace.sample`) follow by linearity:
``count_min + (count_max - count_min) / (Dmax - Dmin) * S``, with ``S`` the expected number of blocks
beyond the minimum depth in a stage, averaged over every (resolution, width, kernel, expand).

The enumeration is saved as a task file (`schedules.space_tasks`) beside the database and reused;
networks already imported are appended to a partial file, so a killed enumeration resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archspace.space import ArchSpace
from schedules.space_tasks import (
    SpaceTask,
    merge_tasks,
    onnx_file_tasks,
    read_enumeration_log,
    read_task_file,
    write_task_file,
)

__all__ = ["enumerate_space_tasks", "space_task_file", "enumeration_architectures"]


def enumeration_architectures(space: ArchSpace) -> list[tuple[float, Any]]:
    """(weight factor, architecture) pairs whose weighted task counts are the space's expected counts."""
    c = space.config
    dmin, dmax = c.depths[0], c.depths[-1]
    p = 1.0 / (len(c.resolutions) * len(c.width_mults) * len(c.kernel_sizes) * len(c.expand_ratios))
    # expected blocks per stage beyond the minimum depth: sum over b >= dmin of P(depth > b)
    extra = sum(sum(1 for d in c.depths if d > b) / len(c.depths) for b in range(dmin, dmax))
    out = []
    for r in c.resolutions:
        for w in c.width_mults:
            for k in c.kernel_sizes:
                for e in c.expand_ratios:
                    if dmax == dmin:
                        out.append((p, space._uniform(r, w, dmin, k, e)))  # noqa: SLF001
                        continue
                    share = extra / (dmax - dmin)
                    out.append((p * (1.0 - share), space._uniform(r, w, dmin, k, e)))  # noqa: SLF001
                    out.append((p * share, space._uniform(r, w, dmax, k, e)))  # noqa: SLF001
    return out


def _target_key(target: Any) -> str:
    """What of a target can change its tasks: the kind, triple and CPU, not the thread count (a process whose
    affinity TVM has pinned sees one core, and the tasks are the same)."""
    attrs = getattr(target, "attrs", {}) or {}
    kind = getattr(getattr(target, "kind", None), "name", str(target))
    return "/".join(str(x) for x in (kind, attrs.get("mtriple", ""), attrs.get("mcpu", "")))


def _digest(space: ArchSpace, in_channels: int, num_classes: int, batch: int, target: Any) -> str:
    key = json.dumps({"space": space.config.to_dict(), "in": in_channels, "classes": num_classes,
                      "batch": batch, "target": _target_key(target)}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def space_task_file(database: str | Path, space: ArchSpace, target: Any, *, in_channels: int = 1,
                    num_classes: int = 10, batch: int = 1) -> Path:
    """Where the task file of this space (channels, classes, batch, target) lives beside the database."""
    return Path(database) / "space-tasks" / f"{_digest(space, in_channels, num_classes, batch, target)}.json"


def enumerate_space_tasks(space: ArchSpace, target: Any, database: str | Path, *, in_channels: int = 1,
                          num_classes: int = 10, batch: int = 1,
                          progress: Callable[[int, int], None] | None = None) -> list[SpaceTask]:
    """The space's distinct tasks, heaviest first (cached in the database directory; see the module doc).

    `progress(done, total)` is called after each network is imported."""
    from archspace.export import export_onnx
    from schedules.records import LayerWorkload

    final = space_task_file(database, space, target, in_channels=in_channels, num_classes=num_classes, batch=batch)
    if final.exists():
        return read_task_file(final)[0]
    plan = enumeration_architectures(space)
    partial = final.with_suffix(".partial.jsonl")
    final.parent.mkdir(parents=True, exist_ok=True)
    done, mods = read_enumeration_log(partial, "index")
    with tempfile.TemporaryDirectory(prefix="nacos-enum-") as tmp, open(partial, "a", encoding="utf-8") as log:
        for i, (_, arch) in enumerate(plan):
            if i in done:
                continue
            onnx_path = export_onnx(arch, Path(tmp) / f"{i}.onnx", batch=batch, space=space,
                                    in_channels=in_channels, num_classes=num_classes, check=False)
            workloads, new_mods = onnx_file_tasks(onnx_path, target, mods)
            mods.update(new_mods)
            done[i] = workloads
            log.write(json.dumps({"index": i, "arch": arch.to_json(), "workloads": workloads, "mods": new_mods}) + "\n")
            log.flush()
            os.fsync(log.fileno())
            if progress is not None:
                progress(len(done), len(plan))
    groups = [(factor, [LayerWorkload.from_dict(w) for w in done[i]]) for i, (factor, _) in enumerate(plan)]
    tasks = merge_tasks(groups, mods)
    meta = {"space": space.config.to_dict(), "in_channels": in_channels, "num_classes": num_classes,
            "batch": batch, "target": str(target), "networks": len(plan)}
    write_task_file(final, tasks, meta)
    partial.unlink(missing_ok=True)
    return tasks


def pretune_status(db: Any, space: ArchSpace, target: Any, *, in_channels: int = 1, num_classes: int = 10,
                   batch: int = 1) -> dict[str, Any]:
    """What a search should say about its tuning database: pretuned for this space or not, and the coverage
    (`schedules.pretune.space_coverage`) when it was. `db` is an open `TuningDatabase`."""
    from schedules.pretune import space_coverage, state_of

    path = space_task_file(db.path, space, target, in_channels=in_channels, num_classes=num_classes, batch=batch)
    command = f"nacos pretune --database {db.path}"
    if not path.exists():
        return {"pretuned": False, "note": f"no pretuned database for this space in {db.path}: each new candidate "
                                           f"tunes its own unseen workloads (minutes each); `{command}` tunes the "
                                           f"whole space once, resumably"}
    db = db.on(target)
    cov = space_coverage(read_task_file(path)[0], db)
    state = state_of(db)
    return {"pretuned": True, "coverage": cov, "pretune_seconds": state.get("seconds", 0.0),
            "note": f"pretuned database {db.path}: {cov['tasks_covered']}/{cov['tasks_total']} of the space's tasks, "
                    f"{cov['space_mac_coverage']:.0%} of its MACs have a tuned schedule"
                    + ("" if cov["tasks_covered"] == cov["tasks_total"] else f"; the rest is tuned as candidates "
                       f"need it (`{command}` goes on with it)")}
