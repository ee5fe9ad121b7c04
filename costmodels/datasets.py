"""Readers for the data the cost models learn from, all plain files, no TVM import:

* `read_metaschedule_db(work_dir)`: the records of a MetaSchedule JSON database (one per measured
  trace: workload index, trace, run seconds, argument shapes) as `ScheduleSample`s;
* `load_nb201(path)` and `nb201_layers(arch)`: the NAS-Bench-201 table with latencies measured on ten
  devices (see ../shared/DATA.md), and the layers of a NAS-Bench-201 network as `LayerWorkload`s,
  computed analytically from the published network definition (CIFAR, 32x32 input, C = 16, N = 5).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from costmodels.errors import CostModelError
from costmodels.ranker import ScheduleSample
from costmodels.workloads import conv2d_workload, dense_workload, elementwise_workload, pool2d_workload
from schedules.records import LayerWorkload

__all__ = [
    "MetaScheduleDB",
    "read_metaschedule_db",
    "best_known_ms",
    "workload_from_args",
    "NB201_DEFAULT_PATH",
    "NB201_DEVICES",
    "NB201_OPS",
    "load_nb201",
    "nb201_layers",
    "parse_nb201",
]

#: Where the project keeps the NAS-Bench-201 table (a clone without ../shared has none).
NB201_DEFAULT_PATH = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "nasbench201" / \
    "nb201_accuracy_latency.csv"
NB201_DEVICES = ("1080ti_1", "1080ti_32", "2080ti_1", "eyeriss", "fpga", "gold_6226", "pixel3", "raspi4",
                 "samsung_a50", "silver_4114")
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: MetaSchedule writes this run time for a candidate that failed to build or run.
_FAILED_SECS = 1e9


@dataclass(frozen=True)
class MetaScheduleDB:
    samples: tuple[ScheduleSample, ...]
    #: Records skipped and why: failed runs, a torn final line.
    skipped: dict[str, int]
    workloads: tuple[LayerWorkload, ...]


def workload_from_args(name: str, args: list, structural_hash: str) -> LayerWorkload:
    """A `LayerWorkload` from a record's argument shapes ([["TENSOR", dtype, shape], ...]):
    (data NCHW, weight OIHW, output NCHW) is a conv, (data, weight, output) with rank-2 data and
    output and in x out weights (in any packed layout) a dense layer;
    anything else is "other" with bytes from the shapes and no MACs."""
    shapes, dtypes = [], []
    for a in args:
        if not (isinstance(a, list) and len(a) == 3 and a[0] == "TENSOR"):
            raise CostModelError(f"{name}: unexpected argument record {a!r}")
        dtypes.append(str(a[1]))
        shapes.append(tuple(int(x) for x in a[2]))
    dtype = dtypes[0] if dtypes else "float32"
    if len(shapes) == 3 and all(len(s) == 4 for s in shapes):
        data, weight, out = shapes
        groups = data[1] // weight[1] if weight[1] else 1
        stride = max(1, round(data[2] / out[2])) if out[2] else 1
        pad = max(0, ((out[2] - 1) * stride + weight[2] - data[2] + 1) // 2)
        w = conv2d_workload(name, data, weight[0], (weight[2], weight[3]), stride, pad, groups, bias=False,
                            dtype=dtype)
        return LayerWorkload(**{**w.to_dict(), "structural_hash": structural_hash,
                                "input_shapes": (data, weight), "output_shape": out})
    if len(shapes) == 3 and len(shapes[0]) == 2 and len(shapes[2]) == 2 \
            and math.prod(shapes[1]) == shapes[0][1] * shapes[2][1]:
        # dense; the weight may arrive pre-packed (x86 topi packs it, e.g. (32, 64, 16, 4) for 256 x 512)
        data, weight, out = shapes
        w = dense_workload(name, data[0], data[1], out[1], bias=False, dtype=dtype)
        return LayerWorkload(**{**w.to_dict(), "structural_hash": structural_hash,
                                "input_shapes": (data, weight)})
    nbytes = sum(math.prod(s) for s in shapes) * 4
    return LayerWorkload(name=name, op_kind="other", input_shapes=tuple(shapes[:-1]),
                         output_shape=shapes[-1] if shapes else (),
                         dtype=dtype, structural_hash=structural_hash, bytes=nbytes)


def _read_lines(path: Path) -> tuple[list[Any], bool]:
    """JSON lines; a torn final line (no newline, not parseable) is skipped and reported, a corrupt
    line elsewhere is an error that names it."""
    text = path.read_text()
    lines = text.split("\n")
    out, torn = [], False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:  # the last line had no newline: a write cut short
                torn = True
                continue
            raise CostModelError(f"{path}:{i + 1}: corrupt record ({exc})") from exc
    return out, torn


def read_metaschedule_db(work_dir: str | os.PathLike, *, names: Mapping[int, str] | None = None,
                         workloads: Mapping[int, LayerWorkload] | None = None) -> MetaScheduleDB:
    """The measured records of a MetaSchedule JSON database as ranker samples (latency = median of
    the record's run seconds, in ms). `workloads` maps a workload index to its `LayerWorkload` when
    the caller knows it; otherwise it is derived from the argument shapes."""
    root = Path(work_dir)
    wl_path, rec_path = root / "database_workload.json", root / "database_tuning_record.json"
    for p in (wl_path, rec_path):
        if not p.is_file():
            raise CostModelError(f"{root}: not a MetaSchedule JSON database (missing {p.name})")
    wl_lines, wl_torn = _read_lines(wl_path)
    hashes = [str(x[0]) for x in wl_lines]
    recs, torn = _read_lines(rec_path)
    skipped = {"failed_run": 0, "torn_last_line": int(torn) + int(wl_torn)}
    samples = []
    made: dict[int, LayerWorkload] = dict(workloads or {})
    for n, rec in enumerate(recs):
        try:
            wi, (trace, run_secs, _target, args) = int(rec[0]), rec[1]
        except (TypeError, ValueError, IndexError) as exc:
            raise CostModelError(f"{rec_path}: record {n + 1} has an unexpected layout ({exc})") from exc
        if wi >= len(hashes):
            raise CostModelError(f"{rec_path}: record {n + 1} names workload {wi}, the database has {len(hashes)}")
        secs = sorted(float(s) for s in (run_secs or []))
        if not secs or secs[0] >= _FAILED_SECS or not all(math.isfinite(s) for s in secs):
            skipped["failed_run"] += 1
            continue
        if wi not in made:
            name = (names or {}).get(wi, f"workload{wi}")
            made[wi] = workload_from_args(name, args, hashes[wi])
        median = secs[len(secs) // 2] if len(secs) % 2 else 0.5 * (secs[len(secs) // 2 - 1] + secs[len(secs) // 2])
        samples.append(ScheduleSample(made[wi], trace, median * 1e3))
    return MetaScheduleDB(tuple(samples), skipped, tuple(made[i] for i in sorted(made)))


def best_known_ms(work_dir: str | os.PathLike) -> dict[str, float]:
    """structural hash -> fastest measured ms of each workload in a MetaSchedule JSON database (the
    schedules wing's `TuningDatabase` directory has the same layout): the `known_ms` that
    `ArchLatencyModel` and `arch_features` take."""
    db = read_metaschedule_db(work_dir)
    best: dict[str, float] = {}
    for s in db.samples:
        h = s.workload.structural_hash
        best[h] = min(best.get(h, math.inf), s.latency_ms)
    return best


# --------------------------------------------------------------------------------------------------
# NAS-Bench-201
def parse_nb201(arch: str) -> list[tuple[str, int, int]]:
    """'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' -> [(op, to_node, from_node), ...] (6 edges)."""
    edges = []
    nodes = [s for s in arch.strip().split("+") if s]
    if len(nodes) != 3:
        raise CostModelError(f"not a NAS-Bench-201 cell string: {arch!r}")
    for to, node in enumerate(nodes, start=1):
        parts = [p for p in node.split("|") if p]
        if len(parts) != to:
            raise CostModelError(f"not a NAS-Bench-201 cell string: {arch!r}")
        for p in parts:
            op, _, src = p.partition("~")
            if op not in NB201_OPS or not src.isdigit() or int(src) >= to:
                raise CostModelError(f"bad edge {p!r} in {arch!r}")
            edges.append((op, to, int(src)))
    return edges


def nb201_layers(arch: str, *, batch: int = 1, channels: int = 16, cells_per_stage: int = 5,
                 resolution: int = 32, num_classes: int = 10) -> list[LayerWorkload]:
    """The layers of the NAS-Bench-201 network with cell `arch`, as in its reference implementation
    (stem conv 3x3, three stages of N cells at C, 2C, 4C joined by residual reduction blocks, global
    pool, classifier). Convolutions carry no bias (BN follows); "none" and "skip_connect" edges
    launch no kernel; a node summing k > 1 non-zero inputs is one k-input elementwise add."""
    edges = parse_nb201(arch)
    layers: list[LayerWorkload] = [conv2d_workload("stem", (batch, 3, resolution, resolution), channels, 3, 1, 1,
                                                   bias=False)]
    c, r = channels, resolution
    for stage in range(3):
        if stage > 0:
            cin, c, r_in = c, 2 * c, r
            r = r // 2
            layers += [conv2d_workload(f"s{stage}_red_a", (batch, cin, r_in, r_in), c, 3, 2, 1, bias=False),
                       conv2d_workload(f"s{stage}_red_b", (batch, c, r, r), c, 3, 1, 1, bias=False),
                       pool2d_workload(f"s{stage}_red_pool", (batch, cin, r_in, r_in), 2, 2),
                       conv2d_workload(f"s{stage}_red_1x1", (batch, cin, r, r), c, 1, 1, 0, bias=False),
                       elementwise_workload(f"s{stage}_red_add", (batch, c, r, r), 2)]
        shape = (batch, c, r, r)
        for cell in range(cells_per_stage):
            tag = f"s{stage}c{cell}"
            inputs_per_node = {1: 0, 2: 0, 3: 0}
            for op, to, src in edges:
                name = f"{tag}_e{src}{to}"
                if op == "nor_conv_3x3":
                    layers.append(conv2d_workload(name, shape, c, 3, 1, 1, bias=False))
                elif op == "nor_conv_1x1":
                    layers.append(conv2d_workload(name, shape, c, 1, 1, 0, bias=False))
                elif op == "avg_pool_3x3":
                    layers.append(pool2d_workload(name, shape, 3, 1, 1))
                if op != "none":
                    inputs_per_node[to] += 1
            for node, k in inputs_per_node.items():
                if k > 1:
                    layers.append(elementwise_workload(f"{tag}_n{node}_add", shape, k))
    layers.append(pool2d_workload("gap", (batch, c, r, r), r, r))
    layers.append(dense_workload("classifier", batch, c, num_classes))
    return layers


def load_nb201(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Rows of the NAS-Bench-201 table: index, arch, accuracies and `lat_ms_<device>` as floats.
    Raises FileNotFoundError with the path when absent (tests and benchmarks skip on it)."""
    p = Path(path) if path else NB201_DEFAULT_PATH
    if not p.is_file():
        raise FileNotFoundError(f"NAS-Bench-201 table not found at {p} (see ../shared/DATA.md)")
    rows = []
    with open(p, newline="") as fh:
        for row in csv.DictReader(fh):
            out: dict[str, Any] = {"index": int(row["index"]), "arch": row["arch"]}
            for k, v in row.items():
                if k not in ("index", "arch"):
                    out[k] = float(v)
            rows.append(out)
    if not rows:
        raise CostModelError(f"{p}: no rows")
    return rows
