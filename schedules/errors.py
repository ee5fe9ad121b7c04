"""The one exception of `schedules/` (a `nacos_base.errors.UserError`: the command line exits 2 on it).
Expected failures of a candidate (a schedule that does not build, a wrong result) are recorded data, not
exceptions; `ScheduleError` is for misuse and for inputs the wing refuses (an unreadable model, a damaged
database line)."""

from __future__ import annotations

from nacos_base.errors import UserError

__all__ = ["DatabaseCorrupted", "ScheduleError"]


class ScheduleError(UserError):
    """Misuse of `schedules/` or an input it refuses; the message says what to change."""


class DatabaseCorrupted(ScheduleError):
    """A tuning database file has a damaged line; `path` and `line` (1-based) say where."""

    def __init__(self, message: str, path: str, line: int) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
