"""The records every wing shares: a candidate's `Status` and its `Evaluation` (what evaluating it gave),
one shape from the objective (the supernet's evaluator, the NAS-Bench-201 table) through the executors to
the results store. A measurement's status (`schedules.records.Measurement`) is one of the same values."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["FINAL", "Evaluation", "Status"]


class Status(str, Enum):
    """A candidate's state in the results store. A `str` (``Status.OK == "ok"``), so the store's rows,
    the JSON reports and the strings of earlier runs read the same."""

    OK = "ok"              # evaluated, within the hard budgets
    REJECTED = "rejected"  # evaluated (or screened) and over a hard budget
    FAILED = "failed"      # its evaluation failed: the reason says why
    PENDING = "pending"    # proposed, not started (or requeued after a crash)
    RUNNING = "running"    # being evaluated

    def __str__(self) -> str:
        return self.value

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset({Status.OK, Status.REJECTED, Status.FAILED})


@dataclass(frozen=True)
class Evaluation:
    """What evaluating one candidate gave: returned by the evaluator, carried back by the executors,
    committed to the store as one row."""

    status: Status
    metrics: dict[str, Any]
    reason: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
