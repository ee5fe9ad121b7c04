"""Exceptions of the inner-loop modules (`importer`, `workloads`, `target`, `tuning_database`,
`tuning`, `measurement`).

Expected failures of a candidate (a schedule that does not build, a run that times out, a wrong
result) are recorded data (`Measurement.failed`, `Failure`), never exceptions. These classes are for
misuse and for inputs the wing refuses; the message says what to change.
"""

from __future__ import annotations

__all__ = ["ScheduleError", "DatabaseCorruptError", "DatabaseRepairWarning"]


class ScheduleError(ValueError):
    """Misuse of `schedules/` or an input it refuses (a model that fails `onnx.checker`, a bad target)."""


class DatabaseCorruptError(ScheduleError):
    """A tuning database file has a damaged line. `path` and `line` (1-based) say where."""

    def __init__(self, message: str, path: str, line: int) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class DatabaseRepairWarning(UserWarning):
    """A torn tail of a tuning database file was moved aside; the message names the file, line and copy."""
