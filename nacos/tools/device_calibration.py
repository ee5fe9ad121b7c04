"""A latency table for this machine from a few measurements: what `nacos calibrate --nb201-shots K` offers a
search on a device it has few measurements of (issue 14, point 5).

K cells of the NAS-Bench-201 table (connected ones, in an order shuffled by ``seed``, so a larger K extends
a smaller one) are built as real networks (`archspace.nb201_net`, 3 x 32 x 32, batch 1), exported and checked
(`archspace.export.export_module`), and timed on this machine in a process of their own
(`schedules.isolated.TimingWorker`: onnxruntime, or TVM with a tuning database). The few-shot transfer
model of `benchmarks/device_transfer.py` (`costmodels.device_transfer.predict_device`, ``ridge_select``:
mean Spearman 0.959 with 10 shots over the table's ten devices, each held out in turn) learns from every
other ``lat_ms_*`` column of the table and those K times, and predicts this machine's latency of every
cell. The result is the table with one more column, ``lat_ms_<device>`` (the measured value on the shots'
rows, the prediction elsewhere), so `archspace.nb201.NB201Table(out).objective(device=<device>)` runs any
strategy on this machine's latency in seconds; a JSON beside it says what was measured, with what, and how
well the model ranks the shots when each is left out.

Measured shots are appended (fsynced) to ``<out stem>.shots.jsonl`` as they are taken (their ONNX files in
``<out stem>-cells/``); a rerun with the same table, runtime and machine reuses them and measures only
what is missing (a larger K extends the set).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nacos.errors import NacosError

__all__ = ["CALIBRATION_FORMAT", "RUNTIMES", "calibrate_nb201"]

CALIBRATION_FORMAT = "nacos-device-calibration/1"
RUNTIMES = ("onnxruntime", "tvm")
INPUT_SHAPE = (1, 3, 32, 32)


@dataclass(frozen=True)
class _Shot:
    row: int
    arch: str
    ms: float
    std_ms: float

    def to_dict(self, key: dict[str, str]) -> dict[str, Any]:
        return {**key, "row": self.row, "arch": self.arch, "ms": self.ms, "std_ms": self.std_ms}


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _read_shots(path: Path, key: dict[str, str]) -> dict[str, _Shot]:
    """arch -> shot of the log lines measured under `key` (a torn last line, from a kill, is skipped)."""
    shots: dict[str, _Shot] = {}
    if not path.is_file():
        return shots
    for line in path.read_text().splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(d, dict) and all(d.get(k) == v for k, v in key.items()):
            shots[str(d["arch"])] = _Shot(int(d["row"]), str(d["arch"]), float(d["ms"]), float(d["std_ms"]))
    return shots


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _leave_one_out_spearman(source_ms: np.ndarray, rows: np.ndarray, ms: np.ndarray, names: list[str],
                            archs: list[str]) -> float | None:
    """Spearman between the shots' measured times and each shot's prediction from the other K-1 shots
    (how well the model ranks this machine, judged on what was measured); None under 4 shots."""
    from costmodels.device_transfer import predict_device
    from costmodels.metrics import spearman

    if rows.size < 4:
        return None
    pred = []
    for i in range(rows.size):
        keep = np.arange(rows.size) != i
        p = predict_device(source_ms, rows[keep], ms[keep], source_names=names, archs=archs).pred_ms
        pred.append(p[rows[i]])
    return float(spearman(np.asarray(pred), ms))


def _shot_rows(table: Any, k: int, seed: int) -> list[int]:
    """The first `k` of the table's connected cells (some live path from input to output: the others export
    to a constant) in an order shuffled by `seed`: a larger K extends a smaller one's cells."""
    import random

    from archspace.nb201 import live_edges

    pool = [i for i, a in enumerate(table.archs) if live_edges(a.ops)]
    random.Random(seed).shuffle(pool)
    return pool[:k]


def _write_table(table_path: Path, out: Path, column: str, values: np.ndarray) -> None:
    """The table with `column` appended, written atomically."""
    import csv

    with open(table_path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], [r for r in rows[1:] if r]
    if len(body) != len(values):
        raise NacosError(f"{table_path}: {len(body)} rows, {len(values)} predictions")
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*header, column])
        for r, v in zip(body, values):
            w.writerow([*r, f"{float(v):.6g}"])
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)


def calibrate_nb201(shots: int, out: str | Path, *, table: str | Path | None = None, device: str = "here",
                    runtime: str = "onnxruntime", database: str | Path | None = None, seed: int = 0,
                    threads: int = 0, warmup: int = 2, repeats: int = 10,
                    progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Measure `shots` NAS-Bench-201 cells here and write `out` (the table plus ``lat_ms_<device>``) and
    ``out.with_suffix(".json")``; returns that JSON's content. `runtime`: onnxruntime, or tvm (with the
    best records of `database`; without one, untuned). `progress(done, total, line)` after each shot."""
    from archspace.export import export_module
    from archspace.nb201 import NB201Table, default_table_path
    from archspace.nb201_net import build_nb201_network
    from costmodels.device_transfer import DeviceTable, predict_device
    from schedules.isolated import TimingWorker, target_spec
    from schedules.measure import Protocol
    from schedules.targets import host_target, host_threads, machine_key, versions

    if shots < 2:
        raise NacosError(f"--nb201-shots: the transfer model needs >= 2 measured cells, got {shots}")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", device):
        raise NacosError(f"--device: {device!r}: lower-case letters, digits and _ (it names the column "
                         f"lat_ms_{device})")
    if runtime not in RUNTIMES:
        raise NacosError(f"--runtime: {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if database is not None and runtime != "tvm":
        raise NacosError("--database: only with --runtime tvm (onnxruntime has no schedules)")
    if database is not None and not (Path(database) / "database_workload.json").is_file():
        raise NacosError(f"--database: {database} is not a tuning database (no database_workload.json)")
    table_path = Path(table) if table is not None else default_table_path()
    nb = NB201Table(table_path)             # a missing or malformed table is refused here, nothing written
    source = DeviceTable.from_csv(table_path)
    column = f"lat_ms_{device}"
    if column in source.devices:
        raise NacosError(f"{table_path} has a column {column} already: choose another --device")
    out = Path(out)
    if out.resolve() == table_path.resolve():
        raise NacosError(f"--out: {out} is the table itself; write the calibrated table elsewhere")
    out.parent.mkdir(parents=True, exist_ok=True)
    threads = threads or host_threads()
    target = host_target(threads)
    key = {"table": _digest(table_path), "runtime": runtime, "machine": machine_key(target),
           "database": str(Path(database).resolve()) if database is not None else ""}
    log = out.with_name(out.stem + ".shots.jsonl")
    done = _read_shots(log, key)
    rows = _shot_rows(nb, shots, seed)
    protocol = Protocol(warmup=warmup, repeats=repeats)
    work = out.with_name(out.stem + "-cells")  # the exported ONNX files of the shots
    work.mkdir(exist_ok=True)
    measured_now = 0
    started = time.perf_counter()
    todo = [r for r in rows if nb.archs[r].to_string() not in done]
    if todo:
        with TimingWorker() as worker:
            for i, r in enumerate(todo):
                arch = nb.archs[r].to_string()
                onnx_path = work / f"cell{int(nb.benchmark_indices[r])}.onnx"
                if not onnx_path.is_file():
                    export_module(build_nb201_network(arch), _zeros(), onnx_path, seed=seed)
                if runtime == "onnxruntime":
                    m = worker.onnxruntime(onnx_path, protocol, threads)
                else:
                    m = worker.tvm(onnx_path, database, target_spec(target), protocol, threads)
                if not m.ok:
                    raise NacosError(f"measuring {arch} with {runtime} failed: {m.error}")
                shot = _Shot(r, arch, float(m.median_ms), float(m.std_ms))
                _append(log, shot.to_dict(key))
                done[arch] = shot
                measured_now += 1
                if progress is not None:
                    progress(len(rows) - len(todo) + i + 1, len(rows), f"{arch}: {shot.ms:.3f} ms")
    taken = [done[nb.archs[r].to_string()] for r in rows]
    shot_rows = np.array([s.row for s in taken], dtype=np.int64)
    shot_ms = np.array([s.ms for s in taken])
    archs = [a.to_string() for a in nb.archs]
    names = list(source.devices)
    pred = predict_device(source.latency_ms, shot_rows, shot_ms, source_names=names, archs=archs)
    values = pred.pred_ms.copy()
    values[shot_rows] = shot_ms              # what was measured stands as measured
    _write_table(table_path, out, column, values)
    result = {
        "format": CALIBRATION_FORMAT, "table": str(table_path), "table_digest": key["table"], "out": str(out),
        "device": device, "column": column, "runtime": runtime, "database": key["database"] or None,
        "machine": key["machine"], "target": str(target), "threads": threads,
        "protocol": {"warmup": warmup, "repeats": repeats, "input_shape": list(INPUT_SHAPE)},
        "shots": [s.to_dict({}) for s in taken], "measured_now": measured_now,
        "seconds": time.perf_counter() - started, "method": pred.method, "chosen": pred.chosen,
        "leave_one_out_spearman": _leave_one_out_spearman(source.latency_ms, shot_rows, shot_ms, names, archs),
        "predicted_range_ms": [float(values.min()), float(values.max())],
        "versions": dict(versions()),
        "use": f"archspace.nb201.NB201Table({str(out)!r}).objective(device={device!r})",
    }
    tmp = out.with_suffix(f".json.tmp{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out.with_suffix(".json"))
    return result


def _zeros() -> Any:
    import torch

    return torch.zeros(*INPUT_SHAPE)
