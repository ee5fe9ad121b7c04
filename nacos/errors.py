"""The errors of the co-search wing, and what the command line maps to exit codes.

Every wing's errors inherit one root, `nacos_base.errors.NacosBaseError` (lower wings cannot import
`nacos`, DESIGN.md layering, so the root lives in the floor package under all four): the input errors
(`ArchSpaceError`, `ScheduleError`, `RecordError`, `CostModelError`, `NacosError`) through
`nacos_base.errors.UserError` (exit 2); a full disk (`DiskFullError`, exit 1) directly.
"""

from __future__ import annotations

import errno
import sqlite3

from nacos_base.errors import NacosBaseError, UserError


class NacosError(UserError):
    """Misuse of the co-search (bad config, foreign run directory, ...): the message says what to change."""


class ConfigError(NacosError):
    """A run configuration that does not validate; the message names the key."""


class DiskFullError(NacosBaseError):
    """The disk filled up (or a file-size or quota limit was hit) while nacos wrote. Not the user's input
    and not a failure of the candidate: nothing committed before is lost, and the run resumes once there
    is space. The command line exits 1 with this message."""


#: errno values that mean "no room to write": no space, file larger than allowed, quota exceeded
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
#: how libraries that do not raise an `OSError` (SQLite, torch's and onnx's C++, TVM) word it
_FULL_WORDS = ("no space left on device", "database or disk is full", "file too large", "disk quota exceeded")


def disk_full_cause(exc: BaseException | None) -> BaseException | None:
    """The exception in `exc`'s chain (itself, its causes and contexts) that says the disk is full, or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFullError):
            return exc
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return exc
        if isinstance(exc, (sqlite3.OperationalError, RuntimeError, OSError)) and any(
                w in str(exc).lower() for w in _FULL_WORDS):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def says_disk_full(text: str) -> bool:
    """Whether an error message (from another process, which cannot hand over its exception) says the
    disk is full."""
    low = text.lower()
    return any(w in low for w in _FULL_WORDS) or "errno 28" in low or "errno 27" in low


def user_errors() -> tuple[type[BaseException], ...]:
    """Every exception type that means "the input was wrong" rather than "nacos is broken": the root of
    the wings' input errors, and a file the user named that is not there."""
    return (UserError, FileNotFoundError)
