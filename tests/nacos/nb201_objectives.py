"""Deterministic objectives over the NAS-Bench-201 space for the strategy and resume tests.

`table_objective` is the real tabular benchmark (skipped where the CSV is absent). `closed_form` is a
fixed formula of the cell's operations, for the properties that hold for any deterministic objective
(determinism, replay, resume) so that those tests also run in a clone without `../shared`.
"""

from __future__ import annotations

from typing import Any

from archspace.nb201 import (
    NB201_OPS,
    NB201Arch,
    NB201Table,
    default_table_path,
)
from nacos_base.records import Evaluation, Status

TABLE_PATH = default_table_path()
TABLE_MISSING = (f"NAS-Bench-201 table absent at {TABLE_PATH} (see ../shared/DATA.md; set $NACOS_NB201_CSV)"
                 if not TABLE_PATH.is_file() else "")

_TABLE: NB201Table | None = None


def table() -> NB201Table:
    global _TABLE
    if _TABLE is None:
        _TABLE = NB201Table(TABLE_PATH)
    return _TABLE


# per-operation (accuracy gain, latency ms) of an edge, and a bonus for a conv on edges into node 3
_GAIN = {"none": 0.0, "skip_connect": 1.0, "nor_conv_1x1": 2.0, "nor_conv_3x3": 3.5, "avg_pool_3x3": 0.5}
_COST = {"none": 0.0, "skip_connect": 0.1, "nor_conv_1x1": 1.0, "nor_conv_3x3": 2.5, "avg_pool_3x3": 0.6}


def closed_form(arch: NB201Arch, latency_budget_ms: float | None = None) -> Evaluation:
    acc = 70.0 + sum(_GAIN[op] * (1.5 if k >= 3 else 1.0) for k, op in enumerate(arch.ops))
    acc -= 4.0 * (arch.ops[0] == "none") + 0.3 * NB201_OPS.index(arch.ops[2])
    lat = 1.0 + sum(_COST[op] for op in arch.ops) + 0.05 * NB201_OPS.index(arch.ops[5])
    metrics: dict[str, Any] = {"accuracy": round(acc, 4), "latency_ms": round(lat, 4), "arch": arch.to_string()}
    if latency_budget_ms is not None and lat > latency_budget_ms:
        return Evaluation(Status.REJECTED, metrics, f"latency {lat:.4f} ms over the budget {latency_budget_ms:g} ms")
    return Evaluation(Status.OK, metrics)
